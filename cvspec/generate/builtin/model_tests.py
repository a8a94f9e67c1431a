"""The generated pytest model-gate suite: generated/<project>/tests/test_model.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class ModelTestsGenerator:
    """One thin test per quality gate; each reads the evaluate stage's metrics.json."""

    name = "model-tests"
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """tests/test_model.py when the spec sets any gate; nothing otherwise."""
        from cvspec.spec.model import set_gates

        gates = [
            {
                "name": name,
                "min": gate.min,
                "max": gate.max,
                # the key, not its line: an edit elsewhere in the spec leaves this file alone
                "source": f"{ctx.spec_file}: evaluate.gates.{name}",
            }
            for name, gate in set_gates(spec.evaluate.gates).items()
        ]
        if not gates:
            return
        yield Artifact(
            "tests/test_model.py",
            self.name,
            "python",
            template="model_tests/test_model.py.j2",
            context={"project": ctx.project, "spec_file": ctx.spec_file, "gates": gates},
        )
