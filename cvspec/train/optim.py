"""Optimiser and learning-rate schedule (per step, with linear warmup) from `train`."""

from __future__ import annotations

import math
from typing import Any


def optimizer(model: Any, opt: Any) -> Any:
    """The spec's optimiser over the model's parameters; weight decay spares biases, norm
    layers (every 1-D parameter) and what the model names in `no_weight_decay()` (a ViT's
    position embedding and class token), as timm's create_optimizer_v2 does."""
    import torch

    params = param_groups(model, opt.weight_decay)
    if opt.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=opt.lr,
            momentum=opt.momentum,
            weight_decay=opt.weight_decay,
            nesterov=opt.momentum > 0,
        )
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """The model's trainable parameters as a group without weight decay (biases, norm layers,
    the model's `no_weight_decay()` names, which may be shell patterns) and one with it."""
    import fnmatch

    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        spared = param.ndim <= 1 or name.endswith(".bias")
        if spared or any(fnmatch.fnmatchcase(name, pattern) for pattern in skip):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": no_decay, "weight_decay": 0.0}] if no_decay else []
    return groups + ([{"params": decay, "weight_decay": weight_decay}] if decay else [])


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at a step (0-based) of `total` steps."""
    if schedule == "onecycle" and warmup == 0:
        warmup = max(1, int(0.3 * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule in ("cosine", "onecycle"):
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "step":
        return float(0.1 ** min(2, int(progress * 3)))
    return 1.0


def scheduler(optim: Any, train: Any, steps_per_epoch: int) -> Any:
    """A LambdaLR stepped once per batch; its state goes into every checkpoint."""
    import torch

    total = train.epochs * steps_per_epoch
    warmup = round(train.warmup_epochs * steps_per_epoch)
    schedule = str(train.schedule)
    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda step: lr_factor(step, total, warmup, schedule)
    )
