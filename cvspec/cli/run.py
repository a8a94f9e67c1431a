"""`cvspec run`: run a project's stages locally, exactly as CI and DVC run them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cvspec.cli.common import ProfileOpt, SetOpt, load_one
from cvspec.project import find_root
from cvspec.run.graph import STAGE_NAMES

if TYPE_CHECKING:
    from cvspec.run.context import RunContext


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

    from cvspec.errors import Interrupted
    from cvspec.run.context import RunContext
    from cvspec.run.executor import run_stages

    loaded = load_one(spec, profile, set_)
    ctx = RunContext(
        find_root(Path.cwd()), loaded, profile, tuple(set_ or ()), Console(stderr=True)
    )
    _warn_if_stale(ctx)
    go_on = (
        "Run the same command again to go on: a training resumes after its last finished "
        "epoch, and a finished training or export is reused"
    )
    previous = signal.signal(signal.SIGTERM, _terminated)  # a CI job cancelled, `kill PID`
    try:
        results = run_stages(ctx, stage or ())
    except Terminated:
        stopped = Interrupted(f"terminated (SIGTERM). {go_on}")
        stopped.exit_code = 128 + signal.SIGTERM
        raise stopped from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted. {go_on}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not all(result.ok for _, result in results):
        raise typer.Exit(1)


def _warn_if_stale(ctx: RunContext) -> None:
    """Say so when generated/<project>/ no longer matches the spec: the test stage runs its
    generated tests, and CI its generated pipeline. A warning only, the stages still run;
    except for an edited params.yaml, which would make DVC record values no stage used."""
    from cvspec.errors import CvspecError
    from cvspec.generate.cache import RenderCache
    from cvspec.project import check
    from cvspec.train.progress import say

    try:
        found = check(ctx.root, [ctx.loaded.path], None, RenderCache.default())
    except CvspecError:
        return  # a spec or template problem: the stages that need it say so
    for out, changes in found:
        edited = [c.path for c in changes if c.finding == "tamper" and c.path.endswith(PARAMS)]
        if edited:  # `dvc exp run -S` writes there; training would not see it, DVC records it
            raise CvspecError(
                f"{edited[0]} was edited (by `dvc exp run -S` or by hand), but cvspec reads the "
                "spec, not params.yaml: this run would train with the spec's values while DVC "
                "records the edited ones. Set values in the spec (then `dvc exp run`) or with "
                "`cvspec run SPEC --set KEY=VALUE`; `git checkout` the file, or "
                "`cvspec build --force`, restores params.yaml"
            )
        stale = [c for c in changes if c.action != "keep"]
        if stale and all(c.finding == "missing" for c in stale):
            say(
                ctx.console,
                f"warning: {out.out_dir}/ is not built yet: run `cvspec build` for the "
                "generated tests (the test stage runs them) and pipelines",
            )
        elif stale:
            say(
                ctx.console,
                f"warning: {out.out_dir}/ is out of date with {out.spec_file} ({len(stale)} "
                "file(s); `cvspec diff` shows them): run `cvspec build` so the generated tests "
                "and pipelines match the spec",
            )


PARAMS = "/params.yaml"  # the DVC pipeline's copy of the spec's values (generate/builtin/dvc.py)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, as Ctrl-C raises KeyboardInterrupt: the stages stop the
    way they stop for Ctrl-C (checkpoints are written whole or not at all) and say so."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated
