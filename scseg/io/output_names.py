"""Where each input's results go: one folder per input, unique and the same on every run.

``OUT/<patient>/<study>/<series>/`` for a DICOM series, ``OUT/<folders under --input>/<name>/`` for a
NIfTI file. Every part is :func:`~scseg.io.names.unique_name` (readable, with a hash of the exact
text when sanitising changed it). Two inputs that still land on one folder (two series with the same
number and description in a study, ``x.nii`` next to ``x.nii.gz``) both get a hash of their own
identity appended; when one input's folder would contain another's (``a.nii.gz`` next to
``a/b.nii.gz``, a NIfTI named like a patient folder), the outer one does, so replacing one result
never deletes another. Each result folder holds a :data:`MARKER` naming its input; a folder that
names another input (or none) is never replaced: the new result gets the hashed name instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scseg.io.dicom_series import DicomSeries
from scseg.io.names import display_path, nifti_stem, short_hash, unique_name

MARKER = ".scseg-case"  # in every case folder: the identity of the input it was made from


class CaseFiles:
    """The files ``scseg predict`` writes in a case folder (and ``SUMMARY`` in the output folder):
    every reader and writer of a prediction tree takes the names from here."""

    LABELS = "labels.nii.gz"
    PROBABILITIES = "probabilities.nii.gz"
    UNCERTAINTY = "uncertainty.nii.gz"
    VOLUMES = "volumes.csv"
    SEG = "seg.dcm"
    RTSTRUCT = "rtstruct.dcm"
    PREVIEW = "preview.png"
    SUMMARY = "summary.csv"


@dataclass
class OutputTarget:
    """One input's output folder (or file, for ``convert``) and what identifies the input."""

    identity: str  # SeriesInstanceUID, or the NIfTI file's path under --input
    path: Path


def series_target(out_dir: Path, series: DicomSeries) -> OutputTarget:
    """``OUT/<patient>/<study>/<series>`` for a DICOM series."""
    name = f"{series.series_number}_{series.description}".strip("_") or series.uid
    path = (
        out_dir
        / (unique_name(series.patient_id) if series.patient_id else "unknown_patient")
        / (unique_name(series.study_uid) if series.study_uid else "unknown_study")
        / unique_name(name)
    )
    return OutputTarget(f"dicom:{series.uid}", path)


def nifti_target(out_dir: Path, input_root: Path, file: Path) -> OutputTarget:
    """``OUT/<folders under input_root>/<file name without .nii.gz>``."""
    inside = file != input_root and file.is_relative_to(input_root)
    relative = file.relative_to(input_root) if inside else Path(file.name)
    parts = [unique_name(p) for p in relative.parent.parts] + [unique_name(nifti_stem(file))]
    return OutputTarget(f"nifti:{display_path(relative)}", out_dir.joinpath(*parts))


def _with_hash(target: OutputTarget) -> bool:
    """Append ``-<hash of the identity>`` once; whether the path changed."""
    suffix = f"-{short_hash(target.identity)}"
    if target.path.name.endswith(suffix):
        return False
    target.path = target.path.with_name(target.path.name + suffix)
    return True


def _owner(folder: Path) -> str | None:
    """The identity in an existing result folder's marker ("" when it has none)."""
    if not folder.exists():
        return None
    try:  # line 1: the input; line 2 (predict): what produced the result (see predict_folder)
        lines = (folder / MARKER).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return lines[0].strip() if lines else ""


def resolve_targets(targets: list[OutputTarget], check_owners: bool = True) -> None:
    """Make the paths of ``targets`` pairwise distinct and not nested, and (``check_owners``) keep
    them off folders that hold another input's results (see the module docstring). Changes
    ``targets`` in place."""
    for _ in range(4):  # a hash suffix settles a conflict; a second round only checks that
        changed = False
        by_path: dict[Path, list[OutputTarget]] = {}
        for target in targets:
            by_path.setdefault(target.path, []).append(target)
        for group in by_path.values():
            if len({t.identity for t in group}) > 1:
                changed |= any([_with_hash(t) for t in group])
        # every folder that contains some target: O(targets x depth), not pairwise
        containing = {parent for t in targets for parent in t.path.parents}
        for target in targets:
            nested = target.path in containing
            owner = _owner(target.path) if check_owners else None
            if nested or owner not in (None, target.identity):
                changed |= _with_hash(target)
        if not changed:
            return


def is_case_output(folder: Path) -> bool:
    """A result folder written by ``scseg predict`` (not to be read as input again).

    A folder that cannot be looked into is not one: the walk then reports it as unreadable, and
    the rest of the batch goes on (``Path.is_file`` raises on EACCES rather than answer False).
    """
    try:
        return (folder / MARKER).is_file()
    except OSError:
        return False
