"""The network: a timm model sized to the classes, from scratch or from a local weights file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvspec.errors import CvspecError, SpecValueError, UsageError

PRETRAINED_WHY = "true, but pretrained weights cannot be downloaded here"
PRETRAINED_FIX = (
    "download the weights where you have network access, then set model.weights to the local "
    "file (a .pth, .pt, .bin or .safetensors state dict, relative to the spec file) or set "
    "model.pretrained: false to train from scratch"
)
PRETRAINED_HELP = (
    f"model.pretrained is {PRETRAINED_WHY}. {PRETRAINED_FIX[0].upper()}{PRETRAINED_FIX[1:]}"
)


def weights_path(weights: str | None, spec_file: str, root: Path) -> Path | None:
    """model.weights resolved against the spec's folder (as the spec language defines it)."""
    if not weights:
        return None
    path = Path(weights)
    if not path.is_absolute():
        path = root / Path(spec_file).parent / path
    if not path.is_file():
        raise SpecValueError(("model", "weights"), f"file not found: {path}")
    return path


def create(name: str, num_classes: int, pretrained: bool, weights: Path | None) -> Any:
    """A timm model with a `num_classes` head; weights from a local file only."""
    import timm

    if pretrained and weights is None:
        raise UsageError(PRETRAINED_HELP)
    if not timm.is_model(name):
        raise CvspecError(f"model.arch: timm has no model named {name!r}")
    if weights is None:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    try:
        return timm.create_model(
            name,
            pretrained=True,
            num_classes=num_classes,
            pretrained_cfg_overlay={"file": str(weights)},
        )
    except Exception as exc:  # timm raises many kinds for a file that does not fit
        raise CvspecError(
            f"model.weights {weights} does not load into timm/{name}: {type(exc).__name__}: {exc}"
        ) from None


def from_checkpoint(meta: dict[str, Any], state: dict[str, Any]) -> Any:
    """Rebuild a trained model from a checkpoint's meta data and weights (eval mode)."""
    model = create(str(meta["arch"]), len(meta["classes"]), False, None)
    model.load_state_dict(state)
    return model.eval()
