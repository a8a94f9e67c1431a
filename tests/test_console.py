"""The `cvspec` process: a short command ends without teardown yet loses no output or code."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvspec import console
from tests.helpers import MINIMAL_SPEC, cvspec, project

DEFAULT_THRESHOLD = gc.get_threshold()


class Ended(Exception):
    """Raised instead of ending the test process."""

    def __init__(self, how: str, code: int) -> None:
        super().__init__(how, code)
        self.how, self.code = how, code


@pytest.fixture
def ends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int, int]]]:
    """console.main with the CLI replaced: records the GC threshold the CLI ran under."""
    seen: list[tuple[int, int, int]] = []

    def fake_cli() -> int:
        seen.append(gc.get_threshold())
        return 7

    def hard(code: int) -> None:
        raise Ended("hard", code)

    def soft(code: object) -> None:
        raise Ended("sys.exit", int(code))  # type: ignore[call-overload]

    import cvspec.cli

    monkeypatch.setattr(cvspec.cli, "main", fake_cli)
    monkeypatch.setattr(console, "hard_exit", hard)
    monkeypatch.setattr(console.sys, "exit", soft)
    yield seen
    gc.set_threshold(*DEFAULT_THRESHOLD)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["build", "specs/a.yaml"], "build"),
        (["--help"], None),
        (["check", "--strict"], "check"),
        (["run", "specs/a.yaml", "--stage", "train"], "run"),
        ([], None),
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert console.command_of(argv) == command


@pytest.mark.parametrize("command", sorted(console.SHORT_COMMANDS))
def test_short_commands_collect_rarely_and_skip_teardown(
    command: str, ends: list[tuple[int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["cvspec", command])
    with pytest.raises(Ended) as ended:
        console.main()
    assert (ended.value.how, ended.value.code) == ("hard", 7)
    assert ends == [console.GC_THRESHOLD]


@pytest.mark.parametrize("argv", [["run", "specs/a.yaml"], ["serve"], ["init"], ["--version"]])
def test_long_commands_keep_cpython_defaults(
    argv: list[str], ends: list[tuple[int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["cvspec", *argv])
    with pytest.raises(Ended) as ended:
        console.main()
    assert (ended.value.how, ended.value.code) == ("sys.exit", 7)
    assert ends == [DEFAULT_THRESHOLD]


def test_hard_exit_keeps_every_diagnostic_and_the_exit_code(tmp_path: Path) -> None:
    root = project(tmp_path, MINIMAL_SPEC + "train: {epoch: 3}\n")
    result = cvspec("validate", "specs/demo.yaml", cwd=root)
    assert result.code == 2
    assert result.err.rstrip().endswith("1 error"), result.err
    assert "help: did you mean" in result.err


def test_a_reader_that_went_away_gets_no_traceback(tmp_path: Path) -> None:
    """`cvspec check | head -0`: stdout's reader is gone before the final flush."""
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cvspec", "check"],
            cwd=root,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
