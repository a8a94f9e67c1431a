"""The `model` and `train` sections: architecture, optimiser, schedule, sweeps, distribution."""

from typing import Annotated, Literal

from pydantic import Field, PlainValidator, WithJsonSchema

from cvspec.spec.model_base import PathStr, Pattern, StrictModel

ARCH_PATTERN = r"^(timm/[a-z0-9][a-z0-9_.]*|ultralytics/[a-z0-9][a-z0-9_.-]*\.(yaml|pt))$"
Arch = Annotated[str, Pattern(ARCH_PATTERN, "timm/<name> or ultralytics/<name>.yaml|.pt")]
SweepKey = Annotated[
    str,
    Pattern(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$", "a dotted spec key like 'train.optimizer.lr'"),
]


def _scalar(value: object) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError("a sweep value must be a number, a string or a boolean")


Scalar = Annotated[
    bool | int | float | str,
    PlainValidator(_scalar),
    WithJsonSchema({"type": ["boolean", "integer", "number", "string"]}),
]


class ModelBase(StrictModel):
    """The network: architecture, initial weights and input size."""

    arch: Arch = Field(description="timm/<name> or ultralytics/<name>.yaml|.pt.")
    pretrained: bool = Field(False, description="Start from the library's pretrained weights.")
    weights: PathStr | None = Field(
        None, description="Local weights file to start from, relative to the spec file."
    )
    image_size: int = Field(gt=0, le=8192, description="Square input size, in pixels.")


class ClassificationModel(ModelBase):
    """The network of a classification project."""

    image_size: int = Field(224, gt=0, le=8192, description="Square input size, in pixels.")


class DetectionModel(ModelBase):
    """The network of a detection project."""

    image_size: int = Field(
        640, gt=0, le=8192, description="Square input size, in pixels (a multiple of 32)."
    )


class Optimizer(StrictModel):
    """The optimiser and its hyper-parameters."""

    name: Literal["sgd", "adam", "adamw"] = Field("adamw", description="Optimiser algorithm.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="Weight decay (L2 for sgd/adam).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd only).")


class Distributed(StrictModel):
    """How training is spread over machines and GPUs."""

    engine: Literal["none", "torchrun", "kubernetes", "slurm"] = Field(
        "none", description="Launcher: none (one process), torchrun, kubernetes or slurm."
    )
    nodes: int = Field(1, ge=1, le=1024, description="Number of machines.")
    gpus_per_node: int = Field(1, ge=1, le=64, description="GPUs (processes) per machine.")


class Train(StrictModel):
    """Training hyper-parameters."""

    epochs: int = Field(10, ge=1, le=100_000, description="Passes over the training split.")
    batch_size: int = Field(
        32, ge=1, le=65_536, description="Global batch size (split across all GPUs)."
    )
    optimizer: Optimizer = Field(default_factory=Optimizer, description="Optimiser settings.")
    schedule: Literal["cosine", "step", "constant", "onecycle"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warmup length, in epochs.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Numeric precision: fp32, or bf16/fp16 mixed precision."
    )
    seed: int = Field(0, ge=0, description="Random seed for weights, shuffling and augmentation.")
    workers: int = Field(4, ge=0, le=256, description="Data loader worker processes.")
    sweep: dict[SweepKey, Annotated[list[Scalar], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="Grid search: dotted spec key (e.g. train.optimizer.lr) -> values to try.",
    )
    distributed: Distributed = Field(
        default_factory=Distributed, description="Multi-GPU / multi-node training."
    )
