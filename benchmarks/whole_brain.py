"""Whole-brain (98 structures) figures for docs/benchmarks.md: Dice tables and prediction cost.

Run by hand after training and evaluating (commands in docs/benchmarks.md):

    .venv/bin/python benchmarks/whole_brain.py dice --eval fused=eval/wb2d --eval coronal=eval/coronal \\
        --eval basicunet=eval/basicunet > dice.md
    .venv/bin/python benchmarks/whole_brain.py predict --model runs/wb2d --image t1.nii.gz

``dice`` reads ``summary.json`` of each ``scseg evaluate`` output and prints the means over the 98
structures, the 36 non-cortical and the 62 cortical (``ctx-``) ones, then one row per structure
with its mean reference volume. ``predict`` runs ``scseg predict`` in a child process (wall time
and peak RSS: ru_maxrss), then times the networks' own forward passes in this process (hooks
around each view's network during :meth:`Predictor.predict`), whose sum is what the end-to-end
time is compared with.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _means(per_structure: dict) -> dict[str, float]:
    groups = {
        "all": list(per_structure),
        "non-cortical": [n for n in per_structure if not n.startswith("ctx-")],
        "cortical": [n for n in per_structure if n.startswith("ctx-")],
    }
    out = {}
    for group, names in groups.items():
        values = [per_structure[n]["dice_mean"] for n in names]
        # a structure missed in every case has Dice 0 (not undefined): it counts
        out[group] = float(np.mean([0.0 if v is None else v for v in values])) if values else float("nan")
        out[f"n {group}"] = len(names)
    return out


def dice_tables(evals: dict[str, Path]) -> str:
    summaries = {name: json.loads((path / "summary.json").read_text()) for name, path in evals.items()}
    names = list(summaries)
    lines = [
        "| model | mean Dice (all) | non-cortical | cortical |",
        "|---|---|---|---|",
    ]
    for name, summary in summaries.items():
        m = _means(summary["per_structure"])
        lines.append(
            f"| {name} | {m['all']:.3f} ({m['n all']}) | {m['non-cortical']:.3f} ({m['n non-cortical']}) "
            f"| {m['cortical']:.3f} ({m['n cortical']}) |"
        )
    first = summaries[names[0]]["per_structure"]
    lines += [
        "",
        "| structure | reference (mL) | " + " | ".join(f"Dice {n}" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for structure, entry in sorted(first.items(), key=lambda kv: -kv[1]["volume_ref_ml_mean"]):
        cells = []
        for n in names:
            value = summaries[n]["per_structure"].get(structure, {}).get("dice_mean")
            cells.append("n/a" if value is None else f"{value:.3f}")
        lines.append(f"| {structure} | {entry['volume_ref_ml_mean']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def predict_cost(model: Path, image: Path) -> str:
    import nibabel as nib
    import torch

    from scseg.allocator import current_allocator
    from scseg.engine.predictor import Predictor

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scseg", "predict", "-m", str(model), "-i", str(image), "-o", out],
            check=True,
        )
        wall = time.perf_counter() - start
        with open(Path(out) / "summary.csv") as f:  # the case alone: read, predict, write (no start-up)
            case = float(next(csv.DictReader(f))["seconds"])
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20

    predictor = Predictor(model, device="cpu")
    nets = getattr(predictor.model, "nets", [predictor.model])
    spent = [0.0]
    started: dict[int, float] = {}

    def before(module: torch.nn.Module, _args: object) -> None:
        started[id(module)] = time.perf_counter()

    def after(module: torch.nn.Module, _args: object, _out: object) -> None:
        spent[0] += time.perf_counter() - started.pop(id(module))

    for net in nets:
        net.register_forward_pre_hook(before)
        net.register_forward_hook(after)
    volume = nib.load(image)
    start = time.perf_counter()
    predictor.predict(volume)
    in_process = time.perf_counter() - start
    forward = spent[0]
    return "\n".join(
        [
            "| figure | value |",
            "|---|---|",
            f"| `scseg predict` end to end (child process: start, load, predict, write) | {wall:.1f} s |",
            f"| peak RSS of that process | {peak_gib:.2f} GiB |",
            f"| `Predictor.predict` in process (model loaded) | {in_process:.1f} s |",
            f"| the networks' forward passes inside it | {forward:.1f} s |",
            f"| the case in `summary.csv` (read, preprocess, predict, write outputs) | {case:.1f} s |",
            f"| end to end / forward | {wall / forward:.2f}x |",
            f"| case / forward | {case / forward:.2f}x |",
            f"| in process / forward | {in_process / forward:.2f}x |",
            f"| precision | {predictor.autocast_dtype or 'float32'} |",
            f"| allocator (both processes) | {current_allocator()} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    dice = sub.add_parser("dice")
    dice.add_argument("--eval", action="append", required=True, help="NAME=FOLDER of `scseg evaluate`")
    predict = sub.add_parser("predict")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("--image", type=Path, required=True)
    args = parser.parse_args()
    if args.what == "dice":
        evals = dict(item.split("=", 1) for item in args.eval)
        print(dice_tables({k: Path(v) for k, v in evals.items()}))
    else:
        from scseg.allocator import current_allocator, tcmalloc_library

        library = tcmalloc_library()
        if library and current_allocator() != "tcmalloc":  # time the forward passes as scseg runs them
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "LD_PRELOAD": library})
        print(predict_cost(args.model, args.image))


if __name__ == "__main__":
    main()
