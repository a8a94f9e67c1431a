"""`cvspec explain`: the resolved spec, every value with where it came from."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cvspec.cli.common import (
    FormatOpt,
    ProfileOpt,
    SetOpt,
    check_format,
    json_errors,
    load_one,
    print_json,
)
from cvspec.errors import DEFAULT, UsageError
from cvspec.spec.load import KeyPath

ALIGN_AT = 60  # the widest `key = value` the comment column makes room for


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
    key: Annotated[
        str | None,
        typer.Argument(
            help="Only this key (dotted), e.g. train.optimizer.lr; a list item: "
            "monitor.alerts[0] or monitor.alerts.0.",
            metavar="KEY",
        ),
    ] = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    format_: FormatOpt = "text",
) -> None:
    """Print each resolved value with its provenance: file:line, --set, profile or default.

    --format json prints one object: {"spec", "values": [{"key", "value", "origin", "file",
    "line", "col", "swept"}]}: the value as JSON, where it came from (`origin` as the text
    output says it; file, line and col when it came from a file, else null and 0) and the
    values train.sweep gives it instead (null when it does not).
    """
    as_json = check_format(format_)
    with json_errors(as_json):
        _explain(spec, key, profile, set_, as_json)


def _explain(
    spec: Path, key: str | None, profile: str | None, set_: list[str] | None, as_json: bool
) -> None:
    loaded = load_one(spec, profile, set_)
    data = loaded.spec.model_dump(mode="json", by_alias=True)
    swept = {
        tuple(key.split(".")): ", ".join(json.dumps(v) for v in values)
        for key, values in loaded.spec.train.sweep.items()
    }
    rows = [
        (dotted(path), value, _origin(loaded.raw.values, path, swept.get(path)))
        for path, value in leaves(data, ())
    ]
    if key:
        from cvspec.spec.compose import parse_key

        path = parse_key(key)
        key = dotted(path) if path is not None else key  # a list item as .0 or [0]
        chosen = [
            r
            for r in rows
            if r[0] == key or r[0].startswith(key + ".") or r[0].startswith(key + "[")
        ]
        if not chosen:
            close = difflib.get_close_matches(key, [r[0] for r in rows], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"no key '{key}' in the resolved spec{hint}")
        rows = chosen
    if as_json:
        print_json({"spec": str(spec), "values": [_json_row(loaded, swept, r) for r in rows]})
        return
    # Comments line up in one column; a long value (a list of patterns) goes past it rather
    # than pushing every other line's comment out with it.
    lengths = [len(r[0]) + len(r[1]) + 3 for r in rows]
    width = max((n for n in lengths if n <= ALIGN_AT), default=0)
    for name, value, origin in rows:
        print(f"{f'{name} = {value}':<{width}}  # {origin}")


def leaves(value: Any, path: KeyPath) -> list[tuple[KeyPath, str]]:
    """(path, JSON text) for every scalar, or list of scalars, in resolved spec data."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, json.dumps(value, ensure_ascii=False))]


def dotted(path: KeyPath) -> str:
    """`a.b[0].c` for a key path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _origin(values: dict[KeyPath, Any], path: KeyPath, swept: str | None) -> str:
    origin = str(values.get(path, DEFAULT).describe())
    return f"{origin}; each run of train.sweep sets it instead ({swept})" if swept else origin


def _json_row(loaded: Any, swept: dict[KeyPath, str], row: tuple[str, str, str]) -> dict[str, Any]:
    """One value of `explain --format json`."""
    from cvspec.spec.compose import parse_key

    name, value, origin = row
    path = parse_key(name) or ()
    where = loaded.raw.values.get(path, DEFAULT)
    points = loaded.spec.train.sweep.get(name)
    return {
        "key": name,
        "value": json.loads(value),
        "origin": origin,
        "file": where.file if where.kind in ("file", "profile") else None,
        "line": where.line if where.kind in ("file", "profile") else 0,
        "col": where.col if where.kind in ("file", "profile") else 0,
        "swept": list(points) if points is not None else None,
    }
