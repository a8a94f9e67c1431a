"""`cvspec validate`: check specs against the language, reporting every error at once."""

from __future__ import annotations

import sys
from pathlib import Path

from cvspec.cli.common import (
    FormatOpt,
    ProfileOpt,
    SetOpt,
    SpecArgs,
    check_format,
    diagnostic_json,
    json_errors,
    make_options,
    print_json,
    resolve_specs,
)
from cvspec.diagnostics import format_diagnostic
from cvspec.errors import SpecError
from cvspec.project import load_all, templates_problem


def command(
    specs: SpecArgs = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    format_: FormatOpt = "text",
) -> None:
    """Validate spec files (and what they extend) without writing anything.

    Values still left as TODO, alerts that reach no one, a detection mosaic or mixup that
    never runs (train.epochs at most ultralytics' close_mosaic, 10), and a value train.sweep
    replaces at every point are warnings: they do not fail validation. Every profile is checked
    too: what the spec with a profile gets wrong (a warning too) and the spec alone does not is
    reported "(in profile NAME)".

    --format json prints one object: {"ok": true, "specs": [{"file", "task", "project",
    "diagnostics": [warnings]}]}, or {"ok": false, "error", "diagnostics": [errors]}; each
    diagnostic has file, line, col, profile, set, severity, code, message and help.
    """
    as_json = check_format(format_)
    with json_errors(as_json):
        _validate(specs, profile, set_, as_json)


def _validate(
    specs: list[Path] | None, profile: str | None, set_: list[str] | None, as_json: bool
) -> None:
    from cvspec.spec import profile_variants
    from cvspec.spec.lint import (
        closed_mosaic_warnings,
        comment_warnings,
        detector_precision_warnings,
        receiver_warnings,
        sweep_shadow_warnings,
        warnings,
    )
    from cvspec.spec.validate import in_profile, where

    root, paths = resolve_specs(specs)
    options = make_options(profile, set_)
    everything = load_all(paths, options)
    problems = [p for p in map(templates_problem, everything) if p is not None]
    if problems:  # what a build stops at, found here already
        raise SpecError(problems)
    report: list[dict[str, object]] = []
    for loaded in everything:
        spec = loaded.spec
        rel = loaded.path.relative_to(root) if loaded.path.is_relative_to(root) else loaded.path
        found = warnings(loaded.raw) + comment_warnings(loaded.raw) + receiver_warnings(loaded)
        found += closed_mosaic_warnings(loaded) + sweep_shadow_warnings(loaded)
        found += detector_precision_warnings(loaded)
        seen = {k for d in found for k in (where(d), (d.code, d.message))}
        for name, variant in profile_variants(loaded, options.profile, options.sets):
            # Not closed_mosaic_warnings: a short ci profile turns mosaic off by design.
            for diag in warnings(variant.raw) + receiver_warnings(variant):
                if where(diag) not in seen and (diag.code, diag.message) not in seen:
                    found.append(in_profile(diag, name, loaded.raw))
                seen |= {where(diag), (diag.code, diag.message)}
        if as_json:
            report.append(
                {
                    "file": str(rel),
                    "task": spec.task,
                    "project": spec.project.name,
                    "diagnostics": [diagnostic_json(d) for d in found],
                }
            )
            continue
        noted = f", {len(found)} warning(s)" if found else ""
        print(f"ok {rel} ({spec.task}, project {spec.project.name}{noted})")
        for diag in found:
            print(format_diagnostic(diag, loaded.raw.sources) + "\n", file=sys.stderr)
    if as_json:
        print_json({"ok": True, "specs": report})
