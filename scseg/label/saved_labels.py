"""Labels annotators save through ``scseg label serve``: checked, named, and kept as DICOM SEG too.

- 3D Slicer's MONAI Label module exports a label map with its segments numbered 1..N in the order
  of its segment list and says which is which in ``params.label_info`` (``[{"name", "idx"}]``).
  Such a label is renumbered to the model's label values by name before it is checked, so a
  FreeSurfer-valued model gets FreeSurfer values back; a name the models do not know is refused.
- The datastore keeps the label (NIfTI, on the image's grid) with the model's ``label_names``.
- For a study that came in as a DICOM series, the label is also written as a DICOM SEG referencing
  that series' instances (``<datastore>/dicom-seg/<tag>/<image id>.dcm``), with the model's names,
  colours and codes, the same writer ``scseg predict`` uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from fastapi import HTTPException

from scseg.artefact.spec import ModelSpec
from scseg.io.atomic import save_nifti_atomic
from scseg.io.dicom_seg import segment_numbers, write_dicom_seg
from scseg.io.dicom_series import find_series
from scseg.io.reports import structure_colors

SEG_FOLDER = "dicom-seg"


def renumber_by_name(label: Path, label_info: object, known: dict[str, int]) -> None:
    """Rewrite ``label`` (an upload in the app folder) from segment indices to the models' values.

    Args:
        label: the uploaded label map.
        label_info: ``params["label_info"]`` as 3D Slicer sends it: ``[{"name": str, "idx": int}]``.
        known: structure name -> label value, over the served models.

    Raises:
        HTTPException: 422 for malformed ``label_info`` or names no served model knows.
    """
    if not isinstance(label_info, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("idx"), int)
        for i in label_info
    ):
        raise HTTPException(422, 'params.label_info must be a list of {"name": str, "idx": int}')
    unknown = sorted({i["name"] for i in label_info} - set(known))
    if unknown:
        raise HTTPException(
            422,
            f"the label names {unknown[:10]} are not structures of the served models (known: {sorted(known)[:20]})",
        )
    image = nib.load(label)
    data = np.asanyarray(image.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        return  # the content check refuses it with its own reason
    out = np.zeros(data.shape, dtype=np.int32)
    for item in label_info:
        out[data == item["idx"]] = known[item["name"]]
    save_nifti_atomic(nib.Nifti1Image(out, image.affine), label)


def model_for_values(specs: dict[str, ModelSpec], values: set[int], wanted: object = None) -> str | None:
    """The served model whose structures cover ``values``: ``wanted`` if it does, else the first."""
    covering = [n for n, s in specs.items() if values <= set(s.labels.values)]
    if isinstance(wanted, str) and wanted in covering:
        return wanted
    return covering[0] if covering else None


def dicom_source(datastore: Path, image_id: str) -> Path | None:
    """The DICOM series folder an image was converted from (None: the study is a NIfTI file)."""
    from scseg.label.studies import SOURCES_FILE

    sources = datastore / SOURCES_FILE
    if not sources.is_file():
        return None
    source = json.loads(sources.read_text()).get(image_id)
    return Path(source) if source and Path(source).is_dir() else None


def write_label_seg(label: Path, series_folder: Path, spec: ModelSpec, out: Path) -> None:
    """The saved label as a BINARY DICOM SEG on its source series (values -> the model's segments)."""
    series, _ = find_series(series_folder)
    if len(series) != 1:
        raise HTTPException(422, "the image's DICOM series is no longer readable; the label was not saved")
    image = nib.load(label)
    data = np.asanyarray(image.dataobj).astype(np.int64)
    if data.ndim == 4:
        data = data[..., 0]
    names = list(spec.labels.names)
    write_dicom_seg(
        segment_numbers(data, spec.labels.values),
        image.affine,
        series[0],
        names,
        spec.labels.colours or structure_colors(len(names)),
        out,
        algorithm="manual correction (scseg label serve)",
        structure_codes=spec.labels.segment_codes(),
    )


def label_info(spec: ModelSpec, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """What the datastore records with a saved label: the client's plain values and the model's names."""
    info = {k: v for k, v in params.items() if isinstance(k, str) and isinstance(v, (str, int, float))}
    info["model"] = model
    info["label_names"] = dict(zip(spec.labels.names, spec.labels.values, strict=True))
    return info
