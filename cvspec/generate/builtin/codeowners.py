"""CODEOWNERS lines for the spec and everything generated from it, from project.owners."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.errors import CvspecError
from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin.github import workflow_path
from cvspec.generate.builtin.train_config import data_root
from cvspec.package.images import plain_path

NAME = "codeowners"


class CodeownersGenerator:
    """Plans generated/<project>/CODEOWNERS: a fragment for the repository's one CODEOWNERS.

    GitHub and GitLab read a single CODEOWNERS at a fixed path that every project of the
    repository shares (and that people edit), so a project cannot own that file; it owns its
    fragment, and `cat generated/*/CODEOWNERS >> .github/CODEOWNERS` (or a copy of the lines)
    puts it to work.
    """

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The fragment, when the project names owners."""
        if not spec.project.owners:
            return
        owners = " ".join(spec.project.owners)  # each an @org/team, @user or email: no spaces
        paths = [f"/{plain_path(ctx.spec_file, 'spec file')}", f"/{ctx.out_dir}/"]
        if "github" in spec.ci.providers:
            paths.append(f"/{workflow_path(ctx)}")
        paths.extend(f"/{path}" for path in _data(spec, ctx))
        note = (
            "# Lines for the repository's CODEOWNERS (GitHub: .github/CODEOWNERS, GitLab:\n"
            "# CODEOWNERS); cvspec cannot own that shared file, so copy these lines there.\n"
        )
        text = note + "".join(f"{path} {owners}\n" for path in paths)
        yield Artifact("CODEOWNERS", NAME, "text", data=text)


def _data(spec: Any, ctx: BuildContext) -> list[str]:
    """The data's folder and its `.dvc` file, which retrain the model when they change; none
    when data.path is outside the repository or no plain path (a CODEOWNERS pattern)."""
    data = data_root(spec, ctx)
    try:
        plain_path(data, "data.path")
    except CvspecError:
        return []
    return [f"{data}/", f"{data}.dvc"] if spec.data.versioning == "dvc" else [f"{data}/"]
