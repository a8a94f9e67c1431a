"""The invalid-spec corpus: every folder under tests/errors/ is one spec that must be rejected.

Each case folder holds `spec.yaml` (plus any file it extends), an optional `args` file (extra
CLI arguments, one per line) and `expected.txt`: the line `exit: 2`, then the exact stderr of
`cvspec validate spec.yaml ARGS` run in that folder. After an intended change of wording,
refresh them with `CVSPEC_UPDATE_GOLDEN=1 pytest tests/test_errors.py` and read the diff.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import UPDATE_GOLDEN, Result, cvspec

ERRORS = Path(__file__).resolve().parent / "errors"
CASES = sorted(p.parent for p in ERRORS.glob("*/spec.yaml"))


def _args(case: Path) -> list[str]:
    """The extra CLI arguments of a case: one per line, blank lines ignored."""
    file = case / "args"
    if not file.is_file():
        return []
    return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run(case: Path) -> Result:
    return cvspec("validate", "spec.yaml", *_args(case), cwd=case, env={"COLUMNS": "100"})


def _selected(request: pytest.FixtureRequest) -> list[Path]:
    """The cases this pytest run will execute (all of them when that cannot be told)."""
    names = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(params.get("case"), Path):
            names.add(params["case"].name)
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
    expected = case / "expected.txt"
    if UPDATE_GOLDEN:
        expected.write_text(actual, encoding="utf-8", newline="\n")
    # Checked in update mode too: a refresh must not bless a crash or an accepted spec.
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert result.out == ""
    assert result.code == 2, result.err
    assert expected.is_file(), f"missing {expected}; create it with CVSPEC_UPDATE_GOLDEN=1"
    assert actual == expected.read_text(encoding="utf-8")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25, f"only {len(CASES)} cases under {ERRORS}"


def test_yaml_1_2_words_stay_strings(tmp_path: Path) -> None:
    """YAML 1.2: `no` is text and `on` a key, so this spec is valid (hence not in the corpus)."""
    (tmp_path / "spec.yaml").write_text(
        "cvspec: 1\n"
        "project: {name: demo, description: no, contacts: {slack: '#cv'}}\n"
        "task: classification\n"
        "data: {path: data}\n"
        "model: {arch: timm/resnet18, image_size: 32}\n"
        "ci: {on: [push]}\n",
        encoding="utf-8",
    )
    result = cvspec("validate", "spec.yaml", cwd=tmp_path)
    assert (result.code, result.err) == (0, "")
    assert result.out == "ok spec.yaml (classification, project demo)\n"


def test_a_spec_value_error_crosses_a_process_boundary_whole() -> None:
    """A sweep point run by the joblib launcher fails in a worker process: its located error
    must reach the parent with its key, hint and code (pickled), not as a TypeError."""
    import pickle

    from cvspec.errors import SpecValueError

    sent = SpecValueError(("model", "arch"), "unknown timm model 'nosuchnet'", "try resnet18", "x")
    got = pickle.loads(pickle.dumps(sent))
    assert type(got) is SpecValueError and str(got) == str(sent)
    assert (got.key, got.hint, got.code, got.detail) == (
        sent.key,
        sent.hint,
        sent.code,
        sent.detail,
    )
