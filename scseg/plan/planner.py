"""Choices from a fingerprint: nnU-Net's planning rules, adapted to scseg's networks and a time budget.

Every choice is returned with the reason it was made, and ``scseg plan`` writes both into the
config as comments. The rules (and where they differ from nnU-Net):

- **Spacing**: the median spacing; on anisotropic data (largest / smallest median spacing > 3) the
  coarse axis takes its 10th percentile instead (nnU-Net). No resampling when every case already
  has the target spacing.
- **2D or 3D**: 3D, unless the data is anisotropic (2D slices across the coarse axis, nnU-Net's
  choice there too) or has more than 30 structures (whole-brain parcellation: one 2D network per
  view fused by a weighted mean, QuickNAT / FastSurfer; a 3D network with ~100 output channels
  does not fit a CPU budget).
- **Patch**: 3D: the median image shape at the target spacing (of the nonzero box when the images
  are cropped to it), each side rounded to a multiple of 16 (four poolings); 2D: whole slices of the
  largest image, rounded up. Then shrunk along its longest side until a training step fits
  ``memory_gb`` and, on CPU, until the time budget leaves a few hundred steps.
- **Batch**: at least 2; on CUDA as many as fit the memory, capped at 5 % of the dataset's voxels
  per step (nnU-Net); on CPU at most 8, since a CPU step is compute-bound and a fixed time budget
  gains more from more steps than from larger ones.
- **Normalisation**: CT: clip to the foreground's 0.5-99.5 percentiles and z-score with the
  foreground's mean and std (nnU-Net); MR: z-score per image, inside the nonzero region when
  many voxels are exactly 0 (skull-stripped or padded images), which are also cropped away.
- **Augmentation**: left-right mirroring only (swapping left / right pairs found from the names):
  anatomy is left-right symmetric, not front-back or top-bottom, and labels such as anterior /
  posterior would be wrong after those flips. No mirroring at all when a structure whose name says
  a side has no partner (:mod:`scseg.labels.laterality`): its mirrored samples would carry the
  wrong side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scseg.config.schema import SLICE_AXIS_INDEX
from scseg.plan.fingerprint import Fingerprint

ANISOTROPY = 3.0
MANY_STRUCTURES = 30
# activation bytes per voxel per base feature of one U-Net (scSE, fp32) training step, forward and
# backward, measured with benchmarks/plan_memory.py (the largest seen, rounded up)
BYTES_PER_VOXEL_FEATURE = {3: 150, 2: 160}
BASE_FEATURES = 16
# CPU training: a time budget buys steps, not memory. A step of the base-16 U-Net costs about 4 us
# per patch voxel on 2 cores (the hippocampus recipe: 8 x 32 x 48 x 32 voxels in ~1.6 s), and a run
# needs a few hundred steps to converge, so on CPU patches and batches are also capped to voxels
# that leave MIN_CPU_STEPS steps in the budget.
CPU_SECONDS_PER_VOXEL = 4e-6
MIN_CPU_STEPS = 300
AXIS_NAMES = {v: k for k, v in SLICE_AXIS_INDEX.items()}


@dataclass(frozen=True)
class Choice:
    key: str
    value: object
    why: str


def _round16(size: float, up: bool = False) -> int:
    return max(16, (math.ceil(size / 16.0) if up else round(size / 16.0)) * 16)


def step_memory_gb(patch: list[int], batch: int, features: int = BASE_FEATURES) -> float:
    """Estimated memory of one training step (activations kept for the backward pass)."""
    per_voxel = BYTES_PER_VOXEL_FEATURE[len(patch)]
    return batch * math.prod(patch) * features * per_voxel / 2**30


def target_spacing(fp: Fingerprint) -> tuple[list[float], str]:
    spacings = np.array(fp.spacings)
    median = np.median(spacings, axis=0)
    if median.max() / median.min() > ANISOTROPY:
        coarse = int(median.argmax())
        target = median.copy()
        target[coarse] = np.percentile(spacings[:, coarse], 10)
        why = (f"median spacing {_mm(median)}, anisotropic (ratio {median.max() / median.min():.1f} > {ANISOTROPY:g}): "
               f"axis {coarse} takes its 10th percentile")  # fmt: skip
        return [round(float(v), 3) for v in target], why
    return [round(float(v), 3) for v in median], f"median spacing {_mm(median)}"


def _mm(values) -> str:
    return " x ".join(f"{float(v):.3g}" for v in values) + " mm"


def fit_patch(shape: list[float], batch: int, memory_gb: float, max_voxels: float | None = None) -> list[int]:
    """The median shape rounded to multiples of 16, shrunk along its longest side until it fits.

    3D: to the nearest multiple, so the patch lies mostly inside the image; 2D: up, so a whole
    slice fits one window (and prediction runs it in one piece)."""
    patch = [_round16(s, up=len(shape) == 2) for s in shape]
    while step_memory_gb(patch, batch) > memory_gb or (
        max_voxels is not None and batch * math.prod(patch) > max_voxels
    ):
        smaller = list(patch)
        smaller[int(np.argmax(patch))] -= 16
        if max(smaller) < 32:  # instance norm needs more than one voxel after four poolings
            break
        patch = smaller
    return patch


def plan_choices(fp: Fingerprint, budget_minutes: float, device: str, memory_gb: float) -> list[Choice]:
    """The planned choices for ``fp`` (see the module docstring for the rules)."""
    choices = [
        Choice("preprocessing.orientation", "RAS", "one axis order for every case; left-right is axis 0")
    ]
    spacing, why = target_spacing(fp)
    same = np.allclose(np.array(fp.spacings), np.array(spacing)[None], rtol=0.01)
    choices.append(
        Choice(
            "preprocessing.spacing",
            None if same else spacing,
            why + ("; every case has it already: no resampling" if same else ""),
        )
    )
    scale = np.array(fp.median_spacing) / np.array(spacing)
    shape = [float(s) for s in np.array(fp.median_shape) * scale]
    many = len(fp.label_names) > MANY_STRUCTURES
    coarse = np.median(np.array(fp.spacings), axis=0)
    anisotropic = coarse.max() / coarse.min() > ANISOTROPY
    cpu = device == "cpu"
    views_count = 3 if many else 1
    max_voxels = budget_minutes * 60 / views_count / MIN_CPU_STEPS / CPU_SECONDS_PER_VOXEL if cpu else None
    zeros = fp.zero_fraction > 0.2
    if zeros:  # the foreground crop keeps the nonzero box: that is what gets trained on
        shape = [float(s) for s in np.array(fp.median_box_shape) * scale]
    if many or anisotropic:
        # whole slices of every case, not of the median one: a slice that fits one window is
        # predicted in one piece (scseg.engine.inference), so 2D sizes follow the largest image
        largest = np.max(np.array(fp.box_shapes if zeros else fp.shapes), axis=0) * scale
        shape = [float(s) for s in largest]
        across = int(coarse.argmax()) if anisotropic else 1
        in_plane = [shape[d] for d in range(3) if d != across]
        patch = fit_patch(in_plane, 16, memory_gb, max_voxels)
        if many:
            mode = {"type": "2d", "patch_size": patch, "samples_per_volume": 4, "pos_fraction": 1.0,
                    "views": [{"axis": "coronal", "weight": 0.4}, {"axis": "axial", "weight": 0.4},
                              {"axis": "sagittal", "weight": 0.2}]}  # fmt: skip
            for view in mode["views"]:
                axis = SLICE_AXIS_INDEX[view["axis"]]
                view["patch_size"] = fit_patch(
                    [shape[d] for d in range(3) if d != axis], 16, memory_gb, max_voxels
                )
            why = (f"{len(fp.label_names)} structures (> {MANY_STRUCTURES}): one 2D network per view, fused "
                   "(QuickNAT / FastSurfer); whole slices of the largest brain box")  # fmt: skip
        else:
            mode = {
                "type": "2d",
                "slice_axis": AXIS_NAMES[across],
                "patch_size": patch,
                "samples_per_volume": 4,
            }
            why = f"anisotropic voxels: 2D slices across the coarse axis ({AXIS_NAMES[across]})"
        batch, batch_why = 4, "4 volumes x 4 slices per step"
    else:
        batch = 2
        patch = fit_patch(shape, batch, memory_gb, max_voxels)
        case_voxels = float(np.mean([np.prod(s) for s in fp.shapes])) * float(np.prod(scale))
        cap = max(2, int(0.05 * fp.cases * case_voxels / math.prod(patch)))
        if cpu:
            cap = min(cap, 8)
        while batch < cap and step_memory_gb(patch, batch + 1) <= memory_gb:
            if max_voxels is not None and (batch + 1) * math.prod(patch) > max_voxels:
                break
            batch += 1
        covers = math.prod(patch) / max(math.prod(shape), 1.0)
        mode = {"type": "3d", "patch_size": patch, "samples_per_volume": 1 if covers >= 0.5 else 2,
                "pos_fraction": 0.5 if covers >= 0.5 else 0.67}  # fmt: skip
        why = (f"3D: isotropic enough, {len(fp.label_names)} structures; patch from the median shape {[round(s) for s in shape]} at the target spacing, "
               f"{step_memory_gb(patch, batch):.2f} GB per step of {memory_gb:.1f} GB"
               + (f"; CPU: at most {max_voxels / 1e3:.0f}k voxels per step leave {MIN_CPU_STEPS} steps in the budget"
                  if cpu else ""))  # fmt: skip
        batch_why = (f"{'CPU: at most 8 (compute-bound: more steps beat larger ones in a time budget); ' if cpu else ''}"
                     f"5 % of the dataset's voxels per step allows {cap}; then memory"
                     + (" and the CPU voxel cap" if cpu else ""))  # fmt: skip
    choices.append(Choice("mode", mode, why))
    choices.append(Choice("train.batch_size", batch, batch_why))
    if fp.modality == "CT":
        low, high = fp.intensity["p00_5"], fp.intensity["p99_5"]
        intensity = {"kind": "ct_zscore", "window": [round(low, 1), round(high, 1)],
                     "mean": round(fp.intensity["mean"], 2), "std": round(fp.intensity["std"], 2)}  # fmt: skip
        why = f"CT ({fp.modality_reason}): clip to the foreground's 0.5-99.5 percentiles, z-score with its mean / std"
    else:
        intensity = {"kind": "zscore", "nonzero": zeros}
        why = f"MR ({fp.modality_reason}): z-score per image" + (
            f", inside the nonzero region ({fp.zero_fraction:.0%} of voxels are 0)" if zeros else ""
        )
    choices.append(Choice("preprocessing.intensity", intensity, why))
    choices.append(
        Choice(
            "preprocessing.crop_foreground",
            zeros,
            "crop the zero background" if zeros else "images are mostly nonzero: no crop",
        )
    )
    choices.append(_mirroring(fp))
    if fp.lr_pairs:
        n = len(fp.lr_pairs)
        choices.append(Choice("data.lr_pairs", "auto", f"{n} pair{'s' * (n != 1)} found from the names"))
    lr = 0.01 if mode["type"] == "2d" else 0.003
    choices.append(Choice("optimizer", {"name": "adamw", "lr": lr, "weight_decay": 1.0e-5},
                          "AdamW with a one-cycle schedule: converges within short time budgets (docs/benchmarks.md)"))  # fmt: skip
    choices.append(
        Choice(
            "loss",
            {"name": "dice_ce"},
            "Dice + cross-entropy (nnU-Net's): the Dice term keeps small structures in play",
        )
    )
    views = len(mode.get("views") or [None])
    per_view = budget_minutes / views
    choices.append(Choice("train.time_limit_minutes", round(per_view, 2),
                          f"--budget-minutes {budget_minutes:g}" + (f" over {views} views" if views > 1 else "")))  # fmt: skip
    return choices


def _mirroring(fp: Fingerprint) -> Choice:
    """Left-right mirroring, swapping the pairs, or none when a structure that says a side has no
    partner: a mirrored left parotid looks like a right one, and an unswapped label teaches that."""
    if fp.lr_unpaired:
        names = " / ".join(fp.lr_unpaired[:6]) + (
            f" and {len(fp.lr_unpaired) - 6} more" if len(fp.lr_unpaired) > 6 else ""
        )
        why = (f"no left-right mirroring: {names} look lateral but could not be paired; name the pairs in "
               "data.lr_pairs ([[left, right], ...]) and set flip_prob 0.5 to mirror")  # fmt: skip
        return Choice("augmentation", {"flip_axes": "lr", "flip_prob": 0.0}, why)
    n = len(fp.lr_pairs)
    pairs = f"; {n} left / right pair{'s' * (n != 1)} swapped with it" if n else ""
    return Choice(
        "augmentation",
        {"flip_axes": "lr", "flip_prob": 0.5},
        "left-right mirroring only (anatomy is left-right symmetric)" + pairs,
    )


def config_from_choices(choices: list[Choice], data: dict) -> dict:
    """The raw training config of ``choices`` around a ``data`` section."""
    raw: dict = {"data": dict(data), "preprocessing": {}, "augmentation": {}, "train": {}}
    for choice in choices:
        section, _, key = choice.key.partition(".")
        if key:
            raw.setdefault(section, {})[key] = choice.value
        elif isinstance(choice.value, dict):
            raw.setdefault(section, {}).update(choice.value)
    raw["model"] = {"name": "unet", "se": "scse", "base_features": BASE_FEATURES,
                    "norm": "instance" if raw["mode"]["type"] == "3d" else "batch"}  # fmt: skip
    raw["scheduler"] = {"name": "onecycle", "warmup_fraction": 0.05}
    raw["train"].update(
        {"max_epochs": 100000, "val_interval": 10 if raw["mode"]["type"] == "3d" else 50, "seed": 0}
    )
    raw["inference"] = {"overlap": 0.5 if raw["mode"]["type"] == "3d" else 0.0, "sw_batch_size": 4}
    raw["data"] = {k: v for k, v in raw["data"].items() if v is not None}
    return raw


def relative_root(root: Path, config_path: Path) -> str:
    """``root`` relative to the config's folder where it lies below it, else absolute."""
    root, base = root.resolve(), config_path.resolve().parent
    try:
        return str(root.relative_to(base))
    except ValueError:
        return str(root)
