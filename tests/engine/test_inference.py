"""2D inference: one window per slice runs without MONAI's window machinery and equals it."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import SlidingWindowInferer

from scseg.engine.inference import ScsegInferer, SliceWise
from scseg.nn import create_model


def _monai(volume: torch.Tensor, net: torch.nn.Module, axis: int, roi: list[int], blend: str) -> torch.Tensor:
    """The reference: MONAI's sliding windows, one slice thick, over the same 2D network."""
    window = list(roi)
    window.insert(axis, 1)
    overlaps = [0.5, 0.5, 0.5]
    overlaps[axis] = 0.0
    inferer = SlidingWindowInferer(window, sw_batch_size=3, overlap=overlaps, mode=blend)
    return torch.softmax(inferer(volume, SliceWise(net, axis)), dim=1)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("axis_name, axis", [("sagittal", 0), ("coronal", 1), ("axial", 2)])
def test_whole_slice_windows_equal_monai_sliding_windows(
    axis_name: str, axis: int, blend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    net = create_model("unet", 2, 1, 5, base_features=4).eval()
    volume = torch.randn(2, 1, 13, 15, 11)  # odd sizes: MONAI pads the odd voxel after
    roi = [16, 16]
    inferer = ScsegInferer(2, roi, overlap=0.5, sw_batch_size=3, blend=blend, slice_axis=axis_name)
    plane = [volume.shape[2 + d] for d in range(3) if d != axis]
    assert all(p <= r for p, r in zip(plane, roi, strict=True))  # every slice is one window
    calls = []  # the comparison means something only if the slice path really ran
    original = ScsegInferer._add_slices
    monkeypatch.setattr(ScsegInferer, "_add_slices", lambda self, *a: calls.append(1) or original(self, *a))
    ours = inferer(volume, net)
    assert calls == [1]
    torch.testing.assert_close(ours, _monai(volume, net, axis, roi, blend), rtol=1e-5, atol=1e-6)


def test_slices_larger_than_the_window_are_tiled_by_monai() -> None:
    torch.manual_seed(0)
    net = create_model("unet", 2, 1, 3, base_features=4).eval()
    volume = torch.randn(1, 1, 24, 9, 20)  # coronal slices 24 x 20 > 16 x 16: overlapping windows
    inferer = ScsegInferer(2, [16, 16], overlap=0.5, slice_axis="coronal")
    assert not inferer._slices_fit(volume, 1, [16, 1, 16])
    torch.testing.assert_close(inferer(volume, net), _monai(volume, net, 1, [16, 16], "gaussian"))


def test_view_averaging_is_the_mean_of_the_single_views() -> None:
    torch.manual_seed(0)
    net = create_model("unet", 2, 1, 4, base_features=4).eval()
    volume = torch.randn(1, 1, 12, 14, 10)
    both = ScsegInferer(2, [16, 16], views=["coronal", "axial"])(volume, net)
    coronal = ScsegInferer(2, [16, 16], slice_axis="coronal")(volume, net)
    axial = ScsegInferer(2, [16, 16], slice_axis="axial")(volume, net)
    torch.testing.assert_close(both, (coronal + axial) / 2)
