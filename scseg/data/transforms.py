"""MONAI transform pipelines built from a config.

Everything here is MONAI: its dictionary transforms cover loading (NIfTI and DICOM folders),
geometry, intensity, label-aware patch sampling and augmentation, and ``CacheDataset`` caches the
deterministic part. torchio's strengths (a patch ``Queue`` streaming many patches from large
volumes, MRI-specific artefact augmentation) are not needed by the shipped configs, whose volumes
fit in memory; keeping one library keeps the replay/inversion at prediction time simple.

Deterministic preprocessing (load, channel-first, orientation, spacing, intensity, foreground crop,
checks) is kept apart from the random part (patch / slice sampling, augmentation), so that
``CacheDataset`` caches exactly the deterministic part and prediction can replay it.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from monai.transforms import (
    CastToTyped,
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapLabelValued,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
    SqueezeDimd,
)

from scseg.config.schema import SLICE_AXIS_INDEX, Config, PreprocessingConfig
from scseg.data.annotation import NONEMPTY, AnnotatedFromLabeld
from scseg.data.checks import CheckImageLabeld, RemapLabelsd
from scseg.data.lr_flip import RandFlipLRd, check_lr_mirroring, flip_axes

KEYS = ("image", "label")
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))

# MONAI warns on every DICOM load that the optional GPU decoder is absent; pydicom's own decoders
# (with the pylibjpeg plugins we install) are used instead.
warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)


TransformSpec = tuple[type[MapTransform], dict[str, Any]]


def preprocessing_spec(
    pre: PreprocessingConfig,
    keys: tuple[str, ...] = KEYS,
    load: bool = True,
    label_values: list[int] | None = None,
    num_classes: int | None = None,
) -> list[TransformSpec]:
    """The deterministic transforms as ``(class, keyword arguments)`` pairs.

    One description serves training, :class:`~scseg.engine.predictor.Predictor` (which instantiate
    it) and the MONAI bundle export (which writes it as ``{"_target_": ..., **kwargs}``), so an
    exported bundle replays exactly what training cached and ``scseg predict`` replays. Arguments
    are plain JSON values.

    Args:
        pre: the preprocessing section (of a training config or a model artefact).
        keys: ``("image", "label")`` for training, ``("image",)`` for prediction.
        load: start by loading file names; ``False`` when the caller passes channel-first
            ``MetaTensor`` volumes that carry their affine (prediction reads DICOM itself).
        label_values: with a ``label`` key: the source values remapped to 1..K.
        num_classes: with a ``label`` key: background + structures, for the label check.
    """
    keys_ = list(keys)
    has_label = "label" in keys
    ts: list[TransformSpec] = []
    if load:
        # NIfTI via nibabel, a DICOM series folder via pydicom
        ts += [(LoadImaged, {"keys": keys_, "image_only": True}), (EnsureChannelFirstd, {"keys": keys_})]
    if pre.orientation:
        labels = [list(pair) for pair in RAS_LABELS]
        ts.append((Orientationd, {"keys": keys_, "axcodes": pre.orientation, "labels": labels}))
    if has_label and label_values:
        ts.append((RemapLabelsd, {"source_values": list(label_values)}))
    if has_label:  # after reorientation: a label stored with flipped axes is still on the same grid
        ts.append((CheckImageLabeld, {"num_classes": num_classes}))
    if pre.spacing:
        modes = ["bilinear", "nearest"] if has_label else ["bilinear"]
        # float32 resampling: MONAI defaults to float64, which doubles the peak memory on a large CT
        ts.append((Spacingd, {"keys": keys_, "pixdim": list(pre.spacing), "mode": modes, "dtype": "float32"}))
    intensity = pre.intensity
    if intensity.kind == "zscore":
        ts.append(
            (NormalizeIntensityd, {"keys": "image", "nonzero": intensity.nonzero, "channel_wise": True})
        )
    elif intensity.kind == "ct_window":
        low, high = intensity.window
        window = {"a_min": low, "a_max": high, "b_min": 0.0, "b_max": 1.0, "clip": True}
        ts.append((ScaleIntensityRanged, {"keys": "image", **window}))
    elif intensity.kind == "ct_zscore":  # clip to the window, then z-score with fixed statistics
        low, high = intensity.window
        mean, std = float(intensity.mean), float(intensity.std)  # type: ignore[arg-type]
        scaled = {"b_min": (low - mean) / std, "b_max": (high - mean) / std}
        ts.append(
            (ScaleIntensityRanged, {"keys": "image", "a_min": low, "a_max": high, **scaled, "clip": True})
        )
    if pre.crop_foreground:
        ts.append((CropForegroundd, {"keys": keys_, "source_key": "image", "allow_smaller": True}))
    ts.append((CastToTyped, {"keys": keys_, "dtype": ["float32", "uint8"][: len(keys)]}))
    return ts


def preprocessing(
    pre: PreprocessingConfig, keys: tuple[str, ...] = ("image",), load: bool = True
) -> list[MapTransform]:
    """Deterministic image transforms: what prediction replays (and inverts).

    Arguments as in :func:`preprocessing_spec`.
    """
    return [cls(**kwargs) for cls, kwargs in preprocessing_spec(pre, keys, load)]


def training_preprocessing(config: Config) -> list[MapTransform]:
    """Deterministic image + label transforms of a training config: what ``CacheDataset`` caches."""
    table = config.class_table
    full = config.num_classes if table is None else len(table)
    spec = preprocessing_spec(config.preprocessing, KEYS, True, config.data.label_values, full)
    if table is not None:  # one class per left / right pair (a sagittal view)
        merge = {"keys": "label", "orig_labels": list(range(len(table))), "target_labels": table.tolist()}
        spec.append((MapLabelValued, merge))
    return [cls(**kwargs) for cls, kwargs in spec]


def _sampling(config: Config) -> list[MapTransform]:
    mode = config.mode
    if mode.type == "3d":
        size = list(mode.patch_size)
        squeeze: list = []
    else:  # a 2D slice: a 3D crop that is one voxel thick along the slice axis, then squeezed
        axis = SLICE_AXIS_INDEX[mode.slice_axis]
        size = list(mode.patch_size)
        size.insert(axis, 1)
        squeeze = [SqueezeDimd(KEYS, dim=axis + 1)]
    pos = mode.pos_fraction
    return [
        SpatialPadd(KEYS, spatial_size=size),
        RandCropByPosNegLabeld(
            KEYS,
            label_key="label",
            spatial_size=size,
            pos=pos,
            neg=1.0 - pos,
            num_samples=mode.samples_per_volume,
            image_key="image",
            allow_smaller=False,
        ),
        *squeeze,
    ]


def _augmentation(config: Config) -> list[MapTransform]:
    aug = config.augmentation
    if not aug.enabled:
        return []
    dims = config.spatial_dims
    check_lr_mirroring(config)  # every training path builds its flips here, before any data is read
    axes = flip_axes(config)
    pairs = config.data.lr_classes
    ts: list = [
        RandFlipLRd(KEYS, a, config.num_classes, pairs, prob=aug.flip_prob)
        if pairs and a == config.lr_axis
        else RandFlipd(KEYS, prob=aug.flip_prob, spatial_axis=[a])
        for a in axes
    ]
    if aug.affine_prob > 0 and (aug.rotate_degrees > 0 or aug.scale > 0):
        angle = aug.rotate_degrees * 3.141592653589793 / 180.0
        ts.append(
            RandAffined(
                KEYS,
                prob=aug.affine_prob,
                rotate_range=[angle] * (3 if dims == 3 else 1),
                scale_range=[aug.scale] * dims,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    if aug.intensity_prob > 0:
        ts.append(RandScaleIntensityd("image", factors=aug.intensity_scale, prob=aug.intensity_prob))
        ts.append(RandShiftIntensityd("image", offsets=aug.intensity_shift, prob=aug.intensity_prob))
    if aug.noise_std > 0:
        ts.append(RandGaussianNoised("image", std=aug.noise_std, prob=aug.intensity_prob))
    return ts


def train_transforms(config: Config) -> Compose:
    """Deterministic preprocessing, then random sampling and augmentation (one list per sample)."""
    nonempty = [AnnotatedFromLabeld("label", config.num_classes)] if config.data.annotated == NONEMPTY else []
    return Compose(
        [
            *training_preprocessing(config),
            *nonempty,  # partial labels by rule: on the whole label map, before cropping
            *_sampling(config),
            *_augmentation(config),
            EnsureTyped(KEYS, track_meta=False),
        ]
    )


def validation_transforms(config: Config) -> Compose:
    """Deterministic preprocessing only: validation runs on whole volumes."""
    return Compose(training_preprocessing(config))
