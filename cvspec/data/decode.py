"""Decoding dataset images for training, evaluation and export: a file whose pixels do not
decode is a user error that names it (the index reads headers only, so it can pass there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvspec.errors import CvspecError
from cvspec.preprocess import open_image


class UndecodableImage(CvspecError):
    """An image the index took (its header reads) whose pixels do not decode."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises this in the main process as type(exc)(text), where the
        # text is its own report: "Caught ... Original Traceback ... UndecodableImage: MESSAGE".
        _, mark, tail = message.rpartition(f"{type(self).__name__}: ")
        super().__init__(tail.strip() if mark else message)


def decode(root: Path, record: Any) -> Any:
    """The RGB image of one record; a file that does not decode is named, with what to do."""
    try:
        return open_image((root / record.path).read_bytes())
    except Exception as exc:  # PIL raises many types for bad bytes
        raise UndecodableImage(
            f"{record.path} (under {root}) does not decode: {type(exc).__name__}: {exc}; fix or "
            "remove it (`cvspec run SPEC --stage data` lists every such file, and "
            "data.quality.decodable: true makes the data stage fail on them)"
        ) from None
