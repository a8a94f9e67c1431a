"""`cvspec new`: write a commented starter spec that validates."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from cvspec.atomic import write_bytes
from cvspec.cli.common import ignore_runs
from cvspec.errors import SpecError, UsageError
from cvspec.generate.render import BUILTIN_TEMPLATES, make_environment
from cvspec.project import find_root
from cvspec.spec.schema import SCHEMA_PATH


def command(
    name: Annotated[
        str,
        typer.Argument(help="Project name: lowercase letters, digits, - and _.", metavar="NAME"),
    ],
    task: Annotated[
        Literal["classification", "detection"],
        typer.Option("--task", "-t", help="classification or detection."),
    ] = "classification",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it; default: specs/NAME.yaml."),
    ] = None,
) -> None:
    """Write a starter spec for a new project."""
    from cvspec.spec.interpolate import interpolate
    from cvspec.spec.load import load_text
    from cvspec.spec.validate import validate

    root = find_root(Path.cwd())
    target = output or root / "specs" / f"{name}.yaml"
    if target.exists():
        raise UsageError(f"{target} already exists; choose another name or --output")
    schema = os.path.relpath(root / SCHEMA_PATH, target.resolve().parent)
    text = (
        make_environment([BUILTIN_TEMPLATES])
        .get_template(f"new/{task}.yaml.j2")
        .render(name=name, spec_file=os.path.relpath(target), schema_url=Path(schema).as_posix())
    )
    try:
        validate(interpolate(load_text(text, str(target))))  # a bad NAME fails here
    except SpecError as exc:  # the file is not written: point at the argument, not into it
        problems = "; ".join(d.message for d in exc.diagnostics)
        raise UsageError(f"cannot start a spec named {name!r}: {problems}") from None
    write_bytes(target, text.encode("utf-8"), durable=True)
    ignored = ignore_runs(root)
    if ignored:
        print(ignored)
    print(f"wrote {target}; next: cvspec validate {os.path.relpath(target)}")
    if not (root / SCHEMA_PATH).is_file():
        print(f"its first line names {SCHEMA_PATH} for completion: `cvspec schema` writes it")
