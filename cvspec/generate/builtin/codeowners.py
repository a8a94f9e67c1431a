"""CODEOWNERS lines for the spec and its generated tree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class CodeownersGenerator:
    """Placeholder while this generator is being written; plans nothing."""

    name = "codeowners"
    version = "0"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing yet."""
        return iter(())
