"""`cvspec schema`: write the JSON Schema of the spec language for editors and CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cvspec.project import find_root
from cvspec.spec.schema import SCHEMA_PATH, schema_bytes


def command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write it; default: schemas/cvspec.schema.json.",
        ),
    ] = None,
) -> None:
    """Write the JSON Schema of spec language v1."""
    target = output or find_root(Path.cwd()) / SCHEMA_PATH
    data = schema_bytes()
    if target.is_file() and target.read_bytes() == data:
        print(f"{target} is up to date")
        return
    from cvspec.atomic import write_bytes

    write_bytes(target, data, durable=True)
    print(f"wrote {target}")
