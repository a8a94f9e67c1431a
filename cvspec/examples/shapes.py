"""A seeded synthetic detection dataset in YOLO format: circles, squares, triangles on noise."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cvspec.examples import write_file

CLASSES = ("circle", "square", "triangle")
SIZE = 128
SPLIT_SIZES = {"train": 120, "val": 40}
SEED = 0


def write_shapes(folder: Path) -> tuple[int, int]:
    """Write images/{split}/NNNN.jpg, labels/{split}/NNNN.txt and data.yaml; (written, kept)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    written = kept = 0
    files: list[tuple[Path, bytes]] = [(folder / "data.yaml", _data_yaml().encode())]
    for split, count in SPLIT_SIZES.items():
        for index in range(count):
            image, lines = _scene(rng)
            stem = f"{index:04d}"
            files.append((folder / "images" / split / f"{stem}.jpg", image))
            files.append((folder / "labels" / split / f"{stem}.txt", "".join(lines).encode()))
    for path, data in files:
        if write_file(path, data):
            written += 1
        else:
            kept += 1
    return written, kept


def _data_yaml() -> str:
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    return f"path: .\ntrain: images/train\nval: images/val\nnames:\n{names}"


def _scene(rng: Any) -> tuple[bytes, list[str]]:
    """One noisy background with 1-3 non-overlapping shapes; JPEG bytes and YOLO label lines."""
    import numpy as np
    from PIL import Image, ImageDraw

    base = rng.integers(40, 200, size=3)
    noise = rng.normal(0, 18, size=(SIZE, SIZE, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    draw = ImageDraw.Draw(img)
    placed: list[tuple[int, int, int, int]] = []
    lines: list[str] = []
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(20, 48))
        x0, y0 = (int(v) for v in rng.integers(2, SIZE - side - 2, size=2))
        box = (x0, y0, x0 + side, y0 + side)
        if any(_overlaps(box, other) for other in placed):
            continue
        placed.append(box)
        cls = int(rng.integers(0, len(CLASSES)))
        color = tuple(int(255 - c + rng.integers(-30, 30)) % 256 for c in base)
        if cls == 0:
            draw.ellipse(box, fill=color)
        elif cls == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(x0 + side / 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=color)
        cx, cy = (x0 + side / 2) / SIZE, (y0 + side / 2) / SIZE
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {side / SIZE:.6f} {side / SIZE:.6f}\n")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), lines


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
