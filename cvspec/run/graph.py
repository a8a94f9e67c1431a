"""The one stage graph: what each stage needs, makes, and which function runs it."""

from __future__ import annotations

from typing import NamedTuple


class Stage(NamedTuple):
    """One step of a project's pipeline; `runner` is `module:function`, imported only to run."""

    name: str
    needs: tuple[str, ...]
    runner: str
    summary: str
    outputs: tuple[str, ...]  # paths under runs/<project>/ that the stage writes
    default: bool = True  # part of a plain `cvspec run SPEC`


STAGES: tuple[Stage, ...] = (
    Stage("data", (), "cvspec.data.stage:run", "check the dataset and write its report", ("data",)),
    Stage("train", ("data",), "cvspec.train.stage:run", "train the model", ("train",)),
    Stage(
        "export",
        ("train",),
        "cvspec.evaluate.export:run",
        "export the model for serving (ONNX, TorchScript)",
        ("export",),
    ),
    Stage(
        "evaluate",
        ("train", "export"),
        "cvspec.evaluate.stage:run",
        "measure the exported model and apply the gates",
        ("evaluate",),
    ),
    Stage(
        "test",
        ("data", "evaluate", "export"),
        "cvspec.testing.stage:run",
        "run the generated data and model tests",
        ("test",),
    ),
    Stage(  # after the gates and tests: CI must never publish a model that failed them
        "package",
        ("export", "evaluate", "test"),
        "cvspec.package.stage:run",
        "build the train and serve container images",
        (),
        default=False,
    ),
    Stage(
        "serve",
        ("export",),
        "cvspec.serve.stage:run",
        "serve the exported model over HTTP",
        (),
        default=False,
    ),
)
BY_NAME = {s.name: s for s in STAGES}
STAGE_NAMES = tuple(BY_NAME)


def order(names: tuple[str, ...] | list[str]) -> list[Stage]:
    """The given stages in graph order (each after everything it needs)."""
    wanted = set(names)
    return [s for s in STAGES if s.name in wanted]


def stage_dir(project: str, stage: str) -> str:
    """Where a stage writes, relative to the repository root: runs/<project>/<stage>."""
    return f"runs/{project}/{stage}"
