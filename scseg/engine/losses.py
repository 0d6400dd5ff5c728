"""Training losses: MONAI's Dice + cross-entropy, the paper's weighted cross-entropy + Dice, and both
for partial labels (a structure not annotated in a case is not punished there)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.transforms import LoadImage
from torch import nn

from scseg.config.schema import Config
from scseg.data.checks import RemapLabelsd


def median_frequency_weights(
    label_paths: Iterable[str], num_classes: int, label_values: list[int] | None = None
) -> torch.Tensor:
    """Median-frequency class weights ``w_l = median_k f_k / f_l`` over the given label maps.

    ``label_values`` remaps atlas ids to 1..K exactly as training does (``data.label_values``).
    Classes absent from every map get the largest weight seen (they cannot be estimated).
    """
    loader = LoadImage(image_only=True)
    remap = RemapLabelsd(label_values) if label_values else None
    counts = np.zeros(num_classes, dtype=np.float64)
    for path in label_paths:
        label = loader(path)
        if remap is not None:
            label = remap({"label": label})["label"]
        label = np.asarray(label).astype(np.int64).ravel()
        counts += np.bincount(np.clip(label, 0, num_classes - 1), minlength=num_classes)[:num_classes]
    present = counts > 0
    freq = counts / counts.sum()
    weights = np.zeros(num_classes)
    weights[present] = np.median(freq[present]) / freq[present]
    weights[~present] = weights[present].max() if present.any() else 1.0
    return torch.tensor(weights, dtype=torch.float32)


def label_boundaries(target: torch.Tensor) -> torch.Tensor:
    """Voxels whose 3x3(x3) neighbourhood holds another label (``|grad S| > 0``), as a float mask.

    The neighbourhood holds another label exactly when its largest and smallest label differ, so two
    poolings of the label map itself do it; pooling a one-hot map instead cost as much as the
    network's own training step with ~100 classes.
    """
    dims = target.dim() - 1
    pool = (F.max_pool2d, F.max_pool3d)[dims - 2]
    labels = target.unsqueeze(1).float()
    largest = pool(labels, kernel_size=3, stride=1, padding=1)
    smallest = -pool(-labels, kernel_size=3, stride=1, padding=1)
    return (largest != smallest).squeeze(1).float()


def soft_dice_loss(
    probs: torch.Tensor, labels: torch.Tensor, annotated: torch.Tensor | None = None, smooth: float = 1e-5
) -> torch.Tensor:
    """MONAI's ``DiceLoss(include_background=False, batch=True)`` on softmax ``probs``, without one-hot.

    The overlap of class ``c`` is the sum of ``p_c`` over the voxels labelled ``c``, gathered once
    for all classes; the label volume per class is a ``bincount``. MONAI expands the labels to a
    one-hot tensor of the logits' size and multiplies it in full, which with ~100 classes took as long
    as the network's forward and backward (tests compare both).

    Args:
        annotated: partial labels, ``(batch, classes)`` 0/1: a class's Dice sums only the samples
            that annotated it, and a class no sample annotated is left out of the mean.
    """
    batch, classes = probs.shape[:2]
    # one (sample, class) bin per voxel: per-sample sums, then the samples that count for each class
    bins = (labels.reshape(batch, -1) + classes * torch.arange(batch, device=labels.device)[:, None]).reshape(
        -1
    )
    overlap = torch.zeros(batch * classes, dtype=probs.dtype, device=probs.device)
    overlap = overlap.index_add(0, bins, probs.gather(1, labels.unsqueeze(1)).reshape(-1)).view(
        batch, classes
    )
    truth = torch.bincount(bins, minlength=batch * classes).to(probs.dtype).view(batch, classes)
    predicted = probs.sum(dim=list(range(2, probs.dim())))
    counts = torch.ones(batch, classes, dtype=probs.dtype, device=probs.device)
    if annotated is not None:
        counts = annotated.to(probs.dtype)
    overlap, truth, predicted = ((counts * x).sum(0) for x in (overlap, truth, predicted))
    dice = (2.0 * overlap + smooth) / (truth + predicted + smooth)
    scored = counts.sum(0)[1:] > 0
    return (1.0 - dice[1:])[scored].mean() if bool(scored.any()) else probs.sum() * 0.0


def marginal_log_probs(log_probs: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Log-probabilities with each sample's unannotated classes merged into background (the
    marginal loss of Shi et al., MedIA 2021): where a case has no annotation of the oesophagus, a
    voxel labelled 0 is "background or oesophagus", and predicting the oesophagus there costs nothing.

    Args:
        log_probs: ``(batch, classes, *spatial)`` log-softmax.
        annotated: ``(batch, classes)`` 0/1; background (class 0) is always annotated.

    Returns:
        The same shape; channel 0 holds ``log(p_0 + sum of the unannotated p_c)``, the others are
        unchanged (an unannotated class has no voxel labelled with it, so its channel is never read).
    """
    merged = annotated == 0
    merged[:, 0] = True
    merged = merged.view(*merged.shape, *([1] * (log_probs.dim() - 2)))
    background = torch.logsumexp(log_probs.masked_fill(~merged, float("-inf")), dim=1, keepdim=True)
    return torch.cat([background, log_probs[:, 1:]], dim=1)


class WeightedCEDiceLoss(nn.Module):
    r"""Weighted cross-entropy + Dice (Roy et al., QuickNAT 2019 and scSE TMI 2019).

    .. math::
        \mathcal{L} = -\frac{1}{|\Omega|}\sum_x \omega(x) \log p_{S(x)}(x) + (1 - \mathrm{Dice}(p, S)),
        \qquad \omega(x) = \omega_{MF}(S(x)) + \omega_0\, \mathbb{1}[|\nabla S(x)| > 0]

    with median-frequency class weights :math:`\omega_{MF}` and a boundary weight :math:`\omega_0`
    (default: twice the median class weight). Softmax is applied once: the log-probabilities feed
    the cross-entropy and their exponent feeds MONAI's Dice loss.

    Args:
        class_weights: one float weight per class (background included).
        boundary_weight: :math:`\omega_0`; ``None`` for ``2 * median(class_weights)``.
        ce_weight, dice_weight: mixing factors of the two terms.
    """

    def __init__(
        self,
        class_weights: torch.Tensor,
        boundary_weight: float | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights.float())
        self.boundary_weight = (
            float(2.0 * class_weights.median()) if boundary_weight is None else float(boundary_weight)
        )
        self.ce_weight, self.dice_weight = ce_weight, dice_weight

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss; ``annotated`` (``(batch, classes)`` 0/1, partial labels): per sample, the
        unannotated classes merge into background for the cross-entropy
        (:func:`marginal_log_probs`) and drop out of the Dice."""
        labels = target[:, 0].long() if target.dim() == logits.dim() else target.long()
        log_probs = F.log_softmax(logits.float(), dim=1)
        ce_log_probs = log_probs if annotated is None else marginal_log_probs(log_probs, annotated)
        weights = self.class_weights[labels]
        if self.boundary_weight:
            weights = weights + self.boundary_weight * label_boundaries(labels)
        ce = -(weights * ce_log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()
        dice = soft_dice_loss(log_probs.exp(), labels, annotated)
        return self.ce_weight * ce + self.dice_weight * dice


def build_loss(config: Config, train_label_paths: Iterable[str]) -> nn.Module:
    """The configured loss. ``weighted_ce_dice`` reads the training labels once for its class weights."""
    loss = config.loss
    if loss.name == "weighted_ce_dice":
        table = config.class_table
        full = config.num_classes if table is None else len(table)
        weights = median_frequency_weights(train_label_paths, full, config.data.label_values)
        if table is not None:  # a merged pair: the mean of its sides' weights
            merged = torch.zeros(config.num_classes).index_add_(0, torch.as_tensor(table), weights)
            weights = merged / torch.bincount(torch.as_tensor(table), minlength=config.num_classes)
        return WeightedCEDiceLoss(weights, loss.boundary_weight, loss.ce_weight, loss.dice_weight)
    if config.data.annotated is not None:
        # partial labels: MONAI's DiceCELoss takes no per-sample class mask; the weighted loss with
        # uniform weights and no boundary term is the same Dice + cross-entropy (tests compare them)
        uniform = torch.ones(config.num_classes)
        return WeightedCEDiceLoss(uniform, 0.0, loss.ce_weight, loss.dice_weight)
    # background excluded from Dice (CE covers it); batch Dice is steadier on small patches (nnU-Net)
    return DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        include_background=False,
        batch=True,
        lambda_dice=loss.dice_weight,
        lambda_ce=loss.ce_weight,
    )
