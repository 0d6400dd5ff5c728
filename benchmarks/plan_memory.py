"""Memory of one training step (forward + backward) of scseg's U-Net, for the planner's estimate.

Each measurement runs in a fresh process; peak RSS minus the RSS after building the network is what
the step's activations and gradients took. ``scseg plan`` (``scseg/plan/planner.py``,
``BYTES_PER_VOXEL_FEATURE``) sizes patches and batches with the largest bytes / (voxel x feature).

    .venv/bin/python benchmarks/plan_memory.py
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
from scseg.nn import create_model
dims, patch, batch, features, norm = json.loads(sys.argv[1])
torch.set_num_threads(2)
net = create_model("unet", dims, 1, 4, se="scse", base_features=features, norm=norm)
x = torch.randn(batch, 1, *patch)
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = rss()
loss = net(x).square().mean()
loss.backward()
print(json.dumps({"bytes": rss() - before}))
"""

CASES = [
    (3, [32, 48, 32], 2, 16, "instance"),
    (3, [64, 64, 64], 2, 16, "instance"),
    (3, [96, 96, 64], 1, 16, "instance"),
    (2, [160, 192], 16, 16, "batch"),
    (2, [256, 256], 8, 16, "batch"),
]


def main() -> None:
    print("| dims | patch | batch | features | peak step memory (MiB) | bytes / (voxel x feature) |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(case)], capture_output=True, text=True, check=True
        )
        used = json.loads(out.stdout.strip().splitlines()[-1])["bytes"]
        dims, patch, batch, features, _ = case
        per = used / (batch * math.prod(patch) * features)
        print(f"| {dims}D | {patch} | {batch} | {features} | {used / 2**20:.0f} | {per:.0f} |")


if __name__ == "__main__":
    main()
