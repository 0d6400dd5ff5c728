"""--studies: NIfTI served as is; DICOM series converted once into scseg-datastore/; bad --model values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from scseg.cli import app
from scseg.errors import ConfigError, DataError, RunDirError
from scseg.io.dicom_series_writer import write_dicom_series
from scseg.label.server import parse_models
from scseg.label.studies import DATASTORE_DIR, SOURCES_FILE, prepare_studies


def test_a_nifti_only_folder_is_served_as_it_is(phantom_root: Path, tmp_path: Path) -> None:
    for name in ("phantom_001.nii.gz", "phantom_002.nii.gz"):
        shutil.copyfile(phantom_root / "imagesTr" / name, tmp_path / name)
    found = prepare_studies(tmp_path)
    assert found.datastore == tmp_path.resolve()
    assert set(found.images) == {"phantom_001", "phantom_002"}
    assert not (tmp_path / DATASTORE_DIR).exists()


def test_dicom_series_are_converted_once_beside_linked_niftis(phantom_root: Path, tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    shutil.copytree(phantom_root / "dicom", studies / "pacs" / "export")
    shutil.copyfile(phantom_root / "imagesTr/phantom_001.nii.gz", studies / "phantom_001.nii.gz")
    (studies / "pacs" / "README.txt").write_text("not DICOM")
    other = nib.load(phantom_root / "imagesTr/phantom_002.nii.gz")
    broken = studies / "pacs" / "broken"  # another series, one slice removed from its middle
    files = write_dicom_series(np.asanyarray(other.dataobj), other.affine, broken, patient_id="P2")
    files[len(files) // 2].unlink()
    found = prepare_studies(studies)
    store = studies.resolve() / DATASTORE_DIR
    assert found.datastore == store
    assert len(found.images) == 2 and "phantom_001" in found.images
    (series_id,) = [k for k in found.images if k != "phantom_001"]
    converted = nib.load(store / f"{series_id}.nii.gz")
    original = nib.load(phantom_root / "imagesTr/phantom_000.nii.gz")
    assert converted.shape == original.shape
    np.testing.assert_allclose(converted.affine, original.affine, atol=1e-4)
    assert (store / "phantom_001.nii.gz").resolve() == (studies / "phantom_001.nii.gz").resolve()
    assert len(found.problems) == 1 and "broken" in found.problems[0]
    assert json.loads((store / SOURCES_FILE).read_text()) == found.images
    # a second start reuses the conversion and does not look into the datastore again
    stamp = (store / f"{series_id}.nii.gz").stat().st_mtime_ns
    again = prepare_studies(studies)
    assert again.images == found.images and (store / f"{series_id}.nii.gz").stat().st_mtime_ns == stamp


def test_missing_studies_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        prepare_studies(tmp_path / "nope")


def test_model_names_and_bad_model_paths(phantom_run_2d: Path, tmp_path: Path) -> None:
    specs = parse_models([str(phantom_run_2d), f"other={phantom_run_2d}"])
    assert [s.name for s in specs] == ["phantom2d", "other"]
    with pytest.raises(ConfigError, match="two models are named"):
        parse_models([str(phantom_run_2d), str(phantom_run_2d)])
    with pytest.raises(RunDirError, match="neither a run directory"):
        parse_models([str(tmp_path)])
    with pytest.raises(ConfigError, match="at least one"):
        parse_models([])


def test_cli_refuses_a_bad_model_before_starting_a_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["label", "serve", "--model", str(tmp_path), "--studies", str(tmp_path)])
    assert result.exit_code == 4 and "neither a run directory" in result.output
