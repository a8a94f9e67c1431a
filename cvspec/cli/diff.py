"""`cvspec diff`: what `check` finds, line by line, as a patch of what a build would change."""

from __future__ import annotations

import os
import sys
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
    is_terminal,
    json_errors,
    print_projects,
    project_json,
    renamed_from,
    resolve_specs,
    warn,
)
from cvspec.generate.cache import RenderCache
from cvspec.generate.diff import colored, file_diff, project_diff
from cvspec.project import Options, check


def command(
    specs: SpecArgs = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    templates: TemplatesOpt = None,
    format_: FormatOpt = "text",
) -> None:
    """Show how generated output differs from what the specs make; exit 1 if it does.

    The diff is what 'cvspec build' would change (a patch 'git apply' takes), from the same
    findings as 'check': with no --profile, --set or --templates, each spec is compared with
    the options its last build recorded in cvspec.lock. Nothing is written.

    --format json prints one object: {"ok", "projects": [{"project", "spec", "out_dir", "ok",
    "files": [{"path", "finding", "action", "reason", "diff"}], "training", "warnings"}]}, the
    files in the order of the text diff; "finding" is drift, tamper, missing or orphan (as in
    `check`), "action" what a build does: create, update, remove, conflict (only with --force),
    keep or uninstalled (left to you; "diff" is then ""); "diff" is the file's unified diff.
    A spec error is {"ok": false, "error", "diagnostics"}, exit 2.
    """
    if check_format(format_):
        with json_errors(True):
            _diff_json(specs, given_options(profile, set_, templates))
        return
    root, paths = resolve_specs(specs)
    options = given_options(profile, set_, templates)
    lines: list[str] = []
    summary: list[str] = []
    edited = left = 0
    results = check(root, paths, options, RenderCache.default(), not specs)
    renamed = renamed_from(results)
    for out, findings in results:
        warn(out)
        if findings:
            from cvspec.generate.retrain import training_note

            note = training_note(root, out.out_dir, list(out.files), renamed.get(out.spec_file))
            if note:
                lines.append(f"# training ({out.project}): {note}\n")
            lines.extend(project_diff(root, findings, out.files))
            changed = sum(c.action not in ("keep", "uninstalled") for c in findings)
            if changed:
                summary.append(f"{out.project}: {changed} file(s) differ")
            edited += sum(c.action == "conflict" for c in findings)
            left += sum(c.action in ("keep", "uninstalled") for c in findings)
    color = is_terminal(sys.stdout) and not os.environ.get("NO_COLOR")
    sys.stdout.writelines(colored(lines) if color else lines)
    sys.stdout.flush()
    if summary:
        how = " (a hand-edited file only with --force)" if edited else ""
        flags = "".join(f" {word}" for word in _flags(profile, set_, templates))
        print(
            f"{'; '.join(summary)}; `cvspec build{flags}` makes these changes{how}",
            file=sys.stderr,
        )
    if left:
        print(
            f"{left} file(s) a build leaves to you (the `#` notes): merge what you need, then "
            "move or delete them",
            file=sys.stderr,
        )
    if summary or left:
        raise typer.Exit(1)


def _diff_json(specs: list[Path] | None, options: Options | None) -> None:
    """`diff --format json`: each differing file's finding, action and diff; same exit code."""
    from cvspec.generate.manifest import LOCK_NAME

    root, paths = resolve_specs(specs)
    projects: list[dict[str, object]] = []
    results = check(root, paths, options, RenderCache.default(), not specs)
    renamed = renamed_from(results)
    for out, findings in results:
        new = {f.path: f for f in out.files}
        files = []
        for change in sorted(findings, key=lambda c: (c.path.endswith("/" + LOCK_NAME), c.path)):
            diff = file_diff(root, change, new.get(change.path))[1:]  # less the `#` note
            files.append(
                {
                    "path": change.path,
                    "finding": change.finding,
                    "action": change.action,
                    "reason": change.reason,
                    "diff": "".join(diff),
                }
            )
        projects.append(project_json(root, out, findings, renamed.get(out.spec_file), files=files))
    print_projects(projects)


def _flags(profile: str | None, sets: list[str] | None, templates: object) -> list[str]:
    """The composition flags given, as a build repeats them (shell-quoted)."""
    import shlex

    words = [f"--profile {shlex.quote(profile)}"] if profile else []
    words += [f"--set {shlex.quote(s)}" for s in sets or ()]
    if templates is not None:
        words.append(f"--templates {shlex.quote(str(templates))}")
    return words
