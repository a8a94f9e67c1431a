"""Built-in example projects that need no download: their specs and data writers."""

from __future__ import annotations

from pathlib import Path

from cvspec.atomic import write_bytes

HERE = Path(__file__).resolve().parent
EXAMPLES = ("digits", "shapes")


def spec_path(name: str) -> Path:
    """The packaged spec of an example (identical to the repository's specs/NAME.yaml)."""
    return HERE / f"{name}.yaml"


def write_data(name: str, folder: Path) -> tuple[int, int]:
    """Write an example's images under folder; (files written, files kept as they were)."""
    if name == "digits":
        from cvspec.examples.digits import write_digits

        return write_digits(folder)
    from cvspec.examples.shapes import write_shapes

    written, kept = write_shapes(folder)
    return written, kept


def write_file(path: Path, data: bytes) -> bool:
    """Write data unless the file exists (a person's file is never overwritten); True if written."""
    if path.exists():
        return False
    write_bytes(path, data)
    return True
