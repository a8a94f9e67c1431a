"""`cvspec run`: run a project's stages locally, exactly as CI and DVC run them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cvspec.cli.common import ProfileOpt, SetOpt, load_one
from cvspec.project import find_root
from cvspec.run.graph import STAGE_NAMES


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.")],
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help=f"A stage to run, repeatable (--stage train --stage export): "
            f"{', '.join(STAGE_NAMES)}. Default: data to test.",
        ),
    ] = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run the stages of a spec (data, train, export, evaluate, test; package, serve)."""
    from rich.console import Console

    from cvspec.run.context import RunContext
    from cvspec.run.executor import run_stages

    loaded = load_one(spec, profile, set_)
    ctx = RunContext(
        find_root(Path.cwd()), loaded, profile, tuple(set_ or ()), Console(stderr=True)
    )
    results = run_stages(ctx, stage or ())
    if not all(result.ok for _, result in results):
        raise typer.Exit(1)
