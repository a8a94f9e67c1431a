"""Training augmentations: the spec's `data.augment` steps as torchvision transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cvspec.errors import CvspecError

# Steps applied to whole batches (labels too) rather than to single images.
BATCH_STEPS = frozenset({"mixup"})
# Steps that work on the normalised tensor, after preprocessing.
TENSOR_STEPS = frozenset({"random_erasing"})


def image_transform(steps: Sequence[Any], image_size: int) -> Callable[[Any], Any] | None:
    """PIL -> PIL transform for the image steps, in spec order; None when there are none."""
    from torchvision.transforms import v2  # type: ignore[import-untyped]

    ops: list[Any] = []
    for step in steps:
        if step.name in BATCH_STEPS or step.name in TENSOR_STEPS:
            continue
        ops.append(_image_op(step.name, step.params, image_size, v2))
    return v2.Compose(ops) if ops else None


def tensor_transform(steps: Sequence[Any]) -> Callable[[Any], Any] | None:
    """Tensor -> tensor transform for the steps that act on the model input."""
    from torchvision.transforms import v2

    ops = [v2.RandomErasing(p=s.params.p) for s in steps if s.name in TENSOR_STEPS]
    return v2.Compose(ops) if ops else None


def mixup_alpha(steps: Sequence[Any]) -> tuple[float, float] | None:
    """(alpha, probability) of the mixup step, if the spec has one."""
    for step in steps:
        if step.name == "mixup":
            return float(step.params.alpha), float(step.params.p)
    return None


def _image_op(name: str, p: Any, size: int, v2: Any) -> Any:
    if name == "hflip":
        return v2.RandomHorizontalFlip(p.p)
    if name == "vflip":
        return v2.RandomVerticalFlip(p.p)
    if name == "rotate":
        return v2.RandomApply([v2.RandomRotation(p.degrees)], p=p.p)
    if name == "color_jitter":
        jitter = v2.ColorJitter(p.brightness, p.contrast, p.saturation, p.hue)
        return v2.RandomApply([jitter], p=p.p)
    if name == "random_resized_crop":
        return v2.RandomResizedCrop(size, scale=tuple(p.scale), ratio=tuple(p.ratio))
    if name == "randaugment":
        return v2.RandAugment(num_ops=p.num_ops, magnitude=p.magnitude)
    if name == "grayscale":
        return v2.RandomGrayscale(p.p)
    raise CvspecError(f"data.augment: '{name}' does not apply to classification training")
