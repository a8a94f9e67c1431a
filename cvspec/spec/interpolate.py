"""Resolve `${a.b}` references in a composed spec (OmegaConf syntax, node references only)."""

from __future__ import annotations

import copy
import re
from typing import Any

from cvspec.errors import Diagnostic, SpecError
from cvspec.spec.load import KeyPath, RawSpec

_INTERP = re.compile(r"\$\{(?!\{)")
_RESOLVER = re.compile(r"\$\{\s*[A-Za-z_][\w.]*\s*:")


def interpolate(raw: RawSpec) -> RawSpec:
    """Resolve `${a.b}` references (OmegaConf syntax) in every string outside `profiles`."""
    found = [
        (p, s) for p, s in _strings(raw.data, ()) if _INTERP.search(s) and p[:1] != ("profiles",)
    ]
    if not found:
        return raw
    errors: list[Diagnostic] = []
    for path, text in found:
        if _RESOLVER.search(text):
            errors.append(
                Diagnostic(
                    "interpolation",
                    f"resolver calls are not allowed in '{text}'",
                    raw.values.get(path),
                    "only ${path.to.key} references: a build depends on its spec alone",
                )
            )
    if errors:
        raise SpecError(errors)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    literals: dict[str, str] = {}
    candidates = {p for p, _ in found}

    def shield(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {
                k: shield(v, (*path, k)) for k, v in value.items() if (*path, k) != ("profiles",)
            }
        if isinstance(value, list):
            return [shield(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and path not in candidates and ("${" in value or value == "???"):
            token = f"cvspec-literal-{len(literals)}"
            literals[token] = value
            return token
        return value

    data = copy.deepcopy(raw.data)
    try:
        cfg = OmegaConf.create(shield(data, ()))
    except OmegaConfBaseException as exc:
        bad = next((p for p, _ in found), ())
        raise SpecError(
            [Diagnostic("interpolation", _first_line(exc), raw.values.get(bad))]
        ) from None
    for path, text in found:
        try:
            node: Any = cfg
            for part in path:
                node = node[part]
            resolved = (
                node
                if not hasattr(node, "_content")
                else OmegaConf.to_container(node, resolve=True)
            )
        except OmegaConfBaseException as exc:
            errors.append(
                Diagnostic(
                    "interpolation",
                    f"cannot resolve '{text}': {_first_line(exc)}",
                    raw.values.get(path),
                )
            )
            continue
        if isinstance(resolved, str):
            for token, literal in literals.items():
                resolved = resolved.replace(token, literal)
        _set_in(data, path, resolved)
    if errors:
        raise SpecError(errors)
    return RawSpec(data, raw.values, raw.keys, raw.sources)


def _set_in(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _strings(value: Any, path: KeyPath) -> list[tuple[KeyPath, str]]:
    if isinstance(value, str):
        return [(path, value)]
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    return [found for k, v in items for found in _strings(v, (*path, k))]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
