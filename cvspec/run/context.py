"""What every stage gets: the validated spec, where the repository and the runs are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.spec import LoadedSpec


class StageResult(NamedTuple):
    """How a stage ended: ok, and one line saying what it did (or what failed)."""

    ok: bool
    summary: str


@dataclass(frozen=True)
class RunContext:
    """The inputs of one `cvspec run`: spec, options, and the folders stages read and write."""

    root: Path
    loaded: LoadedSpec
    profile: str | None = None
    sets: tuple[str, ...] = ()
    console: Any = field(default=None, compare=False)

    @property
    def spec(self) -> Any:
        """The validated spec (ClassificationSpec or DetectionSpec)."""
        return self.loaded.spec

    @property
    def project(self) -> str:
        """The project name."""
        return str(self.loaded.spec.project.name)

    @property
    def runs(self) -> Path:
        """runs/<project>/ under the repository root."""
        return self.root / "runs" / self.project

    def stage_dir(self, stage: str) -> Path:
        """runs/<project>/<stage>/, created on first use."""
        path = self.runs / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def data_root(self) -> Path:
        """The dataset folder: data.path, relative to the spec file."""
        return (self.loaded.path.parent / str(self.loaded.spec.data.path)).resolve()

    def require_data(self) -> Path:
        """data_root, or an error at data.path's line in the spec when the folder is missing
        or holds no image (data not pulled yet): before a stage writes or starts anything."""
        from cvspec.data.files import any_image
        from cvspec.errors import SpecValueError

        folder = self.data_root
        if not folder.is_dir():
            raise SpecValueError(
                ("data", "path"),
                f"no folder at {folder}",
                "data.path is relative to the spec file; `dvc pull` fetches a versioned "
                "dataset; `cvspec init --example NAME DIR` writes an example one",
                code="data-missing",
            )
        if not any_image(folder):  # stops at the first image: the full read is the stage's
            from cvspec.data.index import read_layout

            read_layout(self.spec, folder)  # raises the error that says what data.format wants
        return folder

    @property
    def generated(self) -> Path:
        """generated/<project>/ under the repository root."""
        return self.root / "generated" / self.project
