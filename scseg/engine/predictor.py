"""A trained run directory, ready to segment volumes on their own voxel grid.

The run's deterministic preprocessing (orientation, spacing, intensity, foreground crop) is replayed
exactly as in training with MONAI's transforms, the network runs on the preprocessed volume, and the
geometric part is inverted through the affine the ``MetaTensor`` tracked: the label map has the
input's shape and affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from scseg.config import load_config
from scseg.config.schema import SLICE_AXIS_INDEX, Config
from scseg.data.transforms import preprocessing
from scseg.engine.checkpoint import load_checkpoint
from scseg.engine.inference import predict_probabilities
from scseg.engine.resample import probabilities_to_labels
from scseg.engine.trainer import build_model, resolve_device
from scseg.errors import ConfigError, RunDirError, ScsegError


@dataclass
class Prediction:
    """A label map on the input's grid (values are the structures' label values) and, on request,
    the class probabilities on the same grid (X, Y, Z, K, background first)."""

    labels: nib.Nifti1Image
    probabilities: nib.Nifti1Image | None = None


def find_checkpoint(run_dir: Path) -> Path:
    """``checkpoints/best.pt`` (best validation Dice), else ``checkpoints/last.pt``."""
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    raise RunDirError(
        f"{run_dir} is not a trained run directory: expected checkpoints/best.pt or checkpoints/last.pt "
        "(written by `scseg train --out RUN_DIR`)"
    )


# where `scseg export-bundle` keeps the run's config inside a MONAI bundle
BUNDLE_CONFIG = Path("configs") / "scseg_config.yaml"
BUNDLE_WEIGHTS = Path("models") / "model.pt"


def is_bundle(path: Path) -> bool:
    """A MONAI bundle folder (``configs/metadata.json``)."""
    return (path / "configs" / "metadata.json").is_file()


def _load_source(path: Path) -> tuple[Path, Path, dict]:
    """(config file, weights file, {"model": state dict, "label_names": ...}) of a run dir or bundle."""
    if is_bundle(path):
        config_path, weights = path / BUNDLE_CONFIG, path / BUNDLE_WEIGHTS
        if not config_path.is_file():
            raise RunDirError(
                f"{path} is a MONAI bundle but not one exported by scseg: {BUNDLE_CONFIG} is missing "
                "(export run directories with `scseg export-bundle RUN_DIR OUT_DIR`)"
            )
        if not weights.is_file():
            raise RunDirError(f"bundle {path} has no {BUNDLE_WEIGHTS}")
        return config_path, weights, {"model": load_checkpoint(weights)}
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(
            f"{path} is neither a run directory ({config_path} does not exist) nor a MONAI bundle "
            "(configs/metadata.json)"
        )
    weights = find_checkpoint(path)
    return config_path, weights, load_checkpoint(weights)


PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX); without it bf16 is
    emulated and slower than float32."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: no autocast)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None


class Predictor:
    """Segment volumes with the model of a run directory.

    Args:
        run_dir: a directory written by ``scseg train`` (``config.yaml`` + ``checkpoints/``), or a
            bundle written by ``scseg export-bundle``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: the network's arithmetic. ``auto``: float16 autocast on CUDA, bfloat16 autocast
            on CPUs with native bf16 instructions (see :func:`cpu_has_native_bf16`), float32
            otherwise; ``float32``: no autocast; ``bfloat16``: bf16 autocast on any device.
            Probabilities are accumulated in float32 in every case.

    Example:
        >>> predictor = Predictor("runs/hippo3d")                      # doctest: +SKIP
        >>> prediction = predictor.predict(nib.load("case.nii.gz"))    # doctest: +SKIP
        >>> prediction.labels.shape == nib.load("case.nii.gz").shape   # doctest: +SKIP
        True
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.run_dir = Path(run_dir)
        config_path, self.checkpoint, state = _load_source(self.run_dir)
        self.config: Config = load_config(config_path)
        self.device = resolve_device(device)
        self.autocast_dtype = autocast_dtype(self.device, precision)
        self.model = build_model(self.config)
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as err:
            raise RunDirError(
                f"{self.checkpoint} does not hold weights for the model in {config_path} ({err})"
            ) from None
        self.model.to(self.device).eval()
        self.label_names: list[str] = list(state.get("label_names") or self.config.data.structure_names)
        # what training recorded with the weights (run dirs only): epoch and validation Dice
        self.epoch: int | None = state.get("epoch")
        self.validation_dice: dict[str, float] = dict(state.get("dice") or {})
        values = self.config.data.label_values or range(1, len(self.label_names) + 1)
        self.label_values: list[int] = [int(v) for v in values]
        self._pre = Compose(preprocessing(self.config, keys=("image",), load=False))

    @property
    def spatial_dims(self) -> int:
        return self.config.spatial_dims

    def check_views(self, views: list[str] | None) -> list[str] | None:
        """Validate ``--views``: slicing axes for 2D models only."""
        if not views:
            return None
        if self.spatial_dims != 2:
            raise ConfigError(
                f"--views {','.join(views)}: view aggregation applies to 2D models; {self.run_dir} holds a "
                "3D model, which sees the whole neighbourhood already"
            )
        unknown = [v for v in views if v not in SLICE_AXIS_INDEX]
        if unknown:
            raise ConfigError(
                f"--views: unknown view(s) {unknown}; expected some of {list(SLICE_AXIS_INDEX)}"
            )
        return views

    def _preprocess(self, image: nib.Nifti1Image) -> MetaTensor:
        data = np.asanyarray(image.dataobj, dtype=np.float32)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise ScsegError(f"expected a 3D volume, got an image of shape {image.shape}")
        tensor = MetaTensor(
            torch.from_numpy(data)[None], affine=torch.as_tensor(image.affine, dtype=torch.float64)
        )
        return self._pre({"image": tensor})["image"]

    @torch.no_grad()
    def predict(
        self, image: nib.Nifti1Image, views: list[str] | None = None, probabilities: bool = False
    ) -> Prediction:
        """Segment one volume; the result lies on ``image``'s grid (same shape and affine).

        Memory: the network's probabilities are held once, on the preprocessed grid; they are mapped
        back onto the input grid in slabs (:mod:`scseg.engine.resample`), so the input grid holds
        only the label map (plus K float volumes when ``probabilities`` is asked for).
        """
        pre = self._preprocess(image)
        batch = pre.as_tensor()[None]
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            probs = predict_probabilities(
                self.model, batch, self.config, views=self.check_views(views), sw_device=self.device
            )[0]
        del batch
        labels, probs_out = probabilities_to_labels(
            probs, pre.affine.numpy(), image.affine, image.shape[:3], self.label_values, probabilities
        )
        out = Prediction(nib.Nifti1Image(labels, image.affine))
        if probs_out is not None:
            out.probabilities = nib.Nifti1Image(probs_out, image.affine)
        return out
