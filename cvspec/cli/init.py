"""`cvspec init`: write a ready example project (spec and data)."""

from __future__ import annotations

from cvspec.errors import UsageError


def command() -> None:
    """Placeholder while this command is being written."""
    raise UsageError("not available yet")
