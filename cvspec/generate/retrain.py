"""Whether a change to generated output retrains: a reviewer's one line in `diff` and `check`.

The run id hashes the training config less the keys in cvspec.train.identity (and the data the
run reads). Comparing the config on disk with the new render, by those rules, says whether the
next training run starts afresh or finds its finished run. Only the generated files are read:
no torch, no data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.train.identity import (
    ARGS_NOT_IN_ID,
    CONFIG_NOT_IN_ID,
    CONFIG_SECTIONS,
    DATA_BY_RECORDS,
)

if TYPE_CHECKING:
    from cvspec.generate.render import RenderedFile


def training_note(
    root: Path, out_dir: str, files: list[RenderedFile], renamed_from: str | None = None
) -> str | None:
    """`the next training run retrains: train.epochs changed`, `finished runs are reused: only
    train.workers changed`, or None when the training config did not change.

    `renamed_from` is the generated/<project>/ the spec made under its old name (a rename):
    its training config, never built under the new name, is the one compared, and the runs
    folder (output.root) that a rename moves counts as a change: a run looks for its finished
    run there, so none is found.
    """
    new = {f.path: f.content for f in files}
    config = f"{out_dir}/train/config.yaml"
    if config in new:  # classification
        kept = {"train": CONFIG_NOT_IN_ID, "data": DATA_BY_RECORDS}
        old = _read(root / config)
        points = f"{out_dir}/train/experiment"
        if old is None and renamed_from is not None:
            old = _read(root / f"{renamed_from}/train/config.yaml")
            points = f"{renamed_from}/train/experiment"
        if old is None:  # never built (or the tree is gone): no training config to compare
            return None
        changed = []
        if old != new[config]:
            before, after = _load(old), _load(new[config])
            if before is None or after is None:  # not YAML (a merge conflict): cannot tell
                return None
            changed = _all_changed(before, after, CONFIG_SECTIONS)
            changed += _changed(before.get("output"), after.get("output"), "output")
        if points == f"{out_dir}/train/experiment":
            changed += _point_changes(root, points, new)
        return _note(changed, kept)
    args, data = f"{out_dir}/train/args.yaml", f"{out_dir}/train/data.yaml"
    if args not in new:
        return None
    olds = {p: _read(root / p) for p in (args, data)}
    if all(olds[p] is None or olds[p] == new.get(p) for p in olds):
        return None
    before = {"args": _load(olds[args] or b""), "data": _load(olds[data] or b"")}
    after = {"args": _load(new[args]), "data": _load(new.get(data, b""))}
    if None in (*before.values(), *after.values()):  # not YAML (a merge conflict)
        return None
    return _note(_all_changed(before, after, ("args", "data")), {"args": ARGS_NOT_IN_ID})


def _all_changed(before: Any, after: Any, sections: tuple[str, ...]) -> list[str]:
    return [
        key
        for section in sections
        for key in _changed(before.get(section), after.get(section), section)
    ]


def _point_changes(root: Path, folder: str, new: dict[str, bytes]) -> list[str]:
    """`train.optimizer.lr (sweep point-001)` for each value a sweep point file changes, adds
    or removes: each point is a run of its own, its config the base one with these values."""
    paths = {p for p in new if p.startswith(folder + "/")}
    on_disk = root / folder
    if on_disk.is_dir() and not on_disk.is_symlink():
        paths |= {f"{folder}/{p.name}" for p in on_disk.glob("*.yaml")}
    changed = []
    for path in sorted(paths):
        old, now = _read(root / path) or b"", new.get(path, b"")
        if old == now:
            continue
        before, after = _load(old), _load(now)
        if before is None or after is None:
            continue
        point = Path(path).stem
        changed += [f"{key} (sweep {point})" for key in _changed(before, after, "", depth=99)]
    return changed


def _note(changed: list[str], kept: dict[str, Any]) -> str | None:
    if not changed:
        return None
    ident = [k for k in changed if not _kept(k, kept)]
    if ident:
        return f"the next training run retrains: {_listed(ident)} changed"
    by_records = [k for k in changed if k.startswith("data.")]
    if by_records:
        return (
            f"{_listed(by_records)} changed: a run retrains only if that changes its train or "
            "val images or their labels"
        )
    return f"finished runs are reused: only {_listed(changed)} changed"


def _kept(key: str, kept: dict[str, Any]) -> bool:
    """Whether `key` (section.name, or `section.name (sweep point-NNN)` for a sweep point's
    value) is one the run id leaves out."""
    section, _, name = key.split(" (sweep ", 1)[0].partition(".")
    return bool(name) and name in kept.get(section, ())


def _changed(old: Any, new: Any, path: str, depth: int = 2) -> list[str]:
    """Dotted keys whose values differ, `depth` levels deep at most (a point added or removed
    counts each of its keys)."""
    if depth > 1 and (isinstance(old, dict) or isinstance(new, dict)):
        old = old if isinstance(old, dict) else {}
        new = new if isinstance(new, dict) else {}
        keys = sorted(set(old) | set(new), key=str)
        return [
            k
            for key in keys
            for k in _changed(
                old.get(key), new.get(key), f"{path}.{key}" if path else key, depth - 1
            )
        ]
    return [] if old == new else [path]


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:4])
    return shown + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _read(path: Path) -> bytes | None:
    """The file's bytes; None for none, or a link (cvspec never reads through one)."""
    try:
        return None if path.is_symlink() else path.read_bytes()
    except OSError:
        return None


def _load(text: bytes) -> dict[str, Any] | None:
    """A YAML mapping; {} for no text; None for text that is not one (a merge conflict)."""
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe", pure=True).load(text) if text else {}
    except Exception:
        return None
    return data if isinstance(data, dict) else None
