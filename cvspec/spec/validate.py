"""Validate a composed spec: pydantic models, then cross-field rules, all errors at once."""

from __future__ import annotations

import difflib
import re
from typing import Any

from cvspec.errors import Diagnostic, Origin, SpecError
from cvspec.spec.compose import merge, select_profile
from cvspec.spec.introspect import KeyPath, field_names_at
from cvspec.spec.load import RawSpec

_TASK_TAGS = ("classification", "detection")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
}


def validate(raw: RawSpec) -> Any:
    """Return the validated Spec for `raw`, or raise SpecError with every problem found."""
    diags, spec = _validate_once(raw)
    profiles = raw.data.get("profiles")
    if isinstance(profiles, dict):
        for name in profiles:
            try:
                variant = merge(raw, select_profile(raw, name))
            except SpecError as exc:
                diags.extend(exc.diagnostics)
                continue
            found, _ = _validate_once(variant)
            diags.extend(
                d
                for d in found
                if d.origin is not None and d.origin.kind == "profile" and d.origin.detail == name
            )
    if diags:
        raise SpecError(_dedupe(diags))
    return spec


def _validate_once(raw: RawSpec) -> tuple[list[Diagnostic], Any]:
    from pydantic import ValidationError

    from cvspec.spec.model import SPEC_ADAPTER
    from cvspec.spec.rules import check_rules

    try:
        spec = SPEC_ADAPTER.validate_python(raw.data)
    except ValidationError as exc:
        return [_from_pydantic(err, raw) for err in exc.errors(include_url=False)], None
    diags = []
    for v in check_rules(spec):
        index = raw.keys if v.code.endswith("-key") else raw.values
        origin = index.get(v.loc) or raw.values.get(v.loc) or _nearest(raw, v.loc)
        diags.append(Diagnostic(v.code, v.message, origin, v.help, _span(raw, v.loc, origin)))
    return diags, spec


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for d in diags:
        key = (d.code, d.message, d.origin)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return sorted(
        out,
        key=lambda d: (
            (d.origin.file or "", d.origin.line, d.origin.col) if d.origin else ("", 0, 0)
        ),
    )


def _roots(raw: RawSpec) -> list[Any]:
    from cvspec.spec import model

    task = raw.data.get("task")
    if task == "detection":
        return [model.DetectionSpec]
    if task == "classification":
        return [model.ClassificationSpec]
    return [model.ClassificationSpec, model.DetectionSpec]


def _data_path(raw: RawSpec, loc: tuple[Any, ...]) -> KeyPath:
    """Drop union tags and member names pydantic adds, keeping only keys that are in the data."""
    if loc and loc[0] in _TASK_TAGS and raw.data.get("task") == loc[0]:
        loc = loc[1:]
    path: list[str | int] = []
    node: Any = raw.data
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key: its parent's position is used
        elif isinstance(node, dict) and isinstance(part, str) and not _looks_like_member(part):
            path.append(part)
            node = None
    return tuple(path)


def _looks_like_member(part: str) -> bool:
    return bool(re.match(r"^[A-Z]|.*[\[\]]", part))


def _nearest(raw: RawSpec, path: KeyPath) -> Origin | None:
    for n in range(len(path), -1, -1):
        if path[:n] in raw.values:
            return raw.values[path[:n]]
    return None


def _span(raw: RawSpec, path: KeyPath, origin: Origin | None) -> int:
    if origin is None or origin.kind == "set":
        return 1
    node: Any = raw.data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return 1
    if isinstance(node, (dict, list)) or node is None:
        return 1
    text = str(node).lower() if isinstance(node, bool) else str(node)
    return len(text) if "\n" not in text and len(text) < 80 else 1


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"


def _show(value: Any) -> str:
    text = (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else "null"
        if value is None
        else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _from_pydantic(err: Any, raw: RawSpec) -> Diagnostic:
    kind: str = err["type"]
    path = _data_path(raw, tuple(err["loc"]))
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(path[-1])
        known = field_names_at(_roots(raw), path[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        parent = _dotted(path[:-1])
        where = "at the top level" if not path[:-1] else f"in '{parent}'"
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else (f"known keys: {', '.join(known)}" if known else None)
        )
        origin = raw.keys.get(path) or _nearest(raw, path)
        other = _other_task(raw, path)
        if other:
            hint = f"gates for {raw.data.get('task')}: {', '.join(known)}"
            return Diagnostic(
                "gate-task",
                f"gate '{key}' does not exist for task "
                f"{raw.data.get('task')}; it is a {other} gate",
                origin,
                hint,
                len(key),
            )
        return Diagnostic("unknown-key", f"unknown key '{key}' {where}", origin, hint, len(key))
    if kind in ("missing", "union_tag_not_found"):
        if kind == "union_tag_not_found":
            path = ("task",)
        origin = raw.values.get(path[:-1]) or _nearest(raw, path)
        where = "at the top level" if len(path) == 1 else f"in '{_dotted(path[:-1])}'"
        return Diagnostic("missing-key", f"missing required key '{path[-1]}' {where}", origin)
    origin = raw.values.get(path) or _nearest(raw, path)
    span = _span(raw, path, origin)
    value = err.get("input")
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        if kind == "union_tag_invalid":
            path, value = ("task",), ctx.get("tag")
            origin = raw.values.get(path)
            options = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        else:
            options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else None
        if path == ("data", "format") and raw.data.get("task") in _TASK_TAGS:
            other = _TASK_TAGS[1 - _TASK_TAGS.index(raw.data["task"])]
            hint = (
                hint or f"formats of {raw.data['task']}: {', '.join(options)}; is the task {other}?"
            )
        return Diagnostic(
            "bad-value",
            f"{_dotted(path)}: {_show(value)} is not one of {', '.join(repr(o) for o in options)}",
            origin,
            hint,
            span,
        )
    base = kind.split("_")[0]
    if kind.endswith(("_type", "_parsing")) and base in _TYPE_WORDS:
        return Diagnostic(
            "type",
            f"{_dotted(path)}: expected {_TYPE_WORDS[base]}, got {_describe_input(value)}",
            origin,
            None,
            span,
        )
    message = str(err["msg"])
    message = re.sub(r"^Value error, ", "", message)
    message = re.sub(r"^Input should", "must", message)
    message = re.sub(r"^Assertion failed, ", "", message)
    shown = f" (got {_show(value)})" if not isinstance(value, (dict, list)) else ""
    return Diagnostic("bad-value", f"{_dotted(path)}: {message}{shown}", origin, None, span)


def _other_task(raw: RawSpec, path: KeyPath) -> str | None:
    """The task a misplaced gate belongs to, for `evaluate.gates.<name>` only."""
    from cvspec.spec.model import GATES

    task = raw.data.get("task")
    if len(path) != 3 or path[:2] != ("evaluate", "gates") or task not in GATES:
        return None
    return next((t for t, gates in GATES.items() if t != task and path[2] in gates), None)


def _describe_input(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _show(value)
