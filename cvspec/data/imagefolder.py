"""Read an imagefolder dataset: one folder per class, splits by ratio or by folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cvspec.data.files import is_hidden, is_image_name, list_image_paths, nfc, relative_posix
from cvspec.data.index import (
    SPLIT_NAMES,
    Layout,
    Problem,
    Record,
    problem,
    split_example,
    split_folders,
    split_of,
)


def read_imagefolder(data: Any, root: Path) -> Layout:
    """Classes from folder names (or data.classes), labels from the folder each image is in.

    Folder and class names are compared in NFC: a folder spelled with a combining accent is
    the class of the same name spelled with the composed letter."""
    folders = split_folders(data.splits, root)  # split name -> folder ('' for ratio splits)
    found: dict[str, list[tuple[str, str]]] = {}  # class folder (NFC) -> [(split, rel path)]
    problems: list[Problem] = []
    others: list[str] = []  # files in class folders that are not images cvspec reads
    for split, folder in folders.items():
        base = root / folder if folder else root
        for child in sorted(base.iterdir()):
            rel = child.relative_to(root).as_posix()
            if is_hidden(child.name):
                continue
            if not child.is_dir():
                if child.is_file() and is_image_name(child.name):
                    problems.append(problem(rel, "not inside a class folder; ignored"))
                elif child.is_symlink() and not child.exists():  # a class on a drive not mounted
                    why = f"a link to {os.readlink(child)}, which does not exist; ignored"
                    problems.append(problem(rel, why))
                continue
            items = found.setdefault(nfc(child.name), [])
            top = str(root)
            images = list_image_paths(str(child), skipped=others)
            items.extend((split, relative_posix(p, top)) for p in images)
    if folders == {"": ""} and _split_layout(found):
        raise _splits_as_classes(sorted(found))
    classes = _classes(data, found, problems)
    label_of = {nfc(name): i for i, name in enumerate(classes)}
    entries: list[Record] = []
    for name, items in found.items():
        if name not in label_of:
            continue
        for split, rel in items:
            entries.append(Record(rel, split_of(split, rel, data.splits), label=label_of[name]))
    skipped = tuple(sorted(relative_posix(p, str(root)) for p in others))
    return Layout("imagefolder", classes, tuple(entries), tuple(problems), skipped=skipped)


def _split_layout(found: dict[str, list[tuple[str, str]]]) -> bool:
    """Whether the 'class folders' ratio splits found are split folders instead: each named
    as a split is (train, val, valid, test, ...), with its images one folder further down
    (train/cat/1.jpg), none beside the class folders. A class named "train" holds images."""
    names = {n for names in SPLIT_NAMES.values() for n in names}
    items = [rel for listed in found.values() for _, rel in listed]
    return (
        bool(items)
        and all(name.lower() in names for name in found)
        and all(rel.count("/") >= 2 for rel in items)
    )


def _splits_as_classes(folders: list[str]) -> Exception:
    from cvspec.errors import SpecValueError

    example = split_example(folders)
    return SpecValueError(
        ("data", "path"),
        f"its folders {', '.join(f + '/' for f in folders)} are split folders with a folder per "
        "class in each, but data.splits are ratios, which read each folder under data.path as "
        "a class (the classes would be the splits)",
        "give the split folders" + (f", e.g. splits: {{{example}}}" if example else ""),
    )


def _classes(data: Any, found: dict[str, Any], problems: list[Problem]) -> tuple[str, ...]:
    if data.classes == "auto":
        return tuple(sorted(found))
    from difflib import get_close_matches

    classes = tuple(data.classes)
    listed = {nfc(c) for c in classes}
    folderless = sorted(listed - set(found))  # listed classes no folder holds
    for name in sorted(set(found) - listed):
        msg = "class folder is not in data.classes; its images are ignored"
        typo = get_close_matches(name, folderless, n=1)
        if typo:  # `gren` listed, `green/` on disk: one of the two names is misspelled
            msg += f" (data.classes lists {typo[0]!r}, which has no folder: a typo?)"
        problems.append(problem(name, msg, "classes"))
    return classes
