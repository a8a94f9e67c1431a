"""The DVC pipeline: generated/<project>/dvc.yaml (data -> train -> export -> evaluate)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin.ci_common import stage_options
from cvspec.generate.builtin.train_config import data_root
from cvspec.run.graph import BY_NAME, STAGES, stage_dir
from cvspec.spec.model_train import NODE_RESOURCES

# The spec keys (in params.yaml) each stage's result depends on: a new quality threshold
# reruns the data checks, not the training.
# which images, labelled how
_LABELS = ("data.format", "data.classes", "data.splits", "data.exclude")
_RELABEL = "data.relabel"  # classification only
PARAMS = {
    "data": ("data",),  # less data.augment, which only training reads: see _params
    "train": (*_LABELS, "data.augment", "model", "train"),
    # the model card quotes the project's description and owners
    "evaluate": (*_LABELS, "model", "evaluate", "project.description", "project.owners"),
    "export": ("model", "export"),
}
# What a stage waits for from a stage it needs; the data stage's report changes with its
# thresholds, its training-set statistics only with the training images.
_NEEDED = {"data": "data/stats.json"}
# Files a stage reads from an earlier stage's output besides what it needs: the drift baseline
# the export ships beside the model, the data report the model card quotes.
_READS = {"export": ("data/stats.json",), "evaluate": ("data/report.json",)}
PIPELINE = tuple(s.name for s in STAGES if s.name in PARAMS)  # in the one graph's order


def dvc_literal(text: str) -> str:
    """A string as dvc.yaml must hold it to mean itself: DVC reads every `${...}` in a stage as
    a reference (to params.yaml's values, or an error naming the key) and `\\${` as a literal
    `${`, removing one backslash before each `${` whatever comes before it."""
    return text.replace("${", "\\${")


def pipeline(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """dvc.yaml as data; stages run from the repository root (wdir), like CI does."""
    up = "/".join(".." for _ in ctx.out_dir.split("/"))
    params_file = f"{ctx.out_dir}/params.yaml"
    data = data_root(spec, ctx)
    stages: dict[str, Any] = {}
    for name in PIPELINE:
        stage = BY_NAME[name]
        deps = [dvc_literal(data)]  # export too: its ONNX parity check runs on evaluation images
        if name == "train":
            deps.append(f"{ctx.out_dir}/train")
        deps += [_needed(ctx.project, need) for need in stage.needs]
        deps += [f"runs/{ctx.project}/{read}" for read in _READS.get(name, ())]
        stages[name] = {
            "cmd": shlex.join(
                ["cvspec", "run", ctx.spec_file, "--stage", name, *stage_options(spec, name)]
            ),
            "wdir": up,
            "deps": list(dict.fromkeys(deps)),
            "params": [{params_file: _params(spec, name)}],
            "outs": [_out(ctx.project, out) for out in stage.outputs],
        }
    runs = f"runs/{ctx.project}"
    plots = [f"{up}/{runs}/data/class_histogram.png"]
    if spec.task == "classification":  # the evaluate stage draws it for a classifier only
        plots.append(f"{up}/{runs}/evaluate/confusion.png")
    return {
        "stages": stages,
        "metrics": [f"{up}/{runs}/evaluate/metrics.json"],
        "plots": plots,
    }


def _out(project: str, output: str) -> Any:
    """A stage's output folder; training's persists (DVC would delete it before the stage
    runs), so `dvc repro` after a killed training resumes it and reuses finished runs, as
    `cvspec run` does."""
    path = stage_dir(project, output)
    return {path: {"persist": True}} if output == "train" else path


def _params(spec: Any, stage: str) -> list[str]:
    """The params.yaml keys a stage depends on: an augmentation change reruns training only,
    and the names of the remote's CI secrets rerun nothing."""
    if stage != "data":
        keys = list(PARAMS[stage])
        if stage in ("train", "evaluate") and hasattr(spec.data, "relabel"):
            keys.insert(len(_LABELS), _RELABEL)  # a corrected label is a changed label
        return keys
    skip = ("augment", "remote_secrets")
    keys = [f"data.{key}" for key in type(spec.data).model_fields if key not in skip]
    if spec.data.quality.min_side is None:  # the check reports images below the model input
        keys.append("model.image_size")
    return keys


def _needed(project: str, need: str) -> str:
    if need in _NEEDED:
        return f"runs/{project}/{_NEEDED[need]}"
    return stage_dir(project, BY_NAME[need].outputs[0])


def params(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """params.yaml: the spec sections the stages read, so DVC reruns only what changed; the
    data path from the repository root, as dvc.yaml names it (the spec's is relative to it)."""
    sections = ("project", "data", "model", "train", "evaluate", "export")
    dumped = spec.model_dump(mode="json", include=set(sections))
    dumped["project"] = {k: dumped["project"][k] for k in ("description", "owners")}
    dumped["data"]["path"] = data_root(spec, ctx)
    del dumped["data"]["remote_secrets"]  # CI's business, not a parameter of any result
    for key in NODE_RESOURCES:  # what a machine gives a launched run changes none of its results
        del dumped["train"]["distributed"][key]
    return {key: dumped[key] for key in sections}


class DvcGenerator:
    """Writes dvc.yaml and params.yaml when data.versioning is dvc."""

    name = "dvc"
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The pipeline and its params; nothing for projects that do not use DVC."""
        if spec.data.versioning != "dvc":
            return
        from cvspec.generate.render import dump_yaml

        data = data_root(spec, ctx)
        # the commands quoted as a shell reads them ('my data/cats'), the path as it is
        # (UTF-8, like the rest of the file) unless a character could end the comment's line
        shown, arg, dvc_file = data, shlex.quote(data), shlex.quote(f"{data}.dvc")
        if not data.isprintable():
            shown, arg, dvc_file = json.dumps(data), json.dumps(data), json.dumps(f"{data}.dvc")
        note = (
            f"# {shown} is versioned by DVC; once: `dvc init`, `dvc add {arg}`,\n"
            "# `dvc remote add -d storage URL` (its kind in ci.dvc_remote) and `dvc push`, then\n"
            f"# commit .dvc/config and {dvc_file}: the CI jobs `dvc pull` the data.\n"
            f"# `dvc repro {ctx.out_dir}/dvc.yaml` then reruns only stages whose inputs changed.\n"
        )
        yield Artifact("dvc.yaml", self.name, "yaml", data=note + dump_yaml(pipeline(spec, ctx)))
        yield Artifact("params.yaml", self.name, "yaml", data=params(spec, ctx))
