"""Image preprocessing shared by evaluation and serving, so both see identical inputs."""

from __future__ import annotations

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

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGB")


def to_array(images: list[Any], pre: Preprocess) -> Any:
    """PIL images -> float32 array of shape (N, 3, S, S), normalised."""
    import numpy as np
    from PIL import Image

    resample = {
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "bicubic": Image.Resampling.BICUBIC,
    }[pre.resample]
    size = (pre.image_size, pre.image_size)
    batch = np.stack(
        [np.asarray(img.convert("RGB").resize(size, resample), dtype=np.float32) for img in images]
    )
    batch /= 255.0
    batch -= np.asarray(pre.mean, dtype=np.float32)
    batch /= np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
