"""The GitHub Actions workflow that runs the stage graph."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class GitHubActionsGenerator:
    """Placeholder while this generator is being written; plans nothing."""

    name = "github"
    version = "0"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing yet."""
        return iter(())
