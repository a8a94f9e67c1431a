"""Unified diffs of what `check` finds: the disk against what a build would write there.

The text is a patch `git apply` (or `patch -p1`) takes: a drift, a missing file and an orphan
a build removes are exactly what `cvspec build` would do. A hand edit (tamper) is shown as the
change `build --force` would make; a file a build leaves in place gets a note and no hunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from cvspec.generate.compare import Change
from cvspec.generate.manifest import LOCK_NAME
from cvspec.generate.render import RenderedFile

NO_NEWLINE = "\\ No newline at end of file\n"


def file_diff(root: Path, change: Change, new: RenderedFile | None) -> list[str]:
    """The lines of one path's diff, each ending in a newline: a `#` note, then the hunks."""
    import difflib  # only when there is a diff to show: every command imports this module

    note = f"# {change.finding}: {change.path}: {change.reason}\n"
    if change.action in ("keep", "uninstalled") or (root / change.path).is_symlink():
        return [note]  # nothing to show, or nothing cvspec may read
    if change.action == "conflict":
        note = note.rstrip("\n") + "; `build` keeps it, `build --force` makes this change\n"
    old = _read(root / change.path) if change.action != "create" else None
    after = new.content if new is not None and change.action != "remove" else None
    old_name = f"a/{change.path}" if old is not None else "/dev/null"
    new_name = f"b/{change.path}" if after is not None else "/dev/null"
    old_text, new_text = _text(old), _text(after)
    if old_text is None or new_text is None:
        return [note, f"Binary files {old_name} and {new_name} differ\n"]
    hunks = difflib.unified_diff(
        _lines(old_text), _lines(new_text), old_name, new_name, lineterm="\n"
    )
    return [note, *_terminated(hunks)]


def project_diff(
    root: Path, changes: Sequence[Change], rendered: Sequence[RenderedFile]
) -> list[str]:
    """Every finding's diff in path order, the manifest's last (its digests follow the rest)."""
    new = {f.path: f for f in rendered}
    lines: list[str] = []
    for change in sorted(changes, key=lambda c: (c.path.endswith("/" + LOCK_NAME), c.path)):
        if change.finding is not None:
            lines.extend(file_diff(root, change, new.get(change.path)))
    return lines


def colored(lines: Sequence[str]) -> Iterator[str]:
    """The lines with ANSI colors, as `git diff` shows them on a terminal."""
    for line in lines:
        if line.startswith(("---", "+++")):
            yield f"\x1b[1m{line[:-1]}\x1b[0m\n"
        elif line.startswith("@@"):
            yield f"\x1b[36m{line[:-1]}\x1b[0m\n"
        elif line.startswith("-"):
            yield f"\x1b[31m{line[:-1]}\x1b[0m\n"
        elif line.startswith("+"):
            yield f"\x1b[32m{line[:-1]}\x1b[0m\n"
        elif line.startswith("#"):
            yield f"\x1b[33m{line[:-1]}\x1b[0m\n"
        else:
            yield line


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _text(data: bytes | None) -> str | None:
    """Text of a file; "" for an absent one; None for bytes that are not UTF-8 text."""
    if data is None:
        return ""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    """Lines split at `\\n` only, as git splits them (a `\\r` stays in its line)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _terminated(lines: Iterator[str]) -> Iterator[str]:
    """Every line ends in a newline; a last line without one gets git's marker after it."""
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n"
            yield NO_NEWLINE
