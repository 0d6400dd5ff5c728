"""volumes.csv in mL (anisotropic voxels), preview.png, and the colour table."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np

from scseg.io.reports import save_preview, structure_colors, structure_volumes, write_volumes_csv


def test_volumes_use_the_voxel_size_and_report_absent_structures(tmp_path: Path) -> None:
    labels = np.zeros((10, 12, 8), np.uint8)
    labels[:2, :3, :4] = 5  # 24 voxels
    labels[5:, 5:, :] = 2  # 5 * 7 * 8 = 280 voxels
    affine = np.diag([0.5, 0.8, 2.5, 1.0])  # 1 mm^3 per voxel, rotated by a permutation below
    affine = affine[:, [1, 0, 2, 3]]
    image = nib.Nifti1Image(labels, affine)
    volumes = structure_volumes(image, ["liver", "spleen", "kidney"], [2, 5, 7])
    assert [(v.structure, v.voxels) for v in volumes] == [("liver", 280), ("spleen", 24), ("kidney", 0)]
    assert volumes[0].volume_ml == 0.28 and volumes[1].volume_ml == 0.024
    write_volumes_csv(tmp_path / "volumes.csv", volumes)
    with (tmp_path / "volumes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[2] == {"structure": "kidney", "label_value": "7", "voxels": "0", "volume_ml": "0.0000"}


def test_preview_is_written_for_found_and_empty_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = nib.Nifti1Image(rng.normal(size=(40, 30, 20)).astype(np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    labels = np.zeros((40, 30, 20), np.uint8)
    labels[10:20, 10:20, 5:15] = 1
    label_image = nib.Nifti1Image(labels, image.affine)
    volumes = structure_volumes(label_image, ["a", "b"], [1, 2])
    save_preview(image, label_image, volumes, tmp_path / "preview.png", title="case")
    picture = mpimg.imread(tmp_path / "preview.png")
    assert picture.shape[0] > 500 and picture.shape[1] > 800
    # the overlay colour of structure "a" (tab10 blue, blended) appears; it would not without labels
    blue = np.array(structure_colors(2)[0]) / 255
    assert (np.abs(picture[..., :3] - blue).sum(axis=-1) < 0.05).sum() > 50  # the legend patch at least
    empty = nib.Nifti1Image(np.zeros_like(labels), image.affine)
    save_preview(image, empty, structure_volumes(empty, ["a", "b"], [1, 2]), tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 5_000


def test_colours_are_distinct_for_many_structures() -> None:
    for n in (3, 15, 45):
        colors = structure_colors(n)
        assert len(colors) == n == len(set(colors))
        assert all(0 <= c <= 255 for rgb in colors for c in rgb)


def test_volumes_add_pair_and_hemisphere_sums_in_ml(tmp_path: Path) -> None:
    from scseg.io.reports import hemisphere_sums

    labels = np.zeros((10, 10, 10), np.uint16)
    labels[:2] = 17  # Left-Hippocampus: 200 voxels
    labels[2:5] = 53  # Right-Hippocampus: 300
    labels[5:6] = 1035  # ctx-lh-insula: 100
    labels[6:8] = 2035  # ctx-rh-insula: 200
    labels[8:] = 16  # Brain-Stem: 200, unpaired
    image = nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0]))  # 8 mm^3 voxels
    names = ["Left-Hippocampus", "Right-Hippocampus", "ctx-lh-insula", "ctx-rh-insula", "Brain-Stem"]
    volumes = structure_volumes(image, names, [17, 53, 1035, 2035, 16])
    sums = {v.structure: v for v in hemisphere_sums(volumes)}
    assert sums["Hippocampus (left + right)"].voxels == 500
    assert sums["Hippocampus (left + right)"].volume_ml == 4.0
    assert sums["ctx-insula (left + right)"].voxels == 300
    assert sums["left hemisphere (paired structures)"].voxels == 300
    assert sums["right hemisphere (paired structures)"].volume_ml == 4.0
    assert not any("Brain-Stem" in name for name in sums)
    write_volumes_csv(tmp_path / "v.csv", volumes + list(sums.values()))
    with (tmp_path / "v.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and rows[5]["label_value"] == "" and rows[0]["label_value"] == "17"
    assert hemisphere_sums(volumes[4:]) == [], "no pairs, no sums"
