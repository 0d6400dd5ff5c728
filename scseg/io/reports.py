"""Per-case outputs a person reads: structure volumes (CSV) and a preview figure (PNG)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

# the Figure API, not pyplot: headless (servers, CI) without switching a notebook's backend
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from scseg.io.atomic import atomic_write_bytes
from scseg.io.csv_report import write_csv
from scseg.labels.hemispheres import detect_pairs, pair_stem


def structure_colors(n: int) -> list[tuple[int, int, int]]:
    """Distinct RGB colours for ``n`` structures (tab10 / tab20, then evenly spaced hues)."""
    if n <= 20:
        table = colormaps["tab10" if n <= 10 else "tab20"].colors
        rgb = [table[i] for i in range(n)]
    else:
        hsv = colormaps["hsv"]
        rgb = [hsv(i / n)[:3] for i in range(n)]
    return [(round(255 * r), round(255 * g), round(255 * b)) for r, g, b in rgb]


def label_counts(data: np.ndarray, length: int) -> np.ndarray:
    """Voxel count of each label value ``0..length-1`` (larger values are not counted).

    In slabs: ``np.bincount`` widens its input to int64, 8 bytes per voxel of a whole CT otherwise.
    """
    counts = np.zeros(length, dtype=np.int64)
    for k in range(0, data.shape[-1], 16):
        slab = np.bincount(data[..., k : k + 16].ravel(), minlength=length)
        counts += slab[:length]
    return counts


@dataclass
class StructureVolume:
    structure: str
    label_value: int
    voxels: int
    volume_ml: float


def structure_volumes(
    labels: nib.Nifti1Image, names: Sequence[str], values: Sequence[int]
) -> list[StructureVolume]:
    """Voxel count and volume in mL of every named structure (0 when absent)."""
    counts = label_counts(np.asanyarray(labels.dataobj), max(values) + 1)
    voxel_ml = abs(float(np.linalg.det(labels.affine[:3, :3]))) / 1000.0
    return [
        StructureVolume(name, int(v), int(counts[v]), round(float(counts[v]) * voxel_ml, 4))
        for name, v in zip(names, values, strict=True)
    ]


def hemisphere_sums(volumes: Sequence[StructureVolume]) -> list[StructureVolume]:
    """Sums where both sides exist, as ``aseg.stats`` users add them up: each left / right pair
    (``Hippocampus (left + right)``) and each hemisphere over its paired structures. Their
    ``label_value`` is 0 (a sum, not a label).

    Example:
        >>> v = [StructureVolume("Left-Hippocampus", 17, 10, 1.0), StructureVolume("Right-Hippocampus", 53, 12, 1.2),
        ...      StructureVolume("Brain-Stem", 16, 30, 3.0)]
        >>> [(s.structure, s.voxels) for s in hemisphere_sums(v)]
        [('Hippocampus (left + right)', 22), ('left hemisphere (paired structures)', 10), ('right hemisphere (paired structures)', 12)]
    """
    by_name = {v.structure: v for v in volumes}
    pairs = detect_pairs([v.structure for v in volumes])
    if not pairs:
        return []
    sums = []
    for left, right in pairs:
        a, b = by_name[left], by_name[right]
        sums.append(
            StructureVolume(
                f"{pair_stem(left)} (left + right)",
                0,
                a.voxels + b.voxels,
                round(a.volume_ml + b.volume_ml, 4),
            )
        )
    for side, members in (
        ("left", [by_name[p[0]] for p in pairs]),
        ("right", [by_name[p[1]] for p in pairs]),
    ):
        total = StructureVolume(
            f"{side} hemisphere (paired structures)",
            0,
            sum(m.voxels for m in members),
            round(sum(m.volume_ml for m in members), 4),
        )
        sums.append(total)
    return sums


def write_volumes_csv(
    path: Path,
    volumes: Sequence[StructureVolume],
    uncertainty: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """``volumes.csv``; with ``uncertainty`` (structure -> (uncertainty, volume CV), from several
    passes) two more columns, empty on the rows of sums."""
    header = ["structure", "label_value", "voxels", "volume_ml"]
    if uncertainty is not None:
        header += ["uncertainty", "volume_cv"]
    rows = []
    for v in volumes:
        row: list = [v.structure, v.label_value or "", v.voxels, f"{v.volume_ml:.4f}"]
        if uncertainty is not None:
            scores = uncertainty.get(v.structure) if v.label_value else None
            # NaN: no pass found the structure (no score)
            row += [f"{scores[0]:.4f}", f"{scores[1]:.4f}"] if scores and scores[0] == scores[0] else ["", ""]
        rows.append(row)
    write_csv(path, header, rows)


def _canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS-ordered view of ``array`` (flips and transposes only: no copy) and its voxel sizes."""
    ornt = nib.orientations.io_orientation(affine)
    view = nib.orientations.apply_orientation(array, ornt)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))[ornt[:, 0].astype(int)]
    return view, zooms


def _slices_through(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The foreground's centre voxel and the axial slices at its 25/50/75 % quantiles (the volume's
    middle without foreground); from per-axis counts, never a list of foreground voxels."""
    foreground = lab > 0
    profiles = [
        foreground.sum(axis=tuple(a for a in range(3) if a != axis), dtype=np.int64) for axis in range(3)
    ]
    del foreground
    total = profiles[2].sum()
    if total == 0:
        return np.array(lab.shape) // 2, (np.array([0.25, 0.5, 0.75]) * (lab.shape[2] - 1)).astype(int)
    center = np.array([round(float((p * np.arange(len(p))).sum() / total)) for p in profiles])
    cumulative = np.cumsum(profiles[2]) / total
    zs = np.searchsorted(cumulative, [0.25, 0.5, 0.75]).clip(0, lab.shape[2] - 1)
    return center, zs


def _window(image: np.ndarray) -> tuple[float, float]:
    sample = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)]
    low, high = np.percentile(sample, [1, 99])
    return float(low), float(high if high > low else low + 1)


def save_preview(
    image: nib.Nifti1Image,
    labels: nib.Nifti1Image,
    volumes: Sequence[StructureVolume],
    path: Path,
    title: str = "",
) -> None:
    """Three axial slices, one coronal and one sagittal through the segmented structures, with the
    label overlay and a legend of the structures found (with their volumes); radiological
    convention (patient right on the left of the image)."""
    img, zooms = _canonical(np.asanyarray(image.dataobj), image.affine)
    lab, _ = _canonical(np.asanyarray(labels.dataobj), labels.affine)
    colors = structure_colors(len(volumes))
    lut = np.zeros((max(v.label_value for v in volumes) + 1, 4))
    for v, color in zip(volumes, colors, strict=True):
        lut[v.label_value] = [*(c / 255 for c in color), 0.45]
    center, zs = _slices_through(lab)
    low, high = _window(np.asarray(img[:, :, center[2]], dtype=np.float32))
    sx, sy, sz = zooms
    panels = [(f"axial {z}", img[:, :, z], lab[:, :, z], sy / sx) for z in zs]
    panels += [
        (f"coronal {center[1]}", img[:, center[1], :], lab[:, center[1], :], sz / sx),
        (f"sagittal {center[0]}", img[center[0], :, :], lab[center[0], :, :], sz / sy),
    ]
    fig = Figure(figsize=(12, 8.5))
    axes = fig.subplots(2, 3)
    for ax, (name, im, lb, aspect) in zip(axes.flat, panels, strict=False):
        im, lb = np.asarray(im, dtype=np.float32).T, np.asarray(lb).T
        if not name.startswith("sagittal"):  # radiological: patient right on the image's left
            im, lb = im[:, ::-1], lb[:, ::-1]
            ax.text(0.02, 0.5, "R", color="yellow", transform=ax.transAxes, fontsize=12, va="center")
        ax.imshow(
            im, cmap="gray", vmin=low, vmax=high, origin="lower", aspect=aspect, interpolation="nearest"
        )
        ax.imshow(lut[lb], origin="lower", aspect=aspect, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    legend_ax = axes.flat[-1]
    legend_ax.axis("off")
    handles = [
        Patch(color=np.array(c) / 255, label=f"{v.structure} ({v.volume_ml:.1f} mL)")
        for v, c in zip(volumes, colors, strict=True)
        if v.voxels > 0
    ]
    if handles:
        legend_ax.legend(
            handles=handles, loc="center", fontsize=9, ncol=1 + len(handles) // 16, frameon=False
        )
    else:
        legend_ax.text(0.5, 0.5, "no structure found", ha="center", va="center")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(path, lambda f: f.write(buffer.getvalue()))
