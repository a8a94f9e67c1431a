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


class PointError(NamedTuple):
    """What a point whose training raised returns: Hydra's sweeper would raise at once and
    lose the other points' results, so the job hands the error back instead."""

    error: Exception


class Failed(NamedTuple):
    """A sweep point whose training raised."""

    name: str
    values: dict[str, Any]
    error: Exception


# How points rank, first key first: (metric, "max" or "min"). A tie in validation accuracy
# (common on a small validation split) goes to the lower validation loss, not to the point
# listed first; without a validation split, the lower training loss wins.
RANKING = (("val_accuracy", "max"), ("val_loss", "min"))
NO_VAL_RANKING = (("train_loss", "min"),)


def ranking(points: list[Point]) -> tuple[tuple[str, str], ...]:
    """The keys the points are ranked by: validation metrics when every point has them."""
    if all("val_accuracy" in p.outcome.metrics for p in points):
        return RANKING
    return NO_VAL_RANKING


def score(
    metrics: dict[str, Any], keys: tuple[tuple[str, str], ...] = RANKING
) -> tuple[float, ...]:
    """How a point ranks under `keys` (higher is better): each metric, negated where lower wins;
    a missing one ranks last."""
    out = []
    for key, mode in keys:
        value = metrics.get(key)
        if value is None:
            out.append(-float("inf"))
        else:
            out.append(float(value) if mode == "max" else -float(value))
    return tuple(out)


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
    points, failed = [], []
    for ret in (r for batch in returns for r in batch):
        chosen = [o for o in ret.overrides if not o.startswith("hydra")]
        name = " ".join(o.removeprefix("experiment=") for o in chosen)
        result = ret.return_value
        if isinstance(result, PointError):
            failed.append(Failed(name, _values(config_dir, chosen), result.error))
        else:
            points.append(Point(name, _values(config_dir, chosen), result))
    keys = ranking(points)
    best = max(points, key=lambda p: score(p.outcome.metrics, keys)) if points else None
    _report(points, best, keys, failed, train_dir, console)
    if failed:
        raise failed[0].error
    assert best is not None
    return points, best


def _job(cfg: Any, root: Path, train_dir: Path) -> Outcome | PointError:
    """One sweep point (module level, so process launchers can pickle it); its error, if it
    fails, is returned so that the other points still run and are recorded."""
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    console = Console(stderr=True)
    job = HydraConfig.get().job
    say(console, f"sweep point {job.num}: {' '.join(job.override_dirname.split(',')) or '-'}")
    try:
        return fit(settings(cfg), root, train_dir, console)
    except Exception as exc:  # reported with the sweep's summary, then raised
        return PointError(exc)


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


def _report(
    points: list[Point],
    best: Point | None,
    keys: tuple[tuple[str, str], ...],
    failed: list[Failed],
    train_dir: Path,
    console: Any,
) -> None:
    """Print the summary table; write sweep.json and sweep.md next to the runs (failed points
    too, so the finished points' metrics are kept when one fails)."""
    from rich.table import Table

    keys_set = sorted({k for p in points for k in p.values} | {k for f in failed for k in f.values})
    cols = ["val_accuracy", "val_loss", "train_loss"]
    table = Table(title="sweep")
    for head in ["point", *keys_set, *cols, "run"]:
        table.add_column(head)
    lines = [
        "| point | " + " | ".join([*keys_set, *cols, "run"]) + " |",
        "|" + "---|" * (len(keys_set) + len(cols) + 2),
    ]
    for p in points:
        mark = " (best)" if p is best else ""
        cells = [str(p.values.get(k, "")) for k in keys_set]
        cells += [f"{p.outcome.metrics[c]:.4f}" if c in p.outcome.metrics else "" for c in cols]
        table.add_row(p.name + mark, *cells, p.outcome.run.run_id)
        lines.append(f"| {p.name}{mark} | " + " | ".join([*cells, p.outcome.run.run_id]) + " |")
    for f in failed:
        cells = [str(f.values.get(k, "")) for k in keys_set] + ["", "", ""]
        table.add_row(f"{f.name} (failed)", *cells, "")
        lines.append(f"| {f.name} (failed) | " + " | ".join([*cells, ""]) + " |")
    print_table(console, table)
    rule = _rule(keys)
    for f in failed:
        say(console, f"sweep point {f.name} ({_describe(f.values)}) failed: {_reason(f.error)}")
    if best is not None:
        say(
            console,
            f"best {'finished ' if failed else ''}point: {best.name} ({_describe(best.values)}), "
            f"run {best.outcome.run.run_id}: {rule}",
        )
    write_json(
        train_dir / "sweep.json",
        {
            "best": None if failed or best is None else best.name,
            "best_run": None if failed or best is None else best.outcome.run.run_id,
            "ranked_by": [{"metric": k, "mode": m} for k, m in keys],
            "points": [
                {
                    "name": p.name,
                    "values": p.values,
                    "run": p.outcome.run.run_id,
                    "metrics": p.outcome.metrics,
                }
                for p in points
            ],
            "failed": [
                {"name": f.name, "values": f.values, "error": _reason(f.error)} for f in failed
            ],
        },
    )
    write_text(train_dir / "sweep.md", "\n".join(lines) + "\n")


def _rule(keys: tuple[tuple[str, str], ...]) -> str:
    """How the best point was chosen, in words."""
    words = [f"{'highest' if m == 'max' else 'lowest'} {k}" for k, m in keys]
    return words[0] + "".join(f", ties broken by {w}" for w in words[1:])


def _reason(error: Exception) -> str:
    """A failed point's error, on one line."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "no overrides"
