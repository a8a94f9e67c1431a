"""Helpers the generated model tests call: one gate against the evaluate stage's metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cvspec.testing.options import composed, run_options


def repository() -> Path:
    """$CVSPEC_ROOT, else the repository of the working directory."""
    from cvspec.project import find_root

    env = os.environ.get("CVSPEC_ROOT")
    return Path(env) if env else find_root(Path.cwd())


def metrics_file(project: str) -> Path:
    """runs/<project>/evaluate/metrics.json of the repository."""
    return repository() / "runs" / project / "evaluate" / "metrics.json"


def check_gate(
    project: str,
    name: str,
    min: float | None,
    max: float | None,
    source: str,
    spec: str | None = None,
) -> None:
    """Assert one quality gate; the failure says the measured value, the bound and its source.

    Under the test stage of a run with --profile or --set, the bounds are those of the spec
    that run composed (the evaluate stage's), with their provenance: `min`, `max` are the
    spec's as built.
    """
    from cvspec.evaluate.gates import GateResult

    options = run_options()
    if options is not None and spec is not None:
        from cvspec.evaluate.gates import gate_sources
        from cvspec.spec.model import set_gates

        loaded = composed(repository(), spec, options)
        gate = set_gates(loaded.spec.evaluate.gates).get(name)
        if gate is None:  # the run's options removed it, so its evaluate did not check it
            import pytest

            pytest.skip(f"gate {name} is not set with {options.describe()}")
        min, max = gate.min, gate.max
        source = f"{gate_sources(loaded)[name]}, with {options.describe()}"
    path = metrics_file(project)
    if not path.is_file():
        raise AssertionError(
            f"gate {name}: no evaluation at {path}; run "
            "`cvspec run SPEC --stage evaluate` first (from " + source + ")"
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    stale = stale_evaluation(project, report)
    if stale:
        raise AssertionError(f"gate {name}: {stale} (from {source})")
    measured = report.get("metrics", {})
    value = measured.get(name)
    result = GateResult(name, None if value is None else float(value), min, max, source)
    assert result.passed, result.message()


def stale_evaluation(project: str, report: dict[str, object]) -> str | None:
    """Why metrics.json does not describe the model trained now (a later training run), or
    None: a gate must not pass on the numbers of an earlier model."""
    pointer = repository() / "runs" / project / "train" / "current.json"
    try:
        trained = json.loads(pointer.read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None  # no training here to compare with: the evaluation is all there is
    evaluated = report.get("run_id")
    if trained is None or trained == evaluated:
        return None
    return (
        f"runs/{project}/evaluate/metrics.json is of run {evaluated}, but the model trained "
        f"now is run {trained}: run `cvspec run SPEC --stage export --stage evaluate` first"
    )
