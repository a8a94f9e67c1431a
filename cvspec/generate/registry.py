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

    @property
    def replaces(self) -> tuple[str, ...]:
        """The names of the generators this one takes over (`replaces = ("prometheus",)`)."""
        names = getattr(self.generator, "replaces", ())
        return tuple(names) if isinstance(names, tuple | list) else ()

    @property
    def named(self) -> str:
        """`'name' (module, from dist)`, as messages name a generator."""
        return f"'{self.generator.name}' ({self.module}, from {self.distribution})"


def load_generators() -> list[Registered]:
    """The generators that run, sorted by name: every installed one but those another
    `replaces`; a broken plugin (or a bad `replaces`) is a PluginError."""
    found, problems = scan_generators()
    if problems:
        raise broken(problems)
    gone = set(replacements(found))
    return [r for r in found if r.generator.name not in gone]


def replacements(found: list[Registered]) -> dict[str, str]:
    """Replaced generator name -> the name of the generator that replaces it."""
    return {old: r.generator.name for r in found for old in r.replaces}


class InstalledNames:
    """The names of the installed generators, from their entry points (nothing is loaded),
    read on the first question only: a check that finds every file as built never asks."""

    def __init__(self) -> None:
        self._names: frozenset[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self._names is None:
            from importlib.metadata import entry_points

            self._names = frozenset(ep.name for ep in entry_points(group=GROUP))
        return name in self._names


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
    listed = [found[name] for name in sorted(found)]
    return listed, problems + _replace_problems(listed)


def _replace_problems(found: list[Registered]) -> list[str]:
    """What is wrong with the generators' `replaces`: an unknown name, itself, a name that two
    generators replace, a value that is not a tuple of names."""
    names = {r.generator.name for r in found}
    problems: list[str] = []
    taken: dict[str, Registered] = {}
    for reg in found:
        declared = getattr(reg.generator, "replaces", ())
        if not isinstance(declared, tuple | list) or not all(isinstance(n, str) for n in declared):
            problems.append(
                f"generator {reg.named}: replaces must be a tuple of generator names, "
                f"not {declared!r}"
            )
            continue
        for name in declared:
            if name == reg.generator.name:
                problems.append(f"generator {reg.named} replaces itself")
            elif name not in names:
                known = ", ".join(sorted(names))
                problems.append(
                    f"generator {reg.named} replaces '{name}', which is not an installed "
                    f"generator (installed: {known})"
                )
            elif name in taken:
                problems.append(
                    f"generators {taken[name].named} and {reg.named} both replace '{name}'; "
                    "only one may"
                )
            else:
                taken[name] = reg
    by_name = {r.generator.name: r for r in found}
    for name, reg in taken.items():  # a chain or a cycle: who makes the files is unclear
        if by_name[name].replaces:
            problems.append(
                f"generator {reg.named} replaces '{name}', which itself replaces "
                f"{', '.join(repr(n) for n in by_name[name].replaces)}; let one generator "
                "replace them all"
            )
    return problems


def _label(dist: Distribution | None) -> str:
    """'name version'. Reading them parses the distribution's whole METADATA file (its long
    description too): only listings and error messages ask."""
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"
