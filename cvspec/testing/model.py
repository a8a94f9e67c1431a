"""Helpers the generated model tests call: one gate against the evaluate stage's metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.testing.options import composed, run_options

if TYPE_CHECKING:
    from cvspec.spec import LoadedSpec


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
    spec's as built. Without them, `source` is the spec's line of the gate when the spec
    still sets it (the generated file names only the key, so that it stays put).
    """
    __tracebackhide__ = True  # a failure shows its message, not this helper's frames
    import pytest

    from cvspec.evaluate.gates import GateResult

    options = run_options()
    if options is not None and spec is not None:
        loaded = composed(repository(), spec, options)
        gate = _gates(loaded).get(name)
        if gate is None:  # the run's options removed it, so its evaluate did not check it
            pytest.skip(f"gate {name} is not set with {options.describe()}")
        min, max = gate[0], gate[1]
        source = f"{gate[2]}, with {options.describe()}"
    elif spec is not None:
        source = _line_of(spec, name, min, max) or source
    path = metrics_file(project)
    if not path.is_file():
        shown = os.path.relpath(path, repository())
        pytest.fail(
            f"gate {name}: no evaluation ({shown} not found); run "
            f"`cvspec run {spec or 'SPEC'} --stage evaluate` first (from {source})",
            pytrace=False,
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    stale = stale_evaluation(project, report, spec or "SPEC")
    if stale:
        pytest.fail(f"gate {name}: {stale} (from {source})", pytrace=False)
    measured = report.get("metrics", {})
    value = measured.get(name)
    result = GateResult(name, None if value is None else float(value), min, max, source)
    if not result.passed:
        worst = weakest_classes(name, report, min)
        pytest.fail(result.message() + (f"; {worst}" if worst else ""), pytrace=False)


PER_CLASS = {"min_class_recall": "recall", "min_class_ap50": "ap50"}  # gate -> per_class key
MOST_CLASSES = 3


def weakest_classes(name: str, report: dict[str, Any], min: float | None) -> str:
    """For a per-class gate, the classes below `min` in metrics.json's per_class, lowest first
    (the lowest one when none is): 'below: class 9 recall 0.963 (27 images)'; empty for other
    gates."""
    key = PER_CLASS.get(name)
    per_class = report.get("per_class")
    if key is None or not isinstance(per_class, dict):
        return ""
    values = sorted(
        (float(v[key]), str(c), v.get("support"))
        for c, v in per_class.items()
        if isinstance(v, dict) and isinstance(v.get(key), (int, float))
    )
    below = [t for t in values if min is not None and t[0] < min] or values[:1]
    shown = [
        f"class {c} {key} {value:.4g}" + (f" ({n} images)" if isinstance(n, int) else "")
        for value, c, n in below[:MOST_CLASSES]
    ]
    more = f" and {len(below) - MOST_CLASSES} more" if len(below) > MOST_CLASSES else ""
    what = "below the bound" if min is not None and below[0][0] < min else "lowest"
    return f"{what}: {', '.join(shown)}{more}" if shown else ""


def _gates(loaded: LoadedSpec) -> dict[str, tuple[float | None, float | None, str]]:
    """Gate name -> (min, max, where the spec sets it) of a loaded spec."""
    from cvspec.evaluate.gates import gate_sources
    from cvspec.spec.model import set_gates

    sources = gate_sources(loaded, repository())
    return {n: (g.min, g.max, sources[n]) for n, g in set_gates(loaded.spec.evaluate.gates).items()}


def _line_of(spec: str, name: str, min: float | None, max: float | None) -> str | None:
    """'specs/x.yaml:41' where the spec sets this gate with these bounds, or None: the spec
    no longer loads, or sets other bounds than the generated test (then `cvspec build`)."""
    from cvspec.errors import CvspecError

    try:
        gate = _gates(composed(repository(), spec, None)).get(name)
    except (CvspecError, OSError, ValueError):  # the generated source still says which key
        return None
    if gate is None or (gate[0], gate[1]) != (min, max):
        return None
    return gate[2]


def stale_evaluation(project: str, report: dict[str, Any], spec: str = "SPEC") -> str | None:
    """Why metrics.json does not describe the model trained and exported now (a later training
    run or export), or None: a gate must not pass on the numbers of an earlier model."""
    runs = repository() / "runs" / project
    evaluated = report.get("run_id")
    metrics = f"runs/{project}/evaluate/metrics.json"
    for pointer, what in (("train/current.json", "trained"), ("export/export.json", "exported")):
        try:
            now = json.loads((runs / pointer).read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue  # nothing here to compare with: the evaluation is all there is
        if now is None or now == evaluated:
            continue
        of = f"is of run {evaluated}" if evaluated else "names no training run"
        return (
            f"{metrics} {of}, but the model {what} now is run {now} (runs/{project}/{pointer}): "
            f"run `cvspec run {spec} --stage export --stage evaluate` first"
        )
    from cvspec.evaluate.export import unevaluated_export

    other = unevaluated_export(repository(), project)
    return f"{other}: run `cvspec run {spec} --stage evaluate` first" if other else None
