"""Options and helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cvspec.errors import CvspecError, Diagnostic, UsageError
from cvspec.project import Options, Output, discover_specs, find_root

if TYPE_CHECKING:
    from cvspec.spec import LoadedSpec

SpecArgs = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Spec files; default: every specs/*.yaml of this repository.",
        show_default=False,
        metavar="[SPEC]...",  # typer writes a metavar that starts with "[" as it is
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Apply the spec's profile NAME.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a value: KEY=VALUE (VALUE is YAML). Repeatable."),
]
TemplatesOpt = Annotated[
    Path | None,
    typer.Option("--templates", help="Folder of templates that override the built-in ones."),
]


def is_terminal(stream: object) -> bool:
    """Whether `stream` is a terminal someone reads, not a pipe, a file or a CI log: the one test
    for drawing (rich boxes, colours, redrawn progress lines)."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def interactive() -> bool:
    """Whether both stdout and stderr are terminals: help (stdout) and usage errors (stderr)
    are then drawn with rich; otherwise they are click's plain text, which a log or a script
    reads as it is."""
    import sys

    return is_terminal(sys.stdout) and is_terminal(sys.stderr)


def resolve_specs(specs: list[Path] | None) -> tuple[Path, list[Path]]:
    """The repository root and the spec files a command acts on."""
    root = find_root(Path.cwd())
    if not specs:
        return root, discover_specs(root)
    folders = [s for s in specs if s.is_dir()]
    if folders:
        raise UsageError(f"{', '.join(str(f) for f in folders)} is a folder; give spec files")
    missing = [s for s in specs if not s.is_file()]
    if missing:
        raise UsageError("spec file not found: " + ", ".join(str(m) for m in missing))
    return root, [s.resolve() for s in specs]


def make_options(
    profile: str | None, sets: list[str] | None, templates: Path | None = None
) -> Options:
    """Bundle the composition flags."""
    if templates is not None and not templates.is_dir():
        raise UsageError(f"--templates {templates}: not a folder")
    return Options(profile, tuple(sets or ()), templates)


def given_options(
    profile: str | None, sets: list[str] | None, templates: Path | None
) -> Options | None:
    """The composition flags of `check` and `diff`; None when none were given, so that each
    spec is compared with the options its last build recorded in cvspec.lock."""
    if profile or sets or templates is not None:
        return make_options(profile, sets, templates)
    return None


def load_one(spec: Path, profile: str | None, sets: list[str] | None) -> LoadedSpec:
    """Load the one spec a command works on, with the composition flags applied."""
    if not spec.is_file():
        raise UsageError(f"spec file not found: {spec}")
    from cvspec.spec import load_spec

    options = make_options(profile, sets)
    return load_spec(spec, options.profile, options.sets)


def warn(out: Output) -> None:
    """Print what rendering `out` warned of (an unused template override, say) to stderr."""
    import sys

    for message in out.warnings:
        print(f"warning: {out.spec_file}: {message}", file=sys.stderr)


# What a project's .gitignore must hold, each with the comment it is written with: cvspec's
# stage outputs (models, reports: hundreds of MB that DVC or CI artifacts keep, not git), and
# the HTML `dvc plots show` writes beside dvc.yaml's plots (a `git add -A` committed it).
IGNORED = (
    ("runs/", "what `cvspec run` writes: models, reports (DVC and CI artifacts keep them)"),
    ("dvc_plots/", "what `dvc plots show` writes"),
)


def ignore_runs(folder: Path) -> str | None:
    """Make the project's .gitignore ignore runs/ and dvc_plots/, each once; what was done, or
    None when it already did (`runs`, `/runs` and `/runs/` count as runs/)."""
    from cvspec.atomic import write_bytes

    path = folder / ".gitignore"
    # bytes, appended to as they are: a file in another encoding than UTF-8, or with CRLF
    # line ends (a Windows checkout), keeps its every byte and gets lines that end like its own
    data = path.read_bytes() if path.is_file() else b""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    present = {line.strip().strip("/") for line in text.splitlines()}
    missing = [(entry, why) for entry, why in IGNORED if entry.strip("/") not in present]
    if not missing:
        return None
    eol = "\r\n" if "\r\n" in text else "\n"
    gap = "" if not text or text.endswith("\n") else eol
    lines = "".join(f"# {why}\n{entry}\n" for entry, why in missing)
    write_bytes(path, data + (gap + lines.replace("\n", eol)).encode("utf-8"))
    names = ", ".join(entry for entry, _ in missing)
    return f"added {names} to {path}" if text else f"wrote {path} ({names})"


FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="text, or json: one JSON object on stdout (diagnostics in it, none on stderr).",
    ),
]
FORMATS = ("text", "json")


def check_format(fmt: str) -> bool:
    """Whether `--format` asks for JSON; a format that is neither is a usage error."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    return fmt == "json"


def diagnostic_json(diag: Diagnostic) -> dict[str, object]:
    """A diagnostic as `--format json` gives it: where (file, 1-based line and col; 0 when
    unknown; `profile` or the `--set` flag when it came from one), severity, code, message."""
    origin = diag.origin
    where: dict[str, object] = {"file": None, "line": 0, "col": 0, "profile": None, "set": None}
    if origin is not None and origin.kind == "set":
        where["set"] = origin.detail
    elif origin is not None and origin.kind != "default":
        where.update(file=origin.file, line=origin.line, col=origin.col)
        if origin.kind == "profile":
            where["profile"] = origin.detail
    return {
        **where,
        "severity": diag.severity,
        "code": diag.code,
        "message": diag.message,
        "help": diag.help,
    }


def print_json(data: dict[str, object]) -> None:
    """One JSON object on one line of stdout."""
    import json

    print(json.dumps(data, ensure_ascii=False, sort_keys=True))


@contextmanager
def json_errors(enabled: bool) -> Iterator[None]:
    """With `--format json`, a user error is the JSON object `{"ok": false, "error": MESSAGE,
    "diagnostics": [...]}` on stdout, with the error's exit code; otherwise it propagates."""
    try:
        yield
    except CvspecError as exc:
        if not enabled:
            raise
        print_json({"ok": False, **error_json(exc)})
        raise typer.Exit(exc.exit_code) from None


def error_json(exc: CvspecError) -> dict[str, object]:
    """A user error as `--format json` gives it: {"error": MESSAGE, "diagnostics": [...]}."""
    message = exc.message or (exc.diagnostics[0].message if exc.diagnostics else "")
    return {"error": message, "diagnostics": [diagnostic_json(d) for d in exc.diagnostics]}


def project_json(
    root: Path,
    out: Output,
    differences: Sequence[object],
    renamed: str | None = None,
    /,
    **fields: object,
) -> dict[str, object]:
    """One project of `check`/`diff --format json`: its spec and folder, whether it matches,
    `fields`, whether the differences retrain the model (`renamed`: the folder the spec made
    under its old project name, see renamed_from), and the build's warnings."""
    from cvspec.generate.retrain import training_note

    files = list(out.files)
    note = training_note(root, out.out_dir, files, renamed) if differences and files else None
    return {
        "project": out.project,
        "spec": str(out.spec_file),
        "out_dir": str(out.out_dir),
        "ok": not differences,
        **fields,
        "training": note,
        "warnings": list(out.warnings),
    }


def renamed_from(results: Sequence[tuple[Output, Sequence[object]]]) -> dict[str, str]:
    """Spec -> the generated/<project>/ it made under its old name: an orphaned project (an
    Output without files) from a spec that now makes another one."""
    making = {out.spec_file for out, _ in results if out.files}
    return {
        out.spec_file: out.out_dir
        for out, _ in results
        if not out.files and out.spec_file in making
    }


def print_projects(projects: list[dict[str, object]]) -> None:
    """The one JSON object of `check`/`diff --format json`; exit 1 when a project differs."""
    ok = all(p["ok"] for p in projects)
    print_json({"ok": ok, "projects": projects})
    if not ok:
        raise typer.Exit(1)
