"""The real monailabel server with the scseg app: started on 127.0.0.1, called over HTTP, stopped by PID."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest

from scseg.bundle import export_bundle
from scseg.engine.predictor import Predictor
from scseg.io.dicom_series_writer import write_dicom_series
from scseg.label.studies import DATASTORE_DIR
from tests.conftest import HIPPOCAMPUS_VAL
from tests.label.live_server import Server, label_server
from tests.label.live_server import labels_of as _labels_of
from tests.prediction_helpers import dice

pytestmark = [pytest.mark.slow, pytest.mark.data]
pytest.importorskip("monailabel", reason="the label extra is not installed (scripts/setup.sh installs it)")

NIFTI_CASES = HIPPOCAMPUS_VAL[:2]
DICOM_CASE = HIPPOCAMPUS_VAL[2]


@pytest.fixture(scope="module")
def studies(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two held-out hippocampus cases as NIfTI and one as a DICOM series (a PACS-like folder)."""
    root = tmp_path_factory.mktemp("studies")
    images = shared_data / "msd_hippocampus_mri/imagesTr"
    for case in NIFTI_CASES:
        shutil.copyfile(images / f"{case}.nii.gz", root / f"{case}.nii.gz")
    image = nib.load(images / f"{DICOM_CASE}.nii.gz")
    write_dicom_series(
        np.asanyarray(image.dataobj), image.affine, root / "export" / "series1", patient_id="HIPPO006"
    )
    return root


@pytest.fixture(scope="module")
def server(
    hippocampus_run: Path,
    phantom_run_2d: Path,
    phantom_run_multiview: Path,
    phantom_crossval: Path,
    studies: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    bundle = export_bundle(hippocampus_run, tmp_path_factory.mktemp("bundle") / "hippo_bundle")
    models = [
        f"hippo={hippocampus_run}",
        str(bundle),
        f"phantom2d={phantom_run_2d}",
        f"views3={phantom_run_multiview}",
        f"folds2={phantom_crossval}",
    ]
    with label_server(models, studies, tmp_path_factory.mktemp("server")) as running:
        yield running


def test_info_lists_every_model_with_its_labels(server: Server) -> None:
    info = httpx.get(f"{server.url}/info/").json()
    models = info["models"]
    assert set(models) == {"hippo", "hippo_bundle", "phantom2d", "views3", "folds2"}
    assert models["hippo"]["labels"] == {"anterior": 1, "posterior": 2}
    assert models["hippo_bundle"]["labels"] == {"anterior": 1, "posterior": 2}
    assert models["phantom2d"]["labels"] == {"ventricle": 1, "lesion": 2, "rim": 3}
    assert models["phantom2d"]["config"]["network_dims"] == 2
    assert models["hippo"]["type"] == "segmentation"
    assert models["views3"]["labels"] == {"Left-ventricle": 1, "Right-ventricle": 2, "rim": 3}


def test_infer_hippocampus_case_returns_labels_on_the_image_grid(
    server: Server, shared_data: Path, tmp_path: Path
) -> None:
    case = NIFTI_CASES[0]
    labels, params = _labels_of(server.post_infer("hippo", case), tmp_path)
    image = nib.load(shared_data / f"msd_hippocampus_mri/imagesTr/{case}.nii.gz")
    truth = np.asanyarray(nib.load(shared_data / f"msd_hippocampus_mri/labelsTr/{case}.nii.gz").dataobj)
    assert labels.shape == image.shape
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-5)
    predicted = np.asanyarray(labels.dataobj)
    assert dice(predicted, truth, 1) > 0.6 and dice(predicted, truth, 2) > 0.6
    assert params["label_names"] == {"anterior": 1, "posterior": 2}


def test_infer_on_a_dicom_series_study_with_the_bundle(
    server: Server, studies: Path, shared_data: Path, tmp_path: Path
) -> None:
    served = json.loads((studies / DATASTORE_DIR / "scseg-sources.json").read_text())
    (image_id,) = [k for k, v in served.items() if v.endswith("series1")]
    labels, _ = _labels_of(server.post_infer("hippo_bundle", image_id), tmp_path)
    reference = nib.load(shared_data / f"msd_hippocampus_mri/labelsTr/{DICOM_CASE}.nii.gz")
    assert labels.shape == reference.shape
    np.testing.assert_allclose(labels.affine, reference.affine, atol=1e-4)  # DICOM geometry kept
    predicted, truth = np.asanyarray(labels.dataobj), np.asanyarray(reference.dataobj)
    assert dice(predicted, truth, 1) > 0.6 and dice(predicted, truth, 2) > 0.6


def test_a_2d_model_segments_whole_volumes(server: Server, shared_data: Path, tmp_path: Path) -> None:
    case = NIFTI_CASES[1]
    labels, params = _labels_of(server.post_infer("phantom2d", case), tmp_path)
    assert labels.shape == nib.load(shared_data / f"msd_hippocampus_mri/imagesTr/{case}.nii.gz").shape
    assert params["label_names"] == {"ventricle": 1, "lesion": 2, "rim": 3}


def test_a_multi_view_model_serves_its_fused_labels(
    server: Server, phantom_run_multiview: Path, shared_data: Path, tmp_path: Path
) -> None:
    """The server runs the three views and the fusion: its answer is what ``scseg predict`` gives."""
    case = NIFTI_CASES[1]
    labels, params = _labels_of(server.post_infer("views3", case), tmp_path)
    image = nib.load(shared_data / f"msd_hippocampus_mri/imagesTr/{case}.nii.gz")
    assert labels.shape == image.shape
    assert params["label_names"] == {"Left-ventricle": 1, "Right-ventricle": 2, "rim": 3}
    local = Predictor(phantom_run_multiview, device="cpu").predict(image).labels
    np.testing.assert_array_equal(np.asanyarray(labels.dataobj), np.asanyarray(local.dataobj))


def test_a_crossval_ensemble_serves_the_mean_of_its_folds(
    server: Server, phantom_crossval: Path, shared_data: Path, tmp_path: Path
) -> None:
    case = NIFTI_CASES[0]
    labels, params = _labels_of(server.post_infer("folds2", case), tmp_path)
    image = nib.load(shared_data / f"msd_hippocampus_mri/imagesTr/{case}.nii.gz")
    assert params["label_names"] == {"ventricle": 1, "lesion": 2, "rim": 3}
    local = Predictor(phantom_crossval, device="cpu").predict(image).labels
    np.testing.assert_array_equal(np.asanyarray(labels.dataobj), np.asanyarray(local.dataobj))


def test_malformed_requests_get_4xx_and_the_server_stays_up(server: Server) -> None:
    unknown_model = server.post_infer("no_such_model", NIFTI_CASES[0])
    assert unknown_model.status_code == 404 and "hippo" in unknown_model.json()["detail"]
    unknown_image = server.post_infer("hippo", "no_such_image")
    assert unknown_image.status_code == 404 and unknown_image.json()["detail"] == "unknown image"
    assert server.process.poll() is None
    assert httpx.get(f"{server.url}/info/").status_code == 200


def test_a_label_saved_for_a_dicom_study_is_also_a_dicom_seg(
    server: Server, studies: Path, shared_data: Path, tmp_path: Path
) -> None:
    from scseg.io.dicom_seg import read_dicom_seg

    served = json.loads((studies / DATASTORE_DIR / "scseg-sources.json").read_text())
    (image_id,) = [k for k, v in served.items() if v.endswith("series1")]
    reference = shared_data / f"msd_hippocampus_mri/labelsTr/{DICOM_CASE}.nii.gz"
    with reference.open("rb") as f:
        saved = httpx.put(
            f"{server.url}/datastore/label", params={"image": image_id}, files={"label": f}, timeout=120
        )
    assert saved.status_code == 200, saved.text
    assert saved.json()["dicom_seg"] and saved.json()["model"] == "hippo"
    seg = studies / DATASTORE_DIR / "dicom-seg" / "final" / f"{image_id}.dcm"
    like = nib.load(studies / DATASTORE_DIR / f"{image_id}.nii.gz")
    decoded = read_dicom_seg(seg, like)
    np.testing.assert_array_equal(decoded, np.asanyarray(nib.load(reference).dataobj))
    store = json.loads((studies / DATASTORE_DIR / "datastore_v2.json").read_text())
    assert store["objects"][image_id]["labels"]["final"]["info"]["label_names"] == {
        "anterior": 1,
        "posterior": 2,
    }


def test_a_slicer_label_is_stored_with_the_models_values(
    server: Server, shared_data: Path, tmp_path: Path
) -> None:
    """3D Slicer numbers segments in its list order and names them in ``params.label_info``."""
    case = NIFTI_CASES[1]
    truth = nib.load(shared_data / f"msd_hippocampus_mri/labelsTr/{case}.nii.gz")
    data = np.asanyarray(truth.dataobj)
    swapped = np.where(data == 1, 2, np.where(data == 2, 1, 0)).astype(np.uint8)
    upload = tmp_path / "slicer.nii.gz"
    nib.save(nib.Nifti1Image(swapped, truth.affine), upload)
    info = {"label_info": [{"name": "posterior", "idx": 1}, {"name": "anterior", "idx": 2}]}

    def put() -> httpx.Response:
        with upload.open("rb") as f:
            return httpx.put(
                f"{server.url}/datastore/label",
                params={"image": case, "tag": "slicer"},
                data={"params": json.dumps(info)},
                files={"label": f},
                timeout=120,
            )

    saved = put()
    assert saved.status_code == 200, saved.text
    stored = httpx.get(f"{server.url}/datastore/label", params={"label": case, "tag": "slicer"})
    path = tmp_path / "stored.nii.gz"
    path.write_bytes(stored.content)
    np.testing.assert_array_equal(np.asanyarray(nib.load(path).dataobj), data)
    info["label_info"][0]["name"] = "amygdala"
    refused = put()
    assert refused.status_code == 422 and "amygdala" in refused.json()["detail"]
