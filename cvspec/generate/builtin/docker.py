"""Dockerfiles for the train and serve images, and .dockerignore."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class DockerGenerator:
    """Placeholder while this generator is being written; plans nothing."""

    name = "docker"
    version = "0"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing yet."""
        return iter(())
