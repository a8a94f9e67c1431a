"""Training configuration: a Hydra config tree (timm) or ultralytics data + train-args YAML."""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext

NAME = "train"

# spec optimizer name -> ultralytics' spelling
_ULTRA_OPTIMIZER = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def data_root(spec: Any, ctx: BuildContext) -> str:
    """data.path as seen from the repository root (runs start there), POSIX style."""
    return from_root(str(spec.data.path), ctx)


def from_root(path: str, ctx: BuildContext) -> str:
    """A path the spec gives relative to its own file, as seen from the repository root."""
    if posixpath.isabs(path):
        return path
    return posixpath.normpath(posixpath.join(posixpath.dirname(ctx.spec_file), path))


_BEFORE_REFERENCE = re.compile(r"(\\*)\$\{")


def hydra_literal(text: str | None) -> str | None:
    """A spec string as Hydra/OmegaConf must read it: `${` escaped so it is never a reference.

    OmegaConf reads `\\${` as a literal `${` and `\\\\${` as one backslash before a reference,
    so the backslashes right before a `${` are doubled and one more escapes it."""
    if not text:
        return text
    return _BEFORE_REFERENCE.sub(lambda m: m[1] * 2 + "\\${", text)


def sweep_points(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid of a sweep: one {dotted key: value} per point, keys sorted, in product order."""
    keys = sorted(sweep)
    if not keys:
        return []
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(sweep[k] for k in keys))
    ]


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


class TrainConfigGenerator:
    """Makes the configuration the trainers read, from the spec's data, model and train."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Hydra tree for classification; ultralytics data.yaml + args.yaml for detection."""
        if spec.task == "detection":
            yield from self._detection(spec, ctx)
        else:
            yield from self._classification(spec, ctx)

    def _classification(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        train = spec.train.model_dump(mode="json", exclude={"sweep", "distributed"})
        points = sweep_points(spec.train.sweep)
        config: dict[str, Any] = {
            "defaults": ["_self_", {"experiment": None}],
            "project": ctx.project,
            "task": spec.task,
            "spec": ctx.spec_file,
            "data": {
                "root": hydra_literal(data_root(spec, ctx)),
                "format": spec.data.format,
                "classes": spec.data.classes,
                "splits": spec.data.splits.model_dump(mode="json"),
                "augment": [{s.name: s.params.model_dump(mode="json")} for s in spec.data.augment],
                # patterns and paths are literal text: a `${` in one is no config reference
                **(
                    {"exclude": [hydra_literal(p) for p in spec.data.exclude]}
                    if spec.data.exclude
                    else {}
                ),
                # as pairs: an image path is no config key (its dots and slashes are syntax)
                **(
                    {
                        "relabel": [
                            [hydra_literal(path), cls] for path, cls in spec.data.relabel.items()
                        ]
                    }
                    if spec.data.relabel
                    else {}
                ),
            },
            "model": {
                "library": "timm",
                "name": spec.model.arch.split("/", 1)[1],
                "pretrained": spec.model.pretrained,
                "weights": hydra_literal(spec.model.weights),
                "image_size": spec.model.image_size,
            },
            "train": train,
            "output": {"root": f"runs/{ctx.project}"},
            "hydra": {
                "run": {"dir": f"runs/{ctx.project}/hydra/run"},
                "sweep": {"dir": f"runs/{ctx.project}/hydra/sweep", "subdir": "${hydra:job.num}"},
                "job": {"chdir": False},
            },
        }
        if points:
            names = ",".join(_point_name(i) for i in range(len(points)))
            config["hydra"]["sweeper"] = {"params": {"experiment": names}}
        yield Artifact("train/config.yaml", NAME, "yaml", data=config)
        for index, point in enumerate(points):
            yield Artifact(
                f"train/experiment/{_point_name(index)}.yaml",
                NAME,
                "yaml",
                data=_package_global(nest(point)),
            )

    def _detection(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        root = data_root(spec, ctx)
        classes = spec.data.classes if isinstance(spec.data.classes, list) else []
        splits = spec.data.splits
        if spec.data.format == "coco":  # the trainer writes a YOLO view of the annotations
            dirs = {
                COCO_KEY: {
                    "classes": spec.data.classes,
                    "splits": splits.model_dump(mode="json", exclude_none=True),
                }
            }
        elif hasattr(splits, "train"):
            dirs = {"train": splits.train, "val": splits.val}
            if splits.test:
                dirs["test"] = splits.test
        else:  # one images/ folder split by ratio: the trainer writes the lists it assigns
            ratio = {
                "images": "images",
                "val": splits.val,
                "test": splits.test,
                "seed": splits.seed,
            }
            dirs = {RATIO_SPLITS_KEY: ratio}
        data_yaml = {"path": root, **dirs, "nc": len(classes), "names": dict(enumerate(classes))}
        if spec.data.exclude:  # the trainer lists each split's images without them
            data_yaml[EXCLUDE_KEY] = list(spec.data.exclude)
        yield Artifact("train/data.yaml", NAME, "yaml", data=data_yaml)
        yield Artifact("train/args.yaml", NAME, "yaml", data=ultralytics_args(spec, ctx))


# In data.yaml, instead of train/val/test folders: how cvspec splits the images/ folder. The
# trainer turns it into the image lists ultralytics reads, with the data stage's assignment.
RATIO_SPLITS_KEY = "cvspec_ratio_splits"
# In data.yaml of a COCO dataset, instead of split folders: what the trainer needs to read the
# annotations as the data stage does (classes, splits); it trains from a YOLO view of them
# (images linked, labels written) in the run folder, as ultralytics reads YOLO only.
COCO_KEY = "cvspec_coco"
# In data.yaml: data.exclude, which ultralytics does not know; the trainer applies it.
EXCLUDE_KEY = "cvspec_exclude"
# ultralytics' default close_mosaic: mosaic and mixup are off for a run's last that many epochs.
# args.yaml states it, capped at train.epochs: a run that short never uses them, whichever way
# an ultralytics release tests the epoch (== in older ones, >= in newer).
CLOSE_MOSAIC = 10
# ultralytics' default final learning rate, as a fraction of lr0, for the cosine schedule.
ULTRALYTICS_LRF = 0.01


def ultralytics_args(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """Train arguments in ultralytics' own key names; every augmentation not declared is off."""
    train = spec.train
    args: dict[str, Any] = {
        "task": "detect",
        # a weights file from the repository root, where every entry point trains from
        "model": (
            from_root(spec.model.weights, ctx)
            if spec.model.weights
            else spec.model.arch.split("/", 1)[1]
        ),
        "data": f"{ctx.out_dir}/train/data.yaml",
        "epochs": train.epochs,
        "batch": train.batch_size,
        "imgsz": spec.model.image_size,
        "optimizer": _ULTRA_OPTIMIZER[train.optimizer.name],
        "lr0": train.optimizer.lr,
        "momentum": train.optimizer.momentum,
        "weight_decay": train.optimizer.weight_decay,
        # ultralytics decays lr0 to lr0 * lrf, on a cosine or else a straight line: constant is
        # a line to lr0 itself (step and onecycle are refused for detection by the rules)
        "cos_lr": train.schedule == "cosine",
        "lrf": 1.0 if train.schedule == "constant" else ULTRALYTICS_LRF,
        "warmup_epochs": train.warmup_epochs,
        "close_mosaic": min(CLOSE_MOSAIC, train.epochs),
        "amp": train.precision != "fp32",
        "seed": train.seed,
        "deterministic": True,
        "workers": train.workers,
        "pretrained": spec.model.pretrained,
        "project": f"runs/{ctx.project}",
        "name": "train",
        "exist_ok": True,
        "plots": True,
        "fliplr": 0.0,
        "flipud": 0.0,
        "degrees": 0.0,
        "translate": 0.0,
        "scale": 0.0,
        "shear": 0.0,
        "hsv_h": 0.0,
        "hsv_s": 0.0,
        "hsv_v": 0.0,
        "mosaic": 0.0,
        "mixup": 0.0,
    }
    for step in spec.data.augment:
        p = step.params
        if step.name == "hflip":
            args["fliplr"] = p.p
        elif step.name == "vflip":
            args["flipud"] = p.p
        elif step.name == "rotate":
            args["degrees"] = p.degrees
        elif step.name == "color_jitter":
            args.update(hsv_h=p.hue, hsv_s=p.saturation, hsv_v=p.brightness)
        elif step.name == "mosaic":
            args["mosaic"] = p.p
        elif step.name == "mixup":
            args["mixup"] = p.p
        elif step.name == "affine":
            args.update(translate=p.translate, scale=p.scale, shear=p.shear)
    return args


def _point_name(index: int) -> str:
    return f"point-{index:03d}"


def _package_global(body: dict[str, Any]) -> str:
    """An experiment file: Hydra's `@package _global_` line, then the overrides as YAML."""
    from cvspec.generate.render import dump_yaml

    return "# @package _global_\n" + dump_yaml(body)
