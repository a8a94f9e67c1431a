"""docker-compose for the model server and its monitoring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class MonitoringComposeGenerator:
    """Placeholder while this generator is being written; plans nothing."""

    name = "compose"
    version = "0"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing yet."""
        return iter(())
