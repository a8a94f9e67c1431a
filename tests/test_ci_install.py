"""What the CI jobs and images install: cvspec from where the spec says, the DVC remote's plugin,
torch with the train image's pins, and pip caches shared by the jobs that install the same."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, REPO, build_repo, cvspec, project, tool
from packaging.requirements import Requirement
from ruamel.yaml import YAML

from cvspec.generate.builtin.ci_common import DVC
from cvspec.generate.builtin.cuda import CPU, CUDA, TORCH_INDEX
from cvspec.spec.model_ops import DvcRemote

GIT_URL = "git+https://github.com/acme/cvspec@v0.1.0"
BOTH = "ci: {providers: [github, gitlab]"
SPECS = {
    "demo.yaml": MINIMAL_SPEC.replace("../data/demo}", "../data/demo, versioning: dvc}")
    + f"{BOTH}}}\n",
    "cloud.yaml": MINIMAL_SPEC.replace("demo", "cloud").replace(
        "../data/cloud}", "../data/cloud, versioning: dvc}"
    )
    + f"{BOTH}, dvc_remote: s3, cvspec_requirement: '{GIT_URL}', gpu_runner: gpu}}\n",
    "pinned.yaml": MINIMAL_SPEC.replace("demo", "pinned")
    + f"{BOTH}, cvspec_requirement: 'cvspec @ https://pkgs.acme.com/cvspec-0.1.0-py3-none-any.whl'}}\n",
    "cuda.yaml": MINIMAL_SPEC.replace("demo", "cuda")
    + "deploy: {gpu: true, cuda: '12.6'}\nevaluate: {latency: {device: cuda}}\n"
    + f"{BOTH}, gpu_runner: gpu}}\n",
    "boxes.yaml": "cvspec: 1\nproject: {name: boxes}\ntask: detection\n"
    + "data: {path: ../data/boxes, classes: [cat], versioning: dvc}\n"
    + "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    + f"{BOTH}, cvspec_requirement: 'cvspec>=0.1,<0.2', dvc_remote: gs}}\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repo(tmp_path_factory.mktemp("repo"), SPECS)


def load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def installs(root: Path, name: str) -> dict[str, dict[str, Any]]:
    """Per provider and job: the requirement it installs cvspec with and its install lines."""
    out: dict[str, dict[str, Any]] = {}
    workflow = load(root / f".github/workflows/cvspec-{name}.yml")
    for job, body in workflow["jobs"].items():
        for step in body["steps"]:
            if step.get("name") == "install cvspec":
                lines = step["run"].splitlines()
                out[f"github {job}"] = {"req": step["env"]["CVSPEC_REQUIREMENT"], "lines": lines}
    for key, body in load(root / f"generated/{name}/ci/gitlab-ci.yml").items():
        if "script" in body and "CVSPEC_REQUIREMENT" in body.get("variables", {}):
            variable = body["variables"]["CVSPEC_REQUIREMENT"]
            assert variable["expand"] is False  # a value, never expanded by GitLab
            lines = [line for line in body["script"] if "pip " in line]
            out[f"gitlab {key.split(':')[1]}"] = {"req": variable["value"], "lines": lines}
    return out


EXTRAS = {
    "check": set(),
    "data": set(),
    "train": {"train"},
    "export": {"train"},
    "evaluate": {"train"},
    "test": {"train"},
    "package": {"ops"},
}


def test_every_job_installs_cvspec_from_the_specs_requirement(built: Path) -> None:
    for name, url, specifier in (
        ("demo", None, "==0.1.0"),  # default: this version, from the index
        ("cloud", GIT_URL, ""),
        ("pinned", "https://pkgs.acme.com/cvspec-0.1.0-py3-none-any.whl", ""),
    ):
        jobs = installs(built, name)
        assert sorted(jobs) == sorted(f"{p} {j}" for p in ("github", "gitlab") for j in EXTRAS)
        for where, job in jobs.items():
            req = Requirement(job["req"])  # what pip reads
            assert req.name == "cvspec" and req.url == url and str(req.specifier) == specifier
            assert req.extras == EXTRAS[where.split()[1]], where
            cvspec_line = [line for line in job["lines"] if "CVSPEC_REQUIREMENT" in line]
            assert cvspec_line[0].startswith('python -m pip install "$CVSPEC_REQUIREMENT"')
    boxes = installs(built, "boxes")
    assert Requirement(boxes["gitlab train"]["req"]).extras == {"detect"}
    assert str(Requirement(boxes["github test"]["req"]).specifier) == "<0.2,>=0.1"


def test_a_git_requirement_gets_git_where_the_image_has_none(built: Path) -> None:
    apt = "apt-get update && apt-get install -y --no-install-recommends"
    for key, job in load(built / "generated/cloud/ci/gitlab-ci.yml").items():
        if "script" in job and key != "cloud:notify":
            assert job["script"][0] == f"{apt} git && rm -rf /var/lib/apt/lists/*", key
    demo = load(built / "generated/demo/ci/gitlab-ci.yml")
    assert not any(apt in line for job in demo.values() for line in job.get("script", []))
    for purpose, extra in (("train", "train"), ("serve", "serve")):
        text = (built / f"generated/cloud/docker/Dockerfile.{purpose}").read_text()
        deps = text.split("FROM base AS deps\n")[1].split("\nFROM base\n")[0]
        assert "apt-get install -y --no-install-recommends git" in deps  # not in the image
        assert f'ARG CVSPEC_REQUIREMENT="cvspec[{extra}] @ {GIT_URL}"' in deps
    demo_train = (built / "generated/demo/docker/Dockerfile.train").read_text()
    assert (
        " git " not in demo_train and 'ARG CVSPEC_REQUIREMENT="cvspec[train]==0.1.0"' in demo_train
    )
    files = [
        str(p) for p in built.glob("generated/*/docker/Dockerfile.*") if p.suffix != ".dockerignore"
    ]
    proc = subprocess.run([tool("hadolint"), *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_bad_requirement_is_a_spec_error(tmp_path: Path) -> None:
    for i, value in enumerate(("numpy==1.0", "cvspec[x]==0.1", "cvspec==0.1; rm -rf /", "$(id)")):
        root = project(
            tmp_path / str(i),
            MINIMAL_SPEC + f"ci: {{cvspec_requirement: '{value}'}}\n",
        )
        result = cvspec("validate", cwd=root)
        assert result.code == 2, value
        assert "error[bad-value]: ci.cvspec_requirement: must be a pip requirement" in result.err
    root = project(tmp_path / "kind", MINIMAL_SPEC + "ci: {dvc_remote: s4}\n")
    result = cvspec("validate", cwd=root)
    assert (
        result.code == 2 and "ci.dvc_remote: 's4' is not one of 'local', 'http', 's3'" in result.err
    )


def test_jobs_that_pull_data_install_the_remotes_dvc_plugin(built: Path) -> None:
    ops = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert DVC in ops["ops"]  # the same dvc as cvspec[ops]
    pulling = {"data", "train", "export", "evaluate", "test"}
    for name, plugin in (("demo", ""), ("cloud", "[s3]"), ("boxes", "[gs]")):
        for where, job in installs(built, name).items():
            line = next(line for line in job["lines"] if "CVSPEC_REQUIREMENT" in line)
            wanted = f' "dvc{plugin}>=3.50"' if where.split()[1] in pulling else ""
            assert line == f'python -m pip install "$CVSPEC_REQUIREMENT"{wanted}', where


def test_each_remote_kind_is_an_extra_of_dvc() -> None:
    extras = set(importlib.metadata.metadata("dvc").get_all("Provides-Extra") or [])
    kinds = set(DvcRemote.__args__)
    assert kinds - extras == {"local", "http"}  # built into dvc itself
    assert {"s3", "gs", "azure", "ssh"} <= kinds


def test_torch_comes_from_the_train_images_index_with_its_pins(built: Path) -> None:
    pins = f"torch=={CPU.torch} torchvision=={CPU.torchvision}"
    cpu = f"python -m pip install --index-url {TORCH_INDEX}/cpu {pins}"
    dockerfile = (built / "generated/demo/docker/Dockerfile.train").read_text()
    assert f'ARG TORCH_INDEX_URL="{TORCH_INDEX}/cpu"' in dockerfile
    assert pins in dockerfile
    cuda = CUDA["13.0"]
    gpu = f"python -m pip install --index-url {cuda.index_url} {pins}"
    assert (cuda.torch, cuda.torchvision) == (CPU.torch, CPU.torchvision)
    for name in ("demo", "cloud", "boxes"):
        for where, job in installs(built, name).items():
            stage = where.split()[1]
            first = job["lines"][0]
            if stage in ("check", "data", "package"):
                assert "torch" not in " ".join(job["lines"]), where
            elif name == "cloud" and stage == "train":  # the GPU runner: CUDA wheels
                assert first == gpu, where
            else:
                assert first == cpu, where  # before cvspec, whose torch>= they meet
            assert len([line for line in job["lines"] if "torch" in line]) <= 1
    # the GPU runner's jobs: the train image's CUDA wheels; a latency gate timed on CUDA gets
    # onnxruntime's CUDA build, as the train image does
    cu126 = CUDA["12.6"]
    image = (built / "generated/cuda/docker/Dockerfile.train").read_text()
    assert f'ARG TORCH_INDEX_URL="{cu126.index_url}"' in image
    assert f'ARG ONNXRUNTIME_GPU="{cu126.onnxruntime_gpu}"' in image
    swap = (
        "python -m pip uninstall --yes onnxruntime && "
        f'python -m pip install "{cu126.onnxruntime_gpu}"'
    )
    for where, job in installs(built, "cuda").items():
        stage = where.split()[1]
        if stage in ("train", "evaluate"):
            assert job["lines"][0] == f"python -m pip install --index-url {cu126.index_url} {pins}"
        assert (job["lines"][-1] == swap) is (stage == "evaluate"), where


def test_pip_caches_are_shared_by_what_jobs_install_and_change_with_it(built: Path) -> None:
    keys: dict[str, dict[str, str]] = {}
    for name in ("demo", "cloud"):
        workflow = load(built / f".github/workflows/cvspec-{name}.yml")
        keys[name] = {}
        for job, body in workflow["jobs"].items():
            (cache,) = [s for s in body["steps"] if s.get("name") == "pip cache"]
            key, restore = cache["with"]["key"], cache["with"]["restore-keys"]
            assert key.startswith(restore) and re.fullmatch(r"[0-9a-f]{16}", key[len(restore) :])
            keys[name][job] = key
        lab = load(built / f"generated/{name}/ci/gitlab-ci.yml")
        lab_keys = {k.split(":")[1]: j["cache"]["key"] for k, j in lab.items() if "cache" in j}
        assert sorted(lab_keys) == sorted(keys[name])
        # the same install, the same cache, on both providers
        assert {(keys[name][j], lab_keys[j]) for j in ("export", "evaluate", "test")} == {
            (keys[name]["export"], lab_keys["export"])
        }
    demo = keys["demo"]
    prefix = "cvspec-pip-${{ runner.os }}-py3.11-"
    assert demo["train"] == demo["export"] == demo["evaluate"] == demo["test"]
    assert demo["train"].startswith(f"{prefix}train-cpu-")
    assert demo["check"].startswith(f"{prefix}core-") and demo["data"].startswith(f"{prefix}core-")
    assert demo["check"] != demo["data"]  # data installs dvc too
    assert demo["package"].startswith(f"{prefix}ops-")
    cloud = keys["cloud"]
    assert cloud["train"].startswith(f"{prefix}train-cu130-") and cloud["export"] != demo["export"]
    assert len(set(demo.values())) == 4 and not set(demo.values()) & set(cloud.values())


def test_every_install_script_passes_shellcheck(built: Path, tmp_path: Path) -> None:
    for name in ("demo", "cloud", "pinned", "cuda", "boxes"):
        for where, job in installs(built, name).items():
            path = tmp_path / "install.sh"
            path.write_text("#!/bin/bash\nset -eo pipefail\n" + "\n".join(job["lines"]) + "\n")
            proc = subprocess.run(
                [tool("shellcheck"), "--severity=style", str(path)], capture_output=True, text=True
            )
            assert proc.returncode == 0, f"{name} {where}: {proc.stdout}"


@pytest.mark.parametrize(
    "url",
    [
        "cvspec @ git+https://x-access-token:ghp_SECRET@github.com/acme/cvspec@v0.1.0",
        "git+https://ghp_SECRET@github.com/acme/cvspec@v0.1.0",
        "https://bot:SECRET@pkgs.acme.com/cvspec-0.1.0-py3-none-any.whl",
        "cvspec @ git+ssh://git:SECRET@github.com/acme/cvspec@v0.1.0",
    ],
)
def test_a_credential_in_the_requirement_is_refused_before_any_file(
    tmp_path: Path, url: str
) -> None:
    """A token in ci.cvspec_requirement would be written into every CI file and Dockerfile."""
    spec = MINIMAL_SPEC + f"ci: {{providers: [github, gitlab], cvspec_requirement: '{url}'}}\n"
    root = project(tmp_path, spec)
    result = cvspec("build", cwd=root)
    assert result.code == 2, result.out
    assert "error[credential-in-spec]: ci.cvspec_requirement holds a credential" in result.err
    assert "SECRET@" not in result.err.split("\n", 1)[0]  # the message masks it
    assert not (root / "generated").exists() and not (root / ".github").exists()


def test_a_user_without_password_over_ssh_is_no_credential(tmp_path: Path) -> None:
    url = "cvspec @ git+ssh://git@github.com/acme/cvspec@v0.1.0"
    root = project(tmp_path, MINIMAL_SPEC + f"ci: {{cvspec_requirement: '{url}'}}\n")
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    assert url.removeprefix("cvspec ") in (root / ".github/workflows/cvspec-demo.yml").read_text()
