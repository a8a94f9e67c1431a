"""`cvspec init`: write a ready example project (spec and data)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Literal

import typer

from cvspec.errors import UsageError


def command(
    example: Annotated[
        Literal["digits", "shapes"],
        typer.Option("--example", "-e", help="digits (classification) or shapes (detection)."),
    ],
    folder: Annotated[
        Path, typer.Argument(help="Project folder to write into.", metavar="FOLDER")
    ] = Path("."),
) -> None:
    """Write an example project: specs/NAME.yaml, its dataset under data/NAME/, and
    .gitignore lines for runs/ and dvc_plots/ (once)."""
    from cvspec.cli.common import ignore_runs
    from cvspec.examples import spec_path, write_data, write_file

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    spec_text = spec_path(example).read_bytes()
    target = folder / "specs" / f"{example}.yaml"
    if write_file(target, spec_text):
        print(f"wrote {target}")
    elif target.read_bytes() == spec_text:
        print(f"kept {target} (already the example spec)")
    else:
        print(f"kept {target}: it differs from the example spec and is never overwritten")
    ignored = ignore_runs(folder)
    if ignored:
        print(ignored)
    data = folder / "data" / example
    written, kept = write_data(example, data)
    note = f", kept {kept:,} that existed" if kept else ""
    print(f"wrote {written:,} files under {data}{note}")
    here = folder.resolve() == Path.cwd().resolve()
    if _versioned_by_dvc(target):
        where = "" if here else f" in {shlex.quote(str(folder))}"
        # dvc init refuses a folder outside a git repository: make it one first
        git = (
            ("", "a git repository")
            if _in_git(folder)
            else ("  git init\n", "`dvc init` needs a git repository")
        )
        print(
            DVC_STEPS.format(data=f"data/{example}", where=where, git=git[0], repo=git[1]).rstrip()
        )
    cd = "" if here else f"cd {shlex.quote(str(folder))} && "
    print(f"next: {cd}cvspec run specs/{example}.yaml --stage data")


DVC_STEPS = """\
data.versioning is dvc, so the CI jobs `dvc pull` {data}; set DVC up once{where} ({repo}):
{git}  dvc init
  dvc add {data}
  dvc remote add -d storage URL   # e.g. s3://bucket/path; its kind goes in ci.dvc_remote
  # its credentials, if it needs any: `dvc remote modify --local storage KEY VALUE`
  # (.dvc/config.local, which git ignores), never in .dvc/config, which is committed
  dvc push
  git add .dvc {data}.dvc data/.gitignore && git commit -m "Version {data} with DVC"
"""


def _in_git(folder: Path) -> bool:
    """Whether the folder is inside a git repository (a `.git` in it or a folder above)."""
    start = folder.resolve()
    return any((p / ".git").exists() for p in (start, *start.parents))


def _versioned_by_dvc(spec_file: Path) -> bool:
    """True when the spec (the example's, or the person's file kept in its place) versions
    its data with DVC; a spec that does not load says nothing here (validate tells why)."""
    from cvspec.errors import CvspecError
    from cvspec.spec import load_spec

    try:
        return bool(load_spec(spec_file).spec.data.versioning == "dvc")
    except (CvspecError, OSError, ValueError):
        return False
