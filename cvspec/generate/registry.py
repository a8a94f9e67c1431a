"""Discover generators through the `cvspec.generators` entry-point group, built-ins included."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cvspec.errors import PluginError
from cvspec.generate.api import Generator

if TYPE_CHECKING:
    from importlib.metadata import Distribution

GROUP = "cvspec.generators"


class Registered(NamedTuple):
    """A loaded generator and where it came from (distribution and module)."""

    generator: Generator
    dist: Distribution | None
    module: str

    @property
    def distribution(self) -> str:
        """'name version' of the installed distribution that provides it."""
        return _label(self.dist)

    @property
    def builtin(self) -> bool:
        """True for the generators that ship with cvspec itself."""
        return self.distribution.startswith("cvspec ")

    @property
    def templates(self) -> Path | None:
        """The generator's own template folder, if it declares one."""
        folder = getattr(self.generator, "templates", None)
        return Path(folder) if folder else None


def load_generators() -> list[Registered]:
    """Every installed generator, sorted by name; a broken plugin is a PluginError."""
    found, problems = scan_generators()
    if problems:
        raise broken(problems)
    return found


def broken(problems: list[str]) -> PluginError:
    """One error naming every plugin that failed to load."""
    if len(problems) == 1:
        return PluginError(problems[0])
    listed = "\n".join(f"  {p}" for p in problems)
    return PluginError(f"{len(problems)} generator plugins failed to load:\n{listed}")


def scan_generators() -> tuple[list[Registered], list[str]]:
    """Every generator that loads, sorted by name, and what is wrong with each one that does not."""
    from importlib.metadata import entry_points

    found: dict[str, Registered] = {}
    problems: list[str] = []
    for ep in entry_points(group=GROUP):
        try:
            obj: Any = ep.load()
            gen = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            problems.append(
                f"generator plugin '{ep.name}' ({ep.value}, from {_label(ep.dist)}) failed to "
                f"load: {type(exc).__name__}: {exc}"
            )
            continue
        if not isinstance(gen, Generator):
            problems.append(
                f"generator plugin '{ep.name}' ({ep.value}, from {_label(ep.dist)}) does not "
                "provide name, version and plan(spec, ctx)"
            )
        elif gen.name != ep.name:
            problems.append(
                f"generator plugin '{ep.name}' ({ep.value}) calls itself "
                f"'{gen.name}'; the entry-point name and Generator.name must agree"
            )
        elif ep.name in found and found[ep.name].module != ep.value:
            problems.append(
                f"two generators are named '{ep.name}': {found[ep.name].module} "
                f"({found[ep.name].distribution}) and {ep.value} ({_label(ep.dist)})"
            )
        else:
            found[ep.name] = Registered(gen, ep.dist, ep.value)
    return [found[name] for name in sorted(found)], problems


def _label(dist: Distribution | None) -> str:
    """'name version'. Reading them parses the distribution's whole METADATA file (its long
    description too): only listings and error messages ask."""
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"
