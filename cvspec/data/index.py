"""The dataset index every stage reads: one record per image, whatever the on-disk format."""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from cvspec.data.files import SPLITS as SPLITS  # re-exported: where readers have always found it
from cvspec.data.files import nfc

# the folder names a split is commonly exported under (Roboflow: train, valid, test)
SPLIT_NAMES = {
    "train": ("train", "training", "train2017"),
    "val": ("val", "valid", "validation", "val2017"),
    "test": ("test", "testing", "test2017"),
}
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


class Declared(NamedTuple):
    """The size an annotation file gives an image (COCO's width and height), and where; its
    boxes are made relative to this size."""

    width: float
    height: float
    source: str  # 'train/ann.json#images[3]'


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
    declared: Declared | None = None  # the size an annotation file gives (COCO)


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
    relabeled: tuple[Relabel, ...] = ()  # labels data.relabel corrected
    unknown_relabels: tuple[str, ...] = ()  # data.relabel paths that name no image
    emptied: tuple[str, ...] = ()  # classes (classes: auto) data.exclude left without images
    skipped: tuple[str, ...] = ()  # files in class/image folders that are not read as images

    def split(self, name: str) -> list[Record]:
        """The records of one split, in index order."""
        return [r for r in self.records if r.split == name]


def assign_split(rel_path: str, seed: int, val: float, test: float) -> str:
    """Deterministic split from a hash of the path and seed: adding files never moves others.
    The path is hashed in NFC (data.files.nfc), so a checkout whose file system spells a name
    with combining accents splits the data as one with composed letters does."""
    digest = hashlib.sha256(f"{seed}:{nfc(rel_path)}".encode()).digest()
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
    (or line), why; `image` names the image it concerns when `path` is another file's entry
    (a COCO annotation), so data.exclude can leave it out with its image."""

    check: str
    path: str
    message: str
    image: str = ""

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
    relabeled: tuple[Relabel, ...] = ()  # labels data.relabel corrected
    unknown_relabels: tuple[str, ...] = ()  # data.relabel paths that name no image
    emptied: tuple[str, ...] = ()  # classes (classes: auto) data.exclude left without images
    skipped: tuple[str, ...] = ()  # files in class/image folders that are not read as images


class Relabel(NamedTuple):
    """One label data.relabel corrected: the image, the class its folder says, the class it is."""

    path: str
    was: str
    now: str


def problem(path: str, message: str, check: str = "layout", image: str = "") -> Problem:
    """A reader finding about one file (or file:line) of the dataset, or about `image`."""
    return Problem(check, path, message, image)


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
    if not layout.entries:
        raise no_images(spec.data, data_root, layout)
    layout = replace(layout, entries=tuple(sorted(layout.entries, key=lambda r: r.path)))
    patterns = tuple(getattr(spec.data, "exclude", ()) or ())
    layout = without_excluded(layout, patterns, spec.data.classes == "auto")
    if not layout.entries:
        from cvspec.errors import SpecValueError

        raise SpecValueError(
            ("data", "exclude"),
            f"leaves out every image ({len(layout.excluded)}) of {shown(data_root)}",
            "quarantine fewer files",
        )
    return relabeled(layout, dict(getattr(spec.data, "relabel", {}) or {}))


# data.format -> what its folder holds (DATA is data.path), for a folder without images
LAYOUTS = {
    "imagefolder": "one folder per class, e.g. DATA/cat/0001.jpg",
    "imagefolder-splits": "a folder per split with one folder per class in each, e.g. "
    "DATA/train/cat/0001.jpg",
    "yolo": "images/ with a labels/ tree beside it, e.g. DATA/images/train/0001.jpg and "
    "DATA/labels/train/0001.txt",
    "coco": "images and a COCO annotations .json",
}


def shown(folder: Path) -> str:
    """A folder as a person finds it: relative to the working directory when under it."""
    import os

    rel = os.path.relpath(folder)
    return str(folder) if rel.startswith("..") else rel.replace(os.sep, "/")


def _kind(same: list[Problem]) -> str:
    """Problems of one kind in a line: their message and first paths, and how many more."""
    if len({p.message for p in same}) == 1:
        paths = ", ".join(p.path for p in same[:3])
        return f"{same[0].message}: {paths}" + (f" and {len(same) - 3} more" if same[3:] else "")
    others = ", ".join(p.path for p in same[1:3]) + (", ..." if same[3:] else "")
    return f"{same[0].message}: {same[0].path}, and {len(same) - 1} more like it ({others})"


def no_images(data: Any, data_root: Path, layout: Layout) -> Exception:
    """The error for a dataset folder without one image (data not pulled yet, or another
    layout than data.format), at data.path's line."""
    from cvspec.errors import SpecValueError

    where = shown(data_root)
    fmt = str(data.format)
    key = f"{fmt}-splits" if fmt == "imagefolder" and hasattr(data.splits, "train") else fmt
    expected = LAYOUTS.get(key, "").replace("DATA", where)
    message = f"no images found under {where} (format {fmt}: {expected})"
    if layout.skipped:
        names = ", ".join(layout.skipped[:3])
        message += f"; it holds {len(layout.skipped)} other file(s), e.g. {names}"
    if layout.problems:  # images there, but not where data.format looks, or classes left out
        # Messages that differ only in what they quote (a file name) are one kind: the first
        # says it whole, the others are counted (an export of 10,000 images gave 10,000).
        by_kind: dict[str, list[Problem]] = {}
        for p in layout.problems:
            by_kind.setdefault(re.sub(r"'[^']*'", "''", p.message), []).append(p)
        found = "; ".join(_kind(same) for same in by_kind.values())
        message += f"; what it found instead: {found}"
        hint = (
            "move the images into that layout, or set data.format (and data.classes) to what "
            "the folder holds"
        )
    elif getattr(data, "versioning", "none") == "dvc":
        hint = (
            "data.versioning is dvc: run `dvc pull` to fetch the images (a CI job must pull "
            "them before the data stage too)"
        )
    else:
        hint = (
            "data.path is relative to the spec file; `cvspec init --example NAME DIR` writes "
            "an example dataset"
        )
    return SpecValueError(("data", "path"), message, hint, code="data-empty")


def relabeled(layout: Layout, corrections: dict[str, str]) -> Layout:
    """The layout with data.relabel's corrections: each named image takes the class given (its
    file stays put); a path that names no image (or an excluded one) is listed as unknown, a
    class that is not one of the layout's is a SpecValueError at its key."""
    from cvspec.errors import SpecValueError

    if not corrections:
        return layout
    wanted = {nfc(path.removeprefix("./")): (path, cls) for path, cls in corrections.items()}
    index = {nfc(name): i for i, name in enumerate(layout.classes)}
    entries, done = [], []
    for entry in layout.entries:
        path = nfc(entry.path)
        if path not in wanted or entry.label is None:
            entries.append(entry)
            continue
        key, target = wanted.pop(path)
        if nfc(target) not in index:
            raise SpecValueError(
                ("data", "relabel", key),
                f"class {target!r} is not one of the dataset's classes",
                f"one of: {', '.join(layout.classes)}",
            )
        label = index[nfc(target)]
        done.append(Relabel(entry.path, layout.classes[entry.label], layout.classes[label]))
        entries.append(replace(entry, label=label))
    return replace(
        layout,
        entries=tuple(entries),
        relabeled=tuple(done),
        unknown_relabels=tuple(key for key, _ in wanted.values()),
    )


class Exclusions:
    """data.exclude compiled once: exact paths and folders by lookup, patterns by one regex.

    A leading `./` is ignored; a pattern ending in `/` names folders (`3/*/`). Patterns and
    paths are compared in NFC (data.files.nfc)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        import fnmatch
        import re

        self.patterns = patterns
        self.exact: dict[str, str] = {}
        self.globs: list[tuple[str, re.Pattern[str], bool]] = []  # pattern, regex, folders only
        for pattern in patterns:
            clean = nfc(pattern.removeprefix("./").rstrip("/"))
            if any(c in clean for c in "*?["):
                rx = re.compile(fnmatch.translate(clean))
                self.globs.append((pattern, rx, pattern.endswith("/")))
            else:
                self.exact.setdefault(clean, pattern)
        either = "|".join(f"(?:{rx.pattern})" for _, rx, _ in self.globs)
        self.any_glob = re.compile(either or "$^")

    def match(self, path: str) -> str | None:
        """The first pattern that leaves `path` out (the file, or a folder above it), or None."""
        parts = nfc(path).split("/")
        for i in range(len(parts), 0, -1):  # the file, then each folder above it
            prefix = "/".join(parts[:i])
            hit = self.exact.get(prefix)
            if hit is None and self.globs and self.any_glob.match(prefix):
                folder = i < len(parts)
                hit = next(
                    (p for p, rx, only in self.globs if (folder or not only) and rx.match(prefix)),
                    None,
                )
            if hit is not None:
                return hit
        return None


def label_file(image: str) -> str:
    """The YOLO label file of an image path, by ultralytics' rule: the last images/ folder
    becomes labels/, the suffix .txt."""
    parts = image.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    stem = parts[-1].rsplit(".", 1)[0]
    return "/".join([*parts[:-1], f"{stem}.txt"])


def without_excluded(layout: Layout, patterns: tuple[str, ...], auto_classes: bool) -> Layout:
    """The layout less the images data.exclude leaves out, with the reader problems about them
    (a missing or malformed YOLO label file of an excluded image); with `auto_classes`, a class
    folder left empty by it is no class any more."""
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
    gone = set(dropped) | ({label_file(d) for d in dropped} if layout.format == "yolo" else set())
    problems = []
    for p in layout.problems:
        where = p.image or p.path.split(":", 1)[0].split("#", 1)[0]
        hit = rules.match(where)
        if hit is not None:
            used.add(hit)
        if where not in gone and hit is None:
            problems.append(p)
    skipped = []
    for path in layout.skipped:
        hit = rules.match(path)
        if hit is None:
            skipped.append(path)
        else:
            used.add(hit)
    stale = [
        p for p in patterns if p not in used and not any(Exclusions((p,)).match(d) for d in dropped)
    ]
    out = replace(
        layout,
        entries=tuple(kept),
        problems=tuple(problems),
        excluded=tuple(dropped),
        unmatched=tuple(stale),
        skipped=tuple(skipped),
    )
    had = {e.label for e in layout.entries}
    return _without_emptied_classes(out, had) if auto_classes else out


def _without_emptied_classes(layout: Layout, had: set[int | None]) -> Layout:
    """Drop the classes data.exclude emptied (classes: auto) and renumber the labels; a class
    folder that was empty before stays, for the checks to report."""
    if layout.format != "imagefolder":
        return layout
    left = {e.label for e in layout.entries}
    keep = [i for i in range(len(layout.classes)) if i in left or i not in had]
    if len(keep) == len(layout.classes):
        return layout
    new = {old: i for i, old in enumerate(keep)}
    entries = tuple(
        replace(e, label=None if e.label is None else new[e.label]) for e in layout.entries
    )
    classes = tuple(layout.classes[i] for i in keep)
    emptied = tuple(c for c in layout.classes if c not in classes)
    return replace(layout, classes=classes, entries=entries, emptied=emptied)


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
        layout.relabeled,
        layout.unknown_relabels,
        layout.emptied,
        layout.skipped,
    )


def size_problems(index: DataIndex) -> tuple[Problem, ...]:
    """Images whose annotation file gives another size than the file has (COCO's width and
    height): their boxes, made relative to the size given, are misplaced on the real image.
    A size given turned by 90 degrees is right for an image whose EXIF orientation turns it."""
    out = []
    for r in index.records:
        given = r.declared
        if given is None or not (r.width and r.height):  # undecodable: `decodable` says so
            continue
        if (given.width, given.height) == (r.width, r.height):
            continue
        if (given.width, given.height) == (r.height, r.width) and _turned(index.root / r.path):
            continue
        out.append(
            problem(
                r.path,
                f"{given.source} gives its size as {given.width:g} x {given.height:g} px, but the "
                f"image is {r.width} x {r.height} px: its boxes, relative to the size given, are "
                "misplaced; correct width and height there",
                image=r.path,
            )
        )
    return tuple(out)


def _turned(path: Path) -> bool:
    """Whether the image's EXIF orientation turns it by 90 degrees (values 5 to 8)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(img.getexif().get(0x0112, 1)) in (5, 6, 7, 8)
    except Exception:  # PIL raises many types for bad input; the image decoded before
        return False


def split_example(folders: list[str]) -> str:
    """data.splits for split folders by their names ('train: train, val: valid', the first
    part of each path), or '' when no train and val folder are among them."""
    named = {}
    for split, names in SPLIT_NAMES.items():
        found = next((f for f in folders if f.split("/")[0].lower() in names), None)
        if found is not None:
            named[split] = found
    if "train" not in named or "val" not in named:
        return ""
    return ", ".join(f"{split}: {folder}" for split, folder in named.items())


def split_folders(splits: Any, root: Path) -> dict[str, str]:
    """Split name -> folder under root for folder splits; {'': ''} for ratio splits."""
    from cvspec.errors import SpecValueError

    if not hasattr(splits, "train"):
        return {"": ""}
    folders = {s: str(getattr(splits, s)) for s in SPLITS if getattr(splits, s) is not None}
    for split, folder in folders.items():
        if (root / folder).is_file():  # ultralytics' image list (train.txt), or a COCO .json
            hint = (
                "ultralytics' .txt image lists are not read: give the split's image folder "
                "(e.g. images/train), or move the images it lists into one"
                if folder.lower().endswith(".txt")
                else f"give the split's folder (relative to data.path, {root})"
            )
            raise SpecValueError(
                ("data", "splits", split), f"is a file, not a folder: {root / folder}", hint
            )
        if not (root / folder).is_dir():
            raise SpecValueError(
                ("data", "splits", split),
                f"folder not found: {root / folder}",
                f"split folders are relative to data.path ({root})",
            )
    return folders
