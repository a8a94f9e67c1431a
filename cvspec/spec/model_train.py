"""The `model` and `train` sections: architecture, optimiser, schedule, sweeps, distribution."""

import re
from typing import Annotated, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ByteSize,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from cvspec.spec.model_base import PathStr, Pattern, StrictModel

ARCH_PATTERN = r"^(timm/[a-z0-9][a-z0-9_.]*|ultralytics/[a-z0-9][a-z0-9_.-]*\.(yaml|pt))$"


def _arch_hint(value: str) -> str | None:
    """The prefix a bare model name lacks: resnet18 -> timm/resnet18, yolov8n.pt ->
    ultralytics/yolov8n.pt (a case or a typo elsewhere gets no guess)."""
    prefix = "ultralytics/" if value.endswith((".yaml", ".pt")) else "timm/"
    if re.fullmatch(ARCH_PATTERN, prefix + value):
        return f"did you mean '{prefix}{value}'?"
    return None


Arch = Annotated[
    str, Pattern(ARCH_PATTERN, "timm/<name> or ultralytics/<name>.yaml|.pt", hint=_arch_hint)
]
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
    weight_decay: float = Field(
        0.01,
        ge=0,
        description="Weight decay (L2 for sgd/adam); biases and norm layers are not decayed.",
    )
    momentum: float = Field(
        0.9,
        ge=0,
        lt=1,
        description=(
            "Momentum of sgd (Nesterov's, as timm's and ultralytics' sgd); a detector's adam "
            "and adamw take it as beta1, as ultralytics does."
        ),
    )


def _kubernetes_units(value: object) -> object:
    """'64Gi' (Kubernetes' spelling) is '64GiB'."""
    if isinstance(value, str) and value.strip()[-2:] in ("Ki", "Mi", "Gi", "Ti"):
        return value.strip() + "B"
    return value


def _at_least_64mib(size: ByteSize) -> ByteSize:
    if size < 64 * 2**20:
        raise ValueError(
            f"{size} bytes is too little for a machine (at least 64MiB): write a size with its "
            "unit, like 64GiB"
        )
    return size


# Memory of one machine: '64GiB', '64Gi', '500MB'; at least 64 MiB (a bare 64 is 64 bytes).
NodeSize = Annotated[
    ByteSize,
    BeforeValidator(_kubernetes_units),
    Field(le=2**50),
    AfterValidator(_at_least_64mib),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 64 * 2**20},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$"},
            ]
        }
    ),
]


class Distributed(StrictModel):
    """How training is spread over machines and GPUs, and what each machine gives it."""

    engine: Literal["none", "torchrun", "kubernetes", "slurm"] = Field(
        "none", description="Launcher: none (one process), torchrun, kubernetes or slurm."
    )
    nodes: int = Field(1, ge=1, le=1024, description="Number of machines.")
    gpus_per_node: int = Field(1, ge=1, le=64, description="GPUs (processes) per machine.")
    cpus_per_node: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "CPUs per machine for its processes and their data loader workers (Slurm "
            "--cpus-per-task, the PyTorchJob pods' cpu); default gpus_per_node x "
            "(train.workers + 1)."
        ),
    )
    memory_per_node: NodeSize | None = Field(
        None,
        description=(
            "Memory per machine, e.g. '64GiB' (Slurm --mem, the PyTorchJob pods' memory request "
            "and limit, shm_size included); default 2 GiB per CPU plus shm_size."
        ),
    )
    shm_size: NodeSize | None = Field(
        None,
        description=(
            "Shared memory (/dev/shm) of each PyTorchJob pod, where data loader workers hand "
            "batches over and NCCL talks between GPUs (Kubernetes' default is 64 MB); default "
            "512 MiB per data loader worker per GPU, at least 1 GiB."
        ),
    )


class Train(StrictModel):
    """Training hyper-parameters."""

    epochs: int = Field(10, ge=1, le=100_000, description="Passes over the training split.")
    batch_size: int = Field(
        32, ge=1, le=65_536, description="Global batch size (split across all GPUs)."
    )
    optimizer: Optimizer = Field(default_factory=Optimizer, description="Optimiser settings.")
    schedule: Literal["cosine", "step", "constant", "onecycle"] = Field(
        "cosine",
        description=(
            "Learning-rate schedule after warmup, stepped every batch: cosine (down to 0), "
            "constant, or for classification step (x0.1 after a third and two thirds of the "
            "steps) or onecycle (cosine after a warmup of 30% of the steps when warmup_epochs "
            "is 0)."
        ),
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


# The train.distributed keys that say what a machine gives a launched run, not what it trains.
NODE_RESOURCES = ("cpus_per_node", "memory_per_node", "shm_size")


class NodeResources(NamedTuple):
    """What one machine of a distributed run asks for: CPUs, memory, and of it /dev/shm."""

    cpus: int
    memory: int  # bytes, shm included
    shm: int  # bytes


def node_resources(train: Train) -> NodeResources:
    """train.distributed's cpus_per_node, memory_per_node and shm_size, defaults filled in."""
    dist = train.distributed
    cpus = dist.cpus_per_node or dist.gpus_per_node * (train.workers + 1)
    shm = dist.shm_size or max(dist.gpus_per_node * train.workers * 2**29, 2**30)
    memory = dist.memory_per_node or cpus * 2**31 + shm
    return NodeResources(cpus, int(memory), int(shm))
