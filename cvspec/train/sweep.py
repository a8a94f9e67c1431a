"""Sweeps: a Hydra multirun over the experiment group, a summary table, the best point named."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.atomic import write_text
from cvspec.errors import UsageError
from cvspec.tables import print_table
from cvspec.train.config import CONFIG_NAME, hydra_message, settings
from cvspec.train.progress import say
from cvspec.train.runs import write_json
from cvspec.train.trainer import Outcome, fit

# Hydra would otherwise point the root logger at stdout for the rest of the process.
QUIET = ("hydra/hydra_logging=none", "hydra/job_logging=none")


class Point(NamedTuple):
    """One finished sweep point."""

    name: str  # the experiment (point-000) or the override list
    values: dict[str, Any]  # dotted key -> value the point sets
    outcome: Outcome


def score(metrics: dict[str, Any]) -> float:
    """How a point ranks: validation accuracy, else the negated training loss."""
    return float(metrics.get("val_accuracy", -float(metrics.get("train_loss", 0.0))))


def sweep(
    config_dir: Path, overrides: list[str], root: Path, train_dir: Path, console: Any
) -> tuple[list[Point], Point]:
    """Run every point of the config's sweeper (plus `overrides`); return them and the best."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    sweep_dir = (train_dir / "sweep").resolve()  # Hydra's own job folders, inside the stage
    job = functools.partial(_job, root=root, train_dir=train_dir)
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            hydra = GlobalHydra.instance().hydra
            assert hydra is not None
            settings_ = [*QUIET, _quoted("hydra.sweep.dir", sweep_dir)]
            returns = hydra.multirun(
                CONFIG_NAME, job, [*overrides, *settings_], with_log_configuration=False
            )
    except (HydraException, OmegaConfBaseException) as exc:
        raise UsageError(f"invalid training override: {hydra_message(exc)}") from None
    points = []
    for ret in (r for batch in returns for r in batch):
        outcome: Outcome = ret.return_value  # re-raises a failed job's error
        chosen = [o for o in ret.overrides if not o.startswith("hydra")]
        name = " ".join(o.removeprefix("experiment=") for o in chosen)
        points.append(Point(name, _values(config_dir, chosen), outcome))
    best = max(points, key=lambda p: score(p.outcome.metrics))
    _report(points, best, train_dir, console)
    return points, best


def _job(cfg: Any, root: Path, train_dir: Path) -> Outcome:
    """One sweep point (module level, so process launchers can pickle it)."""
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    console = Console(stderr=True)
    job = HydraConfig.get().job
    say(console, f"sweep point {job.num}: {' '.join(job.override_dirname.split(',')) or '-'}")
    return fit(settings(cfg), root, train_dir, console)


def _quoted(key: str, path: Path) -> str:
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{text}'"


def _values(config_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """What a point sets: an experiment file's keys (flattened), or key=value overrides."""
    from omegaconf import OmegaConf

    values: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "experiment":
            loaded = OmegaConf.to_container(
                OmegaConf.load(config_dir / "experiment" / f"{value}.yaml")
            )
            values.update(_flatten(loaded if isinstance(loaded, dict) else {}))
        else:
            values[key] = value
    return values


def _flatten(data: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        out.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def _report(points: list[Point], best: Point, train_dir: Path, console: Any) -> None:
    """Print the summary table; write sweep.json and sweep.md next to the runs."""
    from rich.table import Table

    keys = sorted({k for p in points for k in p.values})
    cols = ["val_accuracy", "val_loss", "train_loss"]
    table = Table(title="sweep")
    for head in ["point", *keys, *cols, "run"]:
        table.add_column(head)
    lines = [
        "| point | " + " | ".join([*keys, *cols, "run"]) + " |",
        "|" + "---|" * (len(keys) + len(cols) + 2),
    ]
    for p in points:
        mark = " (best)" if p is best else ""
        cells = [str(p.values.get(k, "")) for k in keys]
        cells += [f"{p.outcome.metrics[c]:.4f}" if c in p.outcome.metrics else "" for c in cols]
        table.add_row(p.name + mark, *cells, p.outcome.run.run_id)
        lines.append(f"| {p.name}{mark} | " + " | ".join([*cells, p.outcome.run.run_id]) + " |")
    print_table(console, table)
    say(
        console,
        f"best point: {best.name} ({_describe(best.values)}), run {best.outcome.run.run_id}",
    )
    write_json(
        train_dir / "sweep.json",
        {
            "best": best.name,
            "best_run": best.outcome.run.run_id,
            "points": [
                {
                    "name": p.name,
                    "values": p.values,
                    "run": p.outcome.run.run_id,
                    "metrics": p.outcome.metrics,
                }
                for p in points
            ],
        },
    )
    write_text(train_dir / "sweep.md", "\n".join(lines) + "\n")


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "no overrides"
