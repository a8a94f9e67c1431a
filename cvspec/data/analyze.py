"""Decode every image once, in parallel, and measure what the checks need (hash, light, blur)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from cvspec import cpus
from cvspec.data.files import MAX_PIXELS, configure_pil, open_error, read_bytes
from cvspec.data.phash import phash, phashes
from cvspec.preprocess import eight_bit, orientation, upright, upright_size

MEASURE_MIN = 64  # images with both sides >= 2x this are measured at half resolution
WORK_SIDE = 64  # blur is measured at 64-127 px (as CleanVision does), one threshold for all sizes
CHUNK = 64  # images per task sent to a worker
SERIAL_BELOW = 64  # fewer images than this are analysed in-process (a pool costs more)


class ImageFacts(NamedTuple):
    """One fully decoded image: file facts, grey-level statistics, sharpness, perceptual hash."""

    sha256: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    error: str = ""  # why the file is not a usable image; empty when it decoded
    brightness: float = 0.0  # mean grey level, 0..1 (as cvspec.imagestats, at half resolution
    contrast: float = 0.0  # grey standard deviation, 0..1  for images of 128 px and more)
    p5: float = 0.0  # 5th percentile grey level, 0..1
    p95: float = 0.0  # 95th percentile grey level, 0..1
    sharpness: float = 0.0  # variance of the Laplacian at WORK_SIDE..2*WORK_SIDE px (0..255)
    phash: int = 0  # 64-bit DCT perceptual hash


def analyze_file(path: str) -> ImageFacts:
    """Read, verify, fully decode and measure one image; never raises for a bad file."""
    return analyze_files([path])[0]


def analyze_files(paths: Sequence[str]) -> list[ImageFacts]:
    """analyze_file for many images: each decodes on its own, then all are measured together,
    a few numpy calls per batch instead of per image (the calls, not the arithmetic, cost)."""
    facts: list[ImageFacts] = []
    groups: dict[tuple[int, int], list[tuple[int, _Decoded]]] = {}
    for i, path in enumerate(paths):
        found = _decode(path)
        if isinstance(found, ImageFacts):
            facts.append(found)
            continue
        facts.append(ImageFacts())  # measured below
        groups.setdefault(found.work.size, []).append((i, found))
    for members in groups.values():
        measured = _measure([d for _, d in members])
        for (i, d), figures in zip(members, measured, strict=True):
            facts[i] = ImageFacts(d.sha256, d.width, d.height, d.mode, "", *figures)
    return facts


class _Decoded(NamedTuple):
    sha256: str
    width: int
    height: int
    mode: str
    histogram: list[int]  # grey levels at half resolution (full below 2 * MEASURE_MIN)
    work: Any  # grey PIL image, WORK_SIDE..2*WORK_SIDE px on its longer side


def _decode(path: str) -> ImageFacts | _Decoded:
    from PIL import Image

    data, error = read_bytes(Path(path))
    if error:
        return ImageFacts(error=error)
    digest = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(io.BytesIO(data))
        width, height, mode = img.width, img.height, img.mode
        if width * height > MAX_PIXELS:
            raise Image.DecompressionBombError
        if img.format == "PNG":  # verify() checks PNG chunk CRCs; for other formats it is a no-op
            img.verify()
            img = Image.open(io.BytesIO(data))
        # JPEGs decode straight to grey at half scale: libjpeg still entropy-decodes every byte
        # (truncation and corrupt data are caught) but reconstructs a quarter of the pixels.
        half = min(width, height) >= 2 * MEASURE_MIN
        img.draft("L", ((width + 1) // 2, (height + 1) // 2) if half else img.size)
        img.load()
        # as training and serving read it (cvspec.preprocess.as_rgb): 8-bit and upright
        turn = orientation(img)
        img = eight_bit(img)
        grey = img if img.mode == "L" else img.convert("L")
        if half and grey.width * grey.height == width * height:  # not a JPEG: halve it here
            grey = grey.reduce(2)
        grey = upright(grey, turn)
        width, height = upright_size((width, height), turn)
    except Exception as exc:  # PIL raises many types for bad input
        return ImageFacts(digest, error=open_error(exc))
    factor = max(1, max(grey.size) // WORK_SIDE)
    work = grey.reduce(factor) if factor > 1 else grey
    return _Decoded(digest, width, height, mode, grey.histogram(), work)


def _measure(batch: Sequence[_Decoded]) -> list[tuple[float, float, float, float, float, int]]:
    """brightness, contrast, p5, p95 (from the histograms), sharpness and phash of images
    whose work images share one size. Integer arithmetic where it matters: the figures do not
    depend on how images are batched."""
    import numpy as np

    n = len(batch)
    hist = np.array([d.histogram for d in batch], dtype=np.float64)
    count = hist.sum(axis=1)
    sums = hist @ _moments()
    mean = sums[:, 0] / count
    var = np.maximum(sums[:, 1] / count - mean * mean, 0.0)
    cum = np.cumsum(hist, axis=1)
    p5 = (cum < (0.05 * count)[:, None]).sum(axis=1)
    p95 = (cum < (0.95 * count)[:, None]).sum(axis=1)
    width, height = batch[0].work.size
    pixels = np.frombuffer(b"".join(d.work.tobytes() for d in batch), np.uint8)
    pixels = pixels.reshape(n, height, width)
    sharp = _laplacian_vars(pixels)
    hashes = phashes(pixels) if (height, width) == (64, 64) else None
    return [
        (
            float(mean[k]) / 255,
            float(var[k]) ** 0.5 / 255,
            float(p5[k]) / 255,
            float(p95[k]) / 255,
            float(sharp[k]),
            hashes[k] if hashes is not None else phash(batch[k].work),
        )
        for k in range(n)
    ]


@cache
def _moments() -> Any:
    """Columns: grey levels 0..255 and their squares (histogram @ this = sum, sum of squares)."""
    import numpy as np

    levels = np.arange(256, dtype=np.float64)
    return np.stack([levels, levels * levels], axis=1)


def _laplacian_vars(a: Any) -> Any:
    """Variance of the 4-neighbour Laplacian of each uint8 image of a (n, h, w) stack (exact:
    integers throughout); 0 for images under 3x3."""
    import numpy as np

    n, h, w = a.shape
    if h < 3 or w < 3:
        return np.zeros(n)
    x = a.astype(np.int32)
    lap = x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
    lap += x[:, :-2, 1:-1]
    lap += x[:, 2:, 1:-1]
    lap -= 4 * x[:, 1:-1, 1:-1]
    flat = lap.reshape(n, -1).astype(np.int64)
    size = flat.shape[1]
    total = flat.sum(axis=1)
    squares = (flat * flat).sum(axis=1)
    return np.maximum(squares / size - (total / size) ** 2, 0.0)


def laplacian_var(a: Any) -> float:
    """Variance of the 4-neighbour Laplacian of one grey image (uint8 array, h x w)."""
    import numpy as np

    return float(_laplacian_vars(np.asarray(a, dtype=np.uint8)[None])[0])


def worker_count() -> int:
    """Processes for decode-heavy work: the CPUs this process may use (CVSPEC_WORKERS wins)."""
    env = os.environ.get("CVSPEC_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return cpus.usable()


@contextmanager
def process_pool(items: int, processes: int | None = None) -> Iterator[Any]:
    """A fork process pool for decode-heavy work, or None when one process is enough. Create it
    before starting any thread (a progress bar), so no child inherits a held lock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    processes = processes or worker_count()
    if processes == 1 or items < SERIAL_BELOW:
        configure_pil()
        yield None
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=configure_pil) as pool:
        yield pool


def parallel_map(
    func: Callable[[Any], Any],
    paths: Sequence[Any],
    pool: Any,
    on_done: Callable[[int], None] | None = None,
    chunksize: int | None = None,
) -> Iterator[Any]:
    """func over paths, in order, on the pool (or in this process when pool is None); tasks
    carry `chunksize` items (default: up to 64, at least 32 tasks)."""
    from concurrent.futures.process import BrokenProcessPool

    from cvspec.errors import CvspecError

    try:  # submitting can fail too, once an early worker has died
        if pool is None:
            results: Iterator[Any] = map(func, paths)
        else:
            chunksize = chunksize or max(1, min(CHUNK, len(paths) // 32))
            results = pool.map(func, paths, chunksize=chunksize)
        for result in results:
            yield result
            if on_done:
                on_done(1)
    except BrokenProcessPool:
        raise CvspecError(
            "a worker process died while decoding images (a crashing decoder or too little "
            "memory); run again with CVSPEC_WORKERS=1 to see which file"
        ) from None


def analyze(
    root: Path,
    rel_paths: Sequence[str],
    pool: Any = None,
    on_done: Callable[[int], None] | None = None,
) -> list[ImageFacts]:
    """ImageFacts of every path (relative to root), in order; pool from process_pool()."""
    if pool is None:
        configure_pil()
    paths = [str(root / p) for p in rel_paths]
    size = max(1, min(CHUNK, len(paths) // 32))  # as parallel_map chunks one-path tasks
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    facts: list[ImageFacts] = []
    for done in parallel_map(analyze_files, chunks, pool, chunksize=1):
        facts.extend(done)
        if on_done:
            on_done(len(done))
    return facts
