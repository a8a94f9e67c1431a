"""Which dataset a report (and through it a model card) describes: a fingerprint of the exact
images and labels, and the DVC file that versions the data folder, when there is one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def fingerprint(records: Iterable[Any]) -> str:
    """sha256 over every image's split, path, labels and content: equal iff the data is."""
    digest = hashlib.sha256()
    for r in sorted(records, key=lambda r: (r.split, r.path)):
        boxes = ";".join(f"{b.cls} {b.cx!r} {b.cy!r} {b.w!r} {b.h!r}" for b in r.boxes)
        digest.update(f"{r.split}\0{r.path}\0{r.label}\0{boxes}\0{r.sha256}\n".encode())
    return digest.hexdigest()


def images_digest(records: Iterable[Any]) -> str:
    """sha256 over images' paths and bytes (not their labels or splits): equal iff the same
    files. Of the training images, it ties the drift baseline (stats.json) to a run."""
    digest = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.path):
        digest.update(f"{r.path}\0{r.sha256}\n".encode())
    return digest.hexdigest()


def dvc_file(data_root: Path, repo: Path) -> Path | None:
    """The `.dvc` file that tracks the data folder or a folder above it inside the repository
    (`dvc add data/digits` writes data/digits.dvc), or None."""
    if data_root == repo or not data_root.is_relative_to(repo):
        return None  # DVC tracks what is inside the repository, never the repository itself
    for folder in (data_root, *data_root.parents):
        if folder == repo:
            return None
        candidate = folder.parent / f"{folder.name}.dvc"
        if candidate.is_file():
            return candidate
    return None


def dvc_md5(path: Path) -> str | None:
    """The md5 DVC recorded for the tracked folder in a .dvc file, or None when unreadable."""
    import yaml

    try:
        outs = yaml.safe_load(path.read_text(encoding="utf-8")).get("outs") or []
        md5 = outs[0].get("md5")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, IndexError, TypeError):
        return None
    return str(md5) if md5 else None
