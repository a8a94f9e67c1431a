"""The `data` section: where the dataset is, its classes, splits, quality checks, augmentation."""

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from cvspec.spec.model_augment import AugmentStep
from cvspec.spec.model_base import (
    ClassName,
    DataPattern,
    PathStr,
    Probability,
    SecretName,
    StrictModel,
)


class RatioSplits(StrictModel):
    """Split one labelled dataset at random, reproducibly, into train/val/test."""

    val: Probability = Field(0.1, description="Fraction of images held out for validation.")
    test: Probability = Field(0.1, description="Fraction of images held out for the final test.")
    seed: int = Field(0, ge=0, description="Seed of the split; the same seed gives the same split.")


class DirSplits(StrictModel):
    """Use splits that already exist as directories under data.path."""

    train: PathStr = Field(description="Training split directory, relative to data.path.")
    val: PathStr = Field(description="Validation split directory, relative to data.path.")
    test: PathStr | None = Field(None, description="Test split directory, relative to data.path.")


def _split_tag(value: object) -> str:
    if isinstance(value, DirSplits):
        return "DirSplits"
    if isinstance(value, dict) and any(isinstance(v, str) for v in value.values()):
        return "DirSplits"  # folder names; numbers (even under `train`) mean ratio splits
    return "RatioSplits"


Splits = Annotated[
    Annotated[RatioSplits, Tag("RatioSplits")] | Annotated[DirSplits, Tag("DirSplits")],
    Discriminator(_split_tag),
]

Classes = Annotated[
    Annotated[Literal["auto"], Tag("Auto")]
    | Annotated[list[ClassName], Field(min_length=1), Tag("List")],
    Discriminator(lambda v: "Auto" if isinstance(v, str) else "List"),
]


class Duplicates(StrictModel):
    """Limits on duplicated images inside the dataset."""

    exact: int | None = Field(
        None,
        ge=0,
        description="Most byte-identical copies allowed: of each group of identical files, every "
        "file after the first (in path order) counts, so three copies of one image count 2; "
        "copies in different splits count in leakage too. null: no check.",
    )
    near_fraction: Probability | None = Field(
        None,
        description="Largest fraction of the decoded images that are at most near_hamming bits "
        "from an earlier image (in path order; byte-identical copies are left to exact); pairs "
        "in different splits count in leakage too. null: no check.",
    )
    near_hamming: int = Field(
        6,
        ge=0,
        le=64,
        description="Largest perceptual-hash Hamming distance (bits of 64) at which two images "
        "are near-duplicates, for near_fraction and leakage alike.",
    )


class Quality(StrictModel):
    """Data quality checks; each one compiles into a data test (null turns a check off)."""

    decodable: bool = Field(True, description="Every image file must decode.")
    min_images_per_class: int = Field(1, ge=0, description="Fewest images any class may have.")
    max_class_ratio: float | None = Field(
        None, ge=1, description="Largest ratio between the biggest and the smallest class."
    )
    duplicates: Duplicates = Field(default_factory=Duplicates, description="Duplicate limits.")
    leakage: int | None = Field(
        None,
        ge=0,
        description="Most val/test images with a byte-identical copy, or an image at most "
        "duplicates.near_hamming bits away, in an earlier split (train, then val); such a pair "
        "counts in duplicates.exact or duplicates.near_fraction too. null: no check.",
    )
    min_side: int | None = Field(None, ge=1, description="Smallest allowed image side, in pixels.")
    max_dark_fraction: Probability | None = Field(
        None, description="Largest fraction of nearly black images."
    )
    max_bright_fraction: Probability | None = Field(
        None, description="Largest fraction of nearly white images."
    )
    max_blurry_fraction: Probability | None = Field(
        None, description="Largest fraction of blurry images (low Laplacian variance)."
    )


class DetectionQuality(Quality):
    """Data quality checks of a detection dataset: those of every dataset, and label files."""

    missing_labels: int | None = Field(
        None,  # ultralytics reads a missing label file as a background image: not an error
        ge=0,
        description=(
            "YOLO: most images without a label file (an empty one marks a background image); "
            "null: reported only."
        ),
    )
    duplicate_boxes: int | None = Field(
        0,
        ge=0,
        description=(
            "Most boxes that repeat another box of their class in their image (intersection "
            "over union >= 0.95: one object labelled twice); null: reported only."
        ),
    )


class DataBase(StrictModel):
    """The dataset: location, format, classes, splits, versioning, checks and augmentation."""

    path: PathStr = Field(description="Dataset root directory, relative to the spec file.")
    format: str = Field(description="On-disk dataset layout.")
    classes: Classes = Field(
        "auto", description="'auto' (read from the dataset) or the class names in label order."
    )
    splits: Splits = Field(
        default_factory=RatioSplits,
        description="Ratios {val, test, seed} of one dataset, or directories {train, val, test}.",
    )
    versioning: Literal["dvc", "none"] = Field("none", description="How the dataset is versioned.")
    remote_secrets: list[SecretName] = Field(
        default_factory=list,
        description="Names of the CI secrets the DVC remote reads, e.g. AWS_ACCESS_KEY_ID: GitHub "
        "passes each to `dvc pull` as the environment variable of that name (GitLab's CI/CD "
        "variables reach every job already).",
    )
    exclude: list[DataPattern] = Field(
        default_factory=list,
        description="Files left out of the dataset (a quarantine): paths or shell-style patterns "
        "relative to data.path; they are neither checked, trained on nor evaluated.",
    )
    quality: Quality = Field(default_factory=Quality, description="Data quality checks.")
    augment: list[AugmentStep] = Field(
        default_factory=list,
        description="Training augmentations; none is applied unless listed, for detection "
        "ultralytics' defaults included. Classification applies the image steps in this order, "
        "then random_erasing on the normalised input, then mixup on whole batches (a spec listing "
        "those two earlier is an error); detection: ultralytics applies its own fixed order.",
    )


class ClassificationData(DataBase):
    """The dataset of a classification project."""

    format: Literal["imagefolder"] = Field(
        "imagefolder", description="On-disk layout: imagefolder (one directory per class)."
    )
    relabel: dict[DataPattern, ClassName] = Field(
        default_factory=dict,
        description="Label corrections: image path (relative to data.path) -> the class it "
        "really shows. The file stays where it is; checks, training and evaluation read the "
        "corrected label (the label review queue suggests entries).",
    )


class DetectionData(DataBase):
    """The dataset of a detection project."""

    format: Literal["yolo", "coco"] = Field(
        "yolo", description="On-disk layout: yolo (images/ + labels/*.txt) or coco (json)."
    )
    quality: DetectionQuality = Field(
        default_factory=DetectionQuality, description="Data quality checks."
    )
