"""Cost of the weighted CE + Dice loss with many classes: one-hot formulation against ours.

Run by hand (results in docs/benchmarks.md):

    .venv/bin/python benchmarks/loss_cost.py            # 16 x 99 x 144 x 160 (whole-brain coronal batch)

The one-hot formulation is what scseg used before: label boundaries from max-pooling a one-hot map
and MONAI's ``DiceLoss(to_onehot_y=True)``; ours pools the label map itself and gathers the Dice
overlaps (``scseg.engine.losses``). Both give the same value (tests/engine/test_losses.py); the
network's own forward + backward on the same batch is printed for scale.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from scseg.engine.losses import label_boundaries, soft_dice_loss
from scseg.nn import create_model


def one_hot_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    onehot = F.one_hot(labels, logits.shape[1]).movedim(-1, 1).float()
    edge = (F.max_pool2d(onehot, 3, 1, 1) != -F.max_pool2d(-onehot, 3, 1, 1)).any(dim=1).float()
    log_probs = F.log_softmax(logits, dim=1)
    ce = -((weights[labels] + edge) * log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()
    dice = DiceLoss(to_onehot_y=True, include_background=False, batch=True)
    return ce + dice(log_probs.exp(), labels.unsqueeze(1))


def ours(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    log_probs = F.log_softmax(logits, dim=1)
    w = weights[labels] + label_boundaries(labels)
    ce = -(w * log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()
    return ce + soft_dice_loss(log_probs.exp(), labels)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=99)
    parser.add_argument("--size", type=int, nargs=2, default=[144, 160])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = (args.batch, args.classes, *args.size)
    labels = torch.randint(0, args.classes, (args.batch, *args.size))
    weights = torch.rand(args.classes)
    logits = torch.randn(shape, requires_grad=True)
    a, b = one_hot_loss(logits, labels, weights), ours(logits, labels, weights)
    torch.testing.assert_close(a, b)
    net = create_model("unet", 2, 1, args.classes, se="scse", features=[16, 32, 64, 128, 256])
    image = torch.randn(args.batch, 1, *args.size)
    rows = [
        ("one-hot boundaries + MONAI DiceLoss", best_of(lambda: one_hot_loss(logits, labels, weights).backward(), args.repeats)),
        ("scseg (label-map pooling, gathered Dice)", best_of(lambda: ours(logits, labels, weights).backward(), args.repeats)),
        ("for scale: the scSE U-Net 16-256, forward + backward", best_of(lambda: net(image).sum().backward(), args.repeats)),
    ]  # fmt: skip
    print(f"batch {shape}, best of {args.repeats}, {torch.get_num_threads()} threads\n")
    print("| loss forward + backward | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
