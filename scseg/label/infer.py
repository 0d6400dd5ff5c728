"""One MONAI Label infer task per scseg model (run directory or exported bundle).

The task runs :class:`scseg.engine.predictor.Predictor`, i.e. exactly what ``scseg predict`` does
(the run's preprocessing, sliding-window or slice-wise inference, inversion onto the image's own
grid), instead of monailabel's transform pipeline: the returned label map then has the image's
shape and affine by construction, and 2D and 3D models behave alike.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from scseg.engine.predictor import Predictor
from scseg.errors import ScsegError
from scseg.io.dicom_headers import is_nifti
from scseg.io.dicom_series import find_series, read_series
from scseg.io.nifti import load_nifti


def read_volume(path: Path) -> nib.Nifti1Image:
    """A NIfTI file, or a folder holding exactly one DICOM image series.

    Raises:
        HTTPException: 422 with the reason when the image cannot be segmented.
    """
    try:
        if path.is_file() and is_nifti(path):
            return load_nifti(path)  # the declared size checked before anything is allocated
        if path.is_dir():
            series, skipped = find_series(path)
            if len(series) == 1:
                return read_series(series[0])
            why = "; ".join(s.reason for s in skipped) or "no DICOM image series"
            raise HTTPException(
                422, f"{path.name}: expected one DICOM image series, found {len(series)} ({why})"
            )
    except ScsegError as err:
        raise HTTPException(422, f"{path.name}: {err}") from None
    raise HTTPException(422, f"{path.name}: not a NIfTI file (.nii/.nii.gz) or a DICOM series folder")


class ScsegInferTask(BasicInferTask):
    """Segment a volume with an scseg model; the label map keeps the image's grid and label values.

    Args:
        name: the model name MONAI Label shows.
        path: a model artefact: run directory, bundle written by ``scseg export-bundle``, or ``.pt``.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """

    def __init__(self, name: str, path: Path, device: str = "auto") -> None:
        self.name = name
        self.model_path = Path(path)
        self.predictor = Predictor(self.model_path, device=device)
        spec = self.predictor.spec
        net = spec.network
        how = f"{net.spatial_dims}D {net.name} (se={net.options.get('se', 'default')})"
        if net.spatial_dims == 2:
            how += f", slice by slice along the {spec.mode.slice_axis} axis"
        labels = dict(zip(self.predictor.label_names, self.predictor.label_values, strict=True))
        super().__init__(
            path=None,
            network=None,
            type=InferType.SEGMENTATION,
            labels=labels,
            # the task takes and returns whole volumes, also for 2D networks (run slice-wise)
            dimension=3,
            description=f"scseg {how} from {self.model_path.name}",
            config={"scseg_model": self.model_path.name, "network_dims": net.spatial_dims},  # no server paths
        )

    # monailabel's transform stages are unused: __call__ runs the whole scseg prediction
    def pre_transforms(self, data: Any = None) -> list:
        return []

    def post_transforms(self, data: Any = None) -> list:
        return []

    def is_valid(self) -> bool:
        return True  # the weights were loaded (and checked) when the task was made

    def __call__(self, request: dict[str, Any], callbacks: Any = None) -> tuple[str, dict[str, Any]]:
        start = time.time()
        image = read_volume(Path(str(request.get("image", ""))))
        read = time.time()
        try:
            prediction = self.predictor.predict(image)
        except ScsegError as err:  # e.g. a constant or NaN image: the client's problem, not a 500
            raise HTTPException(422, str(err)) from None
        inferred = time.time()
        # monailabel sends this file and deletes it afterwards
        with tempfile.NamedTemporaryFile(suffix=".nii.gz", prefix="scseg-", delete=False) as f:
            out = f.name
        nib.save(prediction.labels, out)
        done = time.time()
        return out, {
            "label_names": self.labels,
            "model": self.name,
            "latencies": {
                "pre": round(read - start, 2),
                "infer": round(inferred - read, 2),
                "write": round(done - inferred, 2),
                "total": round(done - start, 2),
            },
        }
