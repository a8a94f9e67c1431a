"""onnxruntime providers for a device setting: no silent fall back to the CPU."""

from __future__ import annotations

import pytest

from cvspec.errors import CvspecError
from cvspec.providers import providers, started_on


class Session:
    """What onnxruntime's InferenceSession reports of the providers it runs on."""

    def __init__(self, running: list[str]) -> None:
        self.running = running

    def get_providers(self) -> list[str]:
        return self.running


def test_the_cpu_needs_nothing_and_a_session_on_the_asked_device_passes() -> None:
    assert providers("cpu", "serve.device") == ["CPUExecutionProvider"]
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    session = Session(cuda)
    assert started_on(session, cuda, "serve.device") is session


def test_a_session_that_fell_back_to_the_cpu_is_an_error() -> None:
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(CvspecError) as caught:
        started_on(Session(["CPUExecutionProvider"]), cuda, "evaluate.latency.device")
    assert caught.value.message.startswith(
        "evaluate.latency.device asks for CUDAExecutionProvider, but onnxruntime could not "
        "start it here (it runs on CPUExecutionProvider): check the GPU, its driver"
    )


def test_cuda_without_onnxruntimes_cuda_build_is_an_error_here() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(CvspecError, match=r"^serve.device is cuda, but this onnxruntime \("):
        providers("cuda", "serve.device")
