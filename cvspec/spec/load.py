"""Load one YAML 1.2 spec file into plain data plus a source map of every key and value."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.errors import Diagnostic, Origin, SpecError

KeyPath = tuple[str | int, ...]


class RawSpec(NamedTuple):
    """Spec data before validation, with the origin of every value and every mapping key."""

    data: dict[str, Any]
    values: dict[KeyPath, Origin]
    keys: dict[KeyPath, Origin]
    sources: dict[str, str]  # display file name -> its text, for carets under errors


def display_path(path: Path) -> str:
    """Path as a user should read it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_spec_text(path: Path) -> str:
    """Read a spec file, turning OS errors into a diagnostic.

    Newlines are read as `\n` and a leading UTF-8 byte-order mark is dropped: a spec checked
    out with CRLF (git autocrlf) or saved with a BOM (Windows editors) is the same spec, with
    the same digest in cvspec.lock, as the LF file without one.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(
            [Diagnostic("file-not-found", f"spec file not found: {display_path(path)}")]
        ) from None
    except UnicodeDecodeError as exc:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # exc.start counts from after it
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        origin = Origin("file", display_path(path), line, col)
        problem = f"not UTF-8 text (byte 0x{data[exc.start]:02x})"
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Windows PowerShell's `>`, Notepad's
            problem = "UTF-16 text (it starts with UTF-16's byte-order mark), not UTF-8"
        raise SpecError(
            [Diagnostic("encoding", problem, origin, "save the file as UTF-8")]
        ) from None
    except OSError as exc:
        raise SpecError(
            [
                Diagnostic(
                    "file-unreadable", f"cannot read {display_path(path)}: {exc.strerror or exc}"
                )
            ]
        ) from None


_CACHE: dict[tuple[Path, int, int], RawSpec] = {}


def load_file(path: Path) -> RawSpec:
    """Load a spec file; a YAML error, duplicate key or non-mapping root is a SpecError.

    Parsed files are kept for the life of the process (a partial that 200 specs extend is
    parsed once); callers must treat the returned data as read-only.
    """
    try:
        stat = path.stat()
        key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    except OSError:
        return load_text(read_spec_text(path), display_path(path))
    if key not in _CACHE:
        _CACHE[key] = load_text(read_spec_text(path), display_path(path))
    return _CACHE[key]


def load_text(text: str, file: str) -> RawSpec:
    """Parse YAML text (YAML 1.2, duplicate keys forbidden) into a RawSpec."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        raise SpecError([_yaml_diagnostic(exc, file, text)]) from None
    except YAMLError as exc:
        raise SpecError([Diagnostic("yaml-syntax", str(exc), Origin("file", file, 1, 1))]) from None
    sources = {file: text}
    if len(docs) > 1:
        raise SpecError(
            [
                Diagnostic(
                    "yaml-multidoc",
                    "a spec file holds one YAML document, found several",
                    Origin("file", file, 1, 1),
                )
            ]
        )
    root = docs[0] if docs else None
    if root is None:
        raise SpecError([Diagnostic("empty-spec", "the spec is empty", Origin("file", file, 1, 1))])
    walker = _Walker(file)
    data = walker.convert(root, (), (0, 0))
    if not isinstance(data, dict):
        raise SpecError(
            [
                Diagnostic(
                    "not-a-mapping",
                    "the top level of a spec must be a mapping of keys",
                    Origin("file", file, 1, 1),
                )
            ]
        )
    if walker.errors:
        raise SpecError(walker.errors)
    return RawSpec(data, walker.values, walker.keys, sources)


def _yaml_diagnostic(exc: Any, file: str, text: str = "") -> Diagnostic:
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    mark = exc.problem_mark or exc.context_mark
    origin = Origin("file", file, mark.line + 1, mark.column + 1) if mark else Origin("file", file)
    if type(exc).__name__ == "DuplicateKeyError":
        key = problem.split('"')[1] if '"' in problem else problem
        return Diagnostic(
            "duplicate-key",
            f"duplicate key '{key}'",
            origin,
            "each key may appear once per mapping; remove one of them",
            len(key),
        )
    opened = exc.context_mark
    if opened is not None and "flow" in (exc.context or ""):
        ended = "<stream end>" in problem
        later = mark is not None and mark.line > opened.line
        if ended or (later and not _closed(text, opened.line, opened.column)):
            # An unclosed bracket shows only where the next line's key breaks the flow (or
            # the file ends): the mistake is at the bracket, so that is the line to point at.
            line, col = _unclosed(text) or (opened.line, opened.column)
            comment = _comment_value(text, line, col)
            if comment is not None:  # `{slack: #cv}`: the comment took the closing bracket
                where = Origin("file", file, line + 1, comment[0] + 1)
                return Diagnostic(
                    "yaml-syntax",
                    f"'{comment[1]}' is read as a comment (a '#' after a space starts one), so "
                    f"the '{_char_at(text, line, col)}' before it is never closed",
                    where,
                    f"quote the value: {_quote(comment[1])}",
                    len(comment[1]),
                )
            where = Origin("file", file, line + 1, col + 1)
            bracket = _bracket_at(text, line, col) or ("{" if "mapping" in exc.context else "[")
            closing = "}" if bracket == "{" else "]"
            later = "" if ended else f" before line {mark.line + 1} ({problem})"
            return Diagnostic(
                "yaml-syntax",
                f"this '{bracket}' is never closed{later}",
                where,
                f"add the closing '{closing}'",
            )
    if "cannot start any token" in problem and mark is not None:
        char = _char_at(text, mark.line, mark.column)
        if char in ("@", "`"):
            value = _plain_value(text, mark.line, mark.column)
            return Diagnostic(
                "yaml-syntax",
                f"a value cannot start with '{char}' unquoted (YAML reserves it)",
                origin,
                f"quote the value: {_quote(value)}",
                len(value),
            )
    if "quoted scalar" in (exc.context or "") and opened is not None and "stream" in problem:
        # The file ends inside the string: the quote that opened it is the line to point at.
        quote = _char_at(text, opened.line, opened.column)
        return Diagnostic(
            "yaml-syntax",
            f"this {quote} is never closed: the rest of the file reads as one string",
            Origin("file", file, opened.line + 1, opened.column + 1),
            f"add the closing {quote} at the end of the value",
        )
    if "mapping values are not allowed" in problem and mark is not None:
        missing = _key_without_colon(text, mark.line)
        if missing is not None:  # `path data/x` then `format: ...`: one text of two lines
            line, col, key, rest = missing
            return Diagnostic(
                "yaml-syntax",
                f"'{key}' has no ':' after it, so YAML reads this line and line {mark.line + 1} "
                "as one text",
                Origin("file", file, line + 1, col + 1),
                f"write '{key}: {rest}'" if rest else f"write '{key}:' and its value after it",
                len(key),
            )
        whole = _value_with_colon(text, mark.line, mark.column)
        if whole is not None:
            return Diagnostic(
                "yaml-syntax",
                "': ' inside an unquoted value starts a mapping",
                origin,
                f"quote the value: {_quote(whole)}",
            )
    if "'\\t'" in problem or "\\t" in problem:
        return Diagnostic(
            "yaml-syntax", "a tab character cannot indent YAML", origin, "indent with spaces"
        )
    if "<block end>" in problem or "mapping values are not allowed" in problem:
        return Diagnostic(
            "yaml-syntax",
            f"bad indentation or structure: {problem}",
            origin,
            "keys of one mapping must start in the same column; a value on its "
            "own line goes under its key, indented",
        )
    if exc.context and exc.problem:
        problem = f"{exc.context.strip()}: {problem}"
    hint = None
    if "flow" in (exc.context or "") and "expected ','" in problem:
        hint = "a ',' goes between the entries of a [list] or {mapping}"
    return Diagnostic("yaml-syntax", problem, origin, hint)


def _key_without_colon(text: str, line: int) -> tuple[int, int, str, str] | None:
    """(line, column, key, value) of the line before `line` (0-based, blank and comment lines
    skipped) when it is a mapping key at the same indentation written without its ':'."""
    lines = text.splitlines()
    if line >= len(lines):
        return None
    indent = len(lines[line]) - len(lines[line].lstrip(" "))
    for prev in range(line - 1, -1, -1):
        content = lines[prev].split(" #", 1)[0].rstrip()
        if not content.strip() or content.lstrip().startswith("#"):
            continue
        words = content.split(None, 1)
        starts = len(content) - len(content.lstrip(" "))
        if starts != indent or ":" in content or words[0][0] in "-[{'\"&*!|>%@`":
            return None
        return prev, starts, words[0], words[1] if len(words) > 1 else ""
    return None


def _quote(value: str) -> str:
    """`value` as a quoted YAML scalar: single quotes, double where it holds one."""
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _row(text: str, line: int) -> str:
    """Line `line` (0-based) of `text`; "" past its end."""
    lines = text.splitlines()
    return lines[line] if 0 <= line < len(lines) else ""


def _char_at(text: str, line: int, col: int) -> str:
    row = _row(text, line)
    return row[col] if 0 <= col < len(row) else ""


def _bracket_at(text: str, line: int, col: int) -> str | None:
    char = _char_at(text, line, col)
    return char if char in ("[", "{") else None


def _plain_value(text: str, line: int, col: int) -> str:
    """The unquoted value starting at 0-based (line, col): up to a ',', ']' or '}' inside a
    flow collection, else to a comment or the end of the line."""
    row = _row(text, line)
    flow = any(c in "[{" for c in row[:col])
    stop = ",]}" if flow else ""
    end = col
    while end < len(row) and row[end] not in stop and row[end : end + 2] != " #":
        end += 1
    return row[col:end].rstrip()


def _comment_value(text: str, line: int, col: int) -> tuple[int, str] | None:
    """(column, value) of a comment that looks like a value, `#cv-alerts` in `{slack:
    #cv-alerts}`, after 0-based column `col` of `line`; None when there is none."""
    row = _row(text, line)
    for i, char in _unquoted(row, col):
        if char == "#" and row[i - 1] in " \t" and i + 1 < len(row) and row[i + 1] != " ":
            value = _plain_value(text, line, i)
            return (i, value) if value else None
    return None


def _unquoted(
    row: str, start: int = 0, opens: Callable[[int], bool] = lambda i: True
) -> Iterator[tuple[int, str]]:
    """(column, character) of each character of `row` from `start` that is outside a quoted
    string; `opens(i)` says whether a quote character at column i starts one."""
    quote = ""
    for i in range(start, len(row)):
        char = row[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and opens(i):
            quote = char
        else:
            yield i, char


def _value_with_colon(text: str, line: int, col: int) -> str | None:
    """The whole unquoted value of `key: value: more` when the ': ' at 0-based (line, col) is
    inside it (not the key's own colon); None otherwise."""
    row = _row(text, line)
    head = re.match(r"\s*(- +)?[^\s#'\"\[\]{},][^#:]*?:\s+", row)
    if head is None or head.end() > col or row[head.end()] in "'\"[{|>&*!%@`":
        return None
    value = row[head.end() :]
    return value.split(" #", 1)[0].rstrip() or None


# What goes before a '[' or '{' that opens a flow collection outside one: nothing (a value
# on its own line), a key's ':' or a '- ' item, then any anchor or tag (`key: &a [1]`).
_FLOW_START = re.compile(r"(?:|.*:\s|(?:.*\s)?[-?]\s)\s*(?:[&!]\S*\s+)*$")


def _unclosed(text: str) -> tuple[int, int] | None:
    """0-based (line, col) of the first '[' or '{' that is never closed: brackets counted
    outside quotes and comments, and only where they open a flow collection (not the '[' in
    a plain value like `Detects [circles, ...`)."""
    stack: list[tuple[int, int]] = []
    for number, row in enumerate(text.splitlines()):

        def opens(i: int, row: str = row) -> bool:
            return bool(stack) or i == 0 or row[i - 1] in " \t:,[{-"

        for i, char in _unquoted(row, 0, opens):
            if char == "#" and (i == 0 or row[i - 1] in " \t"):
                break
            elif char in "[{" and (stack or _FLOW_START.match(row[:i])):
                stack.append((number, i))
            elif char in "]}" and stack:
                stack.pop()
    return stack[0] if stack else None


def _closed(text: str, line: int, col: int) -> bool:
    """Whether the bracket at 0-based (line, col) of `text` is closed later: brackets counted
    outside quotes and comments (a flow collection's entries may span lines)."""
    lines = text.splitlines()
    if line >= len(lines) or col >= len(lines[line]):
        return False
    depth = 0
    for number in range(line, len(lines)):
        row = lines[number]
        for i, char in _unquoted(row, col if number == line else 0):  # a quote ends with its row
            if char == "#" and (i == 0 or row[i - 1] in " \t"):
                break
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return True
    return False


class _Walker:
    """Convert a ruamel round-trip tree to plain Python, recording positions on the way."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[KeyPath, Origin] = {}
        self.keys: dict[KeyPath, Origin] = {}
        self.errors: list[Diagnostic] = []

    def origin(self, pos: tuple[int, int] | None) -> Origin:
        if pos is None:
            return Origin("file", self.file)
        return Origin("file", self.file, pos[0] + 1, pos[1] + 1)

    def convert(self, node: Any, path: KeyPath, pos: tuple[int, int] | None) -> Any:
        from ruamel.yaml.comments import (
            CommentedMap,
            CommentedOrderedMap,
            CommentedSeq,
            CommentedSet,
            TaggedScalar,
        )

        self.values[path] = self.origin(pos)
        tag = _written_tag(node)
        if tag is not None or isinstance(node, (CommentedOrderedMap, CommentedSet, TaggedScalar)):
            shown = tag or ("!!omap" if isinstance(node, CommentedOrderedMap) else "!!set")
            self.errors.append(
                Diagnostic(
                    "yaml-tag",
                    f"YAML tags are not part of the spec language ({shown})",
                    self.origin(pos),
                    "remove the tag; write plain mappings, lists and scalars",
                )
            )
            return None
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key, value in node.items():
                kpos = _safe(node.lc.key, key)
                if not isinstance(key, str):
                    shown = yaml_scalar(key)
                    self.errors.append(
                        Diagnostic(
                            "key-type",
                            f"keys must be strings, found {shown}",
                            self.origin(kpos),
                            f"quote it: '{shown}'",
                            len(shown),
                        )
                    )
                    continue
                self.keys[(*path, key)] = self.origin(kpos)
                out[key] = self.convert(value, (*path, key), _safe(node.lc.value, key))
            return out
        if isinstance(node, CommentedSeq):
            return [self.convert(v, (*path, i), _safe(node.lc.item, i)) for i, v in enumerate(node)]
        return _plain_scalar(node)


def _written_tag(node: Any) -> str | None:
    """An explicit tag on a node, as the user wrote it (`!!python/object`, `!foo`)."""
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None)
    if not value:
        return None
    text = str(value)
    return (
        "!!" + text[len("tag:yaml.org,2002:") :] if text.startswith("tag:yaml.org,2002:") else text
    )


def yaml_scalar(value: Any) -> str:
    """A plain scalar as YAML writes it: null, true, 2024-01-01, [a, b]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _safe(getter: Any, key: Any) -> tuple[int, int] | None:
    try:
        line, col = getter(key)
        return int(line), int(col)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    # timestamps and other resolved scalars stay text, as the user wrote them
    return str(value)
