"""Checks of labels and layout: readable annotations, class list, balance, unseen, boxes."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

from cvspec.data.checks import Check, Dataset, Finding, Outcome, limit_rule, quality
from cvspec.data.files import SPLITS

if TYPE_CHECKING:
    from cvspec.data.index import Record

# Normalised box edges may overshoot the image by this much: ultralytics trains on coordinates
# up to 1 % past the edge and clips them, and labelling tools round a box drawn to the border a
# pixel or two past it. Farther out, a box is usually in other units or of another image.
BOX_TOLERANCE = 0.01
# Two boxes of one class in one image overlapping at least this much (intersection over union)
# are one object labelled twice: a double click, or a box pasted twice. Distinct objects, even
# in a crowd, overlap far less; ultralytics drops only exact repeats, so a near one trains as two
# targets and costs recall in evaluation as a box no prediction can match.
DUPLICATE_IOU = 0.95
_DETECTION = frozenset({"detection"})


def _problems(ds: Dataset, check: str) -> Outcome:
    found = [Finding(p.path, p.message) for p in ds.problems if p.check == check]
    return Outcome(found, len(found))


def layout(ds: Dataset, limit: float | None) -> Outcome:
    """Reader problems: malformed label lines, missing images, stray files, label orphans."""
    return _problems(ds, "layout")


def classes(ds: Dataset, limit: float | None) -> Outcome:
    """Classes in the data that the spec does not list (folders, categories, data.yaml)."""
    return _problems(ds, "classes")


def class_counts(ds: Dataset, split: str | None = None) -> Counter[int]:
    """Images per class id (every class of the index, zero included), over one split or all."""
    counts: Counter[int] = Counter({i: 0 for i in range(len(ds.index.classes))})
    for name, found in ds.split_class_counts.items():
        if split is None or name == split:
            for c, n in found.items():
                if c in counts:
                    counts[c] += n
    return counts


def min_images(ds: Dataset, limit: float | None) -> Outcome:
    """The smallest class must have at least `limit` images."""
    counts = class_counts(ds)
    names = ds.index.classes
    found = [
        Finding(names[c], f"{n} images (at least {limit:g} needed)")
        for c, n in sorted(counts.items())
        if limit is not None and n < limit
    ]
    return Outcome(found, min(counts.values(), default=0))


def class_ratio(ds: Dataset, limit: float | None) -> Outcome:
    """Images of the largest class divided by images of the smallest; infinite when a class
    has no image, and then each empty class is a finding."""
    counts = class_counts(ds)
    if not counts:
        return Outcome([], 0.0)
    big, small = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
    names = ds.index.classes
    also: tuple[str, ...]
    if not counts[small]:
        message, also = "no images, nor has any other class", ()
        if counts[big]:
            message = f"no images, while the largest class, {names[big]}, has {counts[big]}"
            also = (names[big],)
        found = [
            Finding(names[c], message, also)
            for c, n in sorted(counts.items())
            if not n and limit is not None
        ]
        return Outcome(found, math.inf)
    ratio = counts[big] / counts[small]
    found = []
    if limit is not None and ratio > limit:
        message = f"largest class, {counts[big]} images vs {counts[small]} of {names[small]}"
        found.append(Finding(names[big], message, (names[small],)))
    return Outcome(found, ratio)


def unseen_labels(ds: Dataset, limit: float | None) -> Outcome:
    """Classes that val or test images show but no training image does."""
    seen = {c for c, n in class_counts(ds, "train").items() if n}
    found = []
    for split in SPLITS[1:]:
        for c, n in sorted(class_counts(ds, split).items()):
            if n and c not in seen:
                name = ds.index.classes[c]
                found.append(Finding(name, f"{n} {split} images but none in train"))
    return Outcome(found, len(found))


def box_problems(record: Record, classes: int) -> list[str]:
    """What is wrong with an image's boxes: class ids, coordinates that are not finite numbers,
    areas, and boxes outside the image; each names the label line (or annotation) it came from."""
    out = []
    for n, b in enumerate(record.boxes):
        what = f"box {n + 1} (class {b.cls})" + (f" at {b.source}" if b.source else "")
        if not 0 <= b.cls < classes:
            out.append(f"{what}: class id {b.cls} is not in 0..{classes - 1}")
        values = {"cx": b.cx, "cy": b.cy, "w": b.w, "h": b.h}
        bad = [f"{k} = {v}" for k, v in values.items() if not math.isfinite(v)]
        if bad:  # nan compares false with everything: the tests below would pass it
            out.append(f"{what}: not a finite number: {', '.join(bad)}")
            continue
        if b.w <= 0 or b.h <= 0:
            out.append(f"{what}: width and height must be positive, got {b.w:g} x {b.h:g}")
        edges = (b.cx - b.w / 2, b.cy - b.h / 2, b.cx + b.w / 2, b.cy + b.h / 2)
        if min(edges) < -BOX_TOLERANCE or max(edges) > 1 + BOX_TOLERANCE:
            box = ", ".join(f"{e:.3f}" for e in edges)
            out.append(f"{what}: extends outside the image (x0, y0, x1, y1 = {box})")
    return out


def boxes(ds: Dataset, limit: float | None) -> Outcome:
    """Boxes with an invalid class id, a coordinate that is not a finite number, a non-positive
    area, or outside the image."""
    found = [
        Finding(r.path, message)
        for r in ds.index.records
        for message in box_problems(r, len(ds.index.classes))
    ]
    return Outcome(found, len(found))


def duplicate_boxes(ds: Dataset, limit: float | None) -> Outcome:
    """Boxes that repeat an earlier box of their class in their image (IoU >= DUPLICATE_IOU)."""
    found = [Finding(r.path, message) for r in ds.index.records for message in repeats(r)]
    return Outcome(found, len(found))


def repeats(record: Record) -> list[str]:
    """A message for each box of `record` that repeats an earlier box of its class."""
    import numpy as np

    by_class: dict[int, list[int]] = {}
    for n, b in enumerate(record.boxes):
        if b.w > 0 and b.h > 0 and all(map(math.isfinite, (b.cx, b.cy, b.w, b.h))):
            by_class.setdefault(b.cls, []).append(n)
    out = []
    for members in by_class.values():
        if len(members) < 2:
            continue
        xywh = np.array(
            [
                [record.boxes[n].cx, record.boxes[n].cy, record.boxes[n].w, record.boxes[n].h]
                for n in members
            ]
        )
        lo, hi = xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2
        sides = np.clip(
            np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]), 0, None
        )
        inter = sides[..., 0] * sides[..., 1]
        area = xywh[:, 2] * xywh[:, 3]
        iou = inter / (area[:, None] + area[None] - inter)
        for j in range(1, len(members)):
            i = int(np.argmax(iou[j, :j]))
            if iou[j, i] >= DUPLICATE_IOU:
                first, second = record.boxes[members[i]], record.boxes[members[j]]
                what = f"box {members[j] + 1} (class {second.cls})" + (
                    f" at {second.source}" if second.source else ""
                )
                where = f" at {first.source}" if first.source else ""
                other = f"box {members[i] + 1}{where}"
                how = (
                    f"repeats {other}"
                    if iou[j, i] >= 1 - 1e-9
                    else f"overlaps {other} by IoU {iou[j, i]:.2f}"
                )
                out.append(f"{what} {how}: one object labelled twice?")
    return out


def missing_labels(ds: Dataset, limit: float | None) -> Outcome:
    """YOLO images without a label file: usually a mistake (an empty file marks a background)."""
    return _problems(ds, "missing_labels")


def no_boxes(ds: Dataset, limit: float | None) -> Outcome:
    """Images without any box (background images; fine in moderation). Images without a
    label file are missing_labels findings, not these."""
    missing = {p.path for p in ds.problems if p.check == "missing_labels"}
    found = [
        Finding(r.path, "no boxes")
        for r in ds.index.records
        if not r.boxes and r.path not in missing
    ]
    return Outcome(found, len(found))


CHECKS = [
    Check("layout", lambda s: 0, limit_rule("unreadable annotations or stray files"), layout),
    Check("classes", lambda s: 0, limit_rule("classes in the data missing from the spec"), classes),
    Check(
        "min_images_per_class",
        lambda s: s.data.quality.min_images_per_class,
        lambda limit: (
            "images per class: reported"
            if limit is None
            else f"every class has at least {limit:g} images"
        ),
        min_images,
        at_least=True,
        key=quality("min_images_per_class"),
    ),
    Check(
        "max_class_ratio",
        lambda s: s.data.quality.max_class_ratio,
        lambda limit: (
            "largest/smallest class ratio: reported"
            if limit is None
            else f"largest/smallest class ratio at most {limit:g}"
        ),
        class_ratio,
        key=quality("max_class_ratio"),
    ),
    Check(
        "unseen_labels",
        lambda s: 0,
        limit_rule("val/test classes never seen in train"),
        unseen_labels,
    ),
    Check("boxes", lambda s: 0, limit_rule("invalid boxes"), boxes, tasks=_DETECTION),
    Check(
        "duplicate_boxes",
        lambda s: s.data.quality.duplicate_boxes,
        limit_rule("boxes repeating another box of their class"),
        duplicate_boxes,
        tasks=_DETECTION,
        key=quality("duplicate_boxes"),
    ),
    Check(
        "missing_labels",
        lambda s: s.data.quality.missing_labels,
        limit_rule("images without a label file"),
        missing_labels,
        tasks=_DETECTION,
        formats=frozenset({"yolo"}),
        key=quality("missing_labels"),
    ),
    Check(
        "no_boxes", lambda s: None, limit_rule("images without boxes"), no_boxes, tasks=_DETECTION
    ),
]
