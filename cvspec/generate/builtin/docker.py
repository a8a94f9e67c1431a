"""Dockerfiles for the train and serve images, each with its allow-list .dockerignore."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin.cuda import PYTHON_BASE, torch_build
from cvspec.package.images import (
    CONTEXT_EXCLUDES,
    PIP_CACHE_MOUNT,
    Image,
    cvspec_requirement,
    image_extra,
    images,
    needs_git,
)

NAME = "docker"
UID = 10001  # numeric, so runtimes (and Kubernetes runAsNonRoot) can verify it is not root
_LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def dockerfile_quote(value: str) -> str:
    """A Dockerfile double-quoted word that reads back as `value`, with no variable expansion.

    Inside double quotes the Dockerfile lexer honours only \\\\, \\" and \\$, so escaping those
    three makes every other character literal; line breaks (which would end the instruction)
    become spaces.
    """
    text = value.translate(_LINE_BREAKS)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def requirement(spec: Any, ctx: BuildContext, purpose: str) -> str:
    """The pip requirement that installs cvspec (ci.cvspec_requirement, or this version) with
    the image's extra; the package stage passes the same as the CVSPEC_REQUIREMENT build arg."""
    return cvspec_requirement(spec, ctx.cvspec_version, [image_extra(spec, purpose)])


class DockerGenerator:
    """Plans Dockerfile.train, and Dockerfile.serve when the model is exported to ONNX."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """A Dockerfile and a `<Dockerfile>.dockerignore` beside it for each image."""
        for image in images(spec, ctx.spec_file, ctx.out_dir, ctx.spec_inputs):
            yield Artifact(
                f"docker/Dockerfile.{image.purpose}",
                NAME,
                "dockerfile",
                template=f"docker/Dockerfile.{image.purpose}.j2",
                context=dockerfile_context(spec, ctx, image),
            )
            yield Artifact(
                f"docker/Dockerfile.{image.purpose}.dockerignore",
                NAME,
                "text",
                template="docker/dockerignore.j2",
                context={"paths": list(image.context), "excludes": list(CONTEXT_EXCLUDES)},
            )


def dockerfile_context(spec: Any, ctx: BuildContext, image: Image) -> dict[str, Any]:
    """Template values; those under `quoted` are already Dockerfile-quoted words."""
    build = torch_build(spec.deploy.gpu, spec.deploy.cuda, ctx.spec_file)
    digest = spec.deploy.base_digest
    if image.purpose == "serve":
        base, index_url = PYTHON_BASE, ""
    else:
        base, index_url = build.base, build.index_url
    if digest and base == PYTHON_BASE:  # the digest pins the python base, not CUDA ones
        base = f"{base}@{digest}"
    apt: list[str] = []
    if image.purpose == "train":
        apt = ["python3", "python3-venv"] if build.python == "apt" else []
        apt += list(build.gl_packages) if spec.task == "detection" else []
    # A latency gate timed on CUDA, or a server on CUDA, needs onnxruntime's CUDA build in place
    # of the CPU one; the serve image keeps its slim base (the build's wheels bring CUDA and
    # cuDNN, the host's container toolkit the driver).
    device = spec.evaluate.latency.device if image.purpose == "train" else spec.serve.device
    cuda_ort = device == "cuda"
    onnxruntime_gpu = build.onnxruntime_gpu if cuda_ort else None
    port = int(spec.serve.port)
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health')"
    title = ctx.project if image.purpose == "serve" else f"{ctx.project}-train"
    labels = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": spec.project.description,
        "org.opencontainers.image.base.name": base,
    }
    wanted = requirement(spec, ctx, image.purpose)
    return {
        "project": ctx.project,
        "base": base,
        "apt_packages": apt,
        "git_for_pip": needs_git(wanted),
        "torch": build.torch,
        "torchvision": build.torchvision,
        "cuda": build.cuda,
        "gpu_serving": image.purpose == "serve" and cuda_ort,
        "uid": UID,
        "pip_cache_mount": PIP_CACHE_MOUNT,
        "copies": list(image.context),
        "ports": sorted({port, int(spec.serve.metrics_port)}),
        "healthcheck": ["python3", "-c", probe],
        "entrypoint": ["cvspec", "serve"] if image.purpose == "serve" else ["cvspec"],
        "cmd": (
            [ctx.spec_file, "--host", "0.0.0.0"]
            if image.purpose == "serve"
            else ["run", ctx.spec_file]
        ),
        "quoted": {
            "requirement": dockerfile_quote(wanted),
            "torch_index_url": dockerfile_quote(index_url),
            "onnxruntime_gpu": dockerfile_quote(onnxruntime_gpu) if onnxruntime_gpu else "",
            "labels": [(k, dockerfile_quote(v)) for k, v in labels.items() if v],
        },
    }
