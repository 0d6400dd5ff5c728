"""The MONAI Label datastore for ``--studies``: NIfTI files as they are, DICOM series as NIfTI.

monailabel's local datastore lists the NIfTI files of one folder. A folder that also holds DICOM
series (a PACS export: any depth, any file names) is served through ``<studies>/scseg-datastore/``:
each image series converted once with the reader ``scseg predict`` uses (so the geometry is the one
every scseg output has), each top-level NIfTI file linked. Labels that annotators save land in
that folder's ``labels/``, on the same grids.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from scseg.errors import DataError
from scseg.io.atomic import save_nifti_atomic, write_text_atomic
from scseg.io.dicom_headers import is_nifti
from scseg.io.dicom_series import find_series, read_series
from scseg.io.names import nifti_stem, sanitize

DATASTORE_DIR = "scseg-datastore"
SOURCES_FILE = "scseg-sources.json"


@dataclass
class Studies:
    """What ``--studies`` resolved to: the folder monailabel serves and what was (not) converted."""

    datastore: Path
    images: dict[str, str] = field(default_factory=dict)  # image id -> source (file or series folder)
    problems: list[str] = field(default_factory=list)  # series that could not be read, with why


def prepare_studies(studies: str | Path) -> Studies:
    """Resolve ``--studies`` into a folder monailabel's local datastore can serve.

    Raises:
        DataError: the folder does not exist.
    """
    studies = Path(studies).resolve()
    if not studies.is_dir():
        raise DataError(f"--studies {studies} is not a folder (expected NIfTI files and/or DICOM series)")
    niftis = sorted(p for p in studies.iterdir() if p.is_file() and is_nifti(p))
    datastore = studies / DATASTORE_DIR
    # MONAI Label's own outputs (labels/, our datastore) are not studies
    series, skipped = find_series(studies, exclude=[studies / "labels", datastore])
    result = Studies(studies)
    result.images = {nifti_stem(p): str(p) for p in niftis}
    result.problems = [f"{s.folder}: {s.reason}" for s in skipped if s.failed]
    if not series:
        return result
    datastore.mkdir(exist_ok=True)
    result.datastore = datastore
    for path in niftis:
        link = datastore / path.name
        if not link.exists():
            os.symlink(path, link)
    for item in series:
        image_id = sanitize(f"{item.patient_id or 'unknown'}_{item.name}")
        if image_id in result.images:
            image_id = f"{image_id}_{sanitize(item.uid)[-12:]}"
        target = datastore / f"{image_id}.nii.gz"
        try:
            if not target.exists():  # converted on an earlier start
                save_nifti_atomic(read_series(item), target)
        except DataError as err:
            result.problems.append(f"{item.files[0].parent}: {err}")
            continue
        result.images[image_id] = str(item.files[0].parent)
    write_text_atomic(datastore / SOURCES_FILE, json.dumps(result.images, indent=2) + "\n")
    return result
