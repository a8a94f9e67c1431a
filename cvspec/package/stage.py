"""The package stage: build the project's images with the Docker SDK, and push them if asked."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.package.context import write_context
from cvspec.package.images import Image, cvspec_requirement, image_extra, images, registry_host
from cvspec.run.context import RunContext, StageResult

Log = Callable[[str], None]
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DEFAULT_HOST = "unix:///var/run/docker.sock"


class Settings(NamedTuple):
    """How CI (or a person) asks the stage to tag, label and push; read from CVSPEC_* env."""

    tag: str = "latest"
    push: bool = False
    username: str | None = None
    password: str | None = None
    vcs_ref: str = "unknown"
    source_url: str = "unknown"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """CVSPEC_IMAGE_TAG, CVSPEC_PUSH=1, CVSPEC_REGISTRY_USERNAME/PASSWORD, CVSPEC_VCS_REF..."""
        return cls(
            tag=env.get("CVSPEC_IMAGE_TAG") or "latest",
            push=env.get("CVSPEC_PUSH", "") in ("1", "true"),
            username=env.get("CVSPEC_REGISTRY_USERNAME") or None,
            password=env.get("CVSPEC_REGISTRY_PASSWORD") or None,
            vcs_ref=env.get("CVSPEC_VCS_REF") or "unknown",
            source_url=env.get("CVSPEC_SOURCE_URL") or "unknown",
        )

    @property
    def tags(self) -> list[str]:
        """The tags every image gets: the asked one, and `latest` too when pushing."""
        return [self.tag] if self.tag == "latest" or not self.push else [self.tag, "latest"]


class EngineUnavailable(Exception):
    """No Docker engine answered; the message is the one line the user sees."""


def run(ctx: RunContext) -> StageResult:
    """Build the train and serve images; push them when CVSPEC_PUSH=1."""
    try:
        spec_file = ctx.loaded.path.relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return StageResult(False, f"{ctx.loaded.path} is outside the repository {ctx.root}")
    from cvspec.project import spec_inputs

    inputs = spec_inputs(ctx.root, ctx.loaded)
    wanted = images(ctx.spec, spec_file, f"generated/{ctx.project}", inputs)
    settings = Settings.from_env(os.environ)
    problem = preflight(ctx.root, wanted, settings, spec_file)
    if problem is None and settings.push:
        problem = gates_problem(ctx.root, ctx.project, spec_file)
    if problem:
        return StageResult(False, problem)
    try:
        client = connect(os.environ)
    except EngineUnavailable as exc:
        return StageResult(False, str(exc))
    platforms = list(ctx.spec.deploy.platforms)
    requirements = requirements_of(ctx.spec, wanted)
    return build_all(client, ctx.root, wanted, settings, platforms, _logger(ctx), requirements)


def requirements_of(spec: Any, wanted: list[Image]) -> dict[str, str]:
    """Each image's CVSPEC_REQUIREMENT build arg: ci.cvspec_requirement (or this cvspec's
    version) with the image's extra, as its generated Dockerfile's default has it."""
    from cvspec import __version__

    return {
        i.purpose: cvspec_requirement(spec, __version__, [image_extra(spec, i.purpose)])
        for i in wanted
    }


def preflight(root: Path, wanted: list[Image], settings: Settings, spec_file: str) -> str | None:
    """What must hold before talking to an engine; None when all is in place."""
    for image in wanted:
        if not (root / image.dockerfile).is_file():
            return f"{image.dockerfile} is missing: run `cvspec build {spec_file}` first"
        for path in image.context:
            if not (root / path).exists():
                fix = (
                    f"cvspec run {spec_file} --stage export"
                    if path.startswith("runs/")
                    else (f"cvspec build {spec_file}")
                )
                return f"{path} is missing: run `{fix}` first"
    if not _TAG.fullmatch(settings.tag):
        return f"CVSPEC_IMAGE_TAG '{settings.tag}' is not a valid image tag"
    if settings.push and any(registry_host(i.repository) is None for i in wanted):
        return "CVSPEC_PUSH is set but deploy.registry is not: there is nowhere to push to"
    return None


def gates_problem(root: Path, project: str, spec_file: str) -> str | None:
    """Pushing publishes the model: only one whose evaluation passed every gate, and an
    evaluation of the model exported now (not of an earlier training run)."""
    where = f"runs/{project}/evaluate/metrics.json"
    again = f"run `cvspec run {spec_file} --stage evaluate` before pushing"
    try:
        report = json.loads((root / where).read_text(encoding="utf-8"))
        exported = json.loads((root / f"runs/{project}/export/export.json").read_text("utf-8"))
    except FileNotFoundError as exc:
        return f"{os.path.relpath(exc.filename, root)} is missing: {again}"
    except (OSError, ValueError) as exc:
        return f"{where} or export.json is unreadable ({exc}): {again}"
    if not isinstance(report, dict) or not isinstance(exported, dict):
        return f"{where} is not an evaluation report: {again}"
    if report.get("run_id") != exported.get("run_id"):
        return (
            f"{where} evaluated run {report.get('run_id')}, but the export is of run "
            f"{exported.get('run_id')}: {again}"
        )
    from cvspec.evaluate.export import unevaluated_export

    other = unevaluated_export(root, project)
    if other:
        return f"{other}: {again}"
    if report.get("passed") is True:
        return None
    gates = report.get("gates")
    failed = [
        str(g.get("name"))
        for g in (gates if isinstance(gates, list) else [])
        if isinstance(g, dict) and not g.get("passed")
    ]
    names = ", ".join(failed) or "see the report"
    return f"not pushing: the model failed its gates ({names}; {where})"


def connect(env: Mapping[str, str]) -> Any:
    """A Docker client that answered a ping; EngineUnavailable with one clear line if none."""
    docker: Any = importlib.import_module("docker")  # the SDK ships no type hints
    errors: Any = importlib.import_module("docker.errors")
    host = env.get("DOCKER_HOST")
    tried = f"DOCKER_HOST={host}" if host else f"{_DEFAULT_HOST} (DOCKER_HOST is not set)"
    try:
        client = docker.from_env()
        client.ping()
    except (errors.DockerException, OSError, ImportError) as exc:
        raise EngineUnavailable(
            f"no Docker engine at {tried}: {_reason(exc)}; start Docker (or Podman's Docker "
            "API), or set DOCKER_HOST to a running engine (e.g. ssh://user@build-host)"
        ) from None
    return client


def build_all(
    client: Any,
    root: Path,
    wanted: list[Image],
    settings: Settings,
    platforms: list[str],
    log: Log,
    requirements: Mapping[str, str] | None = None,
) -> StageResult:
    """Build every image (streaming the engine's output), then push them if asked;
    `requirements` (purpose -> pip requirement) become the CVSPEC_REQUIREMENT build args."""
    if len(platforms) > 1:
        log(f"note: the Docker SDK builds one platform; building {platforms[0]} only")
    built: list[str] = []
    for image in wanted:
        refs = [f"{image.repository}:{tag}" for tag in settings.tags]
        log(f"building {refs[0]} from {image.dockerfile}")
        requirement = (requirements or {}).get(image.purpose)
        error = build_one(client, root, image, refs, settings, platforms[0], log, requirement)
        if error:
            return StageResult(False, f"building {refs[0]} failed: {error}")
        built.extend(refs)
    if not settings.push:
        return StageResult(True, f"built {', '.join(built)}")
    error = push_all(client, built, settings, log)
    if error:
        return StageResult(False, error)
    return StageResult(True, f"built and pushed {', '.join(built)}")


def build_one(
    client: Any,
    root: Path,
    image: Image,
    refs: list[str],
    settings: Settings,
    platform: str,
    log: Log,
    requirement: str | None = None,
) -> str | None:
    """Build one image through the engine API; the engine's error text, or None."""
    args = {
        "IMAGE_VERSION": settings.tag,
        "VCS_REF": settings.vcs_ref,
        "SOURCE_URL": settings.source_url,
    }
    if requirement:
        args["CVSPEC_REQUIREMENT"] = requirement
    with tempfile.TemporaryFile() as tar:
        count = write_context(root, image, tar)
        log(f"context: {count} files ({', '.join(image.context)})")
        chunks = client.api.build(
            fileobj=tar,
            custom_context=True,
            dockerfile=image.dockerfile,
            tag=refs[0],
            buildargs=args,
            platform=platform,
            rm=True,
            decode=True,
        )
        error = _stream(chunks, log)
    if error:
        return error
    for ref in refs[1:]:
        repo, _, tag = ref.rpartition(":")
        client.api.tag(refs[0], repo, tag)
    return None


def push_all(client: Any, refs: list[str], settings: Settings, log: Log) -> str | None:
    """Log in when credentials are given, then push every ref; the first error, or None."""
    if settings.username and settings.password:
        for host in sorted({registry_host(r) or "docker.io" for r in refs}):
            client.login(username=settings.username, password=settings.password, registry=host)
    for ref in refs:
        repo, _, tag = ref.rpartition(":")
        log(f"pushing {ref}")
        error = _stream(client.api.push(repo, tag=tag, stream=True, decode=True), log)
        if error:
            return f"pushing {ref} failed: {error}"
    return None


def _stream(chunks: Iterable[Mapping[str, Any]], log: Log) -> str | None:
    """Print the engine's progress as it comes; return its error message, if any."""
    for chunk in chunks:
        if "error" in chunk:
            return " ".join(str(chunk["error"]).split())
        if "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if line.strip():
                    log(line)
        elif "status" in chunk and "progress" not in chunk:
            log(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
    return None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for needle, reason in (
        ("No such file or directory", "the socket does not exist"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied (is your user in the docker group?)"),
    ):
        if needle in text:
            return reason
    return text[:160] or type(exc).__name__


def _logger(ctx: RunContext) -> Log:
    if ctx.console is None:
        return lambda line: print(line, file=sys.stderr, flush=True)
    return lambda line: ctx.console.print(line, markup=False, highlight=False)
