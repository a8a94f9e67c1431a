"""The `cvspec` command line; `main` is the one place that maps errors to exit codes."""

from __future__ import annotations

import contextlib
import io
import os
import sys

# pydantic scans every installed package for plugins at import; a CLI needs none (~10 ms).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from cvspec.cli import (
    build,
    check,
    diff,
    explain,
    generators,
    init,
    new,
    relabel,
    review,
    run,
    runs,
    schema,
    serve,
    templates,
    validate,
)
from cvspec.cli.common import interactive
from cvspec.errors import CvspecError, SpecError

PIPE_CLOSED = 141  # what a shell reports for a process that SIGPIPE ended (128 + 13)


@contextlib.contextmanager
def _pipe_closed() -> Iterator[None]:
    """A reader that stopped reading (`cvspec explain x.yaml | head -1`) ends the command with
    exit 141 and no message. click would exit 1, which says "stale" for check and diff."""
    try:
        yield
    except BrokenPipeError:
        if not _output_closed():  # another pipe (a subprocess's, a socket's): not the reader's
            raise
    except SystemExit as exc:  # rich's own handling (--help, `run`'s log): exit 1, once it
        if exc.code != 1 or not _rich_broken_pipe(exc):  # has pointed stdout at /dev/null
            raise
    else:
        return
    null = os.open(os.devnull, os.O_WRONLY)  # the flushes at exit have nowhere to go
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(null, stream.fileno())
    raise SystemExit(PIPE_CLOSED) from None


def _output_closed() -> bool:
    """Whether the reader of stdout or stderr is gone (poll reports an error on the pipe), so a
    BrokenPipeError from anything else stays the error it is."""
    import select

    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0)):
            return True
    return False


def _rich_broken_pipe(exc: SystemExit) -> bool:
    """Whether rich's Console.on_broken_pipe raised `exc` (its reaction to a closed pipe)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "on_broken_pipe"


class _Group(TyperGroup):
    """The command group, with a closed output pipe mapped to exit 141: both the help that
    parsing prints (`make_context`) and what a command prints (`invoke`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _pipe_closed():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _pipe_closed():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Group,
    name="cvspec",
    help="Compile one declarative YAML spec of a computer-vision project into its MLOps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines make one paragraph in --help
)


def _version(value: bool) -> None:
    if value:
        from cvspec import __version__

        print(f"cvspec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Compile one declarative YAML spec of a computer-vision project into its MLOps."""


app.command("validate")(validate.command)
app.command("build")(build.command)
app.command("check")(check.command)
app.command("diff")(diff.command)
app.command("explain")(explain.command)
app.command("new")(new.command)
app.command("schema")(schema.command)
app.command("generators")(generators.command)
app.command("templates")(templates.command)
app.command("run")(run.command)
app.command("runs")(runs.command)
app.command("init")(init.command)
app.command("serve")(serve.command)
app.command("review")(review.command)
app.command("relabel")(relabel.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 check failed, 2 bad input, 3 a bug."""
    # A class name or path the locale cannot encode (LANG=C without UTF-8 mode) is escaped
    # on stdout as Python escapes it on stderr, not an internal error halfway through.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")

    # rich boxes on a terminal; off one (a CI log, a pipe) click's plain `Usage:`/`Error:` text
    app.rich_markup_mode = "markdown" if interactive() else None

    def run() -> None:
        try:
            app(args=list(argv) if argv is not None else None, prog_name="cvspec")
        except SystemExit as exc:  # typer's standalone mode always ends here
            if exc.code not in (0, None):
                raise

    return guarded(run)


def guarded(run: Callable[[], None]) -> int:
    """Call `run`, mapping what it raises to an exit code; the one place errors become codes."""
    try:
        run()
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C into a silent exit 130: a log should say so
            print("interrupted", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CvspecError as exc:
        report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        return internal_error()
    return 0


def report(exc: CvspecError) -> None:
    """Print a user error: every diagnostic, then a one-line summary.

    With CVSPEC_DEBUG set, the traceback of what caused it (a plugin's exception) comes first.
    """
    from cvspec.diagnostics import format_all

    if os.environ.get("CVSPEC_DEBUG") and exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)

    if isinstance(exc, SpecError):
        print(format_all(exc.diagnostics), file=sys.stderr)
        print(f"\n{exc.message}", file=sys.stderr)
        return
    if exc.message:  # empty when the diagnostics say it all (with where)
        print(f"error: {exc.message}", file=sys.stderr)
    if exc.diagnostics:
        print(format_all(exc.diagnostics), file=sys.stderr)


def internal_error() -> int:
    """Report a bug in one line, keep the traceback in a log, and exit 3."""
    text = traceback.format_exc()
    kind, value = sys.exc_info()[:2]
    name = kind.__name__ if kind else "Exception"
    if os.environ.get("CVSPEC_DEBUG"):
        print(text, file=sys.stderr, end="")
    fd, log = tempfile.mkstemp(prefix="cvspec-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    print(
        f"cvspec: internal error ({name}: {value}); this is a bug in cvspec. The traceback is "
        f"in {log}; run with CVSPEC_DEBUG=1 to print it.",
        file=sys.stderr,
    )
    return 3
