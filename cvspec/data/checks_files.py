"""Checks of the image files: decoding, duplicates, leakage, sizes, light and sharpness."""

from __future__ import annotations

import math
import statistics
from typing import Any

from cvspec.data.checks import Check, Dataset, Finding, Outcome, limit_rule, quality
from cvspec.data.files import IMAGE_EXTENSIONS, SPLITS, ULTRALYTICS_EXTENSIONS, extension

DARK_P95 = 0.2  # dark: 95% of the pixels are darker than this grey level (0..1)
BRIGHT_P5 = 0.9  # bright: 95% of the pixels are brighter than this
BLURRY_SHARPNESS = 25.0  # blurry: Laplacian variance (0..255 grey, at ~128 px) below this
SIZE_FACTOR = 4.0  # a side this many times off the median side is a size outlier
ASPECT_FACTOR = 2.0  # an aspect ratio this many times off the median is an aspect outlier
JPEG_ALIASES = frozenset({".jfif", ".jpe"})


SKIPPED_NAMES = 3  # files named per extension in a skipped_files finding


def skipped_files(ds: Dataset, limit: float | None) -> Outcome:
    """Files in class (or image) folders that are not read as images, one finding per
    extension: how many, why, and the first few."""
    detection = ds.spec.task == "detection"
    by_ext: dict[str, list[str]] = {}
    for path in ds.index.skipped:
        by_ext.setdefault(extension(path), []).append(path)
    found = [
        Finding(
            f"*{ext}" if ext else "(no extension)",
            f"{len(paths)} file(s) skipped: {skip_reason(ext, detection)}",
            tuple(paths[:SKIPPED_NAMES]),
        )
        for ext, paths in sorted(by_ext.items())
    ]
    return Outcome(found, len(ds.index.skipped))


# image types PIL does not read (RAW, HEIC without a plugin, ...): skipped, not undecodable
UNREAD_IMAGE_EXTENSIONS = (ULTRALYTICS_EXTENSIONS - IMAGE_EXTENSIONS) | frozenset(
    {".jxl", ".svg", ".ico", ".psd", ".raw", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2"}
)


def skip_reason(ext: str, detection: bool) -> str:
    """Why a file with this extension in an image folder is not read as an image."""
    if detection and ext in IMAGE_EXTENSIONS:
        rename = " (a .jfif or .jpe file is a JPEG: rename it .jpg)" if ext in JPEG_ALIASES else ""
        return f"ultralytics does not train on {ext} files{rename}"
    if ext in UNREAD_IMAGE_EXTENSIONS:
        still = (
            " (ultralytics may still train on them)"
            if detection and ext in ULTRALYTICS_EXTENSIONS
            else ""
        )
        return f"cvspec does not read {ext} images{still}: convert them to JPEG or PNG"
    return "not an image file name"


def decodable(ds: Dataset, limit: float | None) -> Outcome:
    """Files that are missing, empty, not images, truncated, corrupt or decompression bombs."""
    found = [
        Finding(r.path, f.error) for r, f in zip(ds.index.records, ds.facts, strict=True) if f.error
    ]
    return Outcome(found, len(found))


def other_label(ds: Dataset, i: int, j: int) -> str:
    """'labelled B here, A there' when record i and its copy j carry different classes: one of
    the two labels is wrong (or the image belongs to neither class); '' otherwise."""
    here, there = ds.index.records[i].label, ds.index.records[j].label
    if here is None or there is None or here == there:
        return ""
    names = ds.index.classes
    return f"labelled {names[here]} here, {names[there]} there"


def _with(message: str, *notes: str) -> str:
    """message (note; note), leaving out empty notes."""
    shown = "; ".join(n for n in notes if n)
    return f"{message} ({shown})" if shown else message


def exact_duplicates(ds: Dataset, limit: float | None) -> Outcome:
    """Byte-identical copies: every file of a group after the first."""
    paths = [r.path for r in ds.index.records]
    found = [
        Finding(paths[i], _with("byte-identical copy", other_label(ds, i, g[0])), (paths[g[0]],))
        for g in ds.exact_groups
        for i in g[1:]
    ]
    return Outcome(found, len(found))


def near_duplicates(ds: Dataset, limit: float | None) -> Outcome:
    """Near-identical images (perceptual hash): the fraction of images at most near_hamming bits
    from an earlier image (path order), each shown with its nearest. Byte copies of an earlier
    file are left to exact_duplicates."""
    paths = [r.path for r in ds.index.records]
    copies = {i for g in ds.exact_groups for i in g[1:]}
    found = [
        Finding(
            paths[i],
            _with("near-duplicate", f"{bits} bits apart", other_label(ds, i, j)),
            (paths[j],),
        )
        for i, (j, bits) in ds.near_matches.items()
        if i not in copies
    ]
    total = len(ds.decoded)
    return Outcome(found, len(found) / total if total else 0.0)


def leakage(ds: Dataset, limit: float | None) -> Outcome:
    """Images in val/test with a byte copy in an earlier split, or an image there at most
    near_hamming bits away (the nearest is shown)."""
    records = ds.index.records
    rank = {s: n for n, s in enumerate(SPLITS)}
    found: dict[str, Finding] = {}
    for g in ds.exact_groups:
        k = min(g, key=lambda i: (rank[records[i].split], records[i].path))
        first = records[k]
        for i in g:
            r = records[i]
            if rank[r.split] > rank[first.split] and r.path not in found:
                why = f"{r.split} image is a byte copy of a {first.split} image"
                found[r.path] = Finding(r.path, _with(why, other_label(ds, i, k)), (first.path,))
    for i, (j, bits) in ds.near_leaks.items():
        r, near = records[i], records[j]
        if r.path not in found:
            why = f"{r.split} image nearly identical to a {near.split} image"
            why = _with(why, f"{bits} bits apart", other_label(ds, i, j))
            found[r.path] = Finding(r.path, why, (near.path,))
    return Outcome(sorted(found.values()), len(found))


def _sized(ds: Dataset) -> list[tuple[str, int, int]]:
    return [
        (r.path, f.width, f.height)
        for r, f in zip(ds.index.records, ds.facts, strict=True)
        if not f.error
    ]


def min_side(ds: Dataset, limit: float | None) -> Outcome:
    """The shortest image side; findings: images below the limit (else below the model input)."""
    floor = limit if limit is not None else ds.spec.model.image_size
    sized = _sized(ds)
    found = [
        Finding(p, f"{w}x{h} px, shorter side below {floor:g}")
        for p, w, h in sized
        if min(w, h) < floor
    ]
    return Outcome(found, min((min(w, h) for _, w, h in sized), default=0))


def size_outliers(ds: Dataset, limit: float | None) -> Outcome:
    """Images far from the typical size or aspect ratio of the dataset."""
    sized = _sized(ds)
    if not sized:
        return Outcome([], 0)
    side = statistics.median(math.sqrt(w * h) for _, w, h in sized)
    aspect = statistics.median(w / h for _, w, h in sized)
    found = []
    for p, w, h in sized:
        if abs(math.log(math.sqrt(w * h) / side)) > math.log(SIZE_FACTOR):
            found.append(Finding(p, f"{w}x{h} px, far from the typical ~{side:.0f} px side"))
        elif abs(math.log((w / h) / aspect)) > math.log(ASPECT_FACTOR):
            found.append(Finding(p, f"{w}x{h} px, aspect {w / h:.2f} vs typical {aspect:.2f}"))
    return Outcome(found, len(found))


def _fraction(ds: Dataset, test: Any, why: Any) -> Outcome:
    records, facts = ds.index.records, ds.facts
    found = [Finding(records[i].path, why(facts[i])) for i in ds.decoded if test(facts[i])]
    total = len(ds.decoded)
    return Outcome(found, len(found) / total if total else 0.0)


def dark(ds: Dataset, limit: float | None) -> Outcome:
    """Nearly black images."""
    return _fraction(
        ds,
        lambda f: f.p95 < DARK_P95,
        lambda f: f"nearly black: 95% of pixels below {f.p95:.2f} grey",
    )


def bright(ds: Dataset, limit: float | None) -> Outcome:
    """Nearly white images."""
    return _fraction(
        ds,
        lambda f: f.p5 > BRIGHT_P5,
        lambda f: f"nearly white: 95% of pixels above {f.p5:.2f} grey",
    )


def blurry(ds: Dataset, limit: float | None) -> Outcome:
    """Images without sharp detail (low variance of the Laplacian); dark or bright ones aside."""
    return _fraction(
        ds,
        lambda f: f.sharpness < BLURRY_SHARPNESS and f.p95 >= DARK_P95 and f.p5 <= BRIGHT_P5,
        lambda f: (
            f"blurry: Laplacian variance {under(f.sharpness, BLURRY_SHARPNESS)} "
            f"< {BLURRY_SHARPNESS:g}"
        ),
    )


def under(value: float, bound: float) -> str:
    """`value` with one decimal, or as many more as it takes to read as less than `bound`
    (24.96 is not "25.0 < 25")."""
    for places in range(1, 7):
        text = f"{value:.{places}f}"
        if float(text) < bound:
            return text
    return f"{value!r}"


CHECKS = [
    Check(
        "skipped_files",
        lambda s: None,
        limit_rule("files in class or image folders that are not read as images"),
        skipped_files,
        formats=frozenset({"imagefolder", "yolo", "coco"}),
    ),
    Check(
        "decodable",
        lambda s: 0 if s.data.quality.decodable else None,
        limit_rule("images that fail to decode"),
        decodable,
        key=quality("decodable"),
    ),
    Check(
        "exact_duplicates",
        lambda s: s.data.quality.duplicates.exact,
        limit_rule("byte-identical copies"),
        exact_duplicates,
        key=quality("duplicates", "exact"),
    ),
    Check(
        "near_duplicates",
        lambda s: s.data.quality.duplicates.near_fraction,
        limit_rule("near-duplicate images", fraction=True),
        near_duplicates,
        key=quality("duplicates", "near_fraction"),
    ),
    Check(
        "leakage",
        lambda s: s.data.quality.leakage,
        limit_rule("val/test images copied from another split"),
        leakage,
        key=quality("leakage"),
    ),
    Check(
        "min_side",
        lambda s: s.data.quality.min_side,
        lambda limit: (
            "images smaller than the model input: reported"
            if limit is None
            else f"every image at least {limit:g} px on its shorter side"
        ),
        min_side,
        at_least=True,
        key=quality("min_side"),
    ),
    Check("size_outliers", lambda s: None, limit_rule("size or aspect outliers"), size_outliers),
    Check(
        "dark",
        lambda s: s.data.quality.max_dark_fraction,
        limit_rule("nearly black images", fraction=True),
        dark,
        key=quality("max_dark_fraction"),
    ),
    Check(
        "bright",
        lambda s: s.data.quality.max_bright_fraction,
        limit_rule("nearly white images", fraction=True),
        bright,
        key=quality("max_bright_fraction"),
    ),
    Check(
        "blurry",
        lambda s: s.data.quality.max_blurry_fraction,
        limit_rule("blurry images", fraction=True),
        blurry,
        key=quality("max_blurry_fraction"),
    ),
]
