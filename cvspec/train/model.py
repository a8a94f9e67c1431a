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


def create(
    name: str,
    num_classes: int,
    pretrained: bool,
    weights: Path | None,
    image_size: int | None = None,
) -> Any:
    """A timm model with a `num_classes` head; weights from a local file only. A model with a
    fixed input size (a ViT) is built for `image_size` when timm can resize it."""
    import timm

    if pretrained and weights is None:
        raise UsageError(PRETRAINED_HELP)
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
        hint = f"; did you mean {', '.join(f'timm/{c}' for c in close)}?" if close else ""
        raise SpecValueError(
            ("model", "arch"),
            f"timm has no model named {name!r}{hint} (`timm.list_models('*pattern*')` lists them)",
        )
    kwargs: dict[str, Any] = {"num_classes": num_classes, **_sized(name, image_size)}
    if weights is None:
        return _built(timm, name, image_size, pretrained=False, **kwargs)
    try:
        return _built(
            timm,
            name,
            image_size,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(weights)},
            **kwargs,
        )
    except SpecValueError:
        raise
    except Exception as exc:  # timm raises many kinds for a file that does not fit
        raise CvspecError(
            f"model.weights {weights} does not load into timm/{name}: {type(exc).__name__}: {exc}"
        ) from None


def _sized(name: str, image_size: int | None) -> dict[str, Any]:
    """`img_size` for a model whose input size is fixed (ViT, DeiT, Swin) and differs from
    model.image_size; nothing for one that takes any size (a CNN)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if image_size is None or cfg is None or not getattr(cfg, "fixed_input_size", False):
        return {}
    return (
        {} if tuple(cfg.input_size[-2:]) == (image_size, image_size) else {"img_size": image_size}
    )


def _built(timm: Any, name: str, image_size: int | None, **kwargs: Any) -> Any:
    try:
        model = timm.create_model(name, **kwargs)
        if "img_size" in kwargs:  # built for another size: some (CrossViT) still cannot run it
            _probe(model, int(kwargs["img_size"]))
        return model
    except (TypeError, AssertionError, ValueError, RuntimeError) as exc:
        if "img_size" not in kwargs:
            raise
        size = timm.models.get_pretrained_cfg(name).input_size[-1]
        raise SpecValueError(
            ("model", "image_size"),
            f"timm/{name} takes {size}x{size} images only (a fixed input size) and cannot run "
            f"at {image_size}x{image_size} ({type(exc).__name__}: {exc}); set "
            f"model.image_size: {size} or choose a model that takes any size",
        ) from None


def normalisation(
    name: str, from_weights: bool
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) of the model input: those of timm's pretrained config for `name` (its tag's,
    when it names one) when training starts from its weights, as timm's resolve_data_config
    gives them; ImageNet's for a model trained from scratch, or one whose config has none."""
    import timm

    from cvspec.preprocess import IMAGENET_MEAN, IMAGENET_STD

    cfg = timm.models.get_pretrained_cfg(name) if from_weights else None
    mean, std = getattr(cfg, "mean", None), getattr(cfg, "std", None)
    if mean is None or std is None or len(mean) != 3 or len(std) != 3:
        return IMAGENET_MEAN, IMAGENET_STD
    m, sd = (float(v) for v in mean), (float(v) for v in std)
    return (next(m), next(m), next(m)), (next(sd), next(sd), next(sd))


def from_checkpoint(meta: dict[str, Any], state: dict[str, Any]) -> Any:
    """Rebuild a trained model from a checkpoint's meta data and weights (eval mode)."""
    size = meta.get("image_size")
    model = create(str(meta["arch"]), len(meta["classes"]), False, None, size)
    model.load_state_dict(state)
    return model.eval()


def _probe(model: Any, size: int) -> None:
    """One forward pass of a zero image at `size` (eval mode, no gradients): a model that
    cannot run at that size fails here, not at the first training batch."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
