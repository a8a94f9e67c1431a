"""Compare a fresh render with the disk and the last manifest: what to write, what is wrong."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cvspec.generate.manifest import LOCK_NAME, Manifest
from cvspec.generate.render import RenderedFile

STAGE_MARK = ".cvspec-stage"
# What other tools write inside a generated tree: never cvspec's, never an orphan.
FOREIGN_DIRS = ("__pycache__", ".pytest_cache", ".dvc")
FOREIGN_FILES = ("dvc.lock", ".gitignore")


class Change(NamedTuple):
    """The state of one path and what a build does about it."""

    path: str
    action: str  # same | create | update | conflict | remove | keep
    finding: str | None  # what `check` reports: missing | drift | tamper | orphan | None
    reason: str


def file_sha(path: Path) -> str | None:
    """sha256 of a file on disk, or None when there is no regular file there."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def compare(
    root: Path, out_dir: str, rendered: Sequence[RenderedFile], old: Manifest | None
) -> list[Change]:
    """Decide, per path, between the new render, the old manifest and the disk."""
    new = {f.path: f for f in rendered}
    owned = dict(old.files) if old else {}
    lock = f"{out_dir}/{LOCK_NAME}"
    changes: list[Change] = []
    for path in sorted(set(new) | set(owned) | set(_files_under(root, out_dir))):
        disk = file_sha(root / path)
        if path in new:
            want = new[path].sha256
            if disk == want:
                changes.append(Change(path, "same", None, "up to date"))
            elif disk is None:
                changes.append(Change(path, "create", "missing", "not on disk"))
            elif path == lock or (path in owned and owned[path][0] == disk):
                changes.append(Change(path, "update", "drift", "the spec changed; output is stale"))
            elif path in owned:
                changes.append(Change(path, "conflict", "tamper", "edited by hand"))
            else:
                changes.append(
                    Change(path, "conflict", "tamper", "exists, but cvspec did not write it")
                )
        elif path in owned:
            if disk is None:
                continue
            if disk == owned[path][0]:
                changes.append(Change(path, "remove", "orphan", "no longer generated"))
            else:
                changes.append(
                    Change(
                        path,
                        "keep",
                        "orphan",
                        "no longer generated, but edited by hand: left in place",
                    )
                )
        else:
            changes.append(Change(path, "keep", "orphan", "not made by cvspec: left in place"))
    return changes


def _files_under(root: Path, out_dir: str) -> list[str]:
    base = root / out_dir
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if STAGE_MARK not in d and d not in FOREIGN_DIRS]
        rel = Path(dirpath).relative_to(root).as_posix()
        found.extend(f"{rel}/{name}" for name in filenames if name not in FOREIGN_FILES)
    return found
