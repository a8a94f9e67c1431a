"""Run stages in graph order; each stage's module is imported only when it runs."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence

from cvspec.errors import CvspecError, SpecValueError
from cvspec.run.context import RunContext, StageResult
from cvspec.run.graph import BY_NAME, STAGES, Stage, order
from cvspec.run.plainlog import plain_output


def load_runner(stage: Stage) -> Callable[[RunContext], StageResult]:
    """Import a stage's function; a missing optional dependency is a clear error."""
    module_name, func = stage.runner.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("cvspec"):
            raise CvspecError(
                f"stage '{stage.name}' needs the Python package '{exc.name}', which is not "
                f"installed: pip install 'cvspec[all]'"
            ) from None
        raise
    runner: Callable[[RunContext], StageResult] = getattr(module, func)
    return runner


def run_stages(
    ctx: RunContext,
    names: Sequence[str] = (),
    done: list[tuple[Stage, StageResult, float]] | None = None,
) -> list[tuple[Stage, StageResult]]:
    """Run the named stages (default: the default ones) in order; stop at the first failure.

    `done`, when given, gets each stage that ended, its result and seconds, as it ends: what
    ran before an error that the call raises (`run --format json` reports them)."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise CvspecError(f"unknown stage {unknown[0]!r}; stages: {', '.join(BY_NAME)}")
    stages = order(list(names)) if names else [s for s in STAGES if s.default]
    results: list[tuple[Stage, StageResult]] = []
    for stage in stages:
        if ctx.console is not None:
            ctx.console.rule(f"[bold]{stage.name}[/]: {stage.summary}")
        started = time.perf_counter()
        try:
            with plain_output():  # a log file or CI log gets lines, not terminal redraws
                result = load_runner(stage)(ctx)
        except SpecValueError as exc:  # at the value's line in the spec, where it can be fixed
            raise exc.located(ctx.loaded.raw) from None
        elapsed = time.perf_counter() - started
        results.append((stage, result))
        if done is not None:
            done.append((stage, result, elapsed))
        if ctx.console is not None:
            mark = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
            ctx.console.print(
                f"{mark} {stage.name} ({elapsed:.1f} s): {result.summary}", soft_wrap=True
            )
        if not result.ok:
            break
    return results
