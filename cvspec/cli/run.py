"""`cvspec run`: run a project's stages locally, exactly as CI and DVC run them."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cvspec.cli.common import (
    ProfileOpt,
    SetOpt,
    check_format,
    error_json,
    load_one,
    print_json,
)
from cvspec.errors import CvspecError
from cvspec.project import find_root
from cvspec.run.graph import STAGE_NAMES, Stage

if TYPE_CHECKING:
    from cvspec.run.context import RunContext, StageResult


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
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
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="text, or json: the progress on stderr, one JSON object on stdout at the end.",
        ),
    ] = "text",
) -> None:
    """Run the stages of a spec (data, train, export, evaluate, test; package, serve).

    --format json prints one object on stdout when the run ends (what the stages print goes to
    stderr): {"ok", "spec", "project", "profile", "set", "stages": [{"name", "ok", "seconds",
    "summary", "outputs"}], "run_id", "metrics", "gates", "error", "diagnostics"}: the stages
    that ended, in order; the current training run's id when a stage that trains or uses the
    model ran; metrics.json's path and the gates when this run's evaluate wrote them; on a
    failure its message and, for an error in the spec, where. Exit codes are as without it.
    """
    as_json = check_format(format_)
    done: list[tuple[Stage, StageResult, float]] = []
    if not as_json:
        _run(_context(spec, profile, set_), stage or (), done)
        if not all(result.ok for _, result, _ in done):
            raise typer.Exit(1)
        return
    started = time.time()
    report: dict[str, object] = {"spec": str(spec), "project": None, "profile": profile}
    report["set"] = list(set_ or ())
    failure: CvspecError | None = None
    ctx: RunContext | None = None
    with _stdout_on_stderr():  # a library's progress, a stage's subprocess: none on stdout
        try:
            ctx = _context(spec, profile, set_)
            _run(ctx, stage or (), done)
        except CvspecError as exc:
            failure = exc
    report.update(_outcome(ctx, done, started))
    failed = next((r for _, r, _ in done if not r.ok), None)
    report["ok"] = failure is None and failed is None
    report.update(error=failed.summary if failed else None, diagnostics=[])
    if failure is not None:
        report.update(error_json(failure))
    print_json(report)
    if failure is not None:
        raise typer.Exit(failure.exit_code)
    if failed is not None:
        raise typer.Exit(1)


def _context(spec: Path, profile: str | None, set_: list[str] | None) -> RunContext:
    """The loaded spec and where the run writes; progress is printed on stderr."""
    from rich.console import Console

    from cvspec.run.context import RunContext

    loaded = load_one(spec, profile, set_)
    return RunContext(
        find_root(Path.cwd()), loaded, profile, tuple(set_ or ()), Console(stderr=True)
    )


def _run(
    ctx: RunContext, names: Sequence[str], done: list[tuple[Stage, StageResult, float]]
) -> None:
    """Run the stages, each that ends added to `done`; Ctrl-C and SIGTERM say how to go on."""
    from cvspec.errors import Interrupted
    from cvspec.run.executor import run_stages

    _warn_if_stale(ctx)
    go_on = (
        "Run the same command again to go on: a training resumes after its last finished "
        "epoch, and a finished training or export is reused"
    )
    previous = signal.signal(signal.SIGTERM, _terminated)  # a CI job cancelled, `kill PID`
    try:
        run_stages(ctx, names, done)
    except Terminated:
        stopped = Interrupted(f"terminated (SIGTERM). {go_on}")
        stopped.exit_code = 128 + signal.SIGTERM
        raise stopped from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted. {go_on}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


USES_MODEL = ("train", "export", "evaluate")  # stages whose run id `--format json` gives


def _outcome(
    ctx: RunContext | None, done: list[tuple[Stage, StageResult, float]], started: float
) -> dict[str, object]:
    """The `run --format json` fields the stages that ended give: each stage; the run id,
    metrics path and gates, from files this run wrote (not an earlier run's)."""
    from cvspec.run.graph import stage_dir

    project = ctx.project if ctx is not None else None
    stages = [
        {
            "name": stage.name,
            "ok": result.ok,
            "seconds": round(seconds, 3),
            "summary": result.summary,
            "outputs": [stage_dir(str(project), out) for out in stage.outputs],
        }
        for stage, result, seconds in done
    ]
    found: dict[str, object] = {"project": project, "stages": stages}
    found.update(run_id=None, metrics=None, gates=None)
    if ctx is None:
        return found
    ran = {stage.name for stage, _, _ in done}
    if ran & set(USES_MODEL):
        found["run_id"] = _json_field(ctx.runs / "train" / "current.json", "run_id")
    metrics = ctx.runs / "evaluate" / "metrics.json"
    if "evaluate" in ran and _fresh(metrics, started):
        found["metrics"] = os.path.relpath(metrics, ctx.root).replace(os.sep, "/")
        found["gates"] = _json_field(metrics, "gates")
    return found


def _fresh(path: Path, since: float) -> bool:
    """Whether `path` exists and was written since `since` (by this run)."""
    try:
        return path.stat().st_mtime >= since - 1  # file times may be coarser than the clock
    except OSError:
        return False


def _json_field(path: Path, key: str) -> object:
    """`key` of the JSON object in `path`, or None when the file is missing or unreadable."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


@contextmanager
def _stdout_on_stderr() -> Iterator[None]:
    """Point stdout at stderr while the body runs, the file descriptor too: what a library or a
    stage's subprocess (the test stage's pytest) prints goes to stderr, so stdout holds only
    the JSON object printed after."""
    sys.stdout.flush()
    try:
        out, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (an in-process capture)
        with redirect_stdout(sys.stderr):
            yield
        return
    saved = os.dup(out)
    os.dup2(err, out)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, out)
        os.close(saved)


def _warn_if_stale(ctx: RunContext) -> None:
    """Say so when generated/<project>/ no longer matches the spec: the test stage runs its
    generated tests, and CI its generated pipeline. A warning only, the stages still run;
    except for an edited params.yaml, which would make DVC record values no stage used."""
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
