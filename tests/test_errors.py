"""The invalid-spec corpus: every folder under tests/errors/ is one spec that must be rejected.

Each case folder holds `spec.yaml` (plus any file it extends), an optional `args` file (extra
CLI arguments, one per line) and `expected.txt`: the line `exit: 2`, then the exact stderr of
`cvspec validate spec.yaml ARGS` run in that folder. Refresh the expected files after an
intended change of wording with `CVSPEC_UPDATE_GOLDEN=1 pytest tests/test_errors.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import UPDATE_GOLDEN, Result, cvspec

ERRORS = Path(__file__).resolve().parent / "errors"
CASES = sorted(p for p in ERRORS.iterdir() if (p / "spec.yaml").is_file()) if ERRORS.is_dir() \
    else []


def _args(case: Path) -> list[str]:
    """The extra CLI arguments of a case: one per line, blank lines ignored."""
    file = case / "args"
    if not file.is_file():
        return []
    return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run(case: Path) -> Result:
    return cvspec("validate", "spec.yaml", *_args(case), cwd=case, env={"COLUMNS": "100"})


def _selected(request: pytest.FixtureRequest) -> list[Path]:
    """The cases this pytest run will actually execute (all of them when unsure)."""
    names = {item.callspec.params["case"].name for item in request.session.items
             if getattr(item, "callspec", None) is not None
             and isinstance(item.callspec.params.get("case"), Path)}
    return [c for c in CASES if c.name in names] or CASES


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[Path, Future[Result]]]:
    """Start every selected case at once; each test then waits for its own run."""
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield {case: pool.submit(_run, case) for case in _selected(request)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_spec_is_rejected_with_exact_diagnostics(
    case: Path, runs: dict[Path, Future[Result]]
) -> None:
    result = runs[case].result() if case in runs else _run(case)
    actual = f"exit: {result.code}\n{result.err}"
    expected_file = case / "expected.txt"
    if UPDATE_GOLDEN:
        expected_file.write_text(actual, encoding="utf-8", newline="\n")
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert result.out == ""
    assert result.code == 2, result.err
    if not UPDATE_GOLDEN:
        assert expected_file.is_file(), f"{expected_file} is missing; run with CVSPEC_UPDATE_GOLDEN=1"
        assert actual == expected_file.read_text(encoding="utf-8")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25, f"only {len(CASES)} cases under {ERRORS}"
    assert all((c / "expected.txt").is_file() or UPDATE_GOLDEN for c in CASES)
