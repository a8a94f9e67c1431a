"""Warnings about template folders: an override no artifact renders, a name two plugins provide.

Both are found on a render only (a cached render replays its warnings), and only the folders
concerned are read: a project without override folders or plugin templates pays nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cvspec.generate.render import shown


def template_names(folder: Path) -> list[str]:
    """Every file under `folder` as a template name (a relative POSIX path), sorted."""
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = Path(dirpath).relative_to(folder).as_posix()
        names.extend(name if rel == "." else f"{rel}/{name}" for name in filenames)
    return sorted(names)


def shadowed_templates(folders: Sequence[tuple[str, Path]]) -> list[str]:
    """A warning for each template name that two generators' own folders provide.

    `folders`: (generator name, its templates folder) in the order they are searched (by
    generator name); the first one wins.
    """
    first: dict[str, tuple[str, Path]] = {}
    found = []
    for generator, folder in folders:
        for name in template_names(folder):
            if name not in first:
                first[name] = (generator, folder)
                continue
            winner, where = first[name]
            found.append(
                f"template {name} is in the templates of generator '{winner}' ({where}) and of "
                f"generator '{generator}' ({folder}); '{winner}' wins (generators' folders are "
                "searched in name order)"
            )
    return found


def unused_overrides(
    overrides: Sequence[Path], others: Sequence[Path], env: Any, rendered: Iterable[str]
) -> list[str]:
    """A warning for each file in an override folder that no artifact renders.

    `rendered`: the template names the artifacts asked for; what they include, import or
    extend is followed too. A template that names another by a variable (`{% include x %}`)
    could use any of them: then nothing is reported.
    """
    names = {(folder, name) for folder in overrides for name in template_names(folder)}
    if not names:
        return []
    used = _reachable(env, rendered)
    if used is None:
        return []
    known = used | {n for folder in others for n in template_names(folder)}
    import difflib

    found = []
    for folder, name in sorted(names):
        if name in used:
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        found.append(
            f"template override {shown(folder / name)} is not used: no artifact renders a "
            f"template named {name}{hint}"
        )
    return found


def _reachable(env: Any, rendered: Iterable[str]) -> set[str] | None:
    """The template names `rendered` uses, transitively; None when one names another by a
    variable."""
    from jinja2 import TemplateError, meta

    todo, seen = list(rendered), set[str]()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source = env.loader.get_source(env, name)[0]
            refs = list(meta.find_referenced_templates(env.parse(source)))
        except (TemplateError, OSError, UnicodeDecodeError):
            continue  # rendering it failed (or will fail) with a clear error of its own
        if None in refs:
            return None
        todo.extend(r for r in refs if r is not None)
    return seen
