"""Helpers the generated model tests call: one gate against the evaluate stage's metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path


def metrics_file(project: str) -> Path:
    """runs/<project>/evaluate/metrics.json under $CVSPEC_ROOT, else the repository of the cwd."""
    from cvspec.project import find_root

    root = (
        Path(os.environ["CVSPEC_ROOT"]) if os.environ.get("CVSPEC_ROOT") else find_root(Path.cwd())
    )
    return root / "runs" / project / "evaluate" / "metrics.json"


def check_gate(project: str, name: str, min: float | None, max: float | None, source: str) -> None:
    """Assert one quality gate; the failure says the measured value, the bound and its spec line."""
    from cvspec.evaluate.gates import GateResult

    path = metrics_file(project)
    if not path.is_file():
        raise AssertionError(
            f"gate {name}: no evaluation at {path}; run "
            "`cvspec run SPEC --stage evaluate` first (from " + source + ")"
        )
    measured = json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
    value = measured.get(name)
    result = GateResult(name, None if value is None else float(value), min, max, source)
    assert result.passed, result.message()
