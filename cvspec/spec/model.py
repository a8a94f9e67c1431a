"""The cvspec spec language v1 as pydantic models: one discriminated union per task."""

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticCustomError

from cvspec.spec.model_augment import AUGMENTATIONS, AugmentInfo, AugmentStep, AugmentStepBase
from cvspec.spec.model_base import Gate, PathStr, Pattern, StrictModel
from cvspec.spec.model_data import (
    ClassificationData,
    DataBase,
    DetectionData,
    DetectionQuality,
    DirSplits,
    Duplicates,
    Quality,
    RatioSplits,
)
from cvspec.spec.model_eval import (
    GATE_INFO,
    GATES,
    ClassificationEvaluate,
    ClassificationGates,
    DetectionEvaluate,
    DetectionGates,
    EvaluateBase,
    GateInfo,
    LatencyBench,
    set_gates,
)
from cvspec.spec.model_ops import CI, Alert, Contacts, Deploy, Monitor, Notify, Project, Serve
from cvspec.spec.model_train import (
    ClassificationModel,
    DetectionModel,
    Distributed,
    ModelBase,
    Optimizer,
    Train,
)

__all__ = [
    "AUGMENTATIONS",
    "CI",
    "GATES",
    "GATE_INFO",
    "SPEC_ADAPTER",
    "TASKS",
    "Alert",
    "AugmentInfo",
    "AugmentStep",
    "AugmentStepBase",
    "ClassificationData",
    "ClassificationEvaluate",
    "ClassificationGates",
    "ClassificationModel",
    "ClassificationSpec",
    "Contacts",
    "DataBase",
    "Deploy",
    "DetectionData",
    "DetectionEvaluate",
    "DetectionGates",
    "DetectionModel",
    "DetectionQuality",
    "DetectionSpec",
    "DirSplits",
    "Distributed",
    "Duplicates",
    "EvaluateBase",
    "ExportFormat",
    "Gate",
    "GateInfo",
    "LatencyBench",
    "ModelBase",
    "Monitor",
    "Notify",
    "Optimizer",
    "Project",
    "Quality",
    "RatioSplits",
    "Serve",
    "Spec",
    "SpecBase",
    "SpecModel",
    "StrictModel",
    "Train",
    "set_gates",
]

TASKS = ("classification", "detection")
ExportFormat = Literal["onnx", "torchscript"]
_EXPORT: tuple[ExportFormat, ...] = ("onnx",)
ProfileName = Annotated[str, Pattern(r"^[a-z][a-z0-9_-]*$", "a lowercase profile name", 63)]


def _version(value: object) -> object:
    """`cvspec: 1`, not true or 1.0 (which a Literal[1] takes, being equal to 1)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
    return value


class SpecBase(StrictModel):
    """A cvspec project: everything needed to train, test, ship and watch one CV model."""

    cvspec: Annotated[Literal[1], BeforeValidator(_version)] = Field(
        description="Spec language version."
    )
    extends: list[PathStr] | PathStr | None = Field(
        None, description="Spec files this one builds on (resolved before validation)."
    )
    project: Project = Field(description="Project name, description and owners.")
    task: str = Field(description="What the model does: classification or detection.")
    data: DataBase = Field(description="The dataset.")
    model: ModelBase = Field(description="The network.")
    train: Train = Field(default_factory=Train, description="Training hyper-parameters.")
    evaluate: EvaluateBase = Field(description="Evaluation and quality gates.")
    export: list[ExportFormat] = Field(
        default_factory=lambda: list(_EXPORT), description="Model formats to export."
    )
    serve: Serve = Field(default_factory=Serve, description="Inference server.")
    deploy: Deploy = Field(default_factory=Deploy, description="Container image.")
    monitor: Monitor = Field(default_factory=Monitor, description="Production alerts.")
    ci: CI = Field(default_factory=CI, description="CI pipelines.")
    profiles: dict[ProfileName, dict[str, Any]] = Field(
        default_factory=dict, description="Named partial specs merged on top with --profile."
    )
    templates: PathStr | None = Field(
        None, description="Directory of template overrides, relative to the spec file."
    )

    @property
    def eval_split(self) -> Literal["val", "test"]:
        """The split evaluation runs on: evaluate.split, else test when the data has one."""
        if self.evaluate.split is not None:
            return self.evaluate.split
        splits = self.data.splits
        has_test = splits.test is not None if isinstance(splits, DirSplits) else splits.test > 0
        return "test" if has_test else "val"


class ClassificationSpec(SpecBase):
    """A classification project: one label per image."""

    task: Literal["classification"] = Field(description="Classify whole images.")
    data: ClassificationData = Field(description="The dataset.")
    model: ClassificationModel = Field(description="The network.")
    evaluate: ClassificationEvaluate = Field(
        default_factory=ClassificationEvaluate, description="Evaluation and quality gates."
    )


class DetectionSpec(SpecBase):
    """A detection project: labelled boxes per image."""

    task: Literal["detection"] = Field(description="Detect and box objects.")
    data: DetectionData = Field(description="The dataset.")
    model: DetectionModel = Field(description="The network.")
    evaluate: DetectionEvaluate = Field(
        default_factory=DetectionEvaluate, description="Evaluation and quality gates."
    )


SpecModel = ClassificationSpec | DetectionSpec
Spec = Annotated[ClassificationSpec | DetectionSpec, Field(discriminator="task")]
SPEC_ADAPTER: TypeAdapter[SpecModel] = TypeAdapter(Spec, config=ConfigDict(defer_build=True))
