"""The package stage: the SDK call path against a fake engine, and no engine at all."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, write_tree

from cvspec.package import stage
from cvspec.package.context import classic_dockerfile, context_files
from cvspec.package.images import Image, images
from cvspec.package.stage import Settings, build_all, preflight

SPEC = (
    MINIMAL_SPEC
    + "deploy: {registry: ghcr.io/acme, platforms: [linux/amd64, linux/arm64]}\n"
    + "ci: {providers: [github, gitlab]}\n"
)


class FakeAPI:
    """The low-level API calls the stage makes, recorded; chunks are what an engine streams."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.builds: list[dict[str, Any]] = []
        self.contexts: list[dict[str, bytes]] = []
        self.tags: list[tuple[str, str, str]] = []
        self.pushes: list[tuple[str, str]] = []

    def build(self, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        with tarfile.open(fileobj=kwargs.pop("fileobj")) as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
            self.contexts.append({m.name: _read(tar, m) for m in files})
        self.builds.append(kwargs)
        return iter(self.chunks)

    def tag(self, image: str, repository: str, tag: str) -> bool:
        self.tags.append((image, repository, tag))
        return True

    def push(self, repository: str, tag: str, stream: bool, decode: bool) -> Iterator[Any]:
        assert stream and decode
        self.pushes.append((repository, tag))
        return iter([{"status": "Pushed", "id": tag}, {"status": f"{tag}: digest: sha256:1"}])


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


class FakeClient:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.api = FakeAPI(chunks)
        self.logins: list[dict[str, str]] = []

    def login(self, **kwargs: str) -> None:
        self.logins.append(kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("built"), SPEC)
    assert cvspec("build", cwd=root).code == 0
    return root


@pytest.fixture
def repo(built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(built, root)
    write_tree(
        root,
        {
            "runs/demo/export/model.onnx": b"onnx",
            "runs/demo/train/last.ckpt": b"big",
            "data/demo/a/1.png": b"png",
            "generated/demo/__pycache__/x.pyc": b"",
            "specs/notes.orig": "old",
            ".git/config": "",
        },
    )
    return root


def wanted(root: Path) -> list[Image]:
    from cvspec.spec import load_spec

    return images(load_spec(root / "specs/demo.yaml").spec, "specs/demo.yaml", "generated/demo")


def test_context_holds_only_what_the_dockerfile_copies(repo: Path) -> None:
    train, serve = wanted(repo)
    generated = sorted(
        p.relative_to(repo).as_posix()
        for p in (repo / "generated/demo").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert "generated/demo/docker/Dockerfile.serve" in generated
    assert context_files(repo, train) == sorted([*generated, "specs/demo.yaml"])
    assert context_files(repo, serve) == sorted(
        [*generated, "runs/demo/export/model.onnx", "specs/demo.yaml"]
    )


def test_the_classic_builder_gets_the_dockerfile_without_the_cache_mount() -> None:
    text = "RUN --mount=type=cache,target=/root/.cache/pip \\\n    pip install x\n"
    assert classic_dockerfile(text) == "RUN \\\n    pip install x\n"


def test_build_streams_progress_and_sends_the_allow_listed_context(repo: Path) -> None:
    client = FakeClient(
        [
            {"stream": "Step 1/12 : FROM python:3.11-slim-bookworm AS base\n"},
            {"status": "Downloading", "id": "a1b2", "progress": "[==>   ]"},
            {"status": "Pull complete", "id": "a1b2"},
            {"stream": " ---> 5d0da3dc9764\n\n"},
            {"aux": {"ID": "sha256:5d0da3dc9764"}},
        ]
    )
    lines: list[str] = []
    settings = Settings(tag="abc123", vcs_ref="abc123", source_url="https://git/acme")
    result = build_all(
        client, repo, wanted(repo), settings, ["linux/amd64", "linux/arm64"], lines.append
    )
    assert result == (
        True,
        "built ghcr.io/acme/demo-train:abc123, ghcr.io/acme/demo:abc123",
    )
    first = client.api.builds[0]
    assert first == {
        "custom_context": True,
        "dockerfile": "generated/demo/docker/Dockerfile.train",
        "tag": "ghcr.io/acme/demo-train:abc123",
        "buildargs": {
            "IMAGE_VERSION": "abc123",
            "VCS_REF": "abc123",
            "SOURCE_URL": "https://git/acme",
        },
        "platform": "linux/amd64",
        "rm": True,
        "decode": True,
    }
    sent = client.api.contexts[1]
    dockerfile = sent["generated/demo/docker/Dockerfile.serve"].decode()
    assert "--mount" not in dockerfile and "pip install" in dockerfile
    assert sent["runs/demo/export/model.onnx"] == b"onnx"
    assert lines[0] == "note: the Docker SDK builds one platform; building linux/amd64 only"
    assert (
        lines[1]
        == "building ghcr.io/acme/demo-train:abc123 from generated/demo/docker/Dockerfile.train"
    )
    assert lines[3:6] == [
        "Step 1/12 : FROM python:3.11-slim-bookworm AS base",
        "a1b2 Pull complete",
        " ---> 5d0da3dc9764",
    ]
    assert client.api.pushes == [] and client.logins == []


def test_an_engine_error_fails_the_stage_with_its_message(repo: Path) -> None:
    client = FakeClient(
        [
            {"stream": "Step 4/12 : RUN pip install x\n"},
            {
                "error": "The command '/bin/sh -c pip install x'\nreturned a non-zero code: 1",
                "errorDetail": {"code": 1},
            },
        ]
    )
    result = build_all(client, repo, wanted(repo), Settings(), ["linux/amd64"], lambda _: None)
    assert result == (
        False,
        "building ghcr.io/acme/demo-train:latest failed: The command '/bin/sh -c pip install x' "
        "returned a non-zero code: 1",
    )
    assert len(client.api.builds) == 1


def test_push_logs_in_by_registry_and_pushes_every_tag(repo: Path) -> None:
    client = FakeClient([{"stream": "ok\n"}])
    settings = Settings(tag="abc123", push=True, username="bot", password="s3cret")
    result = build_all(client, repo, wanted(repo), settings, ["linux/amd64"], lambda _: None)
    assert result.ok, result.summary
    assert client.logins == [{"username": "bot", "password": "s3cret", "registry": "ghcr.io"}]
    assert client.api.tags == [
        ("ghcr.io/acme/demo-train:abc123", "ghcr.io/acme/demo-train", "latest"),
        ("ghcr.io/acme/demo:abc123", "ghcr.io/acme/demo", "latest"),
    ]
    assert client.api.pushes == [
        ("ghcr.io/acme/demo-train", "abc123"),
        ("ghcr.io/acme/demo-train", "latest"),
        ("ghcr.io/acme/demo", "abc123"),
        ("ghcr.io/acme/demo", "latest"),
    ]


def test_settings_come_from_cvspec_environment_variables() -> None:
    env = {
        "CVSPEC_IMAGE_TAG": "v1",
        "CVSPEC_PUSH": "1",
        "CVSPEC_REGISTRY_USERNAME": "u",
        "CVSPEC_REGISTRY_PASSWORD": "p",
        "CVSPEC_VCS_REF": "abc",
        "CVSPEC_SOURCE_URL": "s",
    }
    assert Settings.from_env(env) == Settings("v1", True, "u", "p", "abc", "s")
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({}).tags == ["latest"]


def test_preflight_names_what_is_missing(repo: Path) -> None:
    images_ = wanted(repo)
    assert preflight(repo, images_, Settings(), "specs/demo.yaml") is None
    assert preflight(repo, images_, Settings(tag="bad tag"), "specs/demo.yaml") == (
        "CVSPEC_IMAGE_TAG 'bad tag' is not a valid image tag"
    )
    (repo / "runs/demo/export/model.onnx").unlink()
    (repo / "runs/demo/export").rmdir()
    assert preflight(repo, images_, Settings(), "specs/demo.yaml") == (
        "runs/demo/export is missing: run `cvspec run specs/demo.yaml --stage export` first"
    )
    local = [i._replace(repository="demo") for i in images_]
    assert preflight(repo, local[:1], Settings(push=True), "specs/demo.yaml") == (
        "CVSPEC_PUSH is set but deploy.registry is not: there is nowhere to push to"
    )


def test_the_stage_uses_the_engine_it_connects_to(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvspec.run.context import RunContext
    from cvspec.spec import load_spec

    client = FakeClient([{"stream": "done\n"}])
    monkeypatch.setattr(stage, "connect", lambda env: client)
    monkeypatch.setenv("CVSPEC_IMAGE_TAG", "t1")
    ctx = RunContext(repo, load_spec(repo / "specs/demo.yaml"))
    assert stage.run(ctx) == (True, "built ghcr.io/acme/demo-train:t1, ghcr.io/acme/demo:t1")
    # each image installs cvspec as its Dockerfile's default says: the same build arg
    args = [build["buildargs"]["CVSPEC_REQUIREMENT"] for build in client.api.builds]
    assert args == ["cvspec[train]==0.1.0", "cvspec[serve]==0.1.0"]
    for build, arg in zip(client.api.builds, args, strict=True):
        assert f'ARG CVSPEC_REQUIREMENT="{arg}"' in (repo / build["dockerfile"]).read_text()


def test_the_stage_installs_cvspec_from_the_specs_requirement(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvspec.run.context import RunContext
    from cvspec.spec import load_spec

    url = "git+https://github.com/acme/cvspec@v0.1.0"
    spec = repo / "specs/demo.yaml"
    spec.write_text(spec.read_text().replace("ci: {", f"ci: {{cvspec_requirement: '{url}', "))
    assert cvspec("build", cwd=repo).code == 0
    client = FakeClient([{"stream": "done\n"}])
    monkeypatch.setattr(stage, "connect", lambda env: client)
    assert stage.run(RunContext(repo, load_spec(spec)))[0]
    args = [build["buildargs"]["CVSPEC_REQUIREMENT"] for build in client.api.builds]
    assert args == [f"cvspec[train] @ {url}", f"cvspec[serve] @ {url}"]
    for build, arg in zip(client.api.builds, args, strict=True):
        assert f'ARG CVSPEC_REQUIREMENT="{arg}"' in (repo / build["dockerfile"]).read_text()


def test_without_an_engine_the_stage_prints_one_line_and_exits_1(repo: Path) -> None:
    result = cvspec(
        "run",
        "specs/demo.yaml",
        "--stage",
        "package",
        cwd=repo,
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "COLUMNS": "400"},
    )
    assert result.code == 1
    assert "Traceback" not in result.err
    failed = [line for line in result.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert failed[0].endswith(
        ": no Docker engine at DOCKER_HOST=unix:///nonexistent/docker.sock: the socket does not "
        "exist; start Docker (or Podman's Docker API), or set DOCKER_HOST to a running engine "
        "(e.g. ssh://user@build-host)"
    )


def test_pushing_needs_an_evaluation_whose_gates_passed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI pushes on the default branch; a model that failed its gates is never published."""
    import json

    from cvspec.run.context import RunContext
    from cvspec.spec import load_spec

    client = FakeClient([{"stream": "done\n"}])
    monkeypatch.setattr(stage, "connect", lambda env: client)
    monkeypatch.setenv("CVSPEC_PUSH", "1")
    ctx = RunContext(repo, load_spec(repo / "specs/demo.yaml"))
    assert stage.run(ctx) == (
        False,
        "runs/demo/evaluate/metrics.json is missing: run `cvspec run specs/demo.yaml --stage "
        "evaluate` before pushing",
    )
    report = repo / "runs/demo/evaluate/metrics.json"
    report.parent.mkdir(parents=True)
    (repo / "runs/demo/export/export.json").write_text(json.dumps({"run_id": "r2"}))
    gates = [{"name": "accuracy", "passed": False}, {"name": "latency_p95_ms", "passed": True}]
    report.write_text(json.dumps({"run_id": "r2", "passed": False, "gates": gates}))
    assert stage.run(ctx) == (
        False,
        "not pushing: the model failed its gates (accuracy; runs/demo/evaluate/metrics.json)",
    )
    report.write_text(json.dumps({"run_id": "r1", "passed": True, "gates": []}))
    assert stage.run(ctx) == (  # a passing evaluation of an earlier run does not count
        False,
        "runs/demo/evaluate/metrics.json evaluated run r1, but the export is of run r2: run "
        "`cvspec run specs/demo.yaml --stage evaluate` before pushing",
    )
    report.write_text("[1, 2]")
    assert "is not an evaluation report" in stage.run(ctx)[1]
    assert client.api.builds == [] and client.api.pushes == []
    report.write_text(json.dumps({"run_id": "r2", "passed": True, "gates": []}))
    # the same run exported again since its evaluation: that model.onnx was never measured
    (repo / "runs/demo/export/export.json").write_text(
        json.dumps({"run_id": "r2", "model_sha256": "e" * 64})
    )
    (report.parent / "provenance.json").write_text(json.dumps({"model_sha256": "f" * 64}))
    assert stage.run(ctx) == (
        False,
        "runs/demo/evaluate/ measured another model.onnx than runs/demo/export/ holds now "
        "(exported again since: sha256 ffffffffffff then, eeeeeeeeeeee now): run `cvspec run "
        "specs/demo.yaml --stage evaluate` before pushing",
    )
    assert client.api.builds == [] and client.api.pushes == []
    (report.parent / "provenance.json").write_text(json.dumps({"model_sha256": "e" * 64}))
    assert stage.run(ctx)[0] is True
    assert client.api.pushes


def test_ci_packages_only_after_the_gates_and_tests(built: Path) -> None:
    from cvspec.run.graph import BY_NAME

    assert {"evaluate", "test"} <= set(BY_NAME["package"].needs)
    workflow = (built / ".github/workflows/cvspec-demo.yml").read_text()
    gitlab = (built / "generated/demo/ci/gitlab-ci.yml").read_text()
    import yaml

    assert set(yaml.safe_load(workflow)["jobs"]["package"]["needs"]) >= {"evaluate", "test"}
    needs = yaml.safe_load(gitlab)["demo:package"]["needs"]
    assert {n["job"] for n in needs} >= {"demo:evaluate", "demo:test"}
