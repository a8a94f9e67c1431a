"""One epoch of training and one pass of validation, on whatever device the run uses."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from cvspec.train.distributed import World, sum_all, unwrap


class Engine(NamedTuple):
    """The moving parts an epoch needs."""

    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any  # torch.amp.GradScaler for fp16, else None
    device: Any
    autocast: Any  # dtype for torch.autocast, or None for fp32
    channels_last: bool
    mixup: tuple[float, float] | None  # (alpha, probability)


def to_device(engine: Engine, x: Any, y: Any) -> tuple[Any, Any]:
    """Move a batch to the engine's device, in its memory format."""
    import torch

    fmt = torch.channels_last if engine.channels_last else torch.contiguous_format
    return x.to(engine.device, memory_format=fmt, non_blocking=True), y.to(engine.device)


def train_epoch(
    engine: Engine, loader: Any, seed: int, on_batch: Any, w: World = World()
) -> dict[str, float]:
    """Train over one epoch; returns loss, accuracy, images/s and seconds of the pass, over
    every training process."""
    import torch
    import torch.nn.functional as F

    model = engine.model.train()
    import numpy as np

    rng = np.random.default_rng(seed)
    total_loss, correct, seen, started = 0.0, 0, 0, time.perf_counter()
    for x_cpu, y_cpu in loader:
        x, y = to_device(engine, x_cpu, y_cpu)
        mix = _mix(engine.mixup, rng, len(y))
        with torch.autocast(
            engine.device.type, dtype=engine.autocast, enabled=engine.autocast is not None
        ):
            if mix is None:
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            else:
                lam, perm = mix
                logits = model(lam * x + (1 - lam) * x[perm.to(x.device)])
                loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(
                    logits, y[perm.to(y.device)]
                )
        engine.optimizer.zero_grad(set_to_none=True)
        if engine.scaler is not None:
            engine.scaler.scale(loss).backward()
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            torch.autograd.backward(loss)
            engine.optimizer.step()
        engine.scheduler.step()
        batch = len(y)
        total_loss += float(loss.detach()) * batch
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += batch
        elapsed = time.perf_counter() - started
        on_batch(float(loss.detach()), engine.scheduler.get_last_lr()[0], seen / elapsed)
    elapsed = time.perf_counter() - started
    loss_sum, right, count = sum_all(w, [total_loss, correct, seen])
    return {
        "train_loss": loss_sum / max(1, count),
        "train_accuracy": right / max(1, count),
        "images_per_s": count / elapsed if elapsed else 0.0,
        "train_seconds": elapsed,
    }


def validate(engine: Engine, loader: Any, w: World = World()) -> dict[str, float]:
    """Loss and top-1 accuracy over a split, in eval mode, summed over every process's shard
    (the bare model: no collective inside the pass, so shards may differ in length)."""
    import torch
    import torch.nn.functional as F

    model = unwrap(engine.model).eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for x_cpu, y_cpu in loader:
            x, y = to_device(engine, x_cpu, y_cpu)
            with torch.autocast(
                engine.device.type, dtype=engine.autocast, enabled=engine.autocast is not None
            ):
                logits = model(x).float()
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    loss_sum, right, count = sum_all(w, [total_loss, correct, seen])
    return {"val_loss": loss_sum / max(1, count), "val_accuracy": right / max(1, count)}


def _mix(mixup: tuple[float, float] | None, rng: Any, size: int) -> tuple[float, Any] | None:
    """Mixup's (lambda, permutation) for a batch, drawn from the epoch's generator."""
    import torch

    if mixup is None:
        return None
    alpha, p = mixup
    if rng.random() >= p:
        return None
    return float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(size))
