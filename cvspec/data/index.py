"""The dataset index every stage reads: one record per image, whatever the on-disk format."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

SPLITS = ("train", "val", "test")
# data.format -> the reader, imported only when used
READERS = {
    "imagefolder": "cvspec.data.imagefolder:read_imagefolder",
    "yolo": "cvspec.data.yolo:read_yolo",
    "coco": "cvspec.data.coco:read_coco",
}


@dataclass(frozen=True)
class Box:
    """One labelled box, YOLO style: class id and centre/size normalised to [0, 1]."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float
    # where it was read, for messages: 'labels/train/x.txt:3', 'train.json#annotations[7]'
    source: str = field(default="", compare=False)


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
    problems: tuple[str, ...] = field(default=())  # reader findings: 'relative/path: why'
    excluded: tuple[str, ...] = ()  # images data.exclude leaves out
    unmatched: tuple[str, ...] = ()  # data.exclude patterns that match no image

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


class Facts(Protocol):
    """What a file read tells the index (files.FileFacts, analyze.ImageFacts)."""

    @property
    def sha256(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def mode(self) -> str: ...


class Problem(NamedTuple):
    """A reader finding: the check it fails ('layout', 'classes' or 'missing_labels'), the file
    (or line), why."""

    check: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Layout:
    """What a reader finds before any file is opened: classes, labelled paths, problems."""

    format: str
    classes: tuple[str, ...]
    entries: tuple[Record, ...]  # path, split and labels; file facts not read yet
    problems: tuple[Problem, ...] = ()
    excluded: tuple[str, ...] = ()  # images data.exclude leaves out
    unmatched: tuple[str, ...] = ()  # data.exclude patterns that match no image


def problem(path: str, message: str, check: str = "layout") -> Problem:
    """A reader finding about one file (or file:line) of the dataset."""
    return Problem(check, path, message)


def split_of(given: str, rel_path: str, splits: Any) -> str:
    """The split a folder gives, else the one ratio splits assign to the path."""
    return given or assign_split(rel_path, splits.seed, splits.val, splits.test)


def read_layout(spec: Any, data_root: Path) -> Layout:
    """Run the reader of data.format over data_root; a missing folder is a CvspecError."""
    from cvspec.errors import CvspecError

    if not data_root.is_dir():
        raise CvspecError(
            f"data folder not found: {data_root} (data.path in the spec; "
            "`cvspec init --example NAME DIR` writes an example dataset)"
        )
    fmt = str(spec.data.format)
    if fmt not in READERS:
        raise CvspecError(f"data.format {fmt!r} has no reader")
    module, func = READERS[fmt].split(":")
    reader: Callable[[Any, Path], Layout] = getattr(importlib.import_module(module), func)
    layout = reader(spec.data, data_root)
    layout = replace(layout, entries=tuple(sorted(layout.entries, key=lambda r: r.path)))
    return without_excluded(layout, tuple(getattr(spec.data, "exclude", ()) or ()))


def is_excluded(path: str, patterns: Sequence[str]) -> bool:
    """True when `path` (relative to the data root, POSIX) matches a data.exclude pattern:
    the path itself, a folder above it, or a shell-style pattern (`*` also crosses folders)."""
    return Exclusions(tuple(patterns)).match(path) is not None


class Exclusions:
    """data.exclude compiled once: exact paths and folders by lookup, patterns by one regex."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        import fnmatch
        import re

        self.patterns = patterns
        self.exact = {p.rstrip("/"): p for p in patterns if not any(c in p for c in "*?[")}
        globs = [p for p in patterns if p not in self.exact.values()]
        self.globs = [(p, re.compile(fnmatch.translate(p))) for p in globs]
        self.any_glob = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in globs) or "$^")

    def match(self, path: str) -> str | None:
        """The first pattern that leaves `path` out, or None."""
        parts = path.split("/")
        for i in range(len(parts), 0, -1):  # the file, then each folder above it
            hit = self.exact.get("/".join(parts[:i]))
            if hit is not None:
                return hit
        if self.any_glob.match(path):
            return next(p for p, rx in self.globs if rx.match(path))
        return None


def without_excluded(layout: Layout, patterns: tuple[str, ...]) -> Layout:
    """The layout less the images data.exclude leaves out (and the reader problems about them,
    such as a missing or malformed label file of an excluded image)."""
    if not patterns:
        return layout
    rules = Exclusions(patterns)
    kept, dropped, used = [], [], set()
    for entry in layout.entries:
        hit = rules.match(entry.path)
        if hit is None:
            kept.append(entry)
        else:
            dropped.append(entry.path)
            used.add(hit)
    gone = set(dropped)
    problems = tuple(
        p
        for p in layout.problems
        if p.path.split(":", 1)[0] not in gone and rules.match(p.path.split(":", 1)[0]) is None
    )
    return replace(
        layout,
        entries=tuple(kept),
        problems=problems,
        excluded=tuple(dropped),
        unmatched=tuple(
            p
            for p in patterns
            if p not in used and not any(Exclusions((p,)).match(d) for d in dropped)
        ),
    )


def build_index(spec: Any, data_root: Path) -> DataIndex:
    """Read the dataset's layout and each file's hash and header facts (no pixel decoding)."""
    from cvspec.data.files import configure_pil, probe

    layout = read_layout(spec, data_root)
    configure_pil()
    facts = [probe(data_root / r.path) for r in layout.entries]
    return with_facts(layout, data_root, facts)


def with_facts(layout: Layout, data_root: Path, facts: Sequence[Facts]) -> DataIndex:
    """The index of a layout, given each entry's file facts (in entry order)."""
    records = tuple(
        replace(e, sha256=f.sha256, width=f.width, height=f.height, mode=f.mode)
        for e, f in zip(layout.entries, facts, strict=True)
    )
    problems = tuple(str(p) for p in layout.problems)
    return DataIndex(
        data_root,
        layout.format,
        layout.classes,
        records,
        problems,
        layout.excluded,
        layout.unmatched,
    )


def split_folders(splits: Any, root: Path) -> dict[str, str]:
    """Split name -> folder under root for folder splits; {'': ''} for ratio splits."""
    from cvspec.errors import CvspecError

    if not hasattr(splits, "train"):
        return {"": ""}
    folders = {s: str(getattr(splits, s)) for s in SPLITS if getattr(splits, s) is not None}
    for split, folder in folders.items():
        if not (root / folder).is_dir():
            raise CvspecError(f"data.splits.{split}: folder not found: {root / folder}")
    return folders
