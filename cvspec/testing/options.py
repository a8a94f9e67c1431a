"""The composition options of a `cvspec run`, handed from the test stage to the generated tests.

The generated tests hold the bounds of the spec as it was built. A run with `--profile ci` or
`--set` composes another spec (a pull request's relaxed gates, a smaller dataset), and the
evaluate and data stages of that run check that one; the test stage passes the same options
through this environment variable, so its tests check the same bounds.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from cvspec.spec import LoadedSpec

ENV = "CVSPEC_RUN_OPTIONS"


class RunOptions(NamedTuple):
    """`--profile` and `--set` of the run that started the tests."""

    profile: str | None
    sets: tuple[str, ...]

    def describe(self) -> str:
        """As the flags that give them: `--profile ci --set a=1`."""
        from cvspec.generate.compare import describe_options

        return describe_options({"profile": self.profile, "set": list(self.sets)})


def as_env(profile: str | None, sets: tuple[str, ...]) -> dict[str, str]:
    """The environment that hands these options to the tests; empty when there are none."""
    if not profile and not sets:
        return {}
    return {ENV: json.dumps({"profile": profile, "set": list(sets)})}


def run_options() -> RunOptions | None:
    """The options the test stage passed, or None (no options, or pytest started by hand)."""
    text = os.environ.get(ENV)
    if not text:
        return None
    data = json.loads(text)
    return RunOptions(data.get("profile"), tuple(data.get("set") or ()))


@cache
def composed(root: Path, spec_file: str, options: RunOptions | None) -> LoadedSpec:
    """The spec as the run composed it (once per test session)."""
    from cvspec.spec import load_spec

    profile, sets = options if options is not None else (None, ())
    return load_spec(root / spec_file, profile, sets)
