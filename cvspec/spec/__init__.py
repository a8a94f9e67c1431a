"""The spec language: load, compose and validate a spec file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.spec.compose import compose
from cvspec.spec.load import RawSpec
from cvspec.spec.validate import validate


class LoadedSpec(NamedTuple):
    """A validated spec with the composed data and provenance it was built from."""

    spec: Any  # cvspec.spec.model.SpecModel; typed loosely so importing this stays cheap
    raw: RawSpec
    path: Path


def load_spec(path: Path, profile: str | None = None, sets: Sequence[str] = ()) -> LoadedSpec:
    """Load, compose and validate one spec file; raise SpecError with every problem."""
    raw = compose(path, profile, sets)
    return LoadedSpec(validate(raw), raw, path.resolve())
