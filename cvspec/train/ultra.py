"""Detection through ultralytics, fully offline, with its outputs in cvspec's run layout."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cvspec import cpus
from cvspec.atomic import write_text
from cvspec.errors import CvspecError, SpecValueError, UsageError
from cvspec.train.identity import ARGS_NOT_IN_ID as _NOT_IN_ID
from cvspec.train.model import PRETRAINED_HELP
from cvspec.train.progress import say
from cvspec.train.runs import RunDir, read_json, run_id, set_current, write_json, write_metrics
from cvspec.train.trainer import Outcome, setup_torch

# ultralytics' results.csv column -> cvspec's metric name
COLUMNS = {
    "epoch": "epoch",
    "train/box_loss": "train_box_loss",
    "train/cls_loss": "train_cls_loss",
    "train/dfl_loss": "train_dfl_loss",
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "map50",
    "metrics/mAP50-95(B)": "map50_95",
    "val/box_loss": "val_box_loss",
    "val/cls_loss": "val_cls_loss",
    "val/dfl_loss": "val_dfl_loss",
    "lr/pg0": "lr",
    "time": "seconds",
}


def offline() -> None:
    """Make ultralytics work without network: set BEFORE it is imported (see ENVIRONMENT.md)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("MPLBACKEND", "Agg")
    if "YOLO_CONFIG_DIR" not in os.environ:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        os.environ["YOLO_CONFIG_DIR"] = str(cache / "cvspec" / "ultralytics")
    user_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (user_dir / name).is_file():
            shutil.copyfile(font, user_dir / name)
    from PIL import Image

    pil_open = Image.open
    from ultralytics import settings

    # Importing ultralytics swaps PIL.Image.open for an opener that, on a file PIL cannot
    # identify, tries to pip-install a HEIF plugin and raises ModuleNotFoundError offline.
    # cvspec's data checks name such a file "not an image" from PIL's own error, so the rest
    # of this process (the stages after train, a sweep's next point) keeps PIL's opener; an
    # installed plugin is registered as ultralytics would, so its .heic training images load.
    Image.open = pil_open
    if importlib.util.find_spec("pi_heif") is not None:
        from pi_heif import register_heif_opener

        register_heif_opener()
    if settings.get("sync"):
        settings.update({"sync": False})  # type: ignore[no-untyped-call]
    # On the CPU ultralytics trains with min(8, cores - 1) threads of the whole machine; no
    # more than this process may use (its CPU affinity, OMP_NUM_THREADS). (A module object:
    # mypy following ultralytics.utils.torch_utils reads ultralytics' types in another order.)
    torch_utils: Any = importlib.import_module("ultralytics.utils.torch_utils")
    torch_utils.NUM_THREADS = min(torch_utils.NUM_THREADS, cpus.threads())


@contextmanager
def dataset_untouched(folder: Path) -> Iterator[None]:
    """ultralytics saves a label cache (labels/train.cache) beside the label files. The
    dataset folder is versioned (DVC hashes it) and must read the same after a run, so the
    caches made while the body ran are removed again; rescanning the labels takes seconds."""
    before = set(folder.rglob("*.cache")) if folder.is_dir() else set()
    try:
        yield
    finally:
        if folder.is_dir():
            for path in set(folder.rglob("*.cache")) - before:
                path.unlink(missing_ok=True)


# a terminal colour code, as ultralytics puts in its messages ('\x1b[34m\x1b[1mtrain: \x1b[0m')
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DATA_CODE = os.sep.join(("", "ultralytics", "data", ""))  # ultralytics' dataset readers


def plain(text: str) -> str:
    """ultralytics' message without its terminal colour codes."""
    return _ANSI.sub("", text).strip()


@contextmanager
def dataset_errors(doing: str) -> Iterator[None]:
    """What ultralytics raises when it cannot read the dataset (no images, no labels, a bad
    data.yaml) is a problem of the data, not a bug in cvspec: a CvspecError with ultralytics'
    message, its colour codes removed. Other exceptions pass unchanged."""
    try:
        yield
    except Exception as exc:
        if not _raised_by_dataset_code(exc):
            raise
        raise CvspecError(
            f"{doing} stopped: ultralytics could not use the dataset: {plain(str(exc))} "
            "(`cvspec run SPEC --stage data` checks it)"
        ) from exc


def _raised_by_dataset_code(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, comes from ultralytics.data."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and _DATA_CODE in tb.tb_frame.f_code.co_filename:
            return True
        current = current.__cause__  # ultralytics re-raises its dataset check's errors `from`
    return False


def yolo(source: str, **kwargs: Any) -> Any:
    """ultralytics.YOLO(source), imported only after the offline settings are in place."""
    offline()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    return YOLO(source, **kwargs)


def read_args(config_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """args.yaml with `key=value` overrides (values are YAML); unknown keys are errors."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe", pure=True)
    args = dict(yaml.load((config_dir / "args.yaml").read_text(encoding="utf-8")))
    from ultralytics.cfg import DEFAULT_CFG_DICT  # type: ignore[attr-defined]

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in DEFAULT_CFG_DICT:
            raise UsageError(
                f"invalid training override {item!r}: expected KEY=VALUE with an "
                "ultralytics train argument as KEY (e.g. epochs=3)"
            )
        try:
            args[key] = yaml.load(text) if text else None
        except YAMLError as exc:
            raise UsageError(f"invalid training override {item!r}: {exc}") from None
    return args


def train(
    config_dir: Path,
    overrides: list[str],
    root: Path,
    train_dir: Path,
    console: Any,
    weights: Path | None = None,
    name: str | None = None,
) -> Outcome:
    """Train (resume, or reuse) the detector the config decides; ultralytics does the work."""
    offline()
    args = read_args(config_dir, overrides)
    model = _model_source(args, root, weights)
    data_yaml = _data_yaml(config_dir / "data.yaml", root)
    setup_torch(None)
    ident = {
        "args": {k: v for k, v in args.items() if k not in _NOT_IN_ID},
        **model_identity(model, root),
        "data": data_yaml,
        "files": _files_digest(Path(data_yaml["path"]), _excluded(data_yaml)),
    }
    run = RunDir(train_dir / (name or run_id(ident)))
    if run.status.is_file() and read_json(run.status).get("state") == "done":
        return Outcome(run, read_json(run.status)["metrics"], "reused")
    run.path.mkdir(parents=True, exist_ok=True)
    from cvspec.generate.render import dump_yaml

    data_yaml = _training_data(data_yaml, run.path)
    write_text(run.path / "data.yaml", dump_yaml(data_yaml))
    write_text(run.config, dump_yaml({**args, "model": model}))
    write_json(run.status, {"task": "detection", "state": "running"})
    set_current(train_dir, run, "detection")
    last = run.path / "weights" / "last.pt"
    if last.is_file() and not _finished(last):
        return resume(run, console)
    if not last.is_file():
        args.update(
            model=model,
            data=str(run.path / "data.yaml"),
            project=str(train_dir),
            name=run.run_id,
            exist_ok=True,
        )
        with dataset_untouched(Path(data_yaml["path"])), dataset_errors("training"):
            yolo(args.pop("model"), task="detect").train(**args, **no_default_albumentations())
    return _finish(run, "trained")


def no_default_albumentations() -> dict[str, Any]:
    """`augmentations=[]` for ultralytics' train call, where it takes the argument (its
    releases from September 2025 on). With the albumentations package installed, ultralytics
    otherwise adds its default Albumentations pipeline to every detection run: Blur,
    MedianBlur, ToGray and CLAHE, each on 1 % of training images, however every augmentation
    args.yaml states is off. An empty list replaces that pipeline with none; older
    ultralytics has no way to turn it off."""
    import inspect

    offline()
    from ultralytics.data.augment import Albumentations

    takes_list = "transforms" in inspect.signature(Albumentations.__init__).parameters
    return {"augmentations": []} if takes_list else {}


def resume(run: RunDir, console: Any) -> Outcome:
    """Continue a killed detection run from weights/last.pt (ultralytics' own resume)."""
    last = run.path / "weights" / "last.pt"
    if not last.is_file():
        raise UsageError(f"run {run.run_id} has no checkpoint to resume ({last})")
    if not _finished(last):
        say(console, f"resuming run {run.run_id} from {last}")
        dataset = _data_yaml(run.path / "data.yaml", run.path)["path"]
        with dataset_untouched(Path(dataset)), dataset_errors("resuming"):
            yolo(str(last)).train(resume=True)
    return _finish(run, "resumed")


def _finish(run: RunDir, note: str) -> Outcome:
    """Move ultralytics' results into the run layout: metrics files and run.json."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    names = yaml.load((run.path / "data.yaml").read_text(encoding="utf-8"))["names"]
    imgsz = yaml.load(run.config.read_text(encoding="utf-8")).get("imgsz")
    history = _history(run.path / "results.csv")
    write_metrics(run, history)
    best = max(history, key=lambda r: 0.1 * r.get("map50", 0) + 0.9 * r.get("map50_95", 0))
    metrics = {**best, "best_epoch": best["epoch"], "epochs": len(history)}
    write_json(
        run.status,
        {
            "task": "detection",
            "state": "done",
            "metrics": metrics,
            "classes": [str(names[i]) for i in sorted(names)],
            "checkpoint": "weights/best.pt",
            "image_size": imgsz,
            "arch": _architecture(run.path / "weights" / "best.pt"),
        },
    )
    return Outcome(run, metrics, note)


def _architecture(checkpoint: Path) -> str | None:
    """The architecture file the trained model was built from (e.g. yolov8n.yaml), as its
    checkpoint records it: a run started from a .pt file keeps that file's architecture."""
    import pickle

    import torch

    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
        found = (getattr(ckpt.get("ema") or ckpt.get("model"), "yaml", None) or {})["yaml_file"]
    except (OSError, EOFError, pickle.UnpicklingError, RuntimeError, LookupError, TypeError,
            AttributeError):  # fmt: skip
        return None
    return Path(str(found)).name


def model_identity(model: str, root: Path) -> dict[str, str]:
    """What a run id takes of the model a detector starts from: its name, and for a file (a
    local .pt, a .yaml of the repository's) its bytes' sha256 too: new weights written over the
    same path are another start, not the finished run. ultralytics' own configs (yolo11n.yaml)
    add no key, so those runs keep their ids."""
    source = Path(model) if Path(model).is_absolute() else root / model
    if not source.is_file():
        return {"model": model}
    return {"model": model, "model_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def _model_source(args: dict[str, Any], root: Path, weights: Path | None) -> str:
    """The model ultralytics starts from: a local .pt, or an architecture .yaml from scratch."""
    model = str(weights) if weights is not None else str(args.get("model", ""))
    if model.endswith(".pt"):
        path = Path(model) if Path(model).is_absolute() else root / model
        if not path.is_file():
            raise UsageError(f"model weights {model} not found locally. {PRETRAINED_HELP}")
        return str(path)
    if args.get("pretrained"):
        raise UsageError(PRETRAINED_HELP)
    _known_config(model, root)
    return model


def _known_config(model: str, root: Path) -> None:
    """A located error for a model .yaml that neither the repository nor ultralytics has (it
    would raise FileNotFoundError from deep inside its model builder); the closest names."""
    if not model.endswith((".yaml", ".yml")) or (root / model).is_file():
        return
    offline()
    import difflib

    from ultralytics.utils.checks import check_yaml

    # ultralytics' own rules (yaml_model_load): yolov8n6.yaml is yolov8n-p6.yaml, and
    # yolov8n.yaml is yolov8.yaml at scale n
    name = re.sub(r"^(yolov[58][nslmx])6(\.ya?ml)$", r"\1-p6\2", model)
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    found = check_yaml(unscaled, hard=False) or check_yaml(name, hard=False)  # type: ignore[no-untyped-call]
    if found:
        return
    import ultralytics

    configs = Path(ultralytics.__file__).parent / "cfg" / "models"
    names = sorted({p.name for p in configs.rglob("*.yaml")})
    close = difflib.get_close_matches(unscaled, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(f'ultralytics/{c}' for c in close)}?" if close else ""
    raise SpecValueError(
        ("model", "arch"),
        f"ultralytics has no model config {model!r}{hint} (a scale letter n/s/m/l/x may "
        "follow the version: yolov8n.yaml is yolov8.yaml at scale n)",
    )


def _data_yaml(path: Path, root: Path) -> dict[str, Any]:
    """The generated data.yaml with its dataset path made absolute (ultralytics' own rule
    would resolve it against its datasets folder)."""
    from ruamel.yaml import YAML

    data = dict(YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")))
    base = Path(str(data.get("path", ".")))
    data["path"] = str(base if base.is_absolute() else (root / base).resolve())
    data["names"] = {int(k): str(v) for k, v in dict(data.get("names") or {}).items()}
    return data


def _excluded(data: dict[str, Any]) -> tuple[str, ...]:
    from cvspec.generate.builtin.train_config import EXCLUDE_KEY

    return tuple(str(p) for p in data.get(EXCLUDE_KEY) or ())


def _training_data(data: dict[str, Any], run_path: Path) -> dict[str, Any]:
    """The data.yaml ultralytics trains from: a COCO dataset as a YOLO view in the run, else
    the YOLO dataset's folders, or image lists where folders will not do."""
    from cvspec.generate.builtin.train_config import COCO_KEY

    if COCO_KEY in data:
        from cvspec.train.yolo_view import coco_view

        return coco_view(data, run_path)
    return _with_split_lists(data, run_path)


def _with_split_lists(data: dict[str, Any], run_path: Path) -> dict[str, Any]:
    """The splits as image lists written into the run, where folders will not do: ratio splits
    of one images/ folder (assigned exactly as the data stage assigns them, by a hash of each
    path), and any split when data.exclude leaves images out (ultralytics has no such list)."""
    from cvspec.data.files import DETECTION_EXTENSIONS, list_images
    from cvspec.data.index import Exclusions, assign_split
    from cvspec.generate.builtin.train_config import EXCLUDE_KEY, RATIO_SPLITS_KEY

    ratio = data.pop(RATIO_SPLITS_KEY, None)
    rules = Exclusions(tuple(data.pop(EXCLUDE_KEY, None) or ()))
    if ratio is None and not rules.patterns:
        return data
    root = Path(data["path"])
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    if ratio is not None:
        folder = root / str(ratio.get("images", "images"))
        for image in list_images(folder, DETECTION_EXTENSIONS):
            rel = image.relative_to(root).as_posix()
            if rules.match(rel) is None:
                split = assign_split(
                    rel, int(ratio["seed"]), float(ratio["val"]), float(ratio["test"])
                )
                lists[split].append(str(image))
    else:
        folder = root
        for split in lists:
            if data.get(split):
                for image in list_images(root / str(data[split]), DETECTION_EXTENSIONS):
                    if rules.match(image.relative_to(root).as_posix()) is None:
                        lists[split].append(str(image))
    for split in ("train", "val"):
        if not lists[split]:
            raise UsageError(
                f"the {split} split has no image of {folder} ({sum(map(len, lists.values()))} "
                "images in all, after data.exclude): add images or change data.splits"
            )
    for split, images in lists.items():
        if images:
            write_text(run_path / f"{split}.txt", "".join(f"{p}\n" for p in images))
            data[split] = str(run_path / f"{split}.txt")
    return data


def _files_digest(folder: Path, exclude: tuple[str, ...] = ()) -> str:
    """A fingerprint of the dataset's content: each file's path and bytes, less what
    data.exclude leaves out, so a checkout or a restored file reuses the finished run."""
    from cvspec.data.index import Exclusions

    rules = Exclusions(exclude)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and path.suffix != ".cache":  # ultralytics writes label caches there
            rel = path.relative_to(folder).as_posix()
            if rules.match(rel) is None:
                with path.open("rb") as fh:
                    content = hashlib.file_digest(fh, "sha256").hexdigest()
                digest.update(f"{rel}\0{content}\n".encode())
    return digest.hexdigest()


def _finished(last: Path) -> bool:
    """ultralytics marks the final checkpoint with epoch -1 (nothing left to resume)."""
    import torch

    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    return int(ckpt.get("epoch", -1)) == -1


def _history(results: Path) -> list[dict[str, Any]]:
    """results.csv as cvspec metric rows (renamed columns, numbers)."""
    import csv

    rows = []
    with results.open(encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row = {COLUMNS.get(k.strip(), k.strip()): float(v) for k, v in raw.items() if v}
            row["epoch"] = int(row["epoch"])
            rows.append(row)
    return rows
