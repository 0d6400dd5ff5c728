"""A trained model artefact, ready to segment volumes on their own voxel grid.

The run's deterministic preprocessing (orientation, spacing, intensity, foreground crop) is replayed
exactly as in training with MONAI's transforms, the network runs on the preprocessed volume, and the
geometric part is inverted through the affine the ``MetaTensor`` tracked: the label map has the
input's shape and affine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from scseg.artefact import LoadedModel, ModelSpec, load_model, load_network
from scseg.config.schema import SLICE_AXIS_INDEX
from scseg.data.transforms import preprocessing
from scseg.engine.device import resolve_device
from scseg.engine.inference import inferer_for
from scseg.engine.resample import probabilities_to_labels
from scseg.errors import ConfigError, DataError, ScsegError


@dataclass
class Prediction:
    """A label map on the input's grid (values are the structures' label values) and, on request,
    the class probabilities on the same grid (X, Y, Z, K, background first)."""

    labels: nib.Nifti1Image
    probabilities: nib.Nifti1Image | None = None


PRECISIONS = ("auto", "float32", "bfloat16")


def check_segmentable(data: np.ndarray) -> None:
    """Refuse volumes no model can segment meaningfully: NaN / infinite voxels (z-scoring would
    spread them over the whole volume) or a constant image (nothing to see; its segmentation would
    be 0 mL or phantom structures).

    Raises:
        DataError: with the reason.
    """
    low, high = float(data.min()), float(data.max())  # NaN and inf propagate: no full-size mask
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = data.size - int(np.isfinite(data).sum())
        raise DataError(
            f"the image has {bad} NaN or infinite voxel(s) of {data.size} ({100 * bad / data.size:.1f} %); "
            "it cannot be segmented (check the conversion that wrote it)"
        )
    if low == high:
        raise DataError(f"the image is constant (every voxel is {low:g}); there is nothing to segment")


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
    """Segment volumes with a trained model.

    Reads only the model artefact (:func:`scseg.artefact.load_model`): never the training config or
    the training data, so it runs on any machine the model is copied to.

    Args:
        model: a run directory written by ``scseg train``, a bundle written by ``scseg export-bundle``,
            or a lone checkpoint (``.pt``) written by either.
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

    def __init__(self, model: str | Path | LoadedModel, device: str = "auto", precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        self.artefact = model if isinstance(model, LoadedModel) else load_model(model)
        self.run_dir = self.artefact.source
        self.checkpoint = self.artefact.weights_file
        self.spec: ModelSpec = self.artefact.spec
        self.autocast_dtype = autocast_dtype(self.device, precision)
        self.model = load_network(self.spec.network, self.artefact.weights, str(self.checkpoint)).to(self.device)
        self.label_names: list[str] = list(self.spec.labels.names)
        self.label_values: list[int] = list(self.spec.labels.values)
        # what training recorded with the weights: epoch and validation Dice
        self.epoch: int | None = self.artefact.epoch
        self.validation_dice: dict[str, float] = self.artefact.validation_dice
        self._pre = Compose(preprocessing(self.spec.preprocessing, keys=("image",), load=False))

    @property
    def spatial_dims(self) -> int:
        return self.spec.spatial_dims

    @property
    def algorithm_name(self) -> str:
        """``scseg unet scse``: how outputs name the algorithm (DICOM SEG)."""
        net = self.spec.network
        return " ".join(["scseg", net.name, *([str(net.options["se"])] if "se" in net.options else [])])

    def check_views(self, views: list[str] | None) -> list[str] | None:
        """Validate ``--views``: slicing axes for 2D models only."""
        if not views:
            return None
        if self.spec.network.name == "multiview":
            raise ConfigError(
                f"--views {','.join(views)}: {self.run_dir} is a multi-view model, which fuses its own views "
                "(one network per view); drop --views"
            )
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
        if views != [self.spec.mode.slice_axis]:
            warnings.warn(
                f"--views applies this one 2D model, trained on {self.spec.mode.slice_axis} slices, along "
                f"{', '.join(views)} too: it has never seen the other views. A multi-view model trains "
                "one network per view (mode.views in the training config).",
                stacklevel=2,
            )
        return views

    def _preprocess(self, image: nib.Nifti1Image) -> MetaTensor:
        data = np.asanyarray(image.dataobj, dtype=np.float32)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise ScsegError(f"expected a 3D volume, got an image of shape {image.shape}")
        check_segmentable(data)
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
            inferer = inferer_for(self.spec, views=self.check_views(views), sw_device=self.device)
            probs = inferer(batch, self.model)[0]
        del batch
        labels, probs_out = probabilities_to_labels(
            probs, pre.affine.numpy(), image.affine, image.shape[:3], self.label_values, probabilities
        )
        out = Prediction(nib.Nifti1Image(labels, image.affine))
        if probs_out is not None:
            out.probabilities = nib.Nifti1Image(probs_out, image.affine)
        return out
