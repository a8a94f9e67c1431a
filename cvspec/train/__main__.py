"""`python -m cvspec.train --config-dir generated/<project>/train [overrides]`: train."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m cvspec.train`."""
    p = argparse.ArgumentParser(
        prog="python -m cvspec.train",
        description="Train from a generated config tree (Hydra for timm, args.yaml for "
        "ultralytics). Overrides: Hydra syntax (train.epochs=3, +train.threads=1) or "
        "ultralytics KEY=VALUE for detection.",
    )
    p.add_argument(
        "--config-dir",
        type=Path,
        required=True,
        help="generated/<project>/train, or a run's config folder",
    )
    p.add_argument(
        "-m",
        "--multirun",
        action="store_true",
        help="run the sweep (Hydra multirun over the experiment group)",
    )
    p.add_argument("--run-id", help="name the run folder (default: a hash of config and data)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="RUN_ID",
        help="continue a killed run (default: the current one) with its saved config",
    )
    p.add_argument("overrides", nargs="*", help="config overrides")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; exit 0 ok, 1 a failed check, 2 bad input, 3 a bug."""
    args = parser().parse_args(argv)
    from cvspec.cli import guarded

    return guarded(lambda: _train(args))


def _train(args: argparse.Namespace) -> None:
    from rich.console import Console

    from cvspec.errors import UsageError
    from cvspec.project import find_root
    from cvspec.train.stage import train_tree

    root = find_root(Path.cwd())
    config_dir = args.config_dir.resolve()
    if not config_dir.is_dir():
        raise UsageError(f"--config-dir {args.config_dir}: not a folder")
    train_dir = root / _output_root(config_dir) / "train"
    console = Console(stderr=True)
    if args.resume is not None:
        _resume(args.resume, args.overrides, root, train_dir, console)
        return
    train_tree(
        config_dir,
        list(args.overrides),
        root,
        train_dir,
        console,
        multirun=args.multirun,
        name=args.run_id,
    )


def _resume(run_id: str, overrides: list[str], root: Path, train_dir: Path, console: Any) -> None:
    """Continue a run from its last checkpoint, with the config it was started with."""
    from cvspec.errors import UsageError
    from cvspec.train.runs import RunDir, current, set_current

    if overrides:
        raise UsageError("--resume continues a run with its saved config; drop the overrides")
    run = RunDir(train_dir / run_id) if run_id else current(train_dir)
    if not run.config.is_file():
        raise UsageError(f"no run to resume at {run.path}")
    if (run.path / "data.yaml").is_file():
        from cvspec.train import ultra

        outcome = ultra.resume(run, console)
        task = "detection"
    else:
        from omegaconf import OmegaConf

        from cvspec.train.config import settings
        from cvspec.train.trainer import fit

        cfg = OmegaConf.load(run.config)
        outcome = fit(settings(cfg), root, train_dir, console, run.run_id)
        task = "classification"
    set_current(train_dir, outcome.run, task, outcome.note)
    from cvspec.train.progress import say
    from cvspec.train.stage import summary

    say(console, summary(outcome, root))


def _output_root(config_dir: Path) -> str:
    """runs/<project> as the config tree names it."""
    from omegaconf import OmegaConf

    if (config_dir / "config.yaml").is_file():
        return str(OmegaConf.load(config_dir / "config.yaml").output.root)
    if (config_dir / "args.yaml").is_file():
        return str(OmegaConf.load(config_dir / "args.yaml").project)
    from cvspec.errors import UsageError

    raise UsageError(f"{config_dir} holds no training config (config.yaml or args.yaml)")


if __name__ == "__main__":
    sys.exit(main())
