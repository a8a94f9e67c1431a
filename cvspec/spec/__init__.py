"""The spec language: load, compose and validate a spec file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    return LoadedSpec(validate(raw, _variants(path, raw, profile, sets)), raw, path.resolve())


def profile_variants(
    loaded: LoadedSpec, profile: str | None = None, sets: Sequence[str] = ()
) -> list[tuple[str, LoadedSpec]]:
    """`loaded` (loaded with `profile` and `sets`) composed with each of its other profiles
    instead, with the same --set flags; load_spec has checked that each one validates."""
    from cvspec.spec.validate import validate

    found = []
    for name, make in _variants(loaded.path, loaded.raw, profile, sets).items():
        variant = make()
        found.append((name, LoadedSpec(validate(variant, {}), variant, loaded.path)))
    return found


def _variants(
    path: Path, raw: RawSpec, profile: str | None, sets: Sequence[str]
) -> dict[str, Callable[[], RawSpec]]:
    """Profile name -> a function composing the spec with that profile instead of `profile`.

    A --set flag addressing a list item that profile's list lacks is skipped there: the
    flags are meant for the spec being built, and a profile not built must not fail it."""
    from functools import partial

    from cvspec.spec.compose import compose, profile_names

    return {
        n: partial(compose, path, n, sets, strict=False) for n in profile_names(raw) if n != profile
    }
