"""Why did sSE collapse the 2D DenseNet (QuickNAT) in the hippocampus ablation (0.431 vs 0.695)?

Trains the ablation's 2D DenseNet cell (``configs/hippocampus_3d.yaml`` sliced coronally, the
same split, seed and recipe) for a fixed number of epochs under several hypotheses, evaluates each
on the validation split, and reads the trained sSE gates on validation slices:

- ``none`` / ``sse``: the ablation's pair, now at equal epochs instead of equal minutes;
- ``sse-open``: sSE gates initialised open (``model.se_sse_init: open``: 1x1 conv weight 0, bias
  +4, every gate 0.98 at the start, the block starts as the identity), testing the initialisation;
- ``sse-lr/3``: a third of the learning rate, testing the optimisation;
- ``sse-after-norm``: each sSE input normalised first (the DenseNet's blocks end in an
  un-normalised 1x1 compression conv, so sSE sees raw, signed features whose scale drifts),
  testing the gate's interaction with normalisation.

    .venv/bin/python benchmarks/sse_collapse.py --epochs 3 --out runs/sse_collapse
    .venv/bin/python benchmarks/sse_collapse.py --epochs 3 --seed 1 --variants none,sse,sse-open

(``--seed`` also redraws the config's train / validation split, as a study's seeds do.)

Writes ``OUT/sse_collapse.json`` and prints a table (docs/results.md, "The sSE collapse").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from scseg.config import config_from_dict
from scseg.config.load import read_raw_config
from scseg.engine.trainer import train
from scseg.evaluation.evaluate import evaluate_model
from scseg.evaluation.study_cells import Cell, cell_config
from scseg.nn.blocks.spatial_se import SpatialSE
from scseg.paths import REPO_ROOT

VARIANTS = ("none", "sse", "sse-open", "sse-lr/3", "sse-after-norm")


def _patch_spatial_se(variant: str) -> None:
    """Apply a hypothesis to every SpatialSE built from now on (this process only)."""
    original_init = SpatialSE.__init__

    def init(self: SpatialSE, spatial_dims: int, channels: int, init: str = "default") -> None:
        original_init(self, spatial_dims, channels, init)
        if variant == "sse-after-norm":
            self.pre_norm = nn.GroupNorm(1, channels, affine=False)

    original_gate = SpatialSE.gate

    def gate(self: SpatialSE, x: torch.Tensor) -> torch.Tensor:
        return original_gate(self, self.pre_norm(x) if hasattr(self, "pre_norm") else x)

    SpatialSE.__init__ = init  # type: ignore[method-assign]
    SpatialSE.gate = gate  # type: ignore[method-assign]


def gate_statistics(run: Path, config, device: str) -> dict:
    """Mean sSE gate and share of closed gates (< 0.05) per block, on 8 validation slices."""
    from scseg.artefact import load_model, load_network
    from scseg.data.loaders import build_loaders

    artefact = load_model(run)
    net = load_network(artefact.spec.network, artefact.weights, str(run)).to(device)
    gates: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: gates.append(m.gate(i[0]).detach()))
             for m in net.modules() if isinstance(m, SpatialSE)]  # fmt: skip
    loaders = build_loaders(config, show_progress=False)
    batch = next(iter(loaders.train))["image"][:8].to(device)
    with torch.no_grad():
        net(batch)
    for h in hooks:
        h.remove()
    return {
        "blocks": len(gates),
        "mean_gate": [round(float(g.mean()), 3) for g in gates],
        "closed_share": [round(float((g < 0.05).float().mean()), 3) for g in gates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/sse_collapse"))
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant (in this process)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, default all")
    parser.add_argument("--seed", type=int, help="training seed (default: the config's, 0)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    suffix = "" if args.seed is None else f"_seed{args.seed}"
    if args.variant is None:  # one subprocess per variant: the patches must not leak between them
        import subprocess
        import sys

        variants = args.variants.split(",")
        for variant in variants:
            cmd = [sys.executable, __file__, "--variant", variant, "--epochs", str(args.epochs),
                   "--out", str(args.out), "--device", args.device]  # fmt: skip
            subprocess.run(cmd + ([] if args.seed is None else ["--seed", str(args.seed)]), check=True)
        results = [
            json.loads((args.out / f"{v.replace('/', '_')}{suffix}.json").read_text()) for v in variants
        ]
        (args.out / f"sse_collapse{suffix}.json").write_text(json.dumps(results, indent=2))
        print(
            "| variant | seed | epochs | mean Dice | minutes | mean gate per block (first, middle, last) | closed gates (max share) |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in results:
            g = r["gates"]
            means = g["mean_gate"]
            shown = "-" if not means else f"{means[0]}, {means[len(means) // 2]}, {means[-1]}"
            closed = "-" if not g["closed_share"] else f"{max(g['closed_share']):.3f}"
            print(
                f"| {r['variant']} | {r.get('seed', 0)} | {r['epochs']} | {r['mean_dice']:.3f} | {r['minutes']:.1f} | {shown} | {closed} |"
            )
        return
    raw = read_raw_config(REPO_ROOT / "configs/hippocampus_3d.yaml")
    se = "none" if args.variant == "none" else "sse"
    cell_raw = cell_config(raw, Cell(2, "densenet", se, args.seed), None, args.epochs)
    if args.variant == "sse-open":  # the remedy, now an option of every network
        cell_raw["model"]["se_sse_init"] = "open"
    if args.variant == "sse-lr/3":  # cell_config returned a copy: the config file's dict is untouched
        cell_raw["optimizer"]["lr"] = cell_raw["optimizer"]["lr"] / 3
    _patch_spatial_se(args.variant)
    config = config_from_dict(cell_raw, args.variant, REPO_ROOT / "configs")
    run = args.out / f"{args.variant.replace('/', '_')}{suffix}"
    start = time.monotonic()
    train(config, run, resume=(run / "checkpoints/last.pt").is_file())
    minutes = (time.monotonic() - start) / 60
    evaluation = evaluate_model(run, config, run / "evaluation", split="val", device=args.device)
    result = {
        "variant": args.variant,
        "seed": 0 if args.seed is None else args.seed,
        "epochs": args.epochs,
        "mean_dice": evaluation.summary["mean_dice"],
        "minutes": minutes,
        "gates": gate_statistics(run, config, args.device)
        if se == "sse"
        else {"mean_gate": [], "closed_share": []},
    }
    (args.out / f"{args.variant.replace('/', '_')}{suffix}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
