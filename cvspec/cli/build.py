"""`cvspec build`: render specs into generated/ atomically, never overwriting hand edits."""

from __future__ import annotations

from typing import Annotated

import typer

from cvspec.cli.common import (
    ProfileOpt,
    SetOpt,
    SpecArgs,
    TemplatesOpt,
    make_options,
    resolve_specs,
    warn,
)
from cvspec.generate.cache import RenderCache
from cvspec.project import build


def command(
    specs: SpecArgs = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    templates: TemplatesOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite hand-edited files, saving each edited copy as FILE.orig.",
        ),
    ] = False,
    prune_missing: Annotated[
        bool,
        typer.Option(
            "--prune-missing",
            help="Remove the files of generators that are not installed here (cvspec.lock "
            "records which generator made each file); without it, the build stops.",
        ),
    ] = False,
) -> None:
    """Build generated/PROJECT/ for each spec."""
    root, paths = resolve_specs(specs)
    options = make_options(profile, set_, templates)
    for out, report in build(
        root, paths, options, force, RenderCache.default(), not specs, prune_missing
    ):
        warn(out)
        if not out.files:  # a project no spec makes any more
            print(
                f"removed {len(report.removed)} file(s) of {out.out_dir}/: no spec makes "
                f"project '{out.project}' any more (built from {out.spec_file})"
            )
            for change in report.kept:
                print(f"  kept {change.path}: {change.reason}")
            continue
        parts = [f"{len(report.written)} written", f"{len(report.unchanged)} unchanged"]
        if report.removed:
            parts.append(f"{len(report.removed)} removed")
        print(f"built {out.project} from {out.spec_file} -> {out.out_dir}/ ({', '.join(parts)})")
        for path in report.saved:
            print(f"  saved your edited copy as {path}")
        for change in report.kept:
            print(f"  kept {change.path}: {change.reason}")
