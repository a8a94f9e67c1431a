"""`cvspec serve`: serve an exported model over HTTP with Prometheus metrics."""

from __future__ import annotations

from cvspec.errors import UsageError


def command() -> None:
    """Placeholder while this command is being written."""
    raise UsageError("not available yet")
