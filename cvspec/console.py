"""The `cvspec` process itself: the console script and `python -m cvspec` start here.

The compile commands (validate, build, check, ...) live a few hundred milliseconds, most of it
spent importing libraries and building pydantic's schema, and two CPython defaults cost them a
fifth of that: the cyclic garbage collector runs over a hundred times while the imports
allocate objects that all live to the end, and interpreter teardown then frees every one of
them, module by module, before the process may end. So for those commands the collector runs
rarely, and the process ends right after the command, output flushed, without the teardown
(mypy does both for the same reason). The long-lived commands (run, serve) keep CPython's
defaults: training and serving make real garbage, and their threads, child processes and
temporary folders need the normal shutdown.

This module imports nothing heavy: it runs before the CLI is imported.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from contextlib import suppress
from typing import NoReturn

SHORT_COMMANDS = frozenset(
    {"validate", "build", "check", "diff", "explain", "schema", "generators", "templates", "new"}
)
GC_THRESHOLD = (100_000, 50, 100)  # CPython's default is (700, 10, 10)


def command_of(args: Sequence[str]) -> str | None:
    """The subcommand named on a command line: its first word that is not an option."""
    return next((a for a in args if not a.startswith("-")), None)


def main() -> NoReturn:
    """Run the CLI on sys.argv and end the process with its exit code."""
    short = command_of(sys.argv[1:]) in SHORT_COMMANDS
    if short:
        gc.set_threshold(*GC_THRESHOLD)
    from cvspec.cli import main as cli_main

    code = cli_main()
    if short:
        hard_exit(code)
    sys.exit(code)


def hard_exit(code: int) -> NoReturn:
    """Flush what was printed and end the process now, skipping interpreter teardown.

    Only for commands that leave nothing behind that teardown would finish: every file they
    write is closed (and synced) before they return, and they start no threads or processes.
    """
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe (`cvspec check | head`)
            stream.flush()
    os._exit(code)
