"""Repository plumbing for a generated tree: `.gitattributes` marking it linguist-generated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext


class RepoFilesGenerator:
    """Marks generated/<project>/ as generated (collapsed in PR diffs) and LF-only."""

    name = "repo"
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """One `.gitattributes` for the project's generated tree."""
        yield Artifact(
            ".gitattributes",
            self.name,
            "text",
            template="repo/gitattributes.j2",
            context={"project": ctx.project},
        )
