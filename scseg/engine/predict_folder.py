"""``scseg predict``: every DICOM series and NIfTI file under a path, with outputs a hospital can use.

Per series (``OUT_DIR/<patient>/<study>/<series>/``) or NIfTI case (``OUT_DIR/<case>/``):
``labels.nii.gz`` (label values as in training), ``probabilities.nii.gz`` on request, ``seg.dcm``
(DICOM SEG, DICOM inputs only), ``volumes.csv`` and ``preview.png``; ``OUT_DIR/summary.csv`` lists
every series found, what was done and why not. Each case folder is written whole or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from scseg.engine.distributed import DistInfo, all_gather_object, barrier, broadcast_object
from scseg.engine.predictor import Predictor
from scseg.engine.uncertainty import worst_uncertainty
from scseg.errors import ConfigError, DataError
from scseg.io import dicomweb
from scseg.io.atomic import AtomicDirectory, check_writable, clean_stale_temporaries, save_nifti_atomic
from scseg.io.convert import skipped_status
from scseg.io.csv_report import write_csv
from scseg.io.dicom_headers import is_nifti
from scseg.io.dicom_seg import COMPRESSION, SEG_TYPES, seg_source_headers, segment_numbers, write_dicom_seg
from scseg.io.dicom_series import DicomSeries, find_series, read_series
from scseg.io.names import display_path, nifti_stem, printable, unique_name
from scseg.io.nifti import load_nifti
from scseg.io.output_lock import OutputLock
from scseg.io.output_names import (
    MARKER,
    CaseFiles,
    OutputTarget,
    is_case_output,
    nifti_target,
    resolve_targets,
    series_target,
)
from scseg.io.reports import (
    hemisphere_sums,
    save_preview,
    structure_colors,
    structure_volumes,
    write_volumes_csv,
)
from scseg.io.rtstruct import check_rtstruct_sources, write_rtstruct
from scseg.io.space_reserve import SpaceReserve
from scseg.io.walk import walk_files
from scseg.labels.codes import roi_names


@dataclass
class PredictionRecord:
    """One row of ``summary.csv``."""

    source: str
    kind: str  # "dicom" or "nifti"
    patient_id: str = ""
    study_uid: str = ""
    series: str = ""
    # "pending" (not reached yet: a batch that was stopped says so), "done", "failed", or
    # "skipped" (not meant to be segmented: localizers, non-image objects)
    status: str = "pending"
    output: str = ""
    seconds: float = 0.0
    message: str = ""
    rank: int | None = None  # torchrun: the rank that ran the case
    # several passes (--tta, ensembles, --mc-dropout): the most uncertain structure's score, and
    # "flagged" where it exceeds the model's QC threshold (the reason is in ``message``)
    uncertainty: float | None = None
    qc: str = ""


@dataclass
class _Job:
    record: PredictionRecord
    target: OutputTarget
    series: DicomSeries | None = None
    nifti: Path | None = None

    @property
    def out_dir(self) -> Path:
        return self.target.path


def _not_input(out_dir: Path) -> Callable[[Path], bool]:
    """Folders not to read as input: the output folder and other runs' result folders."""
    out = out_dir.resolve()
    return lambda folder: folder.resolve() == out or is_case_output(folder)


def find_inputs(path: Path, out_dir: Path) -> tuple[list[_Job], list[PredictionRecord]]:
    """The cases under ``path`` (DICOM series and NIfTI files) and the series that are not cases.

    Raises:
        DataError: ``path`` does not exist, or holds neither a DICOM image series nor a NIfTI file.
    """
    if not path.exists():
        raise DataError(f"--input {display_path(path)} does not exist")
    tree = walk_files(path, skip_folder=_not_input(out_dir))
    jobs: list[_Job] = []
    for file in (f for f in tree.files if is_nifti(f)):
        target = nifti_target(out_dir, path, file)
        record = PredictionRecord(display_path(file), "nifti", series=unique_name(nifti_stem(file)))
        jobs.append(_Job(record, target, nifti=file))
    series, skipped = ([], []) if path.is_file() and is_nifti(path) else find_series(path, tree=tree)
    for item in series:
        record = PredictionRecord(
            display_path(item.files[0].parent), "dicom", item.patient_id, item.study_uid, item.name
        )
        record.message = "; ".join(item.warnings)
        jobs.append(_Job(record, series_target(out_dir, item), series=item))
    resolve_targets([j.target for j in jobs])
    others = [
        PredictionRecord(display_path(s.folder), "dicom", status=skipped_status(s), message=s.reason)
        for s in skipped
    ]
    if not jobs and not others:
        raise DataError(
            f"no DICOM image series and no NIfTI file (.nii, .nii.gz) found under {display_path(path)}"
        )
    return jobs, others


def write_summary(path: Path, records: list[PredictionRecord]) -> None:
    """``summary.csv``: one row per series / file found (written atomically)."""
    names = [f.name for f in fields(PredictionRecord)]
    rows = (
        [
            f"{getattr(r, n):.{1 if n == 'seconds' else 4}f}"
            if n in ("seconds", "uncertainty") and getattr(r, n) is not None
            else ""
            if getattr(r, n) is None
            else getattr(r, n)
            for n in names
        ]
        for r in records
    )
    write_csv(path, names, rows)


@dataclass(frozen=True)
class SegOptions:
    """``--seg-type`` (binary: the label map; fractional: each structure's probability, 0..255) and
    ``--seg-compression`` (none, jpeg2000 or, for fractional SEGs, rle; all lossless)."""

    kind: str = "binary"
    compression: str = "none"
    rtstruct: bool = False  # --rtstruct: also rtstruct.dcm (contours) for DICOM inputs

    def __post_init__(self) -> None:
        if self.kind not in SEG_TYPES:
            raise ConfigError(f"--seg-type {self.kind}: expected one of {', '.join(SEG_TYPES)}")
        if self.compression not in COMPRESSION:
            raise ConfigError(
                f"--seg-compression {self.compression}: expected one of {', '.join(COMPRESSION)}"
            )
        if self.kind == "binary" and self.compression == "rle":
            raise ConfigError(
                "--seg-compression rle: a binary SEG (1 bit per voxel) may be stored uncompressed or as "
                "JPEG 2000 only; use jpeg2000, or --seg-type fractional"
            )


def _predict_one(
    predictor: Predictor,
    job: _Job,
    views: list[str] | None,
    probabilities: bool,
    seg: SegOptions,
    settings: str,
    uncertainty_map: bool = False,
) -> None:
    image = read_series(job.series) if job.series is not None else load_nifti(job.nifti)
    # what the SEG will need is checked before the compute is spent
    seg_sources = seg_source_headers(job.series) if job.series is not None else None
    if seg.rtstruct and job.series is not None and seg_sources is not None:
        check_rtstruct_sources(seg_sources[0], image.affine, job.series)
    fractional = seg_sources is not None and seg.kind == "fractional"
    prediction = predictor.predict(
        image, views=views, probabilities=probabilities or fractional, uncertainty_map=uncertainty_map
    )
    names, values = predictor.label_names, predictor.label_values
    scores = None
    if prediction.uncertainty is not None:
        scores = {s.structure: (s.uncertainty, s.volume_cv) for s in prediction.uncertainty}
        job.record.uncertainty = worst_uncertainty(prediction.uncertainty)
        flag = predictor.quality_flag(prediction)
        if predictor.qc_threshold is not None:
            job.record.qc = "flagged" if flag else "ok"
        if flag:
            _note(job.record, flag)
    with AtomicDirectory(job.out_dir) as tmp:
        (tmp / MARKER).write_text(f"{job.target.identity}\n{settings}\n", encoding="utf-8")
        save_nifti_atomic(prediction.labels, tmp / CaseFiles.LABELS)
        if probabilities and prediction.probabilities is not None:
            save_nifti_atomic(prediction.probabilities, tmp / CaseFiles.PROBABILITIES)
        if prediction.uncertainty_map is not None:
            save_nifti_atomic(prediction.uncertainty_map, tmp / CaseFiles.UNCERTAINTY)
        volumes = structure_volumes(prediction.labels, names, values)
        write_volumes_csv(tmp / CaseFiles.VOLUMES, volumes + hemisphere_sums(volumes), scores)
        if job.series is not None:
            colours = predictor.spec.labels.colours or structure_colors(len(names))
            codes = predictor.spec.labels.segment_codes()
            numbers = segment_numbers(np.asanyarray(prediction.labels.dataobj), values)
            notes = write_dicom_seg(
                # FRACTIONAL: the structures' probabilities, background left out
                np.asanyarray(prediction.probabilities.dataobj)[..., 1:] if fractional else numbers,
                prediction.labels.affine,
                job.series,
                names,
                colours,
                tmp / CaseFiles.SEG,
                algorithm=predictor.algorithm_name,
                sources=seg_sources,
                compression=seg.compression,
                structure_codes=codes,
            )
            if seg.rtstruct:
                write_rtstruct(
                    numbers,
                    prediction.labels.affine,
                    job.series,
                    seg_sources[0],
                    roi_names(names, codes),  # TG-263, what planning systems match on
                    colours,
                    codes,
                    tmp / CaseFiles.RTSTRUCT,
                    algorithm=predictor.algorithm_name,
                )
            for note in notes:
                _note(job.record, note)
        save_preview(image, prediction.labels, volumes, tmp / CaseFiles.PREVIEW, title=job.record.series)


def _note(record: PredictionRecord, text: str) -> None:
    record.message = "; ".join(m for m in (record.message, text) if m)


def result_settings(
    predictor: Predictor,
    views: list[str] | None,
    probabilities: bool,
    seg: SegOptions,
    uncertainty_map: bool = False,
) -> str:
    """What produced a result (line 2 of its marker): the model's weights and the output options.
    A result made by another model or with other outputs is not reused when a batch resumes."""
    digest = hashlib.sha256()
    with open(predictor.checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return (
        f"model {digest.hexdigest()[:16]}; views {','.join(views or [])}; probabilities {int(probabilities)}; "
        f"seg {seg.kind} {seg.compression}; rtstruct {int(seg.rtstruct)}; passes {predictor.pass_kind} "
        f"{predictor.passes}; uncertainty map {int(uncertainty_map)}; qc {predictor.qc_threshold}"
    )


def _done_before(job: _Job, settings: str) -> bool:
    """The case's folder holds a complete result (folders are renamed into place whole) made by
    the same model with the same options."""
    try:
        lines = (job.out_dir / MARKER).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return lines[:2] == [job.target.identity, settings] and (job.out_dir / CaseFiles.LABELS).is_file()


def merge_records(
    records: list[PredictionRecord], mine: dict[int, PredictionRecord], shard: DistInfo
) -> list[PredictionRecord]:
    """Every rank's rows: ``records[i]`` from the rank that ran case i (``mine``: this rank's)."""
    merged = list(records)
    for part in all_gather_object(mine, shard):
        for index, record in part.items():
            merged[index] = record
    return merged


def predict_path(
    predictor: Predictor,
    input_path: str | Path,
    out_dir: str | Path,
    views: list[str] | None = None,
    probabilities: bool = False,
    progress: bool = True,
    seg: SegOptions = SegOptions(),
    overwrite: bool = False,
    shard: DistInfo | None = None,
    push: str | None = None,
    uncertainty_map: bool = False,
) -> list[PredictionRecord]:
    """Segment every case under ``input_path`` into ``out_dir``; a bad case is recorded and skipped.

    A case whose folder already holds a result of the same model and options is ``done`` at once
    (a stopped batch resumes where it stopped) unless ``overwrite``. Under ``torchrun``, ``shard``
    (:func:`scseg.engine.distributed.init_distributed`) spreads the cases over the ranks: case i
    goes to rank i mod world size, each rank writes its own cases, rank 0 the one ``summary.csv``.
    ``push``: a DICOMweb base URL that each DICOM case's SEG / RT structure set is stored at (STOW-RS).
    ``uncertainty_map``: with several passes (see :class:`Predictor`), also ``uncertainty.nii.gz``.

    ``summary.csv`` is written before the first case (every case ``pending``) and after each one,
    so a batch stopped at any point (even by ``kill -9``) leaves rows that say what happened. One
    run at a time writes into ``out_dir`` (a lock); temporaries a killed run left are removed first.

    Returns:
        One record per series / file found, as written to ``OUT_DIR/summary.csv``.

    Raises:
        DataError: nothing to segment under ``input_path``.
        ConfigError: ``views`` given for a 3D model, or unknown view names; ``out_dir`` cannot be
            written to, or another run is writing into it.
    """
    out_dir, input_path = Path(out_dir), Path(input_path)
    views = predictor.check_views(views)
    if not input_path.exists():  # before the output folder is created
        raise DataError(f"--input {display_path(input_path)} does not exist")
    shard = shard or DistInfo()
    if shard.is_main:
        check_writable(out_dir)  # before any inference, not after the first case's compute
    barrier(shard)
    # one run at a time writes into out_dir: rank 0 holds the lock for all ranks of a sharded run
    with OutputLock(out_dir) if shard.is_main else contextlib.nullcontext():
        if shard.is_main:
            clean_stale_temporaries(out_dir)
            found = find_inputs(input_path, out_dir)
        # every rank works on rank 0's list: one walk, one resolution of the output folders
        jobs, others = broadcast_object(found if shard.is_main else None, shard)
        records = [j.record for j in jobs] + others
        summary = out_dir / (CaseFiles.SUMMARY if shard.is_main else f".summary.rank{shard.rank}.csv")
        reserve = SpaceReserve(summary)  # a full disk must not stop the summary from saying so

        def save_summary() -> None:
            try:
                reserve.write(lambda: write_summary(summary, records))
            except OSError as err:
                raise DataError(
                    f"{display_path(summary)} cannot be written ({err.strerror or err}); the case "
                    "folders written so far are complete, and a re-run goes on from them"
                ) from None

        if shard.is_main:
            save_summary()
        settings = result_settings(predictor, views, probabilities, seg, uncertainty_map)
        mine = {index: job for index, job in enumerate(jobs) if index % shard.world_size == shard.rank}
        try:
            bar = tqdm(mine.values(), desc="predict", unit="series", disable=not progress, file=sys.stderr)
            for job in bar:
                bar.set_postfix_str(job.record.series[:40])
                job.record.rank = shard.rank if shard.enabled else None
                start = time.perf_counter()
                try:
                    if not overwrite and _done_before(job, settings):
                        _note(job.record, "done in an earlier run")
                    else:
                        _predict_one(predictor, job, views, probabilities, seg, settings, uncertainty_map)
                    job.record.status, job.record.output = "done", display_path(job.out_dir)
                    if (
                        push and job.series is not None
                    ):  # reported as stored only once the archive confirmed it
                        results = [
                            job.out_dir / n
                            for n in (CaseFiles.SEG, CaseFiles.RTSTRUCT)
                            if (job.out_dir / n).is_file()
                        ]
                        _note(job.record, f"stored {dicomweb.push(push, results)} instance(s) via STOW-RS")
                except Exception as err:  # one bad case must not stop the batch: it is recorded and skipped
                    job.record.status = "failed"
                    _note(
                        job.record,
                        printable(str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"),
                    )
                job.record.seconds = time.perf_counter() - start
                save_summary()  # after every case: the rows say what really happened
            save_summary()  # also when every case was done before (no row written yet)
        finally:
            reserve.release()  # also when the batch stops with an error
        if shard.enabled:  # rank 0 writes the one summary of every rank's cases
            records = merge_records(records, {i: job.record for i, job in mine.items()}, shard)
            if shard.is_main:
                write_summary(out_dir / CaseFiles.SUMMARY, records)
            else:
                summary.unlink(missing_ok=True)
    return records
