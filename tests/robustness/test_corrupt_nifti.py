"""Damaged NIfTI files are refused with the reason, before anything is computed from them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scseg.engine.predict_folder import predict_path
from scseg.engine.predictor import Predictor
from scseg.errors import DataError
from scseg.io.nifti import load_nifti
from tests.robustness.defects import a_nifti, damaged_niftis


def test_each_damage_is_named(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCSEG_MAX_VOXELS", str(10**15))  # the 4000^3 header meets the memory check
    source = a_nifti(shared_data)
    assert load_nifti(source).shape == nib.load(source).shape
    damaged = damaged_niftis(source, tmp_path)
    assert np.asanyarray(nib.load(damaged["gzip_crc"][0]).dataobj).size > 0, "nibabel alone accepts it"
    for name, (path, reason) in damaged.items():
        with pytest.raises(DataError) as caught:
            load_nifti(path)
        assert path.name in str(caught.value) and reason in str(caught.value), name


def test_predict_records_each_damaged_file_as_failed(
    phantom_run_3d: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCSEG_MAX_VOXELS", str(10**15))  # the 4000^3 header meets the memory check
    damaged = damaged_niftis(a_nifti(shared_data), tmp_path / "in")
    records = predict_path(
        Predictor(phantom_run_3d, device="cpu"), tmp_path / "in", tmp_path / "out", progress=False
    )
    assert len(records) == len(damaged)
    for record in records:
        assert record.status == "failed" and not record.output, record
    reasons = {Path(r.source).name: r.message for r in records}
    for path, reason in damaged.values():
        assert reason in reasons[path.name]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "summary.csv"
    ]
