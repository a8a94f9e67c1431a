"""Quality gates: compare measured metrics with the spec's bounds; one result per gate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple


class GateResult(NamedTuple):
    """One gate: the metric, its bounds, the measured value, and where the spec sets it."""

    name: str
    value: float | None
    min: float | None
    max: float | None
    source: str  # spec file:line, or the dotted key when the line is unknown

    @property
    def passed(self) -> bool:
        """True when the value is measured, a number, and inside both bounds."""
        if self.value is None or math.isnan(self.value):
            return False
        return (self.min is None or self.value >= self.min) and (
            self.max is None or self.value <= self.max
        )

    def bound(self) -> str:
        """The threshold as text: '>= 0.95', '<= 20', or both."""
        parts = ([f">= {self.min:g}"] if self.min is not None else []) + (
            [f"<= {self.max:g}"] if self.max is not None else []
        )
        return " and ".join(parts)

    def message(self) -> str:
        """What a person reads when the gate fails (and in the table)."""
        verdict = "passed" if self.passed else "FAILED"
        shown = "not measured" if self.value is None else f"measured {self.value:.6g}"
        return f"gate {self.name} {verdict}: {shown}, required {self.bound()} (from {self.source})"

    def to_json(self) -> dict[str, Any]:
        """As written to metrics.json."""
        return {
            "name": self.name,
            "value": self.value,
            "min": self.min,
            "max": self.max,
            "passed": self.passed,
            "source": self.source,
        }


def gate_sources(loaded: Any, root: Path | None = None) -> dict[str, str]:
    """Gate name -> 'file:line' where the spec sets it (its key's position in the source map);
    a file under `root` relative to it, wherever the working directory is."""
    raw = loaded.raw
    out: dict[str, str] = {}
    for name in _gate_names(loaded.spec):
        path = ("evaluate", "gates", name)
        origin = (
            raw.keys.get(path) or raw.values.get((*path, "min")) or raw.values.get((*path, "max"))
        )
        if origin is not None and origin.file and root is not None:
            file = Path(origin.file).resolve()  # recorded absolute, or relative to the cwd
            if file.is_relative_to(root.resolve()):
                origin = origin._replace(file=file.relative_to(root.resolve()).as_posix())
        out[name] = origin.describe() if origin is not None else f"evaluate.gates.{name}"
    return out


def evaluate(spec: Any, measured: dict[str, Any], sources: dict[str, str]) -> list[GateResult]:
    """Every gate the spec sets, against the measured metrics (a missing metric fails)."""
    from cvspec.spec.model import set_gates

    results = []
    for name, gate in set_gates(spec.evaluate.gates).items():
        value = measured.get(name)
        results.append(
            GateResult(
                name,
                None if value is None else float(value),
                gate.min,
                gate.max,
                sources.get(name, f"evaluate.gates.{name}"),
            )
        )
    return results


def table(results: list[GateResult]) -> Any:
    """A rich table of the gates: metric, measured, required, verdict, spec line."""
    from rich.table import Table

    out = Table(title="quality gates")
    for head in ("gate", "measured", "required", "result", "spec"):
        out.add_column(head)
    for r in results:
        shown = "-" if r.value is None else f"{r.value:.4g}"
        verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
        out.add_row(r.name, shown, r.bound(), verdict, r.source)
    return out


def _gate_names(spec: Any) -> list[str]:
    from cvspec.spec.model import set_gates

    return list(set_gates(spec.evaluate.gates))
