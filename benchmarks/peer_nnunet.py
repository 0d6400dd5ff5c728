"""nnU-Net v2 beside scseg on the same hippocampus split, the same CPU and the same training budget.

Steps (each skipped when its output exists, so a stopped run continues):

1. a throwaway virtual environment with the same CPU torch and PyPI ``nnunetv2``;
2. the training split of ``configs/hippocampus_3d.yaml`` as nnU-Net's Dataset004_Hippocampus, its
   validation cases as ``imagesTs`` (nnU-Net never sees them; its own per-epoch pseudo-Dice runs on
   8 training cases and it keeps its final checkpoint);
3. ``nnUNetv2_plan_and_preprocess`` (3d_fullres) and training with ``nnUNetTrainer_TimeBudget``: the
   stock trainer with 50 iterations per epoch, its poly learning rate driven by elapsed time and a
   stop at the first iteration after ``--budget-minutes`` of training (the stock trainer runs 1000
   epochs of 250 iterations);
4. prediction of the validation cases with and without nnU-Net's mirroring, timed;
5. Dice with scseg's own code (``scseg evaluate --pred --ref``).

    .venv/bin/python benchmarks/peer_nnunet.py --work /tmp/nnunet_bench --budget-minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINER = '''
import os, time
import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_TimeBudget(nnUNetTrainer):
    """The stock trainer within a wall-clock budget (NNUNET_BUDGET_S): 50 iterations per epoch, the
    poly schedule over elapsed time instead of epochs, stop when the budget is spent."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = float(os.environ["NNUNET_BUDGET_S"])
        self.num_iterations_per_epoch = 50
        self.num_val_iterations_per_epoch = 10
        self.num_epochs = 100000

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        progress = min(1.0, (time.time() - self.t_start) / self.budget_s)
        for group in self.optimizer.param_groups:
            group["lr"] = self.initial_lr * (1 - progress) ** 0.9

    def run_training(self):
        self.on_train_start()
        self.t_start = time.time()
        for epoch in range(self.current_epoch, self.num_epochs):
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = []
            for _ in range(self.num_iterations_per_epoch):
                outputs.append(self.train_step(next(self.dataloader_train)))
                if time.time() - self.t_start >= self.budget_s:
                    break  # on this CPU an epoch of 50 iterations takes ~9 min: stop inside it
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val)) for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()
            self.iterations = getattr(self, "iterations", 0) + len(outputs)
            if time.time() - self.t_start >= self.budget_s:
                self.print_to_log_file(f"time budget spent after {epoch + 1} epochs, iterations: {self.iterations}")
                break
        self.on_train_end()
'''


def run(cmd: list[str], env: dict | None = None) -> float:
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def setup_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "nnUNetv2_train").is_file():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"])
        run([str(python), "-m", "pip", "install", "-q", "nnunetv2"])
    site = subprocess.run(
        [str(python), "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "training" / "nnUNetTrainer" / "nnUNetTrainer_TimeBudget.py").write_text(TRAINER)
    return venv / "bin"


def convert(work: Path) -> tuple[list[str], list[str]]:
    """The scseg split as nnU-Net's raw dataset; returns (train, val) case names."""
    sys.path.insert(0, str(REPO))
    from scseg.config import load_config
    from scseg.data.cases import discover_cases, split_cases

    config = load_config(REPO / "configs" / "hippocampus_3d.yaml", [])
    train, val = split_cases(discover_cases(config.data), config.data, config.train.seed)
    raw = work / "raw" / "Dataset004_Hippocampus"
    if not (raw / "dataset.json").is_file():
        for folder in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (raw / folder).mkdir(parents=True, exist_ok=True)
        for cases, images, labels in ((train, "imagesTr", "labelsTr"), (val, "imagesTs", "labelsTs")):
            for case in cases:
                shutil.copyfile(case.image, raw / images / f"{case.name}_0000.nii.gz")
                shutil.copyfile(case.label, raw / labels / f"{case.name}.nii.gz")
        dataset = {
            "channel_names": {"0": "MRI"},
            "labels": {"background": 0, "anterior": 1, "posterior": 2},
            "numTraining": len(train),
            "file_ending": ".nii.gz",
        }
        (raw / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return [c.name for c in train], [c.name for c in val]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/nnunet_venv"))
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    args = parser.parse_args()
    work = args.work.resolve()
    bin_dir = setup_venv(args.venv)
    train, val = convert(work)
    env = {**os.environ, "nnUNet_raw": str(work / "raw"), "nnUNet_preprocessed": str(work / "preprocessed"),
           "nnUNet_results": str(work / "results"), "nnUNet_n_proc_DA": "1",
           "NNUNET_BUDGET_S": str(args.budget_minutes * 60)}  # fmt: skip
    report: dict = {"budget_minutes": args.budget_minutes, "train_cases": len(train), "val_cases": len(val)}
    pre = work / "preprocessed" / "Dataset004_Hippocampus"
    if not (pre / "splits_final.json").is_file():
        report["preprocess_s"] = run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", "4", "-c", "3d_fullres",
                                      "-np", "2", "--verify_dataset_integrity"], env)  # fmt: skip
        # the validation fold holds no case (they are in imagesTs): nnU-Net needs one, so give it
        # a few training cases, as scseg's trainer validates on its split's validation cases
        (pre / "splits_final.json").write_text(json.dumps([{"train": train, "val": train[:8]}]))
    trainer = "nnUNetTrainer_TimeBudget"
    results = work / "results" / "Dataset004_Hippocampus" / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_0"
    if not (results / "checkpoint_final.pth").is_file():
        report["train_s"] = run([str(bin_dir / "nnUNetv2_train"), "4", "3d_fullres", "0", "-tr", trainer,
                                 "-device", "cpu"], env)  # fmt: skip
    log = sorted(results.glob("training_log_*.txt"))[-1].read_text()
    report["epochs"] = log.count("Epoch ") - log.count("Epoch time")
    report["iterations"] = int(log.split("iterations: ")[-1].split()[0]) if "iterations: " in log else None
    raw = work / "raw" / "Dataset004_Hippocampus"
    for name, extra in (("mirroring", []), ("no_mirroring", ["--disable_tta"])):
        out = work / f"pred_{name}"
        if not out.is_dir():
            seconds = run([str(bin_dir / "nnUNetv2_predict"), "-i", str(raw / "imagesTs"), "-o", str(out), "-d", "4",
                           "-c", "3d_fullres", "-tr", trainer, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
                           *extra], env)  # fmt: skip
            report[f"predict_{name}_s_per_case"] = seconds / len(val)
        names = work / "names.yaml"
        names.write_text("1: anterior\n2: posterior\n")
        run([str(REPO / ".venv" / "bin" / "scseg"), "evaluate", "--pred", str(out), "--ref", str(raw / "labelsTs"),
             "--labels", str(names), "--out", str(work / f"eval_{name}")])  # fmt: skip
        summary = json.loads((work / f"eval_{name}" / "summary.json").read_text())
        report[f"dice_{name}"] = {k: v["dice_mean"] for k, v in summary["per_structure"].items()}
    (work / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
