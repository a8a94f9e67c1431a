"""cvspec: compile one declarative YAML spec of a computer-vision project into its MLOps."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "build", "check", "load_spec"]


def __getattr__(name: str) -> Any:
    # The public API loads on first use, so `import cvspec` stays cheap for training workers.
    if name == "load_spec":
        from cvspec.spec import load_spec

        return load_spec
    if name in ("build", "check"):
        from cvspec import project

        return getattr(project, name)
    raise AttributeError(f"module 'cvspec' has no attribute {name!r}")
