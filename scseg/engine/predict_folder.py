"""``scseg predict``: every DICOM series and NIfTI file under a path, with outputs a hospital can use.

Per series (``OUT_DIR/<patient>/<study>/<series>/``) or NIfTI case (``OUT_DIR/<case>/``):
``labels.nii.gz`` (label values as in training), ``probabilities.nii.gz`` on request, ``seg.dcm``
(DICOM SEG, DICOM inputs only), ``volumes.csv`` and ``preview.png``; ``OUT_DIR/summary.csv`` lists
every series found, what was done and why not. Each case folder is written whole or not at all.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError, DataError
from scseg.io.atomic import AtomicDirectory, save_nifti_atomic
from scseg.io.convert import series_output_dir, skipped_status
from scseg.io.csv_report import write_csv
from scseg.io.dicom_seg import write_dicom_seg
from scseg.io.dicom_series import DicomSeries, find_series, is_nifti, read_series, sanitize
from scseg.io.reports import save_preview, structure_colors, structure_volumes, write_volumes_csv


@dataclass
class PredictionRecord:
    """One row of ``summary.csv``."""

    source: str
    kind: str  # "dicom" or "nifti"
    patient_id: str = ""
    study_uid: str = ""
    series: str = ""
    status: str = "done"  # "done", "skipped" (not meant to be segmented) or "failed"
    output: str = ""
    seconds: float = 0.0
    message: str = ""


@dataclass
class _Job:
    record: PredictionRecord
    out_dir: Path
    series: DicomSeries | None = None
    nifti: Path | None = None


def _nifti_case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return sanitize(name)


def find_inputs(path: Path, out_dir: Path) -> tuple[list[_Job], list[PredictionRecord]]:
    """The cases under ``path`` (DICOM series and NIfTI files) and the series that are not cases.

    Raises:
        DataError: ``path`` does not exist, or holds neither a DICOM image series nor a NIfTI file.
    """
    if not path.exists():
        raise DataError(f"--input {path} does not exist")
    niftis = (
        [path] if path.is_file() and is_nifti(path) else sorted(p for p in path.rglob("*") if is_nifti(p))
    )
    jobs: list[_Job] = []
    used: set[Path] = set()
    for file in niftis:
        target = out_dir / _nifti_case_name(file)
        if target in used:  # the same file name in two folders
            target = target.with_name(f"{target.name}_{sanitize(file.parent.name)}")
        used.add(target)
        jobs.append(_Job(PredictionRecord(str(file), "nifti", series=target.name), target, nifti=file))
    series, skipped = ([], []) if path.is_file() and is_nifti(path) else find_series(path)
    for item in series:
        record = PredictionRecord(
            str(item.files[0].parent), "dicom", item.patient_id, item.study_uid, item.name
        )
        record.message = "; ".join(item.warnings)
        jobs.append(_Job(record, series_output_dir(out_dir, item, used), series=item))
    others = [
        PredictionRecord(str(s.folder), "dicom", status=skipped_status(s), message=s.reason) for s in skipped
    ]
    if not jobs and not others:
        raise DataError(f"no DICOM image series and no NIfTI file (.nii, .nii.gz) found under {path}")
    return jobs, others


def write_summary(path: Path, records: list[PredictionRecord]) -> None:
    """``summary.csv``: one row per series / file found (written atomically)."""
    names = [f.name for f in fields(PredictionRecord)]
    rows = ([f"{getattr(r, n):.1f}" if n == "seconds" else getattr(r, n) for n in names] for r in records)
    write_csv(path, names, rows)


def _segment_numbers(labels: np.ndarray, values: list[int]) -> np.ndarray:
    """Label values -> DICOM segment numbers 1..K (the order of the model's structures)."""
    lut = np.zeros(max(values) + 1, dtype=np.uint16)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[labels]


def _predict_one(predictor: Predictor, job: _Job, views: list[str] | None, probabilities: bool) -> None:
    image = read_series(job.series) if job.series is not None else nib.load(job.nifti)
    prediction = predictor.predict(image, views=views, probabilities=probabilities)
    names, values = predictor.label_names, predictor.label_values
    with AtomicDirectory(job.out_dir) as tmp:
        save_nifti_atomic(prediction.labels, tmp / "labels.nii.gz")
        if prediction.probabilities is not None:
            save_nifti_atomic(prediction.probabilities, tmp / "probabilities.nii.gz")
        volumes = structure_volumes(prediction.labels, names, values)
        write_volumes_csv(tmp / "volumes.csv", volumes)
        if job.series is not None:
            segments = _segment_numbers(np.asanyarray(prediction.labels.dataobj), values)
            notes = write_dicom_seg(
                segments,
                prediction.labels.affine,
                job.series,
                names,
                structure_colors(len(names)),
                tmp / "seg.dcm",
                algorithm=predictor.algorithm_name,
            )
            job.record.message = "; ".join([m for m in (job.record.message,) if m] + notes)
        save_preview(image, prediction.labels, volumes, tmp / "preview.png", title=job.record.series)


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and make sure files can be written into it.

    Raises:
        ConfigError: it lies under a file, or cannot be created or written to (the OS's reason).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".scseg-write-check-"):
            pass
    except OSError as err:
        raise ConfigError(f"--output {out_dir} cannot be written to ({err.strerror or err})") from None


def predict_path(
    predictor: Predictor,
    input_path: str | Path,
    out_dir: str | Path,
    views: list[str] | None = None,
    probabilities: bool = False,
    progress: bool = True,
) -> list[PredictionRecord]:
    """Segment every case under ``input_path`` into ``out_dir``; a bad case is recorded and skipped.

    Returns:
        One record per series / file found, as written to ``OUT_DIR/summary.csv``.

    Raises:
        DataError: nothing to segment under ``input_path``.
        ConfigError: ``views`` given for a 3D model, or unknown view names.
    """
    out_dir = Path(out_dir)
    views = predictor.check_views(views)
    jobs, records = find_inputs(Path(input_path), out_dir)
    check_writable(out_dir)  # before any inference, not after the first case's compute
    records = [j.record for j in jobs] + records
    summary = out_dir / "summary.csv"
    bar = tqdm(jobs, desc="predict", unit="series", disable=not progress, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(job.record.series[:40])
        start = time.perf_counter()
        try:
            _predict_one(predictor, job, views, probabilities)
            job.record.output = str(job.out_dir)
        except Exception as err:  # one bad case must not stop the batch: it is recorded and skipped
            job.record.status = "failed"
            detail = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
            job.record.message = "; ".join(m for m in (job.record.message, detail) if m)
        job.record.seconds = time.perf_counter() - start
        write_summary(summary, records)  # after every case: an interrupted batch still has its summary
    write_summary(summary, records)
    return records
