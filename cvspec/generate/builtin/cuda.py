"""The one table of torch builds for the train image: CPU, and each CUDA version we know."""

from __future__ import annotations

from typing import NamedTuple

from cvspec.errors import CvspecError


class TorchBuild(NamedTuple):
    """A base image and the torch wheels that match it (same CUDA version, or CPU)."""

    base: str  # image:tag, pinned by tag (deploy.base_digest may pin the python base further)
    python: str  # "image": the base ships python; "apt": install python3 from the OS archive
    torch: str
    torchvision: str
    index_url: str  # the PyTorch wheel index whose builds match the base
    cuda: str | None  # full CUDA version of the base; None for CPU
    gl_packages: tuple[str, ...]  # the OS packages OpenCV (ultralytics) loads, by their names here
    onnxruntime_gpu: str | None = None  # the onnxruntime-gpu requirement built for this CUDA

    @property
    def python_base(self) -> bool:
        """True when the base is the official python image (so base_digest applies to it)."""
        return self.python == "image"


PYTHON_BASE = "python:3.11-slim-bookworm"
TORCH_INDEX = "https://download.pytorch.org/whl"

_BOOKWORM_GL = ("libgl1", "libglib2.0-0")
_NOBLE_GL = ("libgl1", "libglib2.0-0t64")
TORCH, TORCHVISION = "2.12.1", "0.27.1"
CPU = TorchBuild(PYTHON_BASE, "image", TORCH, TORCHVISION, f"{TORCH_INDEX}/cpu", None, _BOOKWORM_GL)


# onnxruntime-gpu on PyPI is built for one CUDA major per release: up to 1.26 for CUDA 12,
# from 1.27 for CUDA 13 (read from each release's `cuda` extra). The extras bring the CUDA and
# cuDNN libraries as wheels, as torch's do.
ONNXRUNTIME_GPU = {
    "12": "onnxruntime-gpu[cuda,cudnn]>=1.21,<1.27",
    "13": "onnxruntime-gpu[cuda,cudnn]>=1.27,<2",
}


def _cuda(version: str) -> TorchBuild:
    wheels = f"{TORCH_INDEX}/cu{''.join(version.split('.')[:2])}"
    base = f"nvidia/cuda:{version}-runtime-ubuntu24.04"
    ort = ONNXRUNTIME_GPU[version.split(".")[0]]
    return TorchBuild(base, "apt", TORCH, TORCHVISION, wheels, version, _NOBLE_GL, ort)


# CUDA major.minor -> build: the CUDA lines torch 2.12 ships wheels for. Each runtime base is
# Ubuntu 24.04 (python 3.12 from apt, so cvspec's python>=3.11 holds); each wheel index cuXYZ
# bundles that CUDA release's libraries, so the base only adds the matching driver stack.
CUDA: dict[str, TorchBuild] = {
    ".".join(v.split(".")[:2]): _cuda(v) for v in ("12.6.3", "13.0.2", "13.2.0")
}
DEFAULT_CUDA = "13.0"  # PyTorch's stable CUDA line


def torch_build(gpu: bool, cuda: str | None, where: str = "spec") -> TorchBuild:
    """The build for deploy.gpu/deploy.cuda; an unknown combination is a CvspecError."""
    if not gpu:  # deploy.cuda without deploy.gpu is a spec error (rule cuda-without-gpu)
        return CPU
    wanted = cuda or DEFAULT_CUDA
    key = ".".join(wanted.split(".")[:2])
    build = CUDA.get(key)
    if build is None or (wanted.count(".") == 2 and wanted != build.cuda):
        known = ", ".join(f"{k} ({b.cuda}, torch {b.torch})" for k, b in CUDA.items())
        raise CvspecError(
            f"{where}: deploy.cuda '{wanted}': no known CUDA runtime image with matching "
            f"torch wheels; known: {known}"
        )
    return build
