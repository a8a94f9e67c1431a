"""The software a run was made with: what run.json and metrics.json record, so a result can be
reproduced later, and a reused run trained under other packages says so.

Kept apart from the trainers (no torch import): the evaluate stage and the card read it too.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

# The distributions whose versions can change what training, export or evaluation compute.
PACKAGES = (
    "cvspec",
    "torch",
    "torchvision",
    "timm",
    "ultralytics",
    "numpy",
    "pillow",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
)


def environment() -> dict[str, str]:
    """Python's version and each installed package of PACKAGES's, by name."""
    from importlib.metadata import PackageNotFoundError, version

    from cvspec import __version__

    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = __version__ if name == "cvspec" else version(name)
        except PackageNotFoundError:
            continue
    return found


def drift(recorded: Any, now: dict[str, str]) -> list[str]:
    """`torch 2.4.0 -> 2.5.1` for each package whose version differs from what a run recorded
    (one written before runs recorded theirs differs in nothing it can tell)."""
    if not isinstance(recorded, dict):
        return []
    names = sorted(set(recorded) | set(now))
    return [
        f"{name} {recorded.get(name, 'absent')} -> {now.get(name, 'absent')}"
        for name in names
        if recorded.get(name) != now.get(name)
    ]


def git_state(root: Path) -> dict[str, Any] | None:
    """The repository's commit and whether its working tree differs from it (uncommitted
    changes: the commit alone does not reproduce the run); None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30
        )
        if head.returncode:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = None if status.returncode else bool(status.stdout.strip())
    return {"commit": head.stdout.strip(), "dirty": dirty}


def spec_digests(root: Path, sources: dict[str, str]) -> dict[str, str]:
    """sha256 of the spec file and each file it extends, by path from the repository root."""
    out = {}
    for name, text in sources.items():
        if name == "--set":
            continue
        path = Path(name).resolve()
        try:
            shown = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            shown = path.as_posix()
        out[shown] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return dict(sorted(out.items()))
