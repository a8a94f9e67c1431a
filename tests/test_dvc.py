"""The DVC pipeline: generated dvc.yaml/params.yaml, and `dvc repro` for real in a git repo."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cvspec, project, write_tree
from ruamel.yaml import YAML
from test_data_checks import clean_tree

from cvspec.generate.api import BuildContext
from cvspec.generate.builtin.dvc import pipeline
from cvspec.run.graph import BY_NAME
from cvspec.spec import load_spec

SPEC = """\
cvspec: 1
project: {name: tiny}
task: classification
data:
  path: ../data
  splits: {train: train, val: val}
  versioning: dvc
  quality: {min_side: 16}
model: {arch: timm/resnet10t, image_size: 32}
train: {epochs: 1, batch_size: 8, workers: 0}
"""


def test_dvc_yaml_has_the_stage_graph_with_deps_outs_params_metrics(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC, "tiny.yaml")
    assert cvspec("build", cwd=root).code == 0
    text = (root / "generated/tiny/dvc.yaml").read_text()
    assert text.splitlines()[1:4] == [
        "# data is versioned by DVC; once: `dvc init`, `dvc add data`,",
        "# `dvc remote add -d storage URL` (its kind in ci.dvc_remote) and `dvc push`, then",
        "# commit .dvc/config and data.dvc: the CI jobs `dvc pull` the data.",
    ]
    dvc = YAML(typ="safe").load(text)
    params = "generated/tiny/params.yaml"
    assert list(dvc["stages"]) == ["data", "train", "export", "evaluate"]
    assert dvc["stages"]["data"] == {
        "cmd": "cvspec run specs/tiny.yaml --stage data",
        "wdir": "../..",
        "deps": ["data"],
        "params": [
            {
                params: [
                    "data.path",
                    "data.format",
                    "data.classes",
                    "data.splits",
                    "data.versioning",
                    "data.exclude",
                    "data.quality",
                    "data.relabel",
                ]
            }
        ],  # not data.augment: only training reads it
        "outs": ["runs/tiny/data"],
    }
    assert dvc["stages"]["train"]["deps"] == [
        "data",
        "generated/tiny/train",
        "runs/tiny/data/stats.json",
    ]
    assert dvc["stages"]["train"]["params"] == [
        {
            params: [
                "data.format",
                "data.classes",
                "data.splits",
                "data.exclude",
                "data.relabel",  # a corrected label retrains
                "data.augment",
                "model",
                "train",
            ]
        }
    ]
    assert dvc["stages"]["train"]["outs"] == [{"runs/tiny/train": {"persist": True}}]
    evaluate_params = dvc["stages"]["evaluate"]["params"][0][params]
    assert evaluate_params[-2:] == ["project.description", "project.owners"]  # the card's
    assert dvc["stages"]["evaluate"]["deps"] == [
        "data",
        "runs/tiny/train",
        "runs/tiny/export",
        "runs/tiny/data/report.json",  # the model card quotes it
    ]
    assert dvc["stages"]["export"] == {
        "cmd": "cvspec run specs/tiny.yaml --stage export",
        "wdir": "../..",
        # the data: the ONNX parity check runs on evaluation images; stats.json is shipped
        "deps": ["data", "runs/tiny/train", "runs/tiny/data/stats.json"],
        "params": [{params: ["model", "export"]}],
        "outs": ["runs/tiny/export"],
    }
    assert dvc["metrics"] == ["../../runs/tiny/evaluate/metrics.json"]
    assert dvc["plots"] == [
        "../../runs/tiny/data/class_histogram.png",
        "../../runs/tiny/evaluate/confusion.png",  # `dvc plots diff` shows a new model's errors
    ]
    values = YAML(typ="safe").load((root / "generated/tiny/params.yaml").read_text())
    assert values["train"]["epochs"] == 1 and values["data"]["quality"]["min_side"] == 16


def test_an_edited_params_yaml_stops_the_run_instead_of_being_ignored(tmp_path: Path) -> None:
    """`dvc exp run -S params.yaml:train.epochs=5` edits params.yaml, which no stage reads: the
    run would train with the spec's epochs while DVC records 5. The run refuses, and says how
    to set the value."""
    root = project(tmp_path, SPEC, "tiny.yaml")
    write_tree(root, clean_tree())
    assert cvspec("build", cwd=root).code == 0
    params = root / "generated/tiny/params.yaml"
    params.write_text(params.read_text().replace("epochs: 1", "epochs: 5"))
    result = cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert (
        "error: generated/tiny/params.yaml was edited (by `dvc exp run -S` or by hand), but "
        "cvspec reads the spec, not params.yaml" in result.err
    )
    assert "`cvspec build --force`, restores params.yaml" in result.err
    assert "Traceback" not in result.err and not (root / "runs/tiny/data").exists()
    assert cvspec("build", "--force", cwd=root).code == 0
    (root / "generated/tiny/params.yaml.orig").unlink()
    assert cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root).code == 0


def test_dvc_sees_that_the_export_reads_the_data(tmp_path: Path) -> None:
    dvc = dvc_and_git()
    root = tmp_path
    write_tree(root, {"specs/tiny.yaml": SPEC, **clean_tree()})
    run(root, "git", "init", "-q")
    run(root, dvc, "init", "-q")
    assert cvspec("build", cwd=root).code == 0
    run(root, dvc, "add", "-q", "data")
    dag = run(root, dvc, "dag", "--dot", "generated/tiny/dvc.yaml:export")
    assert '"data.dvc" -> "generated/tiny/dvc.yaml:export";' in dag  # new data: a new export


def test_without_min_side_a_new_input_size_reruns_the_data_checks(tmp_path: Path) -> None:
    """With `quality.min_side` unset the data report lists the images smaller than the model
    input: a new `model.image_size` is a new report, not a data stage DVC skips."""
    dvc = dvc_and_git()
    root = tmp_path
    spec = SPEC.replace("  quality: {min_side: 16}\n", "")
    write_tree(root, {"specs/tiny.yaml": spec, **clean_tree()})  # 64 px images
    run(root, "git", "init", "-q")
    run(root, dvc, "init", "-q")
    assert cvspec("build", cwd=root).code == 0
    run(root, dvc, "add", "-q", "data")
    run(root, dvc, "repro", "generated/tiny/dvc.yaml:data")
    (root / "specs/tiny.yaml").write_text(spec.replace("image_size: 32", "image_size: 128"))
    assert cvspec("build", cwd=root).code == 0
    again = run(root, dvc, "repro", "generated/tiny/dvc.yaml:data")
    assert "Running stage 'generated/tiny/dvc.yaml:data'" in again
    report = json.loads((root / "runs/tiny/data/report.json").read_text())
    (check,) = [c for c in report["checks"] if c["name"] == "min_side"]
    assert check["findings_count"] == 18  # every image is below 128 px


def test_paths_with_spaces_are_quoted(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC.replace("path: ../data", "path: ../my data"), "tiny.yaml")
    assert cvspec("build", cwd=root).code == 0
    dvc = YAML(typ="safe").load((root / "generated/tiny/dvc.yaml").read_text())
    assert dvc["stages"]["data"]["deps"] == ["my data"]
    spec = load_spec(root / "specs/tiny.yaml").spec
    ctx = BuildContext("tiny", "specs/it's here.yaml", "generated/tiny", "0")
    cmd = pipeline(spec, ctx)["stages"]["data"]["cmd"]
    assert cmd == "cvspec run 'specs/it'\"'\"'s here.yaml' --stage data"
    assert shlex.split(cmd)[2] == "specs/it's here.yaml"


def test_the_commands_the_comment_gives_name_the_data_as_a_shell_reads_them(
    tmp_path: Path,
) -> None:
    """`dvc add my data` adds two folders; JSON's \\u00e4 is no escape to a shell."""
    root = project(tmp_path, SPEC.replace("path: ../data", "path: ../my dätä"), "tiny.yaml")
    assert cvspec("build", cwd=root).code == 0
    text = (root / "generated/tiny/dvc.yaml").read_text(encoding="utf-8")
    comment = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    add = comment.split("`dvc add ")[1].split("`")[0]
    dvc_file = comment.split("commit .dvc/config and ")[1].split(":")[0]
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {add} {dvc_file}"], capture_output=True, check=True
    )
    assert words.stdout.decode("utf-8").splitlines() == ["my dätä", "my dätä.dvc"]
    assert "# my dätä is versioned by DVC" in text


def test_a_dollar_brace_in_the_data_path_is_no_dvc_reference(tmp_path: Path) -> None:
    """DVC reads `${...}` in dvc.yaml as a reference to params.yaml: a data folder named with
    one (the spec's own escape, `\\${`, makes it literal) must stay that folder, not become
    `data/dimagefolder` (which never changes, so the data would never rerun a stage)."""
    dvc = dvc_and_git()
    spec = SPEC.replace("path: ../data", "path: '../data/d\\${data.format}'")
    write_tree(tmp_path, {"specs/tiny.yaml": spec, "data/d${data.format}/x.txt": "x"})
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, dvc, "init", "-q")
    assert cvspec("build", cwd=tmp_path).code == 0
    status = run(tmp_path, dvc, "status", "generated/tiny/dvc.yaml:data")
    assert "data/d${data.format}" in status, status
    assert "imagefolder" not in status, status


def test_no_dvc_files_without_dvc_versioning(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC.replace("  versioning: dvc\n", ""), "tiny.yaml")
    assert cvspec("build", cwd=root).code == 0
    assert not (root / "generated/tiny/dvc.yaml").exists()


def available_stages() -> list[str]:
    """data, then each later pipeline stage whose runner module exists in this checkout."""
    stages = ["data"]
    for name in ("train", "evaluate", "export"):
        module = BY_NAME[name].runner.split(":")[0]
        if importlib.util.find_spec(module) is None:
            break
        stages.append(name)
    return stages


def dvc_and_git() -> str:
    """The dvc executable beside this Python (else on PATH); a test needs git too. Missing:
    a failure in CI, a skip elsewhere."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if dvc is None or shutil.which("git") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dvc and git must be installed in CI (pip install 'cvspec[ops]')")
        pytest.skip("dvc or git is not installed")
    return dvc


def run(root: Path, *args: str) -> str:
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "CVSPEC_WORKERS": "1",
    }
    proc = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_then_skips_every_stage(tmp_path: Path) -> None:
    dvc = dvc_and_git()
    root = tmp_path
    write_tree(root, {"specs/tiny.yaml": SPEC, **clean_tree()})
    run(root, "git", "init", "-q")
    run(root, dvc, "init", "-q")
    assert cvspec("build", cwd=root).code == 0
    run(root, dvc, "add", "-q", "data")
    assert (root / "data.dvc").is_file()
    stages = available_stages()
    targets = [f"generated/tiny/dvc.yaml:{s}" for s in stages]
    first = run(root, dvc, "repro", *targets)
    for stage in stages:
        assert f"Running stage 'generated/tiny/dvc.yaml:{stage}'" in first
    dataset = json.loads((root / "runs/tiny/data/report.json").read_text())["dataset"]
    md5 = YAML(typ="safe").load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert dataset["dvc"] == {"file": "data.dvc", "md5": md5}
    if "evaluate" in stages:  # the model card names the data version it was evaluated on
        card = (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
        assert f"- Version: fingerprint `{dataset['fingerprint'][:16]}`; `data.dvc` md5 " in card
    assert (root / "generated/tiny/dvc.lock").is_file()
    if "evaluate" in stages:  # every plot dvc.yaml names is there to show
        shown = json.loads(run(root, dvc, "plots", "show", "--json"))
        assert {Path(p).name for p in shown["data"]} >= {"class_histogram.png", "confusion.png"}
    second = run(root, dvc, "repro", *targets)
    assert "Running stage" not in second
    for stage in stages:
        assert f"Stage 'generated/tiny/dvc.yaml:{stage}' didn't change, skipping" in second
    # `cvspec run` of the same spec reuses the run and changes no output DVC tracks, so DVC has
    # nothing to rerun (evaluate aside: it measures the latency anew)
    kept = [s for s in stages if s != "evaluate"]
    again = run(
        root, sys.executable, "-m", "cvspec", "run", "specs/tiny.yaml",
        *[arg for s in kept for arg in ("--stage", s)],
    )  # fmt: skip
    assert "train" not in stages or "reused run" in again
    status = run(root, dvc, "status", *[f"generated/tiny/dvc.yaml:{s}" for s in kept])
    assert "Data and pipelines are up to date." in status, status
    # a new quality threshold reruns the data checks (and the model card quoting them), never
    # the training
    spec = SPEC.replace("min_side: 16", "min_side: 8")
    (root / "specs/tiny.yaml").write_text(spec)
    assert cvspec("build", cwd=root).code == 0
    third = run(root, dvc, "repro", *targets)
    ran = [s for s in stages if f"Running stage 'generated/tiny/dvc.yaml:{s}'" in third]
    assert ran == [s for s in stages if s in ("data", "evaluate")]
    # an augmentation reruns the training and what follows it, not the data checks
    augmented = spec.replace("  quality:", "  augment: [{hflip: {p: 0.5}}]\n  quality:")
    (root / "specs/tiny.yaml").write_text(augmented)
    assert cvspec("build", cwd=root).code == 0
    fourth = run(root, dvc, "repro", *targets)
    ran = [s for s in stages if f"Running stage 'generated/tiny/dvc.yaml:{s}'" in fourth]
    assert ran == stages[1:]
    if "train" in stages:  # the training output persists: the first run is still there
        assert len(list((root / "runs/tiny/train").glob("*/run.json"))) == 2
        (root / "specs/tiny.yaml").write_text(spec)
        assert cvspec("build", cwd=root).code == 0
        back = run(root, dvc, "repro", *targets)
        assert "reused run" in back, "going back to the first config trains again"
    if "evaluate" in stages:  # a new description reaches the model card, and nothing else
        described = spec.replace("project: {name: tiny}", "project: {name: tiny, description: Ink}")
        (root / "specs/tiny.yaml").write_text(described)
        assert cvspec("build", cwd=root).code == 0
        fifth = run(root, dvc, "repro", *targets)
        ran = [s for s in stages if f"Running stage 'generated/tiny/dvc.yaml:{s}'" in fifth]
        assert ran == ["evaluate"]
        assert "## Intended use\n\nInk." in (root / "runs/tiny/evaluate/MODEL_CARD.md").read_text()
        # another export format exports and evaluates again; the training config does not
        # name the formats, so training is not rerun (not even to reuse its run)
        exported = described.replace(
            "train: {epochs: 1", "export: [onnx, torchscript]\ntrain: {epochs: 1"
        )
        (root / "specs/tiny.yaml").write_text(exported)
        assert cvspec("build", cwd=root).code == 0
        sixth = run(root, dvc, "repro", *targets)
        ran = [s for s in stages if f"Running stage 'generated/tiny/dvc.yaml:{s}'" in sixth]
        assert sorted(ran) == ["evaluate", "export"]
        assert (root / "runs/tiny/export/model.ts").is_file()
