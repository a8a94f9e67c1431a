"""Image preprocessing shared by evaluation and serving, so both see identical inputs."""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input: RGB, square resize, scale to [0, 1], normalise."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bilinear"
    layout: str = "NCHW"

    def to_json(self) -> dict[str, Any]:
        """As written to export/preprocess.json."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        """Read export/preprocess.json."""
        mean, std = (float(v) for v in data["mean"]), (float(v) for v in data["std"])
        return cls(
            int(data["image_size"]),
            (next(mean), next(mean), next(mean)),
            (next(std), next(std), next(std)),
            str(data.get("resample", "bilinear")),
            str(data.get("layout", "NCHW")),
        )


def open_image(data: bytes) -> Any:
    """Decode image bytes to an RGB PIL image (raises PIL errors on bad input)."""
    from PIL import Image

    return as_rgb(Image.open(io.BytesIO(data)))  # no file to close: the bytes are in memory


def as_rgb(img: Any) -> Any:
    """Decode an opened PIL image (so far only its header is read) and make it RGB."""
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


def to_array(images: list[Any], pre: Preprocess) -> Any:
    """PIL images -> float32 array of shape (N, 3, S, S): (pixel / 255 - mean) / std."""
    import numpy as np
    from PIL import Image

    resample = {
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "bicubic": Image.Resampling.BICUBIC,
    }[pre.resample]
    side = pre.image_size
    scale, offset = _affine(pre.mean, pre.std)
    out = np.empty((len(images), 3, side, side), dtype=np.float32)
    for i, img in enumerate(images):
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        pixels = np.asarray(rgb.resize((side, side), resample), dtype=np.float32)
        pixels *= scale  # one multiply and one subtract per value instead of three passes
        pixels -= offset
        out[i] = pixels.transpose(2, 0, 1)
    return out


@functools.cache
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[Any, Any]:
    """(1 / (255 std), mean / std) as float32: the normalisation as one multiply-subtract."""
    import numpy as np

    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return (1.0 / (255.0 * s)).astype(np.float32), (m / s).astype(np.float32)
