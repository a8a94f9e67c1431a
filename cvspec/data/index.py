"""The dataset index every stage reads: one record per image, whatever the on-disk format."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Box:
    """One labelled box, YOLO style: class id and centre/size normalised to [0, 1]."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class Record:
    """One image: where it is (relative to the data root), its split, labels and facts."""

    path: str
    split: str
    label: int | None = None  # classification: index into DataIndex.classes
    boxes: tuple[Box, ...] = ()  # detection
    sha256: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""  # PIL mode, e.g. "RGB", "L"; empty when the file does not decode


@dataclass(frozen=True)
class DataIndex:
    """All images of a dataset with their labels; `classes` gives label order."""

    root: Path
    format: str
    classes: tuple[str, ...]
    records: tuple[Record, ...]
    problems: tuple[str, ...] = field(default=())  # reader-level findings (bad lines, ...)

    def split(self, name: str) -> list[Record]:
        """The records of one split, in index order."""
        return [r for r in self.records if r.split == name]


def assign_split(rel_path: str, seed: int, val: float, test: float) -> str:
    """Deterministic split from a hash of the path and seed: adding files never moves others."""
    digest = hashlib.sha256(f"{seed}:{rel_path}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"
