"""Shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config: object) -> None:
    """One render cache for the whole session, never the user's: every CLI build in the suite
    goes through it, so a stale replay would show up as a wrong golden file or a missed change."""
    import os
    import tempfile

    if "CVSPEC_CACHE_DIR" not in os.environ:
        os.environ["CVSPEC_CACHE_DIR"] = tempfile.mkdtemp(prefix="cvspec-test-cache-")
