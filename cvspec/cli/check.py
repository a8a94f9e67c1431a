"""`cvspec check`: does generated/ match the specs? Names drift, tamper, missing and orphan."""

from __future__ import annotations

from pathlib import Path

import typer

from cvspec.cli.common import (
    FormatOpt,
    ProfileOpt,
    SetOpt,
    SpecArgs,
    TemplatesOpt,
    check_format,
    given_options,
    json_errors,
    print_projects,
    project_json,
    renamed_from,
    resolve_specs,
    warn,
)
from cvspec.generate.cache import RenderCache
from cvspec.generate.compare import describe_options
from cvspec.generate.manifest import LOCK_NAME, parse_manifest
from cvspec.project import Options, Output, check


def command(
    specs: SpecArgs = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    templates: TemplatesOpt = None,
    format_: FormatOpt = "text",
) -> None:
    """Exit 0 when generated output matches the specs, 1 otherwise.

    With no --profile, --set or --templates, each spec is checked with the options its last
    build recorded in cvspec.lock.

    --format json prints one object: {"ok", "projects": [{"project", "spec", "out_dir", "ok",
    "findings": [{"finding", "path", "reason", "action"}], "training", "warnings"}]};
    "finding" is drift, tamper, missing or orphan. A spec error is {"ok": false, "error",
    "diagnostics"}, exit 2.
    """
    if check_format(format_):
        with json_errors(True):
            _check_json(specs, given_options(profile, set_, templates))
        return
    root, paths = resolve_specs(specs)
    options = given_options(profile, set_, templates)
    failed = 0
    stale = left = held = 0  # findings a build fixes; files it leaves for the user; or refuses
    results = check(root, paths, options, RenderCache.default(), not specs)
    renamed = renamed_from(results)
    for out, findings in results:
        warn(out)
        if not findings:
            print(
                f"ok {out.project}: {out.out_dir}/ matches {out.spec_file} ({len(out.files)} "
                f"files{_options(out)})"
            )
            if options is None:
                _warn_if_composed(out)
            continue
        failed += 1
        if out.files:
            print(f"FAIL {out.project}: {out.out_dir}/ does not match {out.spec_file}")
        else:
            print(f"FAIL {out.project}: {out.out_dir}/ is left over; no spec makes it any more")
        width = max(len(c.finding or "") for c in findings)
        for change in findings:
            print(f"  {change.finding:<{width}}  {change.path}: {change.reason}")
        from cvspec.generate.retrain import training_note

        old = renamed.get(out.spec_file)
        note = training_note(root, out.out_dir, list(out.files), old) if out.files else None
        if note:
            print(f"  training: {note}")
        left += sum(c.action == "keep" for c in findings)
        held += sum(c.action == "uninstalled" for c in findings)
        stale += sum(c.action not in ("keep", "uninstalled") for c in findings)
    if failed:
        print()
        if stale:
            print(
                f"{stale} file(s) out of date; `cvspec diff` shows the changes; run `cvspec "
                "build` (it never overwrites hand edits; see `--force`)"
            )
        if held:
            print(
                f"{held} file(s) made by generators not installed here: install them, or run "
                "`cvspec build --prune-missing` to remove their files"
            )
        if left:
            print(
                f"{left} file(s) a build leaves to you (an edited copy, a file cvspec did not "
                "make): merge what you need, then move or delete them"
            )
        raise typer.Exit(1)


def _check_json(specs: list[Path] | None, options: Options | None) -> None:
    """`check --format json`: the same findings and exit code as one JSON object."""
    root, paths = resolve_specs(specs)
    results = check(root, paths, options, RenderCache.default(), not specs)
    renamed = renamed_from(results)
    projects = [
        project_json(
            root,
            out,
            findings,
            renamed.get(out.spec_file),
            findings=[
                {"finding": c.finding, "path": c.path, "reason": c.reason, "action": c.action}
                for c in findings
            ],
        )
        for out, findings in results
    ]
    print_projects(projects)


def _options(out: Output) -> str:
    """`, built with --profile ci` when the build options were not the defaults."""
    lock = next((f for f in out.files if f.path == f"{out.out_dir}/{LOCK_NAME}"), None)
    if lock is None:
        return ""
    words = describe_options(parse_manifest(lock.content, lock.path).options)
    return "" if words == "no options" else f", built with {words}"


def _warn_if_composed(out: Output) -> None:
    """A tree built with --profile/--set holds values the spec file does not: the generated CI
    jobs and DVC stages run the spec as written, so what they train differs from what the
    committed configs say. Said, not failed: a build with options is a legitimate preview."""
    import sys

    lock = next((f for f in out.files if f.path == f"{out.out_dir}/{LOCK_NAME}"), None)
    if lock is None:
        return
    options = parse_manifest(lock.content, lock.path).options
    if not options.get("profile") and not options.get("set"):
        return
    flags = describe_options({**options, "templates": None})
    print(
        f"warning: {out.out_dir}/ was built with {flags}: the generated CI jobs and DVC stages "
        f"run {out.spec_file} without them, so its configs are not what they train; run "
        f"`cvspec build {out.spec_file}` without them before you commit",
        file=sys.stderr,
    )
