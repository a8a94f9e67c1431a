"""The UCI handwritten digits (1,797 8x8 images, CC BY 4.0) as an imagefolder of PNGs."""

from __future__ import annotations

import io
from pathlib import Path

from cvspec.examples import HERE, write_file


def write_digits(folder: Path) -> tuple[int, int]:
    """Write folder/<digit>/<nnnn>.png for every image; (written, kept)."""
    import numpy as np
    from PIL import Image

    with np.load(HERE / "digits.npz") as npz:
        images, labels = npz["images"], npz["labels"]
    # 0..16 ink counts -> 0..255 grey, rounded
    grey = ((images.astype(np.uint16) * 255 + 8) // 16).astype(np.uint8)
    written = kept = 0
    for index, (pixels, label) in enumerate(zip(grey, labels, strict=True)):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        if write_file(folder / str(int(label)) / f"{index:04d}.png", buf.getvalue()):
            written += 1
        else:
            kept += 1
    return written, kept
