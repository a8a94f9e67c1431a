"""Warnings about a valid spec: values a person still has to fill in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cvspec.errors import Diagnostic
from cvspec.spec.load import KeyPath, RawSpec

PLACEHOLDER = re.compile(r"\b(TODO|FIXME|TBD)\b")


def warnings(raw: RawSpec) -> list[Diagnostic]:
    """A `warning[placeholder]` at each string value that still says TODO (FIXME, TBD)."""
    found = []
    for path, value in _strings(raw.data, ()):
        if PLACEHOLDER.search(value):
            key = ".".join(str(p) for p in path)
            found.append(
                Diagnostic(
                    "placeholder",
                    f"{key} is still a placeholder: {value!r}",
                    raw.values.get(path),
                    "generated files repeat it (image labels, model card, dashboards): "
                    "write the real value before you ship",
                    severity="warning",
                )
            )
    return found


def _strings(node: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if path or key != "profiles":  # a profile's values count when it is applied
                yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))
