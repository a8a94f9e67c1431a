"""`cvspec check`: does generated/ match the specs? Names drift, tamper, missing and orphan."""

from __future__ import annotations

import typer

from cvspec.cli.common import ProfileOpt, SetOpt, SpecArgs, make_options, resolve_specs
from cvspec.generate.cache import RenderCache
from cvspec.project import check


def command(specs: SpecArgs = None, profile: ProfileOpt = None, set_: SetOpt = None) -> None:
    """Exit 0 when generated output matches the specs, 1 otherwise."""
    root, paths = resolve_specs(specs)
    options = make_options(profile, set_) if (profile or set_) else None
    failed = 0
    for out, findings in check(root, paths, options, RenderCache.default()):
        if not findings:
            print(
                f"ok {out.project}: {out.out_dir}/ matches {out.spec_file} ({len(out.files)} files)"
            )
            continue
        failed += 1
        print(f"FAIL {out.project}: {out.out_dir}/ does not match {out.spec_file}")
        width = max(len(c.finding or "") for c in findings)
        for change in findings:
            print(f"  {change.finding:<{width}}  {change.path}: {change.reason}")
    if failed:
        print(
            f"\n{failed} project(s) out of date; run `cvspec build` (it never overwrites "
            "hand edits; see `--force`)"
        )
        raise typer.Exit(1)
