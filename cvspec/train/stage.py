"""The train stage: write the spec's training config, train from it, point `current` at the run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.errors import SpecValueError, UsageError
from cvspec.train.progress import say
from cvspec.train.runs import set_current

TORCHRUN_LOGS = "torchrun"  # under the train stage's folder

if TYPE_CHECKING:
    from cvspec.run.context import RunContext, StageResult
    from cvspec.train.trainer import Outcome


def run(ctx: RunContext) -> StageResult:
    """`cvspec run SPEC --stage train`: the spec (profile and --set applied) -> a trained run."""
    from rich.console import Console

    from cvspec.run.context import StageResult
    from cvspec.train.config import write_tree
    from cvspec.train.model import PRETRAINED_FIX, PRETRAINED_WHY, weights_path

    spec = ctx.spec
    console = ctx.console or Console(stderr=True)
    ctx.require_data()  # before anything is written under runs/
    failed = failed_data_checks(ctx.runs / "data" / "report.json")
    if failed:  # the checks are the data stage's; training does not repeat them
        shown = os.path.relpath(ctx.runs / "data" / "report.md", ctx.root)
        say(
            console,
            f"the data stage's last run failed ({', '.join(failed)}; {shown}): training on "
            "the data as it is",
        )
    local_arch = spec.task == "detection" and spec.model.arch.endswith(".pt")  # a file here
    if spec.model.pretrained and not spec.model.weights and not local_arch:
        raise SpecValueError(("model", "pretrained"), PRETRAINED_WHY, PRETRAINED_FIX)
    train_dir = ctx.stage_dir("train")
    config_dir = write_tree(ctx.loaded, ctx.root, train_dir / "config")
    weights = None
    if spec.task == "detection":
        if spec.train.sweep:
            say(console, "train.sweep applies to classification only; training the base config")
        spec_file = ctx.loaded.path.resolve().relative_to(ctx.root.resolve()).as_posix()
        weights = weights_path(spec.model.weights, spec_file, ctx.root)
    if spec.train.distributed.engine != "none":
        outcome = launch(ctx, config_dir, train_dir)
        record_options(train_dir, ctx.profile, ctx.sets)
        say(console, summary(outcome, ctx.root))
        return StageResult(True, summary(outcome, ctx.root))
    outcome = train_tree(
        config_dir,
        [],
        ctx.root,
        train_dir,
        console,
        multirun=bool(spec.train.sweep),
        weights=weights,
    )
    record_options(train_dir, ctx.profile, ctx.sets)
    return StageResult(True, summary(outcome, ctx.root))


def failed_data_checks(report: Path) -> list[str]:
    """The checks the data stage's last run failed, from its report.json; none when there is
    no report, or none that reads (a note, not a reason to stop training)."""
    import json

    try:
        checks = json.loads(report.read_text(encoding="utf-8")).get("checks") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(c.get("name")) for c in checks if isinstance(c, dict) and c.get("status") == "fail"]


def record_options(train_dir: Path, profile: str | None, sets: tuple[str, ...]) -> None:
    """Add to current.json the --profile and --set values of the `cvspec run` that chose its
    run: evaluating it later under other options (or none) must not describe the model as
    trained from the spec as written. The note of what the training did (trained, reused)
    goes: the stage has said it, and a rerun that reuses the run must leave the train output
    as it was, or DVC would see it changed and export and evaluate again."""
    from cvspec.train.runs import CURRENT, read_json, write_json

    pointer = read_json(train_dir / CURRENT)
    pointer.pop("note", None)
    pointer["options"] = {"profile": profile, "set": list(sets)}
    write_json(train_dir / CURRENT, pointer)


def launch(ctx: RunContext, config_dir: Path, train_dir: Path) -> Outcome:
    """Data-parallel training on this machine: torchrun starts gpus_per_node processes (gloo
    on the CPU where there is no GPU) over the same config tree; several machines start from
    the generated launch file instead."""
    import subprocess
    import sys

    from cvspec.errors import CvspecError
    from cvspec.train.runs import current, read_json
    from cvspec.train.trainer import Outcome

    dist = ctx.spec.train.distributed
    if dist.nodes > 1:
        launcher = {"torchrun": "torchrun.sh", "slurm": "train.sbatch"}.get(
            dist.engine, "pytorchjob.sh"
        )
        raise UsageError(
            f"train.distributed.nodes is {dist.nodes}: `cvspec run` trains on this machine "
            f"only; start the {dist.engine} job from generated/{ctx.project}/launch/{launcher}, "
            "or run here with --set train.distributed.nodes=1"
        )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={dist.gpus_per_node}",
        # torchrun's log folder (one per launch) with the runs, not a new /tmp/torchelastic_*
        f"--log-dir={train_dir / TORCHRUN_LOGS}",
        "-m",
        "cvspec.train",
        "--config-dir",
        str(config_dir),
    ]
    done = subprocess.run(command, cwd=ctx.root, check=False)
    if done.returncode:
        raise CvspecError(
            f"distributed training failed (torchrun exited {done.returncode}); its output is "
            "above, each process's prefixed by its rank"
        )
    run = current(train_dir)
    return Outcome(
        run, read_json(run.status)["metrics"], launched_note(train_dir, dist.gpus_per_node)
    )


def launched_note(train_dir: Path, processes: int) -> str:
    """What the torchrun processes did, as rank 0 wrote it to current.json: a reused run was
    not trained again; training or resuming says on how many processes."""
    from cvspec.train.runs import current_note

    note = current_note(train_dir) or "finished"
    return note if note == "reused" else f"{note} ({processes} processes)"


def train_tree(
    config_dir: Path,
    overrides: list[str],
    root: Path,
    train_dir: Path,
    console: Any,
    multirun: bool = False,
    weights: Path | None = None,
    name: str | None = None,
) -> Outcome:
    """Train from a generated config tree (Hydra or ultralytics); the one path every entry
    point takes. The run it ends with becomes runs/<project>/train/current.json."""
    from cvspec.train.config import check_known, compose, settings

    if check_known(config_dir) == "detection":
        from cvspec.train import ultra

        if multirun:
            raise UsageError("--multirun sweeps Hydra (classification) configs; detection has none")
        outcome = ultra.train(config_dir, overrides, root, train_dir, console, weights, name)
        task = "detection"
    elif multirun:
        from cvspec.train.sweep import sweep

        outcome = sweep(config_dir, overrides, root, train_dir, console)[1].outcome
        task = "classification"
    else:
        from cvspec.train.trainer import fit

        outcome = fit(settings(compose(config_dir, overrides)), root, train_dir, console, name)
        task = "classification"
    from cvspec.train.distributed import world

    if world().main:  # under torchrun, every process gets here; rank 0 reports
        set_current(train_dir, outcome.run, task, outcome.note)  # launch() reads the note
        say(console, summary(outcome, root))
    return outcome


def summary(outcome: Outcome, root: Path | None = None) -> str:
    """One line: what happened to which run, and its headline metric."""
    m = outcome.metrics
    if "map50" in m:
        head = f"mAP50 {m['map50']:.4f}, mAP50-95 {m.get('map50_95', 0.0):.4f}"
    elif "val_accuracy" in m:
        head = f"val accuracy {m['val_accuracy']:.4f}"
    else:
        head = f"train loss {m.get('train_loss', float('nan')):.4f}"
    where = outcome.run.path
    if root is not None:
        where = Path(os.path.relpath(where, root))
    return (
        f"{outcome.note} run {outcome.run.run_id}: {head} (best epoch {m.get('best_epoch')} "
        f"of {m.get('epochs')}) -> {where}"
    )
