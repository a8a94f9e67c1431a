"""What images a spec builds: repository names, Dockerfiles and the paths each context holds."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from cvspec.errors import CvspecError
from cvspec.run.graph import stage_dir

# A path written into Dockerfiles, .dockerignore and CI files must be plain: no quoting, glob,
# variable or option syntax can appear in it, so it can never be read as more than a path.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# Never sent to the engine, even inside the allowed paths.
CONTEXT_EXCLUDES = ("**/__pycache__", "**/*.pyc", "**/*.orig", "**/.DS_Store")
# BuildKit keeps pip's downloads here between builds; the classic builder has no such mount.
PIP_CACHE_MOUNT = "--mount=type=cache,target=/root/.cache/pip"
PURPOSES = ("train", "serve")


class Image(NamedTuple):
    """One image of a project: its purpose, repository (no tag), Dockerfile and context paths."""

    purpose: str
    repository: str
    dockerfile: str  # from the repository root
    context: tuple[str, ...]  # paths from the repository root that the Dockerfile copies


def plain_path(path: str, what: str) -> str:
    """Return `path` if it is a plain relative path; else a CvspecError naming it."""
    if _PLAIN_PATH.fullmatch(path) and ".." not in path.split("/"):
        return path
    raise CvspecError(
        f"{what} '{path}' cannot be written into Dockerfiles and CI files: use a path inside "
        "the repository made of letters, digits, '_', '.', '-' and '/' (rename the file)"
    )


def repository(spec: Any, purpose: str = "serve") -> str:
    """The image repository: [deploy.registry/]deploy.image (default: the project name)."""
    name = spec.deploy.image or spec.project.name
    if purpose != "serve":
        name = f"{name}-{purpose}"
    return f"{spec.deploy.registry}/{name}" if spec.deploy.registry else str(name)


def registry_host(repo: str) -> str | None:
    """The registry a repository lives on, by Docker's rule; None for Docker Hub."""
    first, sep, _ = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def spec_context(spec_file: str) -> str:
    """What of the spec the images copy: its folder (partials it extends live there too)."""
    plain_path(spec_file, "spec file")
    folder = posixpath.dirname(spec_file)
    return folder or spec_file


def extended_outside(spec_file: str, inputs: Sequence[str]) -> list[str]:
    """The files a spec extends that its folder does not hold: the images copy them one by one
    (a shared partial in configs/, say), so the spec composes inside the image too."""
    folder = posixpath.dirname(spec_file)
    outside = []
    for path in sorted(set(inputs) - {spec_file}):
        if folder and path.startswith(folder + "/"):
            continue
        if posixpath.isabs(path) or path.split("/")[0] == "..":
            raise CvspecError(
                f"{spec_file} extends {path}, which is outside the repository: the CI jobs and "
                "the images cannot read it; move it into the repository (next to the spec, as "
                "specs/_name.yaml, say) and extend it from there"
            )
        outside.append(plain_path(path, "extended spec file"))
    return outside


def images(spec: Any, spec_file: str, out_dir: str, inputs: Sequence[str] = ()) -> list[Image]:
    """The images a spec builds: train always; serve when the model is exported to ONNX.
    `inputs`: the spec file and the files it extends (from the repository root)."""
    project = str(spec.project.name)
    base = (spec_context(spec_file), *extended_outside(spec_file, inputs), out_dir)
    found = [Image("train", repository(spec, "train"), f"{out_dir}/docker/Dockerfile.train", base)]
    if "onnx" in spec.export:
        context = (*base, export_dir(project))
        found.append(
            Image("serve", repository(spec, "serve"), f"{out_dir}/docker/Dockerfile.serve", context)
        )
    return found


def image_extra(spec: Any, purpose: str) -> str:
    """The cvspec extra an image installs: serve (serve-detect for a detector, whose letterbox
    needs OpenCV), or the task's training extra."""
    if purpose == "serve":
        return "serve-detect" if spec.task == "detection" else "serve"
    return "detect" if spec.task == "detection" else "train"


def cvspec_requirement(spec: Any, version: str, extras: Sequence[str] = ()) -> str:
    """The pip requirement that installs cvspec with `extras`: ci.cvspec_requirement (a version
    specifier, `cvspec @ URL` or the URL alone) or, when unset, cvspec==`version`."""
    wanted = str(spec.ci.cvspec_requirement or f"cvspec=={version}")
    name = f"cvspec[{','.join(extras)}]" if extras else "cvspec"
    if not wanted.startswith("cvspec"):  # a URL alone
        return f"{name} @ {wanted}"
    rest = wanted.removeprefix("cvspec").strip()
    return f"{name} {rest}" if rest.startswith("@") else f"{name}{rest}"


def needs_git(requirement: str) -> bool:
    """True when pip fetches the requirement with git (a `git+` URL), which slim images lack."""
    return "git+" in requirement


def export_dir(project: str) -> str:
    """Where the export stage leaves the deployable model bundle, from the repository root."""
    return stage_dir(project, "export")
