"""`cvspec runs`: the training runs of a spec's project, with their metrics and what sets each
apart from the current run (the one export and evaluate use)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cvspec.cli.common import FormatOpt, check_format, json_errors, load_one, print_json
from cvspec.project import find_root

# The metrics a row shows, in this order, where a run has them (classification, detection).
SHOWN = ("val_accuracy", "val_loss", "map50", "map50_95", "train_loss")
MAX_DIFFERENCES = 4  # config values per row; --format json gives them all


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
    format_: FormatOpt = "text",
) -> None:
    """List the training runs of the spec's project, newest first: run id (* the current one,
    which export and evaluate use), state, epochs, final metrics, and the config values that set
    each apart from the current run. Runs are reused by their id: `cvspec run` with the options
    that made one (its `--set` values, or its sweep) makes it current again without training.

    --format json prints one object: {"project", "current", "runs": [{"run_id", "current",
    "state", "task", "epochs", "finished", "metrics", "differs": {key: [value, current value]}}]}.
    """
    as_json = check_format(format_)
    with json_errors(as_json):
        loaded = load_one(spec, None, None)
        root = find_root(Path.cwd())
        rows, current = runs(root / "runs" / loaded.spec.project.name / "train")
    if as_json:
        print_json({"project": loaded.spec.project.name, "current": current, "runs": rows})
        return
    _print(rows, loaded.spec.project.name)


def runs(train_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Every run folder under `train_dir` (one with a run.json), newest first, and the current
    run's id."""
    pointer = train_dir / "current.json"
    current = _read(pointer).get("run_id") if pointer.is_file() else None
    folders = (
        [p for p in train_dir.iterdir() if (p / "run.json").is_file()] if train_dir.is_dir() else []
    )
    folders.sort(key=lambda p: (p.name != current, -(p / "run.json").stat().st_mtime))
    base = _config(train_dir / current) if current else {}
    rows = []
    for folder in folders:
        status = _read(folder / "run.json")
        config = _config(folder)
        differs = {
            key: [config.get(key), base.get(key)]
            for key in sorted(set(config) | set(base))
            if config.get(key) != base.get(key)
        }
        raw = status.get("metrics")
        metrics: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rows.append(
            {
                "run_id": folder.name,
                "current": folder.name == current,
                "state": status.get("state", "unknown"),
                "task": status.get("task"),
                "epochs": _epochs(folder),
                "finished": _when(folder / "run.json") if status.get("state") == "done" else None,
                "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
                "differs": differs,
            }
        )
    return rows, current


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _config(folder: Path) -> dict[str, Any]:
    """A run's config.yaml as dotted keys (its training values, as trained)."""
    import yaml

    try:
        data = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return _flatten(data) if isinstance(data, dict) else {}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _epochs(folder: Path) -> int:
    """Finished epochs: the rows of metrics.jsonl (classification) or results.csv (detection)."""
    for name, header in (("metrics.jsonl", 0), ("results.csv", 1)):
        path = folder / name
        if path.is_file():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
            return max(len(lines) - header, 0)
    return 0


def _when(path: Path) -> str:
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _print(rows: list[dict[str, Any]], project: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from cvspec.tables import print_table

    console = Console()
    if not rows:
        typer.echo(
            f"no training runs of {project} yet (runs/{project}/train/): "
            "`cvspec run SPEC --stage train` makes one",
            err=True,
        )
        return
    shown = [m for m in SHOWN if any(m in r["metrics"] for r in rows)]
    table = Table(title=f"training runs of {project} (* current)")
    for head in ["run", "state", "epochs", *shown, "finished", "differs from the current run"]:
        table.add_column(head)
    for r in rows:
        differs = [f"{k}={_value(v[0])}" for k, v in r["differs"].items()]
        more = len(differs) - MAX_DIFFERENCES
        text = ", ".join(differs[:MAX_DIFFERENCES]) + (f" (+{more} more)" if more > 0 else "")
        table.add_row(
            ("* " if r["current"] else "  ") + r["run_id"],
            r["state"],
            str(r["epochs"]),
            *(f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "" for m in shown),
            r["finished"] or "",
            text,
        )
    print_table(console, table)


def _value(value: Any) -> str:
    return (
        "(none)"
        if value is None
        else json.dumps(value)
        if isinstance(value, list | dict)
        else str(value)
    )
