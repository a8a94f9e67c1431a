"""Validate a composed spec: pydantic models, then cross-field rules, all errors at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from cvspec.errors import Diagnostic, SpecError
from cvspec.spec.compose import merge, profile_names, select_profile
from cvspec.spec.introspect import KeyPath, field_names_at
from cvspec.spec.load import RawSpec
from cvspec.spec.locate import (
    TASK_TAGS,
    comment_value,
    data_path,
    dotted,
    key_origin,
    lookup,
    span,
    value_origin,
)
from cvspec.spec.messages import did_you_mean, explain, options_of, show

_SPLITS_HINT = (
    "ratio splits take {val, test, seed} (fractions; train gets the rest); directory splits "
    "take {train, val, test} (folders); do not mix them"
)


def validate(raw: RawSpec, variants: Mapping[str, Callable[[], RawSpec]] | None = None) -> Any:
    """Return the validated Spec for `raw`, or raise SpecError with every problem found.

    Each profile is checked too: `variants` maps a profile name to a function composing the
    spec with it (None: each profile of `raw` merged onto `raw`; empty: none). An error that
    the spec with a profile has and `raw` has not is reported, marked with the profile's name,
    wherever it points: at the profile's value or at a value of the spec the profile broke.
    """
    diags, spec = _validate_once(raw)
    if variants is None:
        variants = {name: partial(_merged, raw, name) for name in profile_names(raw)}
    seen = {where(d) for d in diags}
    for name, make in variants.items():
        try:
            found, _ = _validate_once(make())
        except SpecError as exc:
            found = list(exc.diagnostics)
        diags.extend(in_profile(d, name, raw) for d in found if where(d) not in seen)
    if diags:
        raise SpecError(_dedupe(diags))
    return spec


def _merged(raw: RawSpec, name: str) -> RawSpec:
    return merge(raw, select_profile(raw, name))


def where(diag: Diagnostic) -> tuple[Any, ...]:
    """What makes two diagnostics the same finding: the code and the place it points at (the
    message, where there is no line: a --set flag)."""
    origin = diag.origin
    if origin is not None and origin.line:
        return (diag.code, origin.file, origin.line, origin.col)
    return (diag.code, diag.message, origin.detail if origin is not None else None)


def in_profile(diag: Diagnostic, name: str, raw: RawSpec | None = None) -> Diagnostic:
    """`diag`, found with profile `name` applied, marked "(in profile 'NAME')"; at a value of
    the spec itself, with a hint naming what the profile sets when it has none."""
    origin = diag.origin
    if origin is not None and origin.kind == "profile":
        return diag
    if origin is None or origin.kind != "file":
        return diag._replace(message=f"{diag.message} (in profile '{name}')")
    hint = diag.help
    if hint is None and raw is not None:
        hint = _profile_sets(raw, name)
    return diag._replace(origin=origin._replace(kind="profile", detail=name), help=hint)


def _profile_sets(raw: RawSpec, name: str) -> str | None:
    """`profile 'ci' (specs/p.yaml:35) sets train.epochs`: the keys the profile changes."""
    body = lookup(raw, ("profiles", name))
    if not isinstance(body, dict):
        return None
    keys = [dotted(p) for p in _leaf_paths(body, ())]
    if not keys:
        return None
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    origin = raw.keys.get(("profiles", name))
    at = f" ({origin.file}:{origin.line})" if origin is not None and origin.line else ""
    return f"profile '{name}'{at} sets {shown}"


def _leaf_paths(value: Any, path: KeyPath) -> list[KeyPath]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    return [path]


def _validate_once(raw: RawSpec) -> tuple[list[Diagnostic], Any]:
    from pydantic import ValidationError

    from cvspec.spec.model import SPEC_ADAPTER
    from cvspec.spec.rules import check_rules

    try:
        spec = SPEC_ADAPTER.validate_python(raw.data)
    except ValidationError as exc:
        return [_from_pydantic(dict(err), raw) for err in exc.errors(include_url=False)], None
    diags = []
    for v in check_rules(spec):
        value = lookup(raw, v.loc)
        on_key = v.code.endswith("-key") or isinstance(value, dict)
        origin = (key_origin if on_key and v.loc in raw.keys else value_origin)(raw, v.loc)
        diags.append(Diagnostic(v.code, v.message, origin, v.help, span(raw, v.loc, origin)))
    return diags, spec


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for d in diags:
        if (d.code, d.message, d.origin) not in seen:
            seen.add((d.code, d.message, d.origin))
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
    if task in TASK_TAGS:
        return [model.ClassificationSpec if task == "classification" else model.DetectionSpec]
    return [model.ClassificationSpec, model.DetectionSpec]


def _from_pydantic(err: dict[str, Any], raw: RawSpec) -> Diagnostic:
    kind: str = err["type"]
    path, on_key = data_path(raw, tuple(err["loc"]))
    if kind == "extra_forbidden":
        return _unknown_key(raw, path)
    if kind in ("missing", "union_tag_not_found"):
        path = ("task",) if kind == "union_tag_not_found" else path
        where = "at the top level" if len(path) == 1 else f"in '{dotted(path[:-1])}'"
        hints: dict[KeyPath, str] = {
            ("cvspec",): "add `cvspec: 1` (the spec language version) at the top",
            ("task",): "task: classification, or task: detection",
        }
        hint = hints.get(path)
        origin = key_origin(raw, path[:-1])
        return Diagnostic(
            "missing-key",
            f"missing required key '{path[-1]}' {where}",
            origin,
            hint,
            span(raw, path[:-1], origin),
        )
    if kind == "union_tag_invalid":
        tag, origin = (err.get("ctx") or {}).get("tag"), value_origin(raw, ("task",))
        options = options_of(err.get("ctx") or {})
        return Diagnostic(
            "bad-value",
            f"task: {show(tag)} is not one of {', '.join(repr(o) for o in options)}",
            origin,
            did_you_mean(tag, options),
            len(str(tag)),
        )
    if kind == "augment_step":
        return _augment_step(raw, path, err.get("input"))
    if on_key:
        bad = err.get("input")
        origin = raw.keys.get((*path, bad)) if isinstance(bad, str) else None
        message = explain(err).message.split(" (got ")[0]
        return Diagnostic(
            "bad-key",
            f"{dotted(path)}: key {show(bad)} {message}",
            origin or key_origin(raw, path),
            None,
            len(str(bad)),
        )
    origin = value_origin(raw, path)
    value = err.get("input")
    if path == ("cvspec",):
        return Diagnostic(
            "version",
            f"cvspec: {show(value)} is not a language version this "
            "cvspec reads (it reads version 1)",
            origin,
            "write `cvspec: 1`",
            span(raw, path, origin),
        )
    if path == ("data", "classes") and isinstance(value, str):
        return Diagnostic(
            "type",
            f"data.classes: expected 'auto' or a list of class names, got {show(value)}",
            origin,
            f"for one class: [{value}]",
            span(raw, path, origin),
        )
    code, message, hint = explain(err)
    comment = comment_value(raw, path) if value is None else None
    if comment is not None:
        hint = f"the value is a comment: quote it: '{comment}'"
    if path[:2] == ("data", "splits") and hint is None:
        hint = _SPLITS_HINT
    if path[:2] == ("evaluate", "gates") and len(path) == 3 and hint is None:
        hint = "a gate is a mapping with min and/or max, e.g. {min: 0.9}"
    return Diagnostic(code, f"{dotted(path)}: {message}", origin, hint, span(raw, path, origin))


def _unknown_key(raw: RawSpec, path: KeyPath) -> Diagnostic:
    key, parent = str(path[-1]), path[:-1]
    known = field_names_at(_roots(raw), parent)
    origin = key_origin(raw, path)
    where = "at the top level" if not parent else f"in '{dotted(parent)}'"
    if parent == ("data", "splits"):
        return Diagnostic(
            "unknown-key", f"unknown key '{key}' in 'data.splits'", origin, _SPLITS_HINT, len(key)
        )
    other = _other_task(raw, path)
    if other:
        return Diagnostic(
            "gate-task",
            f"gate '{key}' does not exist for task {raw.data.get('task')}; it is a {other} gate",
            origin,
            f"gates for {raw.data.get('task')}: {', '.join(known)}",
            len(key),
        )
    if path == ("data", "relabel") and raw.data.get("task") == "detection":
        return Diagnostic(
            "unknown-key",
            "data.relabel is for classification: a detector's labels are boxes",
            origin,
            "correct the label files, or leave the image out with data.exclude",
            len(key),
        )
    hint = did_you_mean(key, known) or (f"known keys: {', '.join(known)}" if known else None)
    return Diagnostic("unknown-key", f"unknown key '{key}' {where}", origin, hint, len(key))


def _augment_step(raw: RawSpec, path: KeyPath, value: Any) -> Diagnostic:
    from cvspec.spec.model import AUGMENTATIONS

    names = list(AUGMENTATIONS)
    if isinstance(value, str):
        hint = (
            f"write it as `- {value}: {{}}` (default settings)"
            if value in names
            else (did_you_mean(value, names) or f"augmentations: {', '.join(names)}")
        )
        origin = value_origin(raw, path)
        return Diagnostic(
            "augment",
            f"{dotted(path)}: an augment step is a mapping {{name: {{settings}}}}",
            origin,
            hint,
            span(raw, path, origin),
        )
    if isinstance(value, dict) and len(value) == 1:
        name = str(next(iter(value)))
        origin = key_origin(raw, (*path, name))
        return Diagnostic(
            "augment",
            f"unknown augmentation '{name}'",
            origin,
            did_you_mean(name, names) or f"augmentations: {', '.join(names)}",
            len(name),
        )
    return Diagnostic(
        "augment",
        f"{dotted(path)}: an augment step is a mapping with exactly one key, the augmentation name",
        value_origin(raw, path),
        f"augmentations: {', '.join(names)}",
    )


def _other_task(raw: RawSpec, path: KeyPath) -> str | None:
    """The task a misplaced gate belongs to, for `evaluate.gates.<name>` only."""
    from cvspec.spec.model import GATES

    task = raw.data.get("task")
    if len(path) != 3 or path[:2] != ("evaluate", "gates") or task not in GATES:
        return None
    return next((t for t, gates in GATES.items() if t != task and path[2] in gates), None)
