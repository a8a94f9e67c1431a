"""`cvspec validate`: check specs against the language, reporting every error at once."""

from __future__ import annotations

import sys

from cvspec.cli.common import ProfileOpt, SetOpt, SpecArgs, make_options, resolve_specs
from cvspec.diagnostics import format_diagnostic
from cvspec.errors import SpecError
from cvspec.project import load_all, templates_problem


def command(specs: SpecArgs = None, profile: ProfileOpt = None, set_: SetOpt = None) -> None:
    """Validate spec files (and what they extend) without writing anything.

    Values still left as TODO, alerts that reach no one, a detection mosaic or mixup that
    never runs (train.epochs at most ultralytics' close_mosaic, 10), and a value train.sweep
    replaces at every point are warnings: they do not fail validation.
    """
    from cvspec.spec.lint import (
        closed_mosaic_warnings,
        receiver_warnings,
        sweep_shadow_warnings,
        warnings,
    )

    root, paths = resolve_specs(specs)
    everything = load_all(paths, make_options(profile, set_))
    problems = [p for p in map(templates_problem, everything) if p is not None]
    if problems:  # what a build stops at, found here already
        raise SpecError(problems)
    for loaded in everything:
        spec = loaded.spec
        rel = loaded.path.relative_to(root) if loaded.path.is_relative_to(root) else loaded.path
        found = [
            *warnings(loaded.raw),
            *receiver_warnings(loaded),
            *closed_mosaic_warnings(loaded),
            *sweep_shadow_warnings(loaded),
        ]
        noted = f", {len(found)} warning(s)" if found else ""
        print(f"ok {rel} ({spec.task}, project {spec.project.name}{noted})")
        for diag in found:
            print(format_diagnostic(diag, loaded.raw.sources) + "\n", file=sys.stderr)
