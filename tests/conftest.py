"""Shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
_OWN_CACHE: list[str] = [""]  # the render cache pytest_configure made, removed at the end


def pytest_configure(config: object) -> None:
    """One render cache for the whole session, never the user's: every CLI build in the suite
    goes through it, so a stale replay would show up as a wrong golden file or a missed change.
    Under pytest-xdist the controller makes it before the workers start, and they inherit it
    (cache writes are atomic, so workers may share it)."""
    import os
    import tempfile

    if "CVSPEC_CACHE_DIR" not in os.environ:
        os.environ["CVSPEC_CACHE_DIR"] = _OWN_CACHE[0] = tempfile.mkdtemp(
            prefix="cvspec-test-cache-"
        )


def pytest_unconfigure(config: object) -> None:
    """Remove the session's render cache (only the one made above, never one given by the user)."""
    import shutil

    if _OWN_CACHE[0]:
        shutil.rmtree(_OWN_CACHE[0], ignore_errors=True)
