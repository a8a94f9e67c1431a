"""Compose a spec from its `extends` files, a profile, --set overrides and ${} references."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvspec.errors import Diagnostic, Origin, SpecError
from cvspec.spec.interpolate import interpolate
from cvspec.spec.load import KeyPath, RawSpec, display_path, load_file, load_text

_KEY_PART = re.compile(r"\.([A-Za-z_][\w-]*|\d+)|\[(\d+)\]")
_KEY_HEAD = re.compile(r"[A-Za-z_][\w-]*")


def parse_key(text: str) -> KeyPath | None:
    """The key path of a dotted KEY, list items as `.0` or `[0]` (`monitor.alerts[0].max`);
    None when it is not one."""
    head = _KEY_HEAD.match(text)
    if head is None:
        return None
    path: list[str | int] = [head.group()]
    at = head.end()
    while at < len(text):
        part = _KEY_PART.match(text, at)
        if part is None:
            return None
        name, index = part.groups()
        path.append(int(index) if index is not None else int(name) if name.isdigit() else name)
        at = part.end()
    return tuple(path)


def dotted_key(path: KeyPath) -> str:
    """`a.b[0].c` for a key path."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def compose(
    path: Path, profile: str | None = None, sets: Sequence[str] = (), strict: bool = True
) -> RawSpec:
    """Load `path` with everything it extends, then apply the profile, --set flags and ${}.

    The profile is read after the --set flags into `profiles` (so `--set
    profiles.ci.train.epochs=3` changes what `--profile ci` applies); the flags are applied
    after the profile, so they win over it and may address the items of a list it sets
    (`--set monitor.alerts[0].max=0.5`). With `strict` False, a flag addressing a list item
    the spec does not have is skipped instead of being an error (checking the profiles that
    are not built with the flags meant for the one that is).
    """
    raw = _load_with_extends(path.resolve(), ())
    if sets:
        parse_sets(sets)  # every flag's own mistakes, whatever the profile
    if profile is not None:
        into_profiles = [s for s in sets if _set_head(s) == "profiles"]
        raw = merge(raw, select_profile(_merge_sets(raw, into_profiles, strict), profile))
    return interpolate(_merge_sets(raw, sets, strict))


def _merge_sets(raw: RawSpec, sets: Sequence[str], strict: bool) -> RawSpec:
    """`raw` with the --set flags merged in; with `strict` False, without the flags that
    address a list item `raw` does not have (and so fail the merge)."""
    if not sets:
        return raw
    try:
        return merge(raw, parse_sets(sets))
    except SpecError as exc:
        failed = {d.origin.detail for d in exc.diagnostics if d.origin and d.code == "bad-set"}
        kept = [s for s in sets if f"--set {s}" not in failed]
        if strict or len(kept) == len(sets):
            raise
        return _merge_sets(raw, kept, strict)


def _set_head(text: str) -> str | None:
    """The top-level key a `KEY=VALUE` --set flag addresses (`monitor` for `monitor.x=1`)."""
    key = parse_key(text.partition("=")[0].strip())
    return str(key[0]) if key else None


def profile_names(raw: RawSpec) -> list[str]:
    """The names of the profiles a composed spec defines (none when `profiles` is no mapping)."""
    profiles = raw.data.get("profiles")
    return [str(name) for name in profiles] if isinstance(profiles, dict) else []


def _load_with_extends(path: Path, stack: tuple[Path, ...]) -> RawSpec:
    raw = load_file(path)
    extends = raw.data.get("extends")
    if extends is None:
        return raw
    bases: list[RawSpec] = []
    errors: list[Diagnostic] = []
    items = [extends] if isinstance(extends, str) else extends
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        errors.append(
            Diagnostic(
                "extends-type",
                "'extends' must be a file name or a list of them",
                raw.values.get(("extends",)),
            )
        )
        items = []
    for index, item in enumerate(items):
        where = raw.values.get(("extends", index) if isinstance(extends, list) else ("extends",))
        base = (path.parent / item).resolve()
        if base in (*stack, path):
            chain = " -> ".join(display_path(p) for p in (*stack, path, base))
            errors.append(
                Diagnostic(
                    "extends-cycle",
                    f"'extends' makes a cycle: {chain}",
                    where,
                    "remove one of the 'extends' entries in the cycle",
                    len(item),
                )
            )
            continue
        if not base.is_file():
            errors.append(
                Diagnostic(
                    "extends-missing",
                    f"extended file not found: {display_path(base)}",
                    where,
                    "paths in 'extends' are relative to the file that names them",
                    len(item),
                )
            )
            continue
        try:
            bases.append(_load_with_extends(base, (*stack, path)))
        except SpecError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise SpecError(errors)
    own = RawSpec(  # the file without its `extends` key; the cached RawSpec stays untouched
        {k: v for k, v in raw.data.items() if k != "extends"},
        {p: o for p, o in raw.values.items() if p[:1] != ("extends",)},
        {p: o for p, o in raw.keys.items() if p[:1] != ("extends",)},
        raw.sources,
    )
    merged = bases[0] if bases else None
    for nxt in [*bases[1:], own]:
        merged = nxt if merged is None else merge(merged, nxt)
    assert merged is not None
    return merged


def merge(base: RawSpec, over: RawSpec) -> RawSpec:
    """Deep-merge `over` onto `base`: mappings merge key by key, anything else is replaced;
    integer keys (only --set makes them: `monitor.alerts[0].max`) merge into a list's items."""
    values = dict(base.values)
    keys = dict(base.keys)
    errors: list[Diagnostic] = []
    data = _merge_into(base.data, over, (), values, keys, errors)
    if errors:
        raise SpecError(errors)
    return RawSpec(data, values, keys, {**base.sources, **over.sources})


def _merge_into(
    dst: Any,
    over: RawSpec,
    path: KeyPath,
    values: dict[KeyPath, Origin],
    keys: dict[KeyPath, Origin],
    errors: list[Diagnostic],
) -> Any:
    src = _get(over.data, path)
    emptied = src == {} and getattr(over.values.get(path), "kind", None) == "set"
    indices = [k for k in src if isinstance(k, int)] if isinstance(src, dict) else []
    if indices:
        return _merge_items(dst, over, path, indices, values, keys, errors)
    into = dst if isinstance(dst, dict) else {} if dst is None else None
    if into is not None and isinstance(src, dict) and not emptied:  # --set k={} empties k
        out = dict(into)
        if path in over.values:
            values[path] = over.values[path]
        for key in src:
            sub = (*path, key)
            out[key] = _merge_into(into.get(key), over, sub, values, keys, errors)
            if sub in over.keys:
                keys[sub] = over.keys[sub]
        return out
    _drop(values, path)
    _drop(keys, path, keep_self=True)
    for p, o in over.values.items():
        if p[: len(path)] == path:
            values[p] = o
    for p, o in over.keys.items():
        if p[: len(path)] == path and len(p) > len(path):
            keys[p] = o
    return src


def _merge_items(
    dst: Any,
    over: RawSpec,
    path: KeyPath,
    indices: list[int],
    values: dict[KeyPath, Origin],
    keys: dict[KeyPath, Origin],
    errors: list[Diagnostic],
) -> Any:
    """Merge `--set a.b[i]...` into item i of the list at `path`; an index the list does not
    have, or no list there, is an error at the flag."""
    where = dotted_key(path)
    if not isinstance(dst, list):
        found = (
            f"the spec has no list at {where}"
            if dst is None
            else f"{where} is {'a mapping' if isinstance(dst, dict) else 'a value'}, not a list"
        )
        errors.append(
            Diagnostic(
                "bad-set",
                f"{where}[{indices[0]}]: {found} to take item {indices[0]} of",
                over.values.get((*path, indices[0])),
                f"set the whole list: --set '{where}=[...]'",
            )
        )
        return dst
    out = list(dst)
    for index in indices:
        if index >= len(dst):
            last = f"0 to {len(dst) - 1}" if dst else "none: it is empty"
            errors.append(
                Diagnostic(
                    "bad-set",
                    f"{where}[{index}]: {where} has {len(dst)} item(s), so no index {index}",
                    over.values.get((*path, index)),
                    f"indices: {last}; to add an item, set the whole list: --set '{where}=[...]'",
                )
            )
            continue
        out[index] = _merge_into(dst[index], over, (*path, index), values, keys, errors)
    return out


def _get(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _drop(index: dict[KeyPath, Origin], prefix: KeyPath, keep_self: bool = False) -> None:
    n = len(prefix)
    for p in [p for p in index if p[:n] == prefix and not (keep_self and len(p) == n)]:
        del index[p]


def select_profile(raw: RawSpec, name: str) -> RawSpec:
    """The named profile of a composed spec, as a partial spec whose origins say 'profile NAME'."""
    profiles = raw.data.get("profiles")
    if not isinstance(profiles, dict) or name not in profiles:
        known = sorted(profiles) if isinstance(profiles, dict) else []
        close = difflib.get_close_matches(name, known, n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else (
                f"known profiles: {', '.join(known)}" if known else "the spec defines no profiles"
            )
        )
        raise SpecError(
            [
                Diagnostic(
                    "unknown-profile",
                    f"no profile named '{name}'",
                    Origin("set", detail=f"--profile {name}"),
                    hint,
                )
            ]
        )
    body = profiles[name]
    prefix: KeyPath = ("profiles", name)
    if not isinstance(body, dict):
        raise SpecError(
            [
                Diagnostic(
                    "profile-type", f"profile '{name}' must be a mapping", raw.values.get(prefix)
                )
            ]
        )

    misplaced = [key for key in ("extends", "profiles") if key in body]
    if misplaced:
        raise SpecError(
            [
                Diagnostic(
                    "profile-key",
                    f"a profile cannot hold '{key}': profiles are applied after 'extends', "
                    "to one spec",
                    raw.keys.get((*prefix, key)),
                    "move it to the top level of the spec",
                    len(key),
                )
                for key in misplaced
            ]
        )

    def rebase(index: dict[KeyPath, Origin]) -> dict[KeyPath, Origin]:
        # A value a --set flag put into the profile still says so (it has no file position).
        return {
            p[2:]: o if o.kind == "set" else o._replace(kind="profile", detail=name)
            for p, o in index.items()
            if p[:2] == prefix
        }

    return RawSpec(body, rebase(raw.values), rebase(raw.keys), raw.sources)


def parse_sets(sets: Sequence[str]) -> RawSpec:
    """Turn `a.b=value` flags (value parsed as YAML 1.2) into a partial spec."""
    data: dict[str, Any] = {}
    values: dict[KeyPath, Origin] = {(): Origin("set", detail=" ".join(f"--set {s}" for s in sets))}
    keys: dict[KeyPath, Origin] = {}
    errors: list[Diagnostic] = []
    for text in sets:
        origin = Origin("set", detail=f"--set {text}")
        key, eq, value_text = text.partition("=")
        key = key.strip()
        parsed = parse_key(key) if eq else None
        if parsed is None:
            errors.append(
                Diagnostic(
                    "bad-set",
                    f"--set expects KEY=VALUE with a dotted KEY, got '{text}'",
                    origin,
                    "for example: --set train.epochs=5 (a list item: monitor.alerts[0].max=0.3)",
                )
            )
            continue
        try:
            value = load_text(f"v: {value_text}" if value_text.strip() else "v: ''", "--set").data[
                "v"
            ]
        except SpecError:
            errors.append(
                Diagnostic(
                    "bad-set",
                    f"the value of --set {key} is not valid YAML: {value_text!r}",
                    origin,
                    "quote strings that contain ': ' or '#'",
                )
            )
            continue
        path: KeyPath = parsed
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                errors.append(
                    Diagnostic(
                        "bad-set",
                        f"--set {key} goes inside "
                        f"'{dotted_key(path[: depth + 1])}', which another "
                        "--set made a value",
                        origin,
                    )
                )
                break
            values.setdefault(path[: depth + 1], origin)
            keys.setdefault(path[: depth + 1], origin)
            node = nxt
        else:
            node[path[-1]] = value
            _drop(values, path)
            for p in _paths(value, path):
                values[p] = origin
                if len(p) > len(path) and isinstance(p[-1], str):
                    keys[p] = origin
            keys[path] = origin
    if errors:
        raise SpecError(errors)
    return RawSpec(data, values, keys, {})


def _paths(value: Any, path: KeyPath) -> list[KeyPath]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*path, i)))
    return out
