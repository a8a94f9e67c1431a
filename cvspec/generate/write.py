"""Write a rendered project atomically: stage a whole new tree, then swap it in one rename."""

from __future__ import annotations

import ctypes
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cvspec.atomic import sync_dir, write_bytes
from cvspec.errors import CheckFailed
from cvspec.generate.compare import STAGE_MARK, Change
from cvspec.generate.render import RenderedFile

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class WriteReport(NamedTuple):
    """What a build did, path by path."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]
    kept: list[Change]
    saved: list[str]  # hand-edited copies saved beside the file before --force replaced it


def write_project(
    root: Path,
    out_dir: str,
    rendered: Sequence[RenderedFile],
    changes: Sequence[Change],
    force: bool = False,
) -> WriteReport:
    """Apply `changes` so the disk matches `rendered`; refuse to overwrite hand edits."""
    conflicts = [c for c in changes if c.action == "conflict"]
    if conflicts and not force:
        refuse(conflicts)
    new = {f.path: f for f in rendered}
    todo = {c.path: c for c in changes}
    saved = _saved_names(root, conflicts)
    report = WriteReport(
        written=[c.path for c in changes if c.action in ("create", "update", "conflict")],
        unchanged=[c.path for c in changes if c.action == "same"],
        removed=[c.path for c in changes if c.action == "remove"],
        kept=[c for c in changes if c.action == "keep"],
        saved=list(saved.values()),
    )
    if not report.written and not report.removed:
        return report
    prefix = out_dir + "/"
    target = root / out_dir
    _clean_stale_stages(target)
    stage = target.parent / f".{target.name}{STAGE_MARK}-{os.getpid()}"
    try:
        _build_stage(target, stage, prefix, new, todo, saved)
        for change in changes:  # files outside generated/<project>/ are replaced one by one
            if not change.path.startswith(prefix):
                _apply_single(root, change, new.get(change.path), saved)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # the tree on disk is as it was
        raise
    _swap_in(stage, target)
    return report


def _saved_names(root: Path, conflicts: Sequence[Change]) -> dict[str, str]:
    """Where --force saves each hand-edited file: <file>.orig, or .orig.N when that is taken.

    An earlier saved copy is never overwritten.
    """
    names: dict[str, str] = {}
    for change in conflicts:
        name, n = f"{change.path}.orig", 0
        while os.path.lexists(root / name) or name in names.values():
            n += 1
            name = f"{change.path}.orig.{n}"
        names[change.path] = name
    return names


def refuse(conflicts: Sequence[Change]) -> None:
    """Stop a build that would overwrite hand-edited files, naming every one of them."""
    lines = "\n".join(f"  {c.path}: {c.reason}" for c in conflicts)
    raise CheckFailed(
        f"refusing to overwrite files edited by hand:\n{lines}\n"
        "edit the spec instead, or run `cvspec build --force` "
        "(it saves each edited copy beside it as <file>.orig)"
    )


def _apply_single(
    root: Path, change: Change, file: RenderedFile | None, saved: dict[str, str]
) -> None:
    path = root / change.path
    if change.action == "conflict":
        shutil.copy2(path, root / saved[change.path], follow_symlinks=False)
    if change.action in ("create", "update", "conflict") and file is not None:
        write_bytes(path, file.content, durable=True)
    elif change.action == "remove":
        path.unlink(missing_ok=True)


def _clean_stale_stages(target: Path) -> None:
    """Remove stages left by a killed build: the real tree is whole either way."""
    if not target.parent.is_dir():
        return
    if not target.exists():  # killed between the two renames of the fallback swap: roll back
        for old in target.parent.glob(f".{target.name}{STAGE_MARK}-old-*"):
            os.rename(old, target)
            break
    for leftover in target.parent.glob(f".{target.name}{STAGE_MARK}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _build_stage(
    target: Path,
    stage: Path,
    prefix: str,
    new: dict[str, RenderedFile],
    todo: dict[str, Change],
    saved: dict[str, str],
) -> None:
    stage.mkdir(parents=True)
    if target.is_dir():
        for dirpath, dirnames, filenames in os.walk(target):
            dirnames[:] = [d for d in dirnames if STAGE_MARK not in d]
            rel_dir = Path(dirpath).relative_to(target)
            (stage / rel_dir).mkdir(parents=True, exist_ok=True)
            for name in filenames:
                rel = (rel_dir / name).as_posix()
                change = todo.get(prefix + rel)
                if change is not None and change.action in ("create", "update", "remove"):
                    continue
                src = Path(dirpath) / name
                if change is not None and change.action == "conflict":
                    dest = stage / saved[prefix + rel][len(prefix) :]
                    shutil.copy2(src, dest, follow_symlinks=False)  # a link stays a link
                    continue
                _link_or_copy(src, stage / rel)  # unchanged or not ours: keep it, mtime and all
    for path, file in new.items():
        change = todo.get(path)
        if not path.startswith(prefix) or change is None or change.action == "same":
            continue
        dest = stage / path[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(file.content)
    _prune_emptied(stage, prefix, todo)
    _sync_filesystem(stage)  # one flush for the whole stage before it becomes the tree


def _prune_emptied(stage: Path, prefix: str, todo: dict[str, Change]) -> None:
    """Drop the folders a removed file leaves empty (a sweep turned off: train/experiment/)."""
    for path, change in todo.items():
        if change.action != "remove" or not path.startswith(prefix):
            continue
        for parent in Path(path[len(prefix) :]).parents:
            if parent == Path("."):
                break
            try:
                (stage / parent).rmdir()
            except OSError:  # not empty (or already gone): neither are the folders above it
                break


def _link_or_copy(src: Path, dest: Path) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _sync_filesystem(path: Path) -> None:
    """Flush the file system holding `path` (Linux syncfs: one call, not one fsync a file)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
    except (OSError, AttributeError):
        return
    try:
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(stage: Path, target: Path) -> None:
    """Make `stage` the tree at `target` in one step, then drop the old tree."""
    if not target.exists():
        os.rename(stage, target)
    elif _exchange(stage, target):
        shutil.rmtree(stage, ignore_errors=True)  # it now holds the old tree
    else:  # no atomic exchange on this OS/filesystem: two renames, a tiny window
        old = target.parent / f".{target.name}{STAGE_MARK}-old-{os.getpid()}"
        os.rename(target, old)
        os.rename(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    sync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories with Linux renameat2(RENAME_EXCHANGE)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)
