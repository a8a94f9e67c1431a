"""The spec language: load, compose and validate a spec file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from cvspec.spec.load import RawSpec


class LoadedSpec(NamedTuple):
    """A validated spec with the composed data and provenance it was built from."""

    spec: Any  # cvspec.spec.model.SpecModel; typed loosely so importing this stays cheap
    raw: RawSpec
    path: Path


def load_spec(path: Path, profile: str | None = None, sets: Sequence[str] = ()) -> LoadedSpec:
    """Load, compose and validate one spec file; raise SpecError with every problem."""
    # Imported here: the YAML loader and the pydantic models load only when a spec does.
    from cvspec.spec.compose import compose
    from cvspec.spec.validate import validate

    raw = compose(path, profile, sets)
    return LoadedSpec(validate(raw), raw, path.resolve())
