"""Compare a fresh render with the disk and the last manifest: what to write, what is wrong."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.errors import CvspecError
from cvspec.generate.manifest import LOCK_NAME, Manifest, has_conflict, parse_manifest
from cvspec.generate.render import RenderedFile

STAGE_MARK = ".cvspec-stage"
# What other tools write inside a generated tree: never cvspec's, never an orphan.
FOREIGN_DIRS = ("__pycache__", ".pytest_cache", ".dvc")
FOREIGN_FILES = ("dvc.lock", ".gitignore")


class Change(NamedTuple):
    """The state of one path and what a build does about it."""

    path: str
    action: str  # same | create | update | conflict | remove | keep | uninstalled
    finding: str | None  # what `check` reports: missing | drift | tamper | orphan | None
    reason: str


MERGE_REASON = "has git merge-conflict markers: made again from the spec (no .orig copy)"
LINK = "symbolic link"  # what file_sha says of a link: cvspec never reads through one


def file_sha(path: Path) -> str | None:
    """sha256 of a file on disk; LINK for a symbolic link (never followed: a link committed
    under generated/ must not make cvspec read, print or copy what it points at); None when
    there is no regular file there."""
    try:
        if path.is_symlink():
            return LINK
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def lf_sha(path: Path, made: Container[str | None]) -> str | None:
    """The digest of a file as cvspec made it, when git checked it out with CRLF line ends
    (core.autocrlf on Windows: generated/<project>/.gitattributes says eol=lf, but a file
    outside it, .github/workflows/ say, has no such line); None when it differs otherwise."""
    data = path.read_bytes()
    if b"\r\n" not in data:
        return None
    digest = hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()
    return digest if digest in made else None


def compare(
    root: Path,
    out_dir: str,
    rendered: Sequence[RenderedFile],
    old: Manifest | None,
    installed: Container[str] | None = None,
) -> list[Change]:
    """Decide, per path, between the new render, the old manifest and the disk.

    `installed`: the names of the generators installed here. An unedited file the last build's
    generator made, when that generator is not one of them, is not removed or replaced but
    `uninstalled` (a build stops unless told to prune it): its generator is missing here, which
    is not the same as no longer making the file.
    """
    new = {f.path: f for f in rendered}
    owned = dict(old.files) if old else {}
    merged = old.merged if old else {}

    def unedited(path: str, disk: str | None) -> bool:
        return path in owned and disk in (owned[path][0], merged.get(path))

    lock = f"{out_dir}/{LOCK_NAME}"
    changes: list[Change] = []
    manifest = parse_manifest(new[lock].content, "the new build manifest") if lock in new else None
    stale = stale_reason(old, manifest) if manifest is not None else "output is stale"
    replaced = manifest.replaced if manifest is not None else {}

    def missing(path: str) -> str | None:
        owner = owned[path][1]
        known = installed is None or owner == "cvspec" or owner in installed
        return None if known else owner

    for path in sorted(set(new) | set(owned) | set(_files_under(root, out_dir))):
        disk = file_sha(root / path)
        made: set[str | None] = {new[path].sha256} if path in new else set()
        made |= {owned[path][0], merged.get(path)} if path in owned else set()
        if disk not in made and disk not in (None, LINK):
            disk = lf_sha(root / path, made) or disk
        if path in new:
            want = new[path].sha256
            if disk == want:
                changes.append(Change(path, "same", None, "up to date"))
            elif disk is None:
                _check_room(root, path, new[path].generator, owned, new)
                changes.append(Change(path, "create", "missing", "not on disk"))
            elif disk == LINK:
                changes.append(Change(path, "conflict", "tamper", LINK_REASON))
            elif unedited(path, disk) and (gone := missing(path)):
                why = f"{uninstalled_reason(gone)} (generator '{new[path].generator}' makes it now)"
                changes.append(Change(path, "uninstalled", "drift", why))
            elif path == lock or unedited(path, disk):
                changes.append(Change(path, "update", "drift", stale))
            elif path in owned and has_conflict((root / path).read_bytes()):
                changes.append(Change(path, "update", "drift", MERGE_REASON))
            elif path in owned:
                changes.append(Change(path, "conflict", "tamper", "edited by hand"))
            else:
                changes.append(
                    Change(path, "conflict", "tamper", "exists, but cvspec did not write it")
                )
        elif path in owned:
            if disk is None:
                continue
            if unedited(path, disk) and (gone := missing(path)):
                changes.append(Change(path, "uninstalled", "orphan", uninstalled_reason(gone)))
            elif unedited(path, disk):
                owner = owned[path][1]
                why = "no longer generated"
                if owner in replaced:
                    why += f" (generator '{owner}' is replaced by '{replaced[owner]}')"
                changes.append(Change(path, "remove", "orphan", why))
            else:
                changes.append(
                    Change(
                        path,
                        "keep",
                        "orphan",
                        "no longer generated, but edited by hand: left in place",
                    )
                )
        elif disk == LINK:
            changes.append(Change(path, "keep", "orphan", f"{LINK_REASON}: left in place"))
        elif _SAVED.search(path):
            changes.append(Change(path, "keep", "orphan", SAVED_REASON))
        else:
            changes.append(Change(path, "keep", "orphan", "not made by cvspec: left in place"))
    return changes


def uninstalled_reason(generator: str) -> str:
    """Why a build leaves a file alone: the generator that made it is not installed here."""
    return (
        f"made by generator '{generator}', which is not installed here: install it, or pass "
        "--prune-missing to build to remove its files"
    )


PRUNE_ACTION = {"orphan": "remove", "drift": "update"}  # an `uninstalled` change, when pruned


def stale_reason(old: Manifest | None, new: Manifest) -> str:
    """Why output differs from the last build, from its manifest and the new one."""
    if old is None:
        return "output is stale"
    if new.spec != old.spec:
        return f"last built from {old.spec}, not {new.spec}; output is stale"
    if dict(new.inputs) != dict(old.inputs):
        return "the spec changed; output is stale"
    if new.options != old.options:
        now = describe_options(new.options)
        return f"built with other options ({describe_options(old.options)} before, now {now})"
    if new.cvspec != old.cvspec:
        return f"cvspec changed ({old.cvspec} -> {new.cvspec}); output is stale"
    return CODE_CHANGED


# Why output drifts when the spec, the options and cvspec are as the last build had them.
CODE_CHANGED = "a template, generator or plugin changed; output is stale"


def describe_options(options: dict[str, Any]) -> str:
    """Build options as the flags that give them: `--profile ci --set a=1`, or `no options`."""
    words = []
    if options.get("profile"):
        words.append(f"--profile {options['profile']}")
    words.extend(f"--set {s}" for s in options.get("set") or [])
    if options.get("templates"):
        words.append(f"--templates {options['templates']}")
    return " ".join(words) or "no options"


LINK_REASON = "a symbolic link where cvspec writes files (its target is never read)"
_SAVED = re.compile(r"\.orig(\.[0-9]+)?$")
SAVED_REASON = "your edited copy, saved by build --force: merge what you need, then delete it"


def _check_room(
    root: Path,
    path: str,
    generator: str,
    owned: dict[str, tuple[str, str]],
    new: dict[str, RenderedFile],
) -> None:
    """A file can be written at `path`: no folder there, and no file where a folder must be,
    unless that file is one cvspec made, left unedited and no longer makes (the build removes
    it first)."""
    target = root / path
    if target.is_dir():
        raise CvspecError(f"generator '{generator}' makes {path}, but a folder is there on disk")
    for parent in Path(path).parents:
        if parent == Path(".") or not (root / parent).exists() or (root / parent).is_dir():
            continue
        rel = parent.as_posix()
        if rel in owned and rel not in new and file_sha(root / parent) == owned[rel][0]:
            continue
        raise CvspecError(f"generator '{generator}' makes {path}, but {rel} is a file on disk")


def _files_under(root: Path, out_dir: str) -> list[str]:
    base = root / out_dir
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if STAGE_MARK not in d and d not in FOREIGN_DIRS]
        rel = Path(dirpath).relative_to(root).as_posix()
        found.extend(f"{rel}/{name}" for name in filenames if name not in FOREIGN_FILES)
    return found
