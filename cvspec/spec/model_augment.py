"""The `data.augment` steps: one params model per augmentation and the tasks it applies to."""

from typing import TYPE_CHECKING, Annotated, NamedTuple, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, create_model

from cvspec.spec.model_base import Probability, StrictModel


def _pair(value: object) -> object:
    """A YAML list [low, high] as the tuple a strict model takes."""
    return tuple(value) if isinstance(value, list) else value


Range = Annotated[
    tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]], BeforeValidator(_pair)
]


class HFlip(StrictModel):
    """Flip images left-right."""

    p: Probability = Field(0.5, description="Probability of flipping an image.")


class VFlip(StrictModel):
    """Flip images upside-down."""

    p: Probability = Field(0.5, description="Probability of flipping an image.")


class Rotate(StrictModel):
    """Rotate images by a random angle."""

    degrees: float = Field(15.0, gt=0, le=180, description="Largest rotation, in degrees.")
    p: Probability = Field(
        0.5, description="Probability of rotating an image (detection rotates every image)."
    )


class ColorJitter(StrictModel):
    """Randomly change brightness, contrast, saturation and hue."""

    brightness: float = Field(0.4, ge=0, description="Brightness change factor range.")
    contrast: float = Field(0.4, ge=0, description="Contrast change factor range (classification).")
    saturation: float = Field(0.4, ge=0, description="Saturation change factor range.")
    hue: float = Field(0.0, ge=0, le=0.5, description="Hue shift range, in turns.")
    p: Probability = Field(
        0.8, description="Probability of jittering an image (detection jitters every image)."
    )


class Mixup(StrictModel):
    """Blend pairs of images and their labels."""

    alpha: float = Field(0.2, gt=0, description="Beta distribution parameter (classification).")
    p: Probability = Field(1.0, description="Probability of mixing a batch or image.")


class RandomResizedCrop(StrictModel):
    """Crop a random area and aspect ratio, then resize to model.image_size."""

    scale: Range = Field((0.08, 1.0), description="Crop area range, as a fraction of the image.")
    ratio: Range = Field((0.75, 4 / 3), description="Crop aspect ratio range (width/height).")


class RandomErasing(StrictModel):
    """Erase a random rectangle of the image tensor."""

    p: Probability = Field(0.25, description="Probability of erasing a rectangle.")


class RandAugment(StrictModel):
    """Apply random operations from the RandAugment policy."""

    num_ops: int = Field(2, ge=1, le=10, description="Operations applied to each image.")
    magnitude: int = Field(9, ge=0, le=30, description="Strength of every operation.")


class Grayscale(StrictModel):
    """Convert images to grayscale (kept as 3 channels)."""

    p: Probability = Field(0.1, description="Probability of converting an image.")


class Mosaic(StrictModel):
    """Tile four training images into one (detection)."""

    p: Probability = Field(1.0, description="Probability of building a mosaic.")


class Affine(StrictModel):
    """Random translation, scaling and shear of images and their boxes (detection)."""

    translate: float = Field(0.1, ge=0, le=0.5, description="Largest shift, as a fraction of size.")
    scale: float = Field(0.5, ge=0, lt=1, description="Largest scale change (gain 1 +/- scale).")
    shear: float = Field(0.0, ge=0, le=45, description="Largest shear, in degrees.")


class AugmentInfo(NamedTuple):
    """What an augmentation name means: its params model and the tasks that accept it."""

    params: type[StrictModel]
    tasks: frozenset[str]


_BOTH = frozenset({"classification", "detection"})
_CLS = frozenset({"classification"})
_DET = frozenset({"detection"})

AUGMENTATIONS: dict[str, AugmentInfo] = {
    "hflip": AugmentInfo(HFlip, _BOTH),
    "vflip": AugmentInfo(VFlip, _BOTH),
    "rotate": AugmentInfo(Rotate, _BOTH),
    "color_jitter": AugmentInfo(ColorJitter, _BOTH),
    "mixup": AugmentInfo(Mixup, _BOTH),
    "random_resized_crop": AugmentInfo(RandomResizedCrop, _CLS),
    "random_erasing": AugmentInfo(RandomErasing, _CLS),
    "randaugment": AugmentInfo(RandAugment, _CLS),
    "grayscale": AugmentInfo(Grayscale, _CLS),
    "mosaic": AugmentInfo(Mosaic, _DET),
    "affine": AugmentInfo(Affine, _DET),
}


class AugmentStepBase(StrictModel):
    """One augmentation step: a mapping with exactly one key, the augmentation name."""

    @property
    def name(self) -> str:
        """The augmentation name, e.g. 'hflip'."""
        return next(iter(type(self).model_fields))

    @property
    def params(self) -> StrictModel:
        """The validated params model of this step."""
        params: StrictModel = getattr(self, self.name)
        return params


def _step(name: str, info: AugmentInfo) -> type[AugmentStepBase]:
    doc = (info.params.__doc__ or name).strip()
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{info.params.__name__}Step",
        __base__=AugmentStepBase,
        __doc__=doc,
        __module__=__name__,
        **{name: (info.params, Field(description=doc))},
    )


STEPS: dict[str, type[AugmentStepBase]] = {n: _step(n, i) for n, i in AUGMENTATIONS.items()}
_TAG_OF = {name: cls.__name__ for name, cls in STEPS.items()}


def _step_tag(value: object) -> str | None:
    if isinstance(value, AugmentStepBase):
        return type(value).__name__
    if isinstance(value, dict) and len(value) == 1:
        return _TAG_OF.get(str(next(iter(value))))
    return None


if TYPE_CHECKING:
    AugmentStep = AugmentStepBase
else:
    AugmentStep = Annotated[
        Union[tuple(Annotated[c, Tag(c.__name__)] for c in STEPS.values())],  # noqa: UP007
        Discriminator(
            _step_tag,
            custom_error_type="augment_step",
            custom_error_message="each augment step is a one-key mapping {name: {params}} with "
            f"name one of: {', '.join(AUGMENTATIONS)}",
        ),
    ]
