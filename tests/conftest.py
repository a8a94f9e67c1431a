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
    # Each pytest-xdist worker trains and exports in its own processes: they share the CPUs
    # (OMP_NUM_THREADS, which cvspec's training honours, and every subprocess inherits), as
    # spinning OpenMP threads on an oversubscribed core cost more than they give. With 2
    # workers on 2 cores, test_train.py, test_launch.py and test_export.py took 433 s, not 472.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers > 1:
        from cvspec import cpus

        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpus.usable() // workers)))


def pytest_unconfigure(config: object) -> None:
    """Remove the session's render cache (only the one made above, never one given by the user)."""
    import shutil

    if _OWN_CACHE[0]:
        shutil.rmtree(_OWN_CACHE[0], ignore_errors=True)
