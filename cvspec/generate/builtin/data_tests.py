"""The generated pytest data-quality suite: one test per gated check, limits from the spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class DataTestsGenerator:
    """Writes tests/test_data.py: thin, parametrized by check, calling cvspec.testing.data."""

    name = "data-tests"
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """One test module; checks the spec reports only (no limit) get no test."""
        from cvspec.data.checks import applicable

        limits = [(c.name, c.limit(spec)) for c in applicable(spec)]
        yield Artifact(
            "tests/test_data.py",
            self.name,
            "python",
            template="data/test_data.py.j2",
            context={
                "project": ctx.project,
                "spec_file": ctx.spec_file,
                "limits": [(n, limit) for n, limit in limits if limit is not None],
            },
        )
