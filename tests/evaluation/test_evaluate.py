"""``scseg evaluate`` on folders and on a model; the report files; ``scseg ablate`` on a tiny grid."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from scseg.errors import ConfigError, DataError
from scseg.evaluation.ablation import ablate
from scseg.evaluation.evaluate import evaluate_folders, evaluate_model
from scseg.evaluation.metrics import StructureScore
from scseg.evaluation.report import summarise, summary_markdown
from scseg.evaluation.study_tables import table_markers
from scseg.io.output_names import CaseFiles
from scseg.io.reports import hemisphere_sums, structure_volumes, write_volumes_csv
from tests.conftest import TINY


def _save(data: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.eye(4)), path)


@pytest.fixture
def label_folders(tmp_path: Path) -> tuple[Path, Path]:
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[7:10, 7:10, 7:10] = 2
    for case, shift in (("a", 0), ("b", 1)):
        _save(ref, tmp_path / "ref" / f"{case}.nii.gz")
        _save(np.roll(ref, shift, axis=0), tmp_path / "pred" / f"{case}.nii.gz")
    _save(ref, tmp_path / "ref" / "unpredicted.nii.gz")
    return tmp_path / "pred", tmp_path / "ref"


def test_folder_evaluation_writes_every_report(label_folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, ref = label_folders
    names = tmp_path / "names.yaml"
    names.write_text("1: anterior\n2: posterior\n")
    result = evaluate_folders(pred, ref, tmp_path / "out", names, progress=False)
    assert result.unpredicted == ["unpredicted"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["per_structure"]) == {"anterior", "posterior"}
    anterior = summary["per_structure"]["anterior"]
    # case a is perfect, case b overlaps 3/4 of a 4-voxel-wide box: Dice 0.75
    assert anterior["dice_mean"] == pytest.approx((1.0 + 0.75) / 2)
    assert anterior["dice_std"] == pytest.approx(0.125)
    assert summary["mean_dice"] == pytest.approx(
        np.mean([v["dice_mean"] for v in summary["per_structure"].values()])
    )
    with (tmp_path / "out" / "per_case.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["metric"] for r in rows} >= {"dice", "hd95", "assd", "volume_diff_ml"}
    assert len(rows) == 2 * 2 * 7  # cases x structures x metrics
    assert anterior["volume_ref_ml_mean"] == pytest.approx(4**3 / 1000)  # 1 mm voxels: the size
    assert summary["per_structure"]["posterior"]["volume_ref_ml_mean"] == pytest.approx(3**3 / 1000)
    assert "| anterior | 2 | 0.06 | 0.875 ± 0.125 |" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "dice_boxplot.png").stat().st_size > 5_000
    assert (tmp_path / "out" / "dice_vs_size.png").stat().st_size > 5_000


def test_default_names_and_errors(label_folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, ref = label_folders
    result = evaluate_folders(pred, ref, tmp_path / "out", progress=False)
    assert set(result.summary["per_structure"]) == {"label_1", "label_2"}
    (tmp_path / "names.yaml").write_text("1: anterior\n")
    with pytest.raises(DataError, match=r"label value\(s\) \[2\]"):
        evaluate_folders(pred, ref, tmp_path / "o2", tmp_path / "names.yaml", progress=False)
    _save(np.zeros((12, 12, 12)), pred / "stray.nii.gz")
    with pytest.raises(DataError, match="no reference of the same case name.*stray"):
        evaluate_folders(pred, ref, tmp_path / "o3", progress=False)
    (pred / "stray.nii.gz").unlink()
    _save(np.zeros((12, 12, 11)), pred / "a.nii.gz")
    with pytest.raises(DataError, match="case a: prediction shape"):
        evaluate_folders(pred, ref, tmp_path / "o4", progress=False)


def test_label_values_beyond_16_bits_are_refused_before_any_count_array(
    label_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, ref = label_folders
    hostile = np.zeros((12, 12, 12), np.int64)
    hostile[0, 0, 0] = 2**40  # a count array (or box list) this long would need terabytes
    nib.save(nib.Nifti1Image(hostile, np.eye(4), dtype=np.int64), pred / "a.nii.gz")
    with pytest.raises(
        DataError, match=r"case a: the prediction label map holds values from 0 to 1.09951e\+12"
    ):
        evaluate_folders(pred, ref, tmp_path / "out", progress=False)
    (tmp_path / "names.yaml").write_text("1: anterior\n1099511627776: hostile\n")
    with pytest.raises(
        ConfigError, match=r"entry 1099511627776: 'hostile': keys must be label values 0..65535"
    ):
        evaluate_folders(pred, ref, tmp_path / "o2", tmp_path / "names.yaml", progress=False)
    hostile[0, 0, 0] = -3
    nib.save(nib.Nifti1Image(hostile, np.eye(4), dtype=np.int64), pred / "a.nii.gz")
    with pytest.raises(DataError, match=r"values from -3 to 0; expected label values 0..65535"):
        evaluate_folders(pred, ref, tmp_path / "o3", progress=False)


def test_names_come_from_the_volumes_table_of_a_predict_tree(tmp_path: Path) -> None:
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[2:6, 2:6, 2:6], ref[7:10, 7:10, 7:10] = 17, 53
    _save(ref, tmp_path / "ref" / "a.nii.gz")
    case = tmp_path / "pred" / "a"
    _save(ref, case / CaseFiles.LABELS)
    image = nib.Nifti1Image(ref, np.eye(4))
    volumes = structure_volumes(image, ["Left-Hippocampus", "Right-Hippocampus"], [17, 53])
    write_volumes_csv(case / "volumes.csv", volumes + hemisphere_sums(volumes))  # a sum row: no value
    result = evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out", progress=False)
    assert set(result.summary["per_structure"]) == {"Left-Hippocampus", "Right-Hippocampus"}
    assert all(score.dice == 1.0 for score in result.scores)
    table = (case / "volumes.csv").read_text()
    (case / "volumes.csv").write_text(
        table.replace("Right-Hippocampus,53,", "Right-Hippocampus,99999999999,")
    )
    with pytest.raises(
        DataError, match=r"volumes.csv: label_value '99999999999' of structure 'Right-Hippocampus'"
    ):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "o2", progress=False)
    # a digit to str.isdigit() that int() refuses: still the clear error, not a ValueError
    (case / "volumes.csv").write_text(table.replace("Right-Hippocampus,53,", "Right-Hippocampus,\u00b2,"))
    with pytest.raises(DataError, match="label_value '\u00b2' of structure 'Right-Hippocampus'"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "o3", progress=False)


def test_the_cli_reports_bad_usage(tmp_path: Path) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "scseg", "evaluate", "--pred", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2 and "give either --pred and --ref, or --model and --data" in cli.stderr


def test_summary_table_counts_absent_structures() -> None:
    scores = [
        StructureScore("a", "s", 1, dice=0.8, hd95=1.0, assd=0.5),
        StructureScore("b", "s", 1, dice=0.0, note="absent_in_prediction"),
        StructureScore("c", "s", 1, note="absent_in_both"),
    ]
    summary = summarise(scores)
    entry = summary["per_structure"]["s"]
    assert entry["dice_mean"] == pytest.approx(0.4) and entry["hd95_mean"] == 1.0
    assert (entry["absent_in_both"], entry["missed"], entry["false_positive"]) == (1, 1, 0)
    assert "| s | 3 | 0.00 | 0.400 ± 0.400 | 1.00 ± 0.00 |" in summary_markdown(summary, 3)


def test_model_evaluation_predicts_the_validation_split(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    config = phantom_run_3d / "config.yaml"
    result = evaluate_model(phantom_run_3d, config, tmp_path / "out", split="val", progress=False)
    cases = {s.case for s in result.scores}
    assert len(cases) == 2 and all(
        (tmp_path / "out" / "predictions" / f"{c}.nii.gz").is_file() for c in cases
    )
    assert result.summary["per_structure"]["rim"]["dice_mean"] > 0.6


def test_ablation_over_a_tiny_grid_is_tabulated_and_resumable(phantom_root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    raw["train"]["max_epochs"] = 1
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "ablation"
    rows = ablate(config, ["unet", "sdnet"], ["none", "scse"], [3, 2], 0.5, out, device="cpu")
    assert [r["cell"] for r in rows] == [
        "3d_unet_none", "3d_unet_scse", "3d_sdnet_none", "3d_sdnet_scse",
        "2d_unet_none", "2d_unet_scse", "2d_sdnet_none", "2d_sdnet_scse",
    ]  # fmt: skip
    by_cell = {r["cell"]: r for r in rows}
    assert by_cell["3d_unet_none"]["se_overhead_percent"] == 0
    assert 0 < by_cell["3d_unet_scse"]["se_overhead_percent"] < 10
    assert set(by_cell["2d_sdnet_scse"]["per_structure_dice"]) == {"ventricle", "lesion", "rim"}
    table = (out / "results.md").read_text()
    assert "## 3D: mean Dice ± sd over validation cases" in table and "| sdnet |" in table
    assert json.loads((out / "results.json").read_text()) == rows
    stamp = (out / "3d_unet_none" / "evaluation" / "summary.json").stat().st_mtime_ns
    again = ablate(config, ["unet", "sdnet"], ["none", "scse"], [3, 2], 0.5, out, device="cpu")
    assert again == rows  # finished cells are read back, not retrained
    assert (out / "3d_unet_none" / "evaluation" / "summary.json").stat().st_mtime_ns == stamp


def test_a_label_table_with_background_is_accepted(label_folders: tuple[Path, Path], tmp_path: Path) -> None:
    """ITK-SNAP / FreeSurfer-style tables list ``0: background``: accepted, and background not scored."""
    pred, ref = label_folders
    names = tmp_path / "names.yaml"
    names.write_text("0: background\n1: anterior\n2: posterior\n")
    result = evaluate_folders(pred, ref, tmp_path / "out", names, progress=False)
    assert set(result.summary["per_structure"]) == {"anterior", "posterior"}
    names.write_text("0: background\n")
    with pytest.raises(ConfigError, match="only background"):
        evaluate_folders(pred, ref, tmp_path / "o2", names, progress=False)
    names.write_text("-1: nothing\n1: anterior\n")
    with pytest.raises(ConfigError, match="label values 0..65535"):
        evaluate_folders(pred, ref, tmp_path / "o3", names, progress=False)


def test_a_multi_seed_sweep_keeps_cell_json_and_tables_from_it(phantom_root: Path, tmp_path: Path) -> None:
    """``--seeds``, ``--epochs``, ``--vary`` and ``--results``: one JSON per finished cell, paired
    tables with intervals and size terciles, and a re-run that reads the JSON (runs deleted)."""
    import shutil

    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    out, kept = tmp_path / "study", tmp_path / "docs_results"
    args = dict(device="cpu", seeds=[0, 1], epochs=1, vary="model.se_reduction=2,4", results_dir=kept)
    rows = ablate(config, ["unet"], ["none", "cse"], [3], None, out, **args)
    names = [r["cell"] for r in rows]
    assert names == [
        "3d_unet_none_s0", "3d_unet_none_s1",
        "3d_unet_cse_s0", "3d_unet_cse_s1",  # r=2 is U-Net's default: the plain cells
        "3d_unet_cse_se_reduction-4_s0", "3d_unet_cse_se_reduction-4_s1",
    ]  # fmt: skip
    assert sorted(p.stem for p in kept.glob("*.json")) == sorted(names)
    assert all(r["epochs"] == 1 and r["train_cpu_amp"] is False for r in rows)
    assert all(r["train_machine"].startswith("cpu: ") and "threads" in r["train_machine"] for r in rows)
    assert [r["network_options"]["se"] for r in rows] == ["none", "none"] + ["cse"] * 4
    assert rows[-1]["network_options"]["se_reduction"] == 4
    by_name = {r["cell"]: r for r in rows}
    assert by_name["3d_unet_cse_se_reduction-4_s1"]["parameters"] < by_name["3d_unet_cse_s1"]["parameters"]
    assert set(by_name["3d_unet_none_s0"]["structure_volume_ml"]) == {"ventricle", "lesion", "rim"}
    table = (out / "results.md").read_text()
    assert "mean Dice [95 % CI] over validation subjects x seeds" in table
    assert "| unet | cse | model.se_reduction=4 | 2 | 4 |" in table, table  # 2 subjects x 2 seeds
    assert "| unet | cse | model.se_reduction=2 (default) | 2 | 4 |" in table, table
    assert "by structure size" in table and "small third" in table
    assert all(r["train_minutes"] > 0 for r in rows) and "train min / cell" in table
    shutil.rmtree(out)
    again = ablate(config, ["unet"], ["none", "cse"], [3], None, out, **args)
    assert again == json.loads(json.dumps(rows)) and not (out / "3d_unet_none_s0").exists()

    # --table-only trains nothing, names the unfinished cells; --into splices the tables into a
    # write-up between its markers and keeps the prose around them.
    write_up = tmp_path / "results.md"
    begin, end = table_markers("docs_results, vary model.se_reduction")
    write_up.write_text(
        f"# Study\n\nProse before.\n\n### Sweep\n\n```bash\n# a comment, not a heading\n```\n\n"
        f"{begin}\nold table\n{end}\n\nProse after.\n"
    )
    more = dict(args, seeds=[0, 1, 2], table_only=True, into=write_up)
    tabled = ablate(config, ["unet"], ["none", "cse"], [3], None, out, **more)
    assert tabled == again and not (out / "3d_unet_none_s2").exists()
    text = write_up.read_text()
    assert "6 of 9 cells finished; not yet run: 3d_unet_none_s2," in text
    assert "old table" not in text and text.startswith("# Study\n\nProse before.") and "Prose after." in text
    # the tables' headings nest one level below the section that holds the markers
    assert "\n#### 3D: mean Dice [95 % CI]" in text and "\n#### 3D: Dice change vs none" in text
    assert "# Ablation" not in text
    write_up.write_text("# Study without markers\n")
    with pytest.raises(ConfigError, match="mark where study 'docs_results, vary model.se_reduction'"):
        ablate(config, ["unet"], ["none", "cse"], [3], None, out, **more)
    assert write_up.read_text() == "# Study without markers\n"
