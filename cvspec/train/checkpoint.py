"""Checkpoints written atomically: a temporary file, fsync, then a rename over the old one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvspec.atomic import SUFFIX, staged
from cvspec.errors import CvspecError


def save(obj: Any, path: Path) -> None:
    """torch.save to path so that a reader (or a kill -9) sees the old file or the new one."""
    import torch

    with staged(path, durable=True) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU; a damaged file is a clear error naming it."""
    import torch

    try:  # tensors and plain data only: a tampered checkpoint (a CI artifact) runs no code
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a truncated or foreign file
        raise CvspecError(f"checkpoint {path} does not load: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or "meta" not in data:
        raise CvspecError(f"checkpoint {path} was not written by cvspec")
    return data


def clean_temporaries(folder: Path) -> None:
    """Remove half-written checkpoint files a killed run left behind."""
    for tmp in folder.glob(f".*{SUFFIX}") if folder.is_dir() else []:
        tmp.unlink(missing_ok=True)
