"""Image preprocessing shared by evaluation and serving, so both see identical inputs."""

from __future__ import annotations

import functools
import io
import math
from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input: RGB, a square of image_size (stretched, or for a
    detector letterboxed: scaled to fit, its aspect kept, padded with grey as ultralytics
    does), scaled to [0, 1], normalised."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bilinear"
    layout: str = "NCHW"
    fit: str = "stretch"  # "stretch" | "letterbox"

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
            str(data.get("fit", "stretch")),
        )


def open_image(data: bytes) -> Any:
    """Decode image bytes to an upright RGB PIL image (raises PIL errors on bad input)."""
    from PIL import Image

    return as_rgb(Image.open(io.BytesIO(data)))  # no file to close: the bytes are in memory


def as_rgb(img: Any) -> Any:
    """Decode an opened PIL image (so far only its header is read) and make it upright (its
    EXIF orientation applied) 8-bit RGB."""
    img.load()
    img = upright(eight_bit(img), orientation(img))
    return img if img.mode == "RGB" else img.convert("RGB")


ORIENTATION = 0x0112  # the EXIF tag: how to turn the stored pixels to show them upright
# orientation -> the PIL transpose that undoes it (as PIL's ImageOps.exif_transpose does)
_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
TURNED = frozenset({5, 6, 7, 8})  # orientations whose upright image swaps width and height


def orientation(img: Any) -> int:
    """The EXIF orientation still to apply to an opened image, 1 (upright) to 8; 1 when it has
    none. Only a file that carries EXIF has it parsed, so images without it cost a dictionary
    lookup. OpenCV, and so ultralytics, applies it too; an XMP orientation, which OpenCV
    ignores, is ignored. PIL turns a TIFF upright itself (its size is the upright one from
    the header on; loading turns the pixels and drops the tag). A PNG's eXIf chunk after its
    pixels is seen only once the image is loaded."""
    if hasattr(img, "tag_v2"):  # a TIFF
        return 1
    raw = img.info.get("exif")  # JPEG, WebP, PNG
    if not raw:
        return 1
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:  # damaged EXIF: the pixels are still an image, shown as stored
        return 1
    value = exif.get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(img: Any, turn: int) -> Any:
    """The image turned (or flipped) as EXIF orientation `turn` says; itself when upright."""
    method = _TRANSPOSE.get(turn)
    if method is None:
        return img
    from PIL import Image

    return img.transpose(Image.Transpose[method])


def upright_size(size: tuple[int, int], turn: int) -> tuple[int, int]:
    """(width, height) of an image of `size` once EXIF orientation `turn` is applied."""
    return (size[1], size[0]) if turn in TURNED else size


# Grey modes with more than 8 bits per pixel: 16-bit PNG and TIFF files, and PIL's 32-bit
# integer mode (older Pillow opens 16-bit PNGs as "I", with the same 0..65535 values).
HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def eight_bit(img: Any) -> Any:
    """A decoded image with 8 bits per channel: a 16-bit grey image keeps each value's high
    byte (value >> 8), as OpenCV, and so ultralytics, reads 16-bit files; PIL's own conversion
    would clip every value over 255 to white. Other modes are returned as they are."""
    if img.mode not in HIGH_BIT_MODES:
        return img
    import numpy as np
    from PIL import Image

    high = np.clip(np.asarray(img) >> 8, 0, 255).astype(np.uint8)
    return Image.fromarray(high)  # 2-D uint8: mode L


def to_array(images: list[Any], pre: Preprocess) -> Any:
    """PIL images -> float32 array of shape (N, 3, S, S): (pixel / 255 - mean) / std."""
    import numpy as np

    side = pre.image_size
    if not images:
        return np.empty((0, 3, side, side), dtype=np.float32)
    return normalize(np.stack([resized(img, pre) for img in images]), pre)


def resized(img: Any, pre: Preprocess) -> Any:
    """One PIL image -> its model-sized 8-bit RGB pixels, (S, S, 3) uint8: stretched to the
    square (PIL's filter `pre.resample`), or for a detector letterboxed as ultralytics'
    validator does it (`letterbox`, OpenCV's bilinear resize, padded with PAD grey).
    `normalize` does the rest, once for a whole batch."""
    import numpy as np
    from PIL import Image

    resample = _RESAMPLE[pre.resample]
    side = pre.image_size
    rgb = img if img.mode == "RGB" else eight_bit(img).convert("RGB")
    if pre.fit != "letterbox":
        return np.asarray(rgb.resize((side, side), Image.Resampling(resample)))
    _, nw, nh, left, top = letterbox(rgb.size, side)
    pixels = np.full((side, side, 3), int(PAD), dtype=np.uint8)
    inner = np.asarray(rgb)
    if (nw, nh) != rgb.size:  # OpenCV's bilinear resize, as ultralytics evaluates and trains
        cv2 = opencv()
        inner = cv2.resize(inner, (nw, nh), interpolation=cv2.INTER_LINEAR)
    pixels[top : top + nh, left : left + nw] = inner
    return pixels


def opencv() -> Any:
    """cv2, which a detector's letterbox needs (ultralytics' own resize); a clear error where
    it is not installed."""
    try:
        import cv2
    except ImportError:
        from cvspec.errors import CvspecError

        raise CvspecError(
            "a detector's input is resized with OpenCV, as ultralytics resizes it: install "
            "cvspec[serve-detect] (or opencv-python-headless)"
        ) from None
    return cv2


def normalize(pixels: Any, pre: Preprocess) -> Any:
    """(N, S, S, 3) uint8 -> the model input, (N, 3, S, S) float32: pixel * (1 / (255 std)) -
    mean / std per channel, in float32, as one multiply and one subtract over the batch."""
    import numpy as np

    scale, offset = _affine(pre.mean, pre.std)
    n, side = len(pixels), pre.image_size
    out = np.empty((n, 3, side, side), dtype=np.float32)
    np.multiply(pixels.transpose(0, 3, 1, 2), scale[:, None, None], out=out)
    out -= offset[:, None, None]
    return out


# Preprocess.resample -> PIL's resampling filter (its integer value)
_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}


PAD = 114.0  # ultralytics' letterbox grey


def letterbox(size: tuple[int, int], side: int) -> tuple[float, int, int, int, int]:
    """(scale, width, height, left, top) of an image of `size` letterboxed into side x side as
    ultralytics' validator does it (the evaluate stage's mAP): the long side scaled to `side`,
    the other to the ceiling of its scaled length, then centred with its rounding of the pad."""
    w, h = size
    r = side / max(w, h)
    nw, nh = min(math.ceil(w * r), side), min(math.ceil(h * r), side)
    left, top = round((side - nw) / 2 - 0.1), round((side - nh) / 2 - 0.1)
    return r, nw, nh, left, top


@functools.cache
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[Any, Any]:
    """(1 / (255 std), mean / std) as float32: the normalisation as one multiply-subtract."""
    import numpy as np

    m, s = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return (1.0 / (255.0 * s)).astype(np.float32), (m / s).astype(np.float32)
