"""Which onnxruntime execution providers run a model on the device a setting names."""

from __future__ import annotations

from typing import Any

from cvspec.errors import CvspecError


def providers(device: str, setting: str) -> list[str]:
    """onnxruntime's providers for `device` ("cpu" or "cuda"); a CvspecError when onnxruntime
    here has no CUDA provider. Falling back to the CPU would time or serve the model on another
    device than `setting` names, so a missing provider stops instead."""
    import onnxruntime as ort

    if device != "cuda":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise CvspecError(
            f"{setting} is cuda, but this onnxruntime ({ort.__version__}) has no CUDA provider "
            f"(only {', '.join(available)}); install the onnxruntime-gpu build for this CUDA "
            f"version in place of onnxruntime, or set {setting}: cpu"
        )
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu >= 1.21: CUDA/cuDNN from their wheels
        ort.preload_dlls()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def started_on(session: Any, chosen: list[str], setting: str) -> Any:
    """`session`, once it is sure to run on chosen[0]: onnxruntime falls back to the CPU when
    CUDA cannot start (no GPU, a driver or library missing), which is a CvspecError here."""
    running = session.get_providers()[0]
    if running != chosen[0]:
        raise CvspecError(
            f"{setting} asks for {chosen[0]}, but onnxruntime could not start it here (it runs "
            f"on {running}): check the GPU, its driver and the CUDA/cuDNN libraries "
            "onnxruntime's log names above"
        )
    return session
