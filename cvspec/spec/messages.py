"""Turn pydantic error records into plain-language messages and hints, without locations."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, NamedTuple

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "str": "a string",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "decimal": "a number",
}


class Explained(NamedTuple):
    """A pydantic error in words: a code, the message (no key path) and an optional hint."""

    code: str
    message: str
    hint: str | None = None


def show(value: Any) -> str:
    """A value as the user would write it in YAML, shortened."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, (list, tuple)):
        text = "a list"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def options_of(ctx: dict[str, Any]) -> list[str]:
    """The allowed values pydantic lists in an enum/literal error's context."""
    expected = str(ctx.get("expected", ctx.get("expected_tags", "")))
    quoted = re.findall(r"'([^']*)'", expected)
    return quoted or [p for p in re.split(r",\s*|\s+or\s+", expected) if p]


def did_you_mean(value: Any, options: list[str]) -> str | None:
    """`did you mean 'x'?` when a close option exists."""
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def explain(err: dict[str, Any]) -> Explained:
    """Explain one pydantic error record (from ValidationError.errors())."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    if kind in ("literal_error", "enum"):
        options = options_of(ctx)
        listed = ", ".join(repr(o) for o in options)
        return Explained(
            "bad-value", f"{show(value)} is not one of {listed}", did_you_mean(value, options)
        )
    if kind == "int_from_float":
        kind = "int_type"
    base = kind.split("_")[0]
    if kind.endswith(("_type", "_parsing")) and base in _TYPE_WORDS:
        hint = None
        if base == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = f'quote it: "{value}"'
        if base == "bool":
            hint = _bool_hint(value)
        if base in ("int", "float", "decimal"):
            hint = _number_hint(value, base == "int")
        return Explained("type", f"expected {_TYPE_WORDS[base]}, got {show(value)}", hint)
    if kind == "too_short":
        least = int(ctx.get("min_length", 1))
        text = "must not be empty" if least == 1 else f"needs at least {least} items"
        return Explained("bad-value", text)
    if kind == "too_long":
        return Explained("bad-value", f"has more than {ctx.get('max_length')} items")
    if kind == "byte_size_unit":
        return Explained(
            "bad-value",
            f"unknown size unit {str(ctx.get('unit', ''))!r}",
            "write a size like 5MB, 512KiB or 2GB",
        )
    if kind == "byte_size":
        return Explained("type", f"expected a size like 5MB, got {show(value)}")
    message = str(err.get("msg", kind))
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    message = re.sub(r"^Input should", "must", message)
    message = re.sub(r"^String should", "must", message)
    if not isinstance(value, (dict, list)):
        message += f" (got {show(value)})"
    return Explained("bad-value", message, ctx.get("hint"))


def _bool_hint(value: Any) -> str | None:
    """How to write the boolean `value` was meant to be."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return f"write {value.lower()} without quotes"
    if isinstance(value, str):
        return "write true or false (YAML 1.2: yes/no/on/off are plain strings)"
    if value in (0, 1) and isinstance(value, (int, float)):
        return f"write {'true' if value else 'false'}"
    return None


def _number_hint(value: Any, integer: bool) -> str | None:
    """How to write the number `value` was meant to be: `write 10 without quotes` for "10",
    `write 1000` for "1_000" or 1000.0 where an integer goes."""
    if isinstance(value, float):
        return f"write {int(value)}" if integer and value.is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    plain = text.replace("_", "").lstrip("+")
    try:
        number = float(plain)
    except ValueError:
        return None
    if not math.isfinite(number) or (integer and not number.is_integer()):
        return None
    written = str(int(number)) if integer and not plain.lstrip("-").isdigit() else plain
    return f"write {written} without quotes" if written == text else f"write {written}"
