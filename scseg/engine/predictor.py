"""A trained model artefact, ready to segment volumes on their own voxel grid.

The run's deterministic preprocessing (orientation, spacing, intensity, foreground crop) is replayed
exactly as in training with MONAI's transforms, the network runs on the preprocessed volume, and the
geometric part is inverted through the affine the ``MetaTensor`` tracked: the label map has the
input's shape and affine.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
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
from scseg.engine.device import cpu_has_native_bf16, resolve_device
from scseg.engine.inference import inferer_for
from scseg.engine.passes import PassAverage, dropout_enabled, members, mirror, mirrorings
from scseg.engine.resample import probabilities_to_labels
from scseg.engine.uncertainty import StructureUncertainty, structure_uncertainty, voxel_disagreement
from scseg.errors import ConfigError, DataError, ScsegError


@dataclass
class Prediction:
    """A label map on the input's grid (values are the structures' label values) and, on request,
    the class probabilities on the same grid (X, Y, Z, K, background first)."""

    labels: nib.Nifti1Image
    probabilities: nib.Nifti1Image | None = None
    # several passes (TTA, ensemble, MC dropout): their disagreement per structure, and per voxel
    uncertainty: list[StructureUncertainty] | None = None
    uncertainty_map: nib.Nifti1Image | None = None
    passes: int = 1


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
        tta: test-time augmentation: also run the volume mirrored along every combination of the
            axes training mirrored along (``spec.test_time``), swapping left / right classes back,
            and average the probabilities.
        mc_dropout: Monte Carlo dropout samples per network (0: off; needs a model with dropout).
        qc_threshold: flag a prediction whose most uncertain structure exceeds this (default: the
            threshold ``scseg evaluate --calibrate-qc`` stored in the model, if any).

    With ``tta``, ``mc_dropout`` or an ensemble model, every prediction also carries per-structure
    uncertainty scores (:mod:`scseg.engine.uncertainty`).

    Example:
        >>> predictor = Predictor("runs/hippo3d")                      # doctest: +SKIP
        >>> prediction = predictor.predict(nib.load("case.nii.gz"))    # doctest: +SKIP
        >>> prediction.labels.shape == nib.load("case.nii.gz").shape   # doctest: +SKIP
        True
    """

    def __init__(
        self,
        model: str | Path | LoadedModel,
        device: str = "auto",
        precision: str = "auto",
        tta: bool = False,
        mc_dropout: int = 0,
        qc_threshold: float | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if mc_dropout < 0 or mc_dropout == 1:
            raise ConfigError(f"--mc-dropout {mc_dropout}: expected 0 (off) or at least 2 samples")
        if qc_threshold is not None and not 0.0 <= qc_threshold <= 1.0:
            raise ConfigError(f"--qc-threshold {qc_threshold}: expected a value in [0, 1]")
        self.device = resolve_device(device)
        self.artefact = model if isinstance(model, LoadedModel) else load_model(model)
        self.run_dir = self.artefact.source
        self.checkpoint = self.artefact.weights_file
        self.spec: ModelSpec = self.artefact.spec
        self.autocast_dtype = autocast_dtype(self.device, precision)
        self.model = load_network(self.spec.network, self.artefact.weights, str(self.checkpoint)).to(
            self.device
        )
        self.label_names: list[str] = list(self.spec.labels.names)
        self.label_values: list[int] = list(self.spec.labels.values)
        # what training recorded with the weights: epoch and validation Dice
        self.epoch: int | None = self.artefact.epoch
        self.validation_dice: dict[str, float] = self.artefact.validation_dice
        self._pre = Compose(preprocessing(self.spec.preprocessing, keys=("image",), load=False))
        self.tta, self.mc_dropout = tta, mc_dropout
        if mc_dropout:
            with dropout_enabled(self.model):  # refuses a model without dropout now, not per case
                pass
        if tta and not self.spec.test_time.mirror_axes:
            warnings.warn(
                f"--tta: {self.run_dir} was trained without mirroring, so it is not mirrored at test "
                "time (mirroring it would show it images unlike its training data)",
                stacklevel=2,
            )
        stored = self.spec.qc.threshold if self.spec.qc is not None else None
        self.qc_threshold: float | None = qc_threshold if qc_threshold is not None else stored

    @property
    def passes(self) -> int:
        """Forward passes per volume: members x mirrorings x dropout samples."""
        mirrors = len(mirrorings(self.spec.test_time.mirror_axes)) if self.tta else 1
        return len(members(self.model)) * mirrors * max(1, self.mc_dropout)

    @property
    def pass_kind(self) -> str:
        """What the passes vary, as stored with a QC calibration: e.g. ``tta``, ``ensemble+tta``."""
        kinds = [
            k
            for k, on in (
                ("ensemble", len(members(self.model)) > 1),
                ("tta", self.tta and bool(self.spec.test_time.mirror_axes)),
                ("mc_dropout", self.mc_dropout > 0),
            )
            if on
        ]
        return "+".join(kinds) or "single"

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

    def _average_passes(self, batch: torch.Tensor, inferer: Callable) -> PassAverage:
        average = PassAverage(self.spec.test_time)
        axes = mirrorings(self.spec.test_time.mirror_axes) if self.tta else [()]
        for network in members(self.model):
            for _ in range(max(1, self.mc_dropout)):
                with dropout_enabled(network) if self.mc_dropout else contextlib.nullcontext():
                    for mirrored in axes:
                        average.add(inferer(mirror(batch, mirrored), network), mirrored)
        return average

    @torch.no_grad()
    def predict(
        self,
        image: nib.Nifti1Image,
        views: list[str] | None = None,
        probabilities: bool = False,
        uncertainty_map: bool = False,
    ) -> Prediction:
        """Segment one volume; the result lies on ``image``'s grid (same shape and affine).

        ``uncertainty_map``: with several passes, also the share of passes that disagree with the
        result, per voxel, on the same grid.

        Memory: the network's probabilities are held once, on the preprocessed grid (twice with
        several passes: the running mean and one pass); they are mapped back onto the input grid in
        slabs (:mod:`scseg.engine.resample`), so the input grid holds only the label map (plus K
        float volumes when ``probabilities`` is asked for).
        """
        pre = self._preprocess(image)
        batch = pre.as_tensor()[None]
        dtype = self.autocast_dtype
        average = None
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            inferer = inferer_for(self.spec, views=self.check_views(views), sw_device=self.device)
            if self.passes == 1:
                probs = inferer(batch, self.model)[0]
            else:
                average = self._average_passes(batch, inferer)
                probs = average.mean()[0]
        del batch
        source_affine = pre.affine.numpy()
        labels, probs_out = probabilities_to_labels(
            probs, source_affine, image.affine, image.shape[:3], self.label_values, probabilities
        )
        out = Prediction(nib.Nifti1Image(labels, image.affine), passes=self.passes)
        if probs_out is not None:
            out.probabilities = nib.Nifti1Image(probs_out, image.affine)
        if average is not None:
            pass_labels = [p[0] for p in average.labels]
            out.uncertainty = structure_uncertainty(pass_labels, self.label_names, self.label_values)
            if uncertainty_map:
                share = voxel_disagreement(pass_labels, probs.argmax(dim=0))
                # resampled as a two-class "probability" (agree, disagree): the same slab-wise
                # mapping as the probabilities, so the map lies exactly on the label map's grid
                _, mapped = probabilities_to_labels(
                    torch.stack([1.0 - share, share]), source_affine, image.affine, image.shape[:3], [1], True
                )
                assert mapped is not None
                out.uncertainty_map = nib.Nifti1Image(mapped[..., 1].astype(np.float32), image.affine)
        return out

    def quality_flag(self, prediction: Prediction) -> str | None:
        """Why ``prediction`` is flagged by the QC check (``None``: not flagged, or no threshold or no
        uncertainty to judge by): structures above the uncertainty threshold, and structures found
        in every validation case that no pass found here."""
        if self.qc_threshold is None or not prediction.uncertainty:
            return None
        found = [s for s in prediction.uncertainty if not math.isnan(s.uncertainty)]
        over = sorted((s for s in found if s.uncertainty > self.qc_threshold), key=lambda s: -s.uncertainty)
        expected = set(self.spec.qc.expected) if self.spec.qc is not None else set()
        missing = [
            s.structure
            for s in prediction.uncertainty
            if math.isnan(s.uncertainty) and s.structure in expected
        ]
        reasons = []
        if over:
            shown = ", ".join(f"{s.structure} {s.uncertainty:.2f}" for s in over[:3])
            more = f" and {len(over) - 3} more" if len(over) > 3 else ""
            reasons.append(f"uncertainty above the QC threshold {self.qc_threshold:.2f}: {shown}{more}")
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            reasons.append(f"not found (present in every validation case): {', '.join(missing[:3])}{more}")
        return "; ".join(reasons) or None
