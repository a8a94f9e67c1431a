"""Map validation error locations to key paths in the user's YAML and to file positions."""

from __future__ import annotations

import re
from typing import Any

from cvspec.errors import Origin
from cvspec.spec.introspect import KeyPath
from cvspec.spec.load import RawSpec

TASK_TAGS = ("classification", "detection")


def data_path(raw: RawSpec, loc: tuple[Any, ...]) -> tuple[KeyPath, bool]:
    """The key path of a pydantic `loc` in the data, and whether it points at a mapping key.

    pydantic adds union tags and member names (`classification`, `RatioSplits`) and `[key]`
    for errors in a dict's keys; only keys that are really in the data are kept.
    """
    if loc and loc[0] in TASK_TAGS and raw.data.get("task") == loc[0]:
        loc = loc[1:]
    path: list[str | int] = []
    node: Any = raw.data
    on_key = False
    for i, part in enumerate(loc):
        if part == "[key]":
            on_key = True
            break
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key
        elif isinstance(node, dict) and isinstance(part, str) and not _member(part):
            path.append(part)
            node = None
    return tuple(path), on_key


def _member(part: str) -> bool:
    return bool(re.match(r"^[A-Z]|.*[\[\]]", part))


def lookup(raw: RawSpec, path: KeyPath) -> Any:
    """The value at `path`, or None when it is not there."""
    node: Any = raw.data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def value_origin(raw: RawSpec, path: KeyPath) -> Origin | None:
    """Where the value at `path` is written; for an empty value or a missing key, its key."""
    if path in raw.values:
        if lookup(raw, path) is None and path in raw.keys:
            return raw.keys[path]  # `key:` with nothing after it: point at the key
        return raw.values[path]
    return key_origin(raw, path[:-1]) if path else raw.values.get(())


def key_origin(raw: RawSpec, path: KeyPath) -> Origin | None:
    """Where the key of `path` is written, else the nearest enclosing key or value."""
    for n in range(len(path), -1, -1):
        sub = path[:n]
        if sub in raw.keys:
            return raw.keys[sub]
        if sub in raw.values and (n == 0 or isinstance(sub[-1], int)):
            return raw.values[sub]
    return None


def span(raw: RawSpec, path: KeyPath, origin: Origin | None) -> int:
    """How many characters of the value at `path` the caret should underline."""
    if origin is None or origin.kind == "set":
        return 1
    if origin == raw.keys.get(path) and path and isinstance(path[-1], str):
        return len(path[-1])
    node = lookup(raw, path)
    if isinstance(node, (dict, list)) or node is None:
        return 1
    text = str(node).lower() if isinstance(node, bool) else str(node)
    return len(text) if "\n" not in text and len(text) < 80 else 1


def dotted(path: KeyPath) -> str:
    """`a.b[0].c` for a key path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"


_COMMENT_VALUE = re.compile(
    r"""(?:"[^"]*"|'[^']*'|[^\s:#'"][^:#]*?)\s*:\s+(#\S(?:.*?\S)?)(?:\s+#.*)?\s*$"""
)


def comment_value(raw: RawSpec, path: KeyPath) -> str | None:
    """`#cv-alerts` when the empty value at `path` was written `key: #cv-alerts`: a comment
    right after the key (no space after '#') that was surely meant as the value."""
    origin = raw.keys.get(path)
    if lookup(raw, path) is not None or origin is None or not origin.file or not origin.line:
        return None
    lines = raw.sources.get(origin.file, "").split("\n")
    row = lines[origin.line - 1] if origin.line <= len(lines) else ""
    found = _COMMENT_VALUE.match(row, max(origin.col - 1, 0))
    return found.group(1) if found else None
