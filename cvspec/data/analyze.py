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

from cvspec.data.files import MAX_PIXELS, configure_pil, open_error, read_bytes
from cvspec.data.phash import phash

MEASURE_MIN = 64  # images with both sides >= 2x this are measured at half resolution
WORK_SIDE = 64  # blur is measured at 64-127 px (as CleanVision does), one threshold for all sizes
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
        grey = img if img.mode == "L" else img.convert("L")
        if half and grey.size == (width, height):  # not a JPEG: halve it here
            grey = grey.reduce(2)
    except Exception as exc:  # PIL raises many types for bad input
        return ImageFacts(digest, error=open_error(exc))
    return ImageFacts(digest, width, height, mode, "", *_grey_stats(grey))


def _grey_stats(grey: Any) -> tuple[float, float, float, float, float, int]:
    """brightness, contrast, p5, p95 (from the histogram), sharpness and phash of a grey image.

    Few numpy calls on small arrays: at these sizes call overhead, not arithmetic, is the cost.
    """
    import numpy as np

    hist = np.array(grey.histogram(), dtype=np.float64)
    count = float(hist.sum())
    total, squares = hist @ _moments()
    mean = total / count
    var = max(squares / count - mean * mean, 0.0)
    p5, p95 = np.searchsorted(np.cumsum(hist), (0.05 * count, 0.95 * count))
    factor = max(1, max(grey.size) // WORK_SIDE)
    work = grey.reduce(factor) if factor > 1 else grey
    pixels = np.frombuffer(work.tobytes(), np.uint8).reshape(work.height, work.width)
    pixels = pixels.astype(np.float32)
    return (
        mean / 255,
        var**0.5 / 255,
        float(p5) / 255,
        float(p95) / 255,
        laplacian_var(pixels),
        phash(work, pixels),
    )


@cache
def _moments() -> Any:
    """Columns: grey levels 0..255 and their squares (histogram @ this = sum, sum of squares)."""
    import numpy as np

    levels = np.arange(256, dtype=np.float64)
    return np.stack([levels, levels * levels], axis=1)


def laplacian_var(a: Any) -> float:
    """Variance of the 4-neighbour Laplacian of a float32 grey array (0 when under 3x3)."""
    if a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = a[1:-1, :-2] + a[1:-1, 2:]
    lap += a[:-2, 1:-1]
    lap += a[2:, 1:-1]
    lap -= 4 * a[1:-1, 1:-1]
    flat = lap.ravel()
    size = int(flat.size)
    mean = float(flat.sum()) / size
    return max(float(flat @ flat) / size - mean * mean, 0.0)


def worker_count() -> int:
    """Processes for decode-heavy work: the CPUs this process may use (CVSPEC_WORKERS wins)."""
    env = os.environ.get("CVSPEC_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


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
    func: Callable[[str], Any],
    paths: Sequence[str],
    pool: Any,
    on_done: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """func over paths, in order, on the pool (or in this process when pool is None)."""
    from concurrent.futures.process import BrokenProcessPool

    from cvspec.errors import CvspecError

    try:  # submitting can fail too, once an early worker has died
        if pool is None:
            results: Iterator[Any] = map(func, paths)
        else:
            results = pool.map(func, paths, chunksize=max(1, min(64, len(paths) // 32)))
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
    return list(parallel_map(analyze_file, paths, pool, on_done))
