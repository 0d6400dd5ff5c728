"""Validation on whole volumes: per-structure Dice with MONAI's DiceMetric."""

from __future__ import annotations

import torch
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot
from torch import nn

from scseg.artefact.spec import ModelSpec
from scseg.config.schema import Config
from scseg.engine.inference import inferer_for


@torch.no_grad()
def validate(model: nn.Module, loader, config: Config, device: torch.device) -> dict[str, float]:
    """Mean Dice per named structure over the validation volumes (a structure absent from a case's
    reference is left out of that structure's mean; NaN if absent everywhere)."""
    names = config.output_names
    metric = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True)
    was_training = model.training
    model.eval()
    inferer = inferer_for(ModelSpec.from_config(config))
    for batch in loader:
        image = batch["image"].to(device)
        label = batch["label"].to(device)
        probs = inferer(image, model)
        prediction = one_hot(probs.argmax(dim=1, keepdim=True), config.num_classes)
        metric(y_pred=prediction, y=one_hot(label.long(), config.num_classes))
    per_class = metric.aggregate().cpu().tolist()
    metric.reset()
    model.train(was_training)
    return {name: float(v) for name, v in zip(names, per_class, strict=True)}
