"""The `data` stage: read and check the dataset, write its report and the drift baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.run.context import RunContext, StageResult
from cvspec.tables import print_table

if TYPE_CHECKING:
    from cvspec.data.checks import CheckResult, Dataset


def load_dataset(spec: Any, data_root: Path, console: Any = None) -> Dataset:
    """Read the layout and fully decode every image (in parallel): a checks.Dataset."""
    from cvspec.data.analyze import analyze, process_pool
    from cvspec.data.checks import Dataset
    from cvspec.data.index import read_layout, size_problems, with_facts

    layout = read_layout(spec, data_root)
    paths = [e.path for e in layout.entries]
    with process_pool(len(paths)) as pool:  # the pool forks before the progress thread starts
        if console is None:
            facts = analyze(data_root, paths, pool)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            columns = (
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("checking images", total=len(paths))
                facts = analyze(data_root, paths, pool, lambda n: progress.advance(task, n))
    index = with_facts(layout, data_root, facts)
    problems = layout.problems + size_problems(index)  # sizes are known once decoded
    return Dataset(index, tuple(facts), problems, spec)


def run(ctx: RunContext) -> StageResult:
    """Check the dataset; write runs/<project>/data/{report.json,report.md,stats.json,...}."""
    from rich.console import Console

    from cvspec.data.checks import check_sources, run_checks
    from cvspec.data.report import write_report

    console = ctx.console or Console(stderr=True)
    ds = load_dataset(ctx.spec, ctx.require_data(), console)
    results = run_checks(ds, check_sources(ctx.loaded, ctx.root))
    folder = ctx.stage_dir("data")
    data_path = os.path.relpath(ctx.data_root, ctx.root).replace(os.sep, "/")
    write_report(folder, ds, results, data_path, _dvc(ctx, data_path, console))
    print_table(console, summary_table(results))
    for r in results:  # reported, never failed: said, as nothing else would show them
        if r.name == "skipped_files" and r.findings:
            console.print(r.describe(10), markup=False, highlight=False, soft_wrap=True)
    _say_curation(ctx, ds, console)
    failed = [r.name for r in results if r.status == "fail"]
    where = os.path.relpath(folder / "report.md", ctx.root)
    images = f"{len(ds.index.records)} images, {len(ds.index.classes)} classes"
    if failed:
        for r in results:
            if r.status == "fail":
                console.print(r.describe(20), markup=False, highlight=False, soft_wrap=True)
        return StageResult(False, f"{images}; failed: {', '.join(failed)} (see {where})")
    gated = sum(r.status == "pass" for r in results)
    return StageResult(True, f"{images}; {gated} checks pass (report: {where})")


def _say_curation(ctx: RunContext, ds: Dataset, console: Any) -> None:
    """How many images data.exclude left out and labels data.relabel corrected, and each of
    their entries that matches no image (at its line in the spec)."""
    from cvspec.train.progress import say

    if ds.index.excluded:
        say(console, f"{len(ds.index.excluded)} image(s) left out by data.exclude")
    patterns = list(ctx.spec.data.exclude)
    for pattern in ds.index.unmatched:
        origin = ctx.loaded.raw.values.get(("data", "exclude", patterns.index(pattern)))
        where = f"{origin.describe()}: " if origin is not None else ""
        say(
            console, f"{where}warning: data.exclude pattern {pattern!r} matches no image: remove it"
        )
    if ds.index.relabeled:
        say(console, f"{len(ds.index.relabeled)} label(s) corrected by data.relabel")
    for path in ds.index.unknown_relabels:
        origin = ctx.loaded.raw.values.get(("data", "relabel", path))
        where = f"{origin.describe()}: " if origin is not None else ""
        say(
            console,
            f"{where}warning: data.relabel path {path!r} names no image (or an excluded one): "
            "remove it",
        )


def _dvc(ctx: RunContext, data_path: str, console: Any) -> dict[str, Any] | None:
    """The .dvc file versioning the data (and its md5) when the spec says DVC versions it;
    a warning when it does not exist yet (CI's `dvc pull` needs it)."""
    from cvspec.data.version import dvc_file, dvc_md5
    from cvspec.train.progress import say

    if ctx.spec.data.versioning != "dvc":
        return None
    found = dvc_file(ctx.data_root, ctx.root)
    if found is None:
        say(
            console,
            f"warning: data.versioning is dvc, but {data_path} is not tracked by DVC yet: run "
            f"`dvc add {data_path}`, commit {data_path}.dvc and `dvc push` (CI runs `dvc pull`)",
        )
        return None
    return {"file": os.path.relpath(found, ctx.root).replace(os.sep, "/"), "md5": dvc_md5(found)}


def summary_table(results: list[CheckResult]) -> Any:
    """A rich table: one row per check with its verdict, measure, limit and findings."""
    from rich.table import Table

    table = Table(title="data checks", title_justify="left")
    for column in ("check", "status", "measured", "limit", "findings"):
        table.add_column(column, justify="right" if column in {"measured", "findings"} else "left")
    style = {"pass": "green", "fail": "bold red", "info": "dim"}
    for r in results:
        limit = "" if r.limit is None else f"{r.limit:g}"
        table.add_row(
            r.name,
            f"[{style[r.status]}]{r.status}[/]",
            f"{r.value:.4g}",
            limit,
            str(len(r.findings)),
        )
    return table
