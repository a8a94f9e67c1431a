"""The DVC pipeline (dvc.yaml, params.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class DvcGenerator:
    """Placeholder while this generator is being written; plans nothing."""

    name = "dvc"
    version = "0"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing yet."""
        return iter(())
