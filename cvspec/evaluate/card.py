"""MODEL_CARD.md: what the model is for, its data, how it was trained, how it measures up."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

from cvspec.atomic import write_text
from cvspec.generate.builtin.train_config import CLOSE_MOSAIC

# Fewer evaluation images than this, and a detector's mAP is a rough figure.
FEW_DETECTION_IMAGES = 1000


def write_card(
    ctx: Any, report: dict[str, Any], status: dict[str, Any], export: dict[str, Any]
) -> Path:
    """Write runs/<project>/evaluate/MODEL_CARD.md: the spec's intent, and the evaluated run's
    real settings and results (a run trained with --profile or --set differs from the spec)."""
    from cvspec.train.runs import finished

    spec = ctx.spec
    data_report = _read(ctx.runs / "data" / "report.json")
    run = finished(ctx.runs / "train")
    task = status.get("task", spec.task)
    trained = _settings(task, _yaml(run.config), status, Path(ctx.root))
    pre = _read(ctx.runs / "export" / "preprocess.json") or {}
    size = pre.get("image_size") or trained.get("image_size") or spec.model.image_size
    fit = pre.get("fit") or ("letterbox" if task == "detection" else "stretch")
    data_md = os.path.relpath(ctx.runs / "data" / "report.md", ctx.root)
    sections = [
        _intended(spec, status, size, fit),
        _data(spec, data_report, Path(data_md).as_posix()),
        _training(trained, status, _sweep_of(ctx.runs / "train" / "sweep.json", run.run_id)),
        _evaluation(report) + _review(_read(ctx.runs / "evaluate" / "label_review.json"), report),
        _export(export, report),
        _limitations(report, data_report),
        _reproduce(report),
    ]
    head = f"# Model card: {spec.project.name}\n\n{_options(report.get('options'))}\n"
    head += _trained_options(report)
    text = head + "\n".join(sections)
    path = ctx.runs / "evaluate" / "MODEL_CARD.md"  # inside the stage output CI and DVC keep
    write_text(path, text)
    return Path(path)


def _options(options: Any) -> str:
    """Which spec the run used: as written, or with a profile and --set values on top."""
    options = options if isinstance(options, dict) else {}
    flags = [f"--profile {options['profile']}"] if options.get("profile") else []
    flags += [f"--set {value}" for value in options.get("set") or []]
    if not flags:
        return "Run with the spec as written (no `--profile`, no `--set`).\n"
    return (
        f"**Run with `{' '.join(flags)}`**: the spec's values with these on top, not the spec "
        "as written; the training section shows what the model was trained with.\n"
    )


def _flags(options: dict[str, Any]) -> list[str]:
    flags = [f"--profile {options['profile']}"] if options.get("profile") else []
    return flags + [f"--set {value}" for value in options.get("set") or []]


def trained_otherwise(trained: Any, now: dict[str, Any]) -> str | None:
    """How the model was trained (its flags, or the spec as written) when that differs from
    the options of this evaluation (a `--profile ci` model evaluated by a plain run, or the
    reverse); None when they agree or the train stage did not record them."""
    if not isinstance(trained, dict) or _flags(trained) == _flags(now):
        return None
    flags = _flags(trained)
    return f"`{' '.join(flags)}`" if flags else "the spec as written (no `--profile`, no `--set`)"


def _trained_options(report: dict[str, Any]) -> str:
    """When the model was trained under other options than this evaluation ran with, what it
    was trained with."""
    trained = (report.get("provenance") or {}).get("train_options")
    now = report.get("options") if isinstance(report.get("options"), dict) else {}
    how = trained_otherwise(trained, now or {})
    if how is None:
        return ""
    return (
        f"**The model was trained with {how}**, not with this evaluation's options: the "
        "training section shows its values.\n\n"
    )


def _reproduce(report: dict[str, Any]) -> str:
    """What reproducing the model needs: the spec files, the commit, the data and packages."""
    prov = report.get("provenance")
    if not isinstance(prov, dict):
        return ""
    lines = ["## Reproduce\n"]
    for path, digest in (prov.get("spec") or {}).items():
        lines.append(f"- Spec: `{path}`, sha256 `{digest[:16]}`")
    git = prov.get("git")
    if isinstance(git, dict):
        dirty = {True: " with uncommitted changes", None: ""}.get(git.get("dirty"), "")
        lines.append(f"- Commit: `{git.get('commit')}`{dirty}")
    else:
        lines.append("- Commit: none (not a git repository)")
    if prov.get("data_fingerprint"):
        lines.append(f"- Data: fingerprint `{prov['data_fingerprint'][:16]}`")
    trained = prov.get("train_options")
    if isinstance(trained, dict):
        flags = "".join(f" {f}" for f in _flags(trained))
        lines.append(f"- Trained by: `cvspec run SPEC --stage train{flags}`")
    for label, key in (("Trained with", "trained_with"), ("Evaluated with", "evaluated_with")):
        env = prov.get(key)
        if isinstance(env, dict) and env:
            lines.append(f"- {label}: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    return "\n".join(lines) + "\n"


def _intended(spec: Any, status: dict[str, Any], size: int, fit: str) -> str:
    owners = ", ".join(spec.project.owners) or "not given"
    classes = ", ".join(f"`{c}`" for c in status.get("classes", []))
    what = "one label per image" if spec.task == "classification" else "labelled boxes per image"
    return (
        f"## Intended use\n\n{spec.project.description or spec.project.name}.\n\n"
        f"- Task: {spec.task} ({what}) over {len(status.get('classes', []))} classes: "
        f"{classes}\n- Input: {_input(size, fit)}\n- Owners: {owners}\n"
        "- Use it only on images like its training data (same source, framing and classes); "
        "it has no notion of classes outside the list above.\n"
    )


def _input(size: int, fit: str) -> str:
    """How an image becomes the model's input, as export/preprocess.json's `fit` says."""
    if fit == "letterbox":
        return (
            f"RGB images scaled to fit {size} x {size} px with their aspect ratio kept, the "
            "rest padded with grey (letterbox; see `export/preprocess.json`)"
        )
    return f"RGB images resized to {size} x {size} px (see `export/preprocess.json`)"


def _data(spec: Any, report: dict[str, Any] | None, report_md: str) -> str:
    lines = [
        f"## Data\n\n- Dataset: `{spec.data.path}` ({spec.data.format}), "
        f"versioning: {spec.data.versioning}"
    ]
    if report is None:
        lines.append("- No data report: run the data stage for split sizes and quality checks.")
        return "\n".join(lines) + "\n"
    dataset = report.get("dataset") or {}
    if dataset.get("fingerprint"):
        dvc = dataset.get("dvc") or {}
        tracked = f"; `{dvc['file']}` md5 `{dvc.get('md5')}`" if dvc.get("file") else ""
        lines.append(f"- Version: fingerprint `{dataset['fingerprint'][:16]}`{tracked}")
    images = report.get("images", {})
    lines.append(
        f"- Images: {images.get('total', '?')} ({images.get('train', '?')} train, "
        f"{images.get('val', '?')} val, {images.get('test', '?')} test)"
    )
    excluded = (report.get("excluded") or {}).get("count") or 0
    if excluded:
        lines.append(f"- {excluded} image(s) left out by data.exclude (see `{report_md}`)")
    relabeled = (report.get("relabeled") or {}).get("count") or 0
    if relabeled:
        lines.append(f"- {relabeled} label(s) corrected by data.relabel (see `{report_md}`)")
    verdict = "all pass" if report.get("ok") else "**some FAIL**"
    lines += [
        f"- Quality checks ({verdict}; details in `{report_md}`):",
        "",
        "| check | status | measured | limit |",
        "|---|---|---|---|",
    ]
    for c in report.get("checks", []):
        value = c.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        limit = "" if c.get("limit") is None else f"{c['limit']:g}"
        lines.append(f"| {c.get('name')} | {c.get('status')} | {shown} | {limit} |")
    return "\n".join(lines) + "\n"


# ultralytics' arguments that an augmentation of the spec sets -> the augmentation's name (it
# is on when any of them is: a color_jitter of saturation alone leaves hsv_v at 0)
_ULTRA_AUGMENT = {
    ("fliplr",): "hflip",
    ("flipud",): "vflip",
    ("degrees",): "rotate",
    ("hsv_h", "hsv_s", "hsv_v"): "color_jitter",
    ("mosaic",): "mosaic",
    ("mixup",): "mixup",
    ("translate", "scale", "shear"): "affine",
}


def _settings(
    task: str,
    config: dict[str, Any],
    status: dict[str, Any] | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """What the run was trained with, from its own config.yaml (timm's Hydra config, or the
    ultralytics arguments) and run.json, in one shape."""
    if task == "detection":
        return _ultra_settings(config, status or {}, root)
    model, train = config.get("model") or {}, config.get("train") or {}
    optimizer = train.get("optimizer") or {}
    weights = model.get("weights")
    if weights and not posixpath.isabs(weights):  # relative to the spec file, as in the spec
        weights = posixpath.join(posixpath.dirname(str(config.get("spec", ""))), weights)
    return {
        "arch": f"{model.get('library', 'timm')}/{model.get('name')}",
        "weights": _file_name(str(weights).replace("\\${", "${"), root) if weights else None,
        "epochs": train.get("epochs"),
        "batch": train.get("batch_size"),
        "optimizer": optimizer.get("name"),
        "lr": optimizer.get("lr"),
        "weight_decay": optimizer.get("weight_decay"),
        "schedule": train.get("schedule"),
        "warmup": train.get("warmup_epochs"),
        "precision": train.get("precision"),
        "seed": train.get("seed"),
        "augment": _timm_augment((config.get("data") or {}).get("augment") or []),
        "image_size": model.get("image_size"),
    }


def _timm_augment(steps: list[dict[str, Any]]) -> list[str]:
    """The augmentations a classification run applied, in its config's order: a step that
    never changes an image (a probability of 0, a color_jitter of no range) is left out, as
    a detection run's augmentation whose ultralytics arguments are 0 is."""
    on = []
    for step in steps:
        name, params = next(iter(step.items()))
        params = params or {}
        ranges = ("brightness", "contrast", "saturation", "hue")
        if params.get("p") == 0 or (name == "color_jitter" and not any(map(params.get, ranges))):
            continue
        on.append(str(name))
    return on


def _ultra_settings(
    config: dict[str, Any], status: dict[str, Any], root: Path | None
) -> dict[str, Any]:
    """The ultralytics arguments of a detection run. A run from a .pt file trains the
    architecture that file holds (run.json's `arch`), from its weights unless pretrained is
    false."""
    model = str(config.get("model") or "")
    from_file = model.endswith(".pt")
    arch = status.get("arch") if from_file else model
    weights = _file_name(model, root) if from_file else None
    return {
        "arch": f"ultralytics/{arch}" if arch else f"ultralytics (the architecture in {weights})",
        "weights": weights if config.get("pretrained") is not False else None,
        "epochs": config.get("epochs"),
        "batch": config.get("batch"),
        "optimizer": str(config.get("optimizer", "?")).lower(),
        "lr": config.get("lr0"),
        "weight_decay": config.get("weight_decay"),
        "schedule": "cosine" if config.get("cos_lr") else "linear",
        "warmup": config.get("warmup_epochs"),
        "precision": "mixed" if config.get("amp") else "fp32",
        "seed": config.get("seed"),
        "augment": _ultra_augment(config),
        "image_size": config.get("imgsz"),
    }


def _ultra_augment(config: dict[str, Any]) -> list[str]:
    """The augmentations a detection run turned on; mosaic and mixup say for how many epochs
    they ran, since ultralytics turns them off for the last close_mosaic epochs."""
    epochs = int(config.get("epochs") or 0)
    close = config.get("close_mosaic", CLOSE_MOSAIC)
    close = int(close) if isinstance(close, (int, float)) else 0
    on = []
    for keys, name in _ULTRA_AUGMENT.items():
        if any(config.get(key) for key in keys):
            on.append(_closing(name, epochs, close) if name in ("mosaic", "mixup") else name)
    return sorted(on)


def _closing(name: str, epochs: int, close: int) -> str:
    """An augmentation ultralytics closes for the last `close` of `epochs` epochs."""
    if close <= 0:
        return name
    if epochs <= close:
        return (
            f"{name} (never applied: ultralytics' close_mosaic ({close}) covers all {epochs} "
            "epochs of this run)"
        )
    return f"{name} (off for the last {close} of {epochs} epochs: ultralytics' close_mosaic)"


def _file_name(path: str, root: Path | None) -> str:
    """A weights file as the card names it: its path in the repository, else its file name
    (never a path of this machine outside the repository)."""
    normal = os.path.normpath(path)
    if not os.path.isabs(normal):
        return normal.replace(os.sep, "/") if not normal.startswith("..") else Path(normal).name
    for base in (root, root.resolve()) if root is not None else ():
        rel = os.path.relpath(normal, os.path.normpath(base))
        if not rel.startswith(".."):
            return Path(rel).as_posix()
    return Path(normal).name


# Why a detection run's own mAP differs from the evaluation's on the same split: ultralytics
# validates during training in aspect-ratio batches rounded up by at least half a stride (a
# 128 px square image is a 160 px input) and suppresses at its IoU 0.7; the evaluation uses the
# square letterbox the server makes and evaluate.iou.
_DETECTION_TRAINING_VAL = (
    " (ultralytics' validation during training: best.pt on inputs padded beyond the image size, "
    "NMS IoU 0.7; the evaluation below measures the exported model on the inputs the server "
    "makes)"
)


def _training(t: dict[str, Any], status: dict[str, Any], sweep: dict[str, Any] | None) -> str:
    m = status.get("metrics", {})
    start = f"initialised from `{t['weights']}`" if t.get("weights") else "from scratch"
    lines = [
        "## Training\n",
        f"- Model: `{t['arch']}`, {start}",
        f"- {t['epochs']} epochs, batch {t['batch']}, {t['optimizer']} (lr {_g(t['lr'])}, "
        f"weight decay {_g(t['weight_decay'])}), {t['schedule']} schedule, "
        f"{_g(t['warmup'])} warmup epochs, {t['precision']}, seed {t['seed']}",
        f"- Augmentations: {', '.join(t['augment']) or 'none'}",
        f"- Best epoch {m.get('best_epoch')} of {m.get('epochs')}; "
        + ", ".join(
            f"{k} {v:.4f}"
            for k, v in sorted(m.items())
            if k.startswith(("val_", "map", "precision", "recall")) and isinstance(v, float)
        )
        + _DETECTION_TRAINING_VAL * (status.get("task") == "detection"),
    ]
    if sweep:  # a point's name (point-001) means another value in another sweep: give both
        values: dict[str, Any] = next(
            (p["values"] for p in sweep["points"] if p["name"] == sweep["best"]), {}
        )
        chosen = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
        lines.append(
            f"- Sweep of {len(sweep['points'])} points; best: {sweep['best']}"
            + (f" ({chosen})" if chosen else "")
            + " (see `train/sweep.md`)"
        )
    return "\n".join(lines) + "\n"


def _sweep_of(path: Path, run_id: str) -> dict[str, Any] | None:
    """The last sweep, when its best point is the evaluated run (a later training without a
    sweep leaves an older sweep.json behind)."""
    sweep = _read(path)
    return sweep if sweep and sweep.get("best_run") == run_id else None


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _evaluation(report: dict[str, Any]) -> str:
    m = report["metrics"]
    lines = [
        f"## Evaluation\n\nOn the {report['split']} split with the exported model "
        f"(run `{report['run_id']}`).\n",
        "| gate | measured | required | result | spec |",
        "|---|---|---|---|---|",
    ]
    for g in report["gates"]:
        bound = " and ".join(
            ([f">= {g['min']:g}"] if g["min"] is not None else [])
            + ([f"<= {g['max']:g}"] if g["max"] is not None else [])
        )
        value = "not measured" if g["value"] is None else f"{g['value']:.4g}"
        lines.append(
            f"| {g['name']} | {value} | {bound} | {'pass' if g['passed'] else 'FAIL'} "
            f"| {g['source']} |"
        )
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in sorted(m.items())]
    if report["per_class"]:
        first = next(iter(report["per_class"].values()))
        keys = [k for k in first if k != "support"] + (["support"] if "support" in first else [])
        lines += ["", "| class | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, row in report["per_class"].items():
            lines.append(f"| {name} | " + " | ".join(f"{row[k]:.4g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _review(items: Any, report: dict[str, Any]) -> str:
    """A line on the label review queue of a classifier's evaluation, when there is one."""
    from cvspec.evaluate.review import queue_summary

    if not isinstance(items, list):
        return ""
    if not items:
        return "\nLabel review: the model classifies every evaluated image as labelled.\n"
    wrong = report.get("metrics", {}).get("misclassified")
    return (
        f"\nLabel review: {queue_summary(len(items), wrong)}, most confident first, in "
        "`evaluate/label_review.md`: check their labels.\n"
    )


def _export(export: dict[str, Any], report: dict[str, Any]) -> str:
    files = ", ".join(f"`export/{f}`" for f in export.get("files", []))
    parity = ", ".join(f"{k} {v:.1e}" for k, v in export.get("parity", {}).items())
    m = report["metrics"]
    return (
        f"## Export\n\n- Files: {files}, with `export/labels.json` and "
        f"`export/preprocess.json`\n- Largest |difference| from the torch model on a batch: "
        f"{parity}\n- Latency at batch {m.get('latency_batch', 1):g} on this machine: "
        f"p50 {m.get('latency_p50_ms', 0):.2f} ms, p95 {m.get('latency_p95_ms', 0):.2f} ms\n"
    )


def _limitations(report: dict[str, Any], data: dict[str, Any] | None) -> str:
    notes = []
    # a detector's classes rank by AP50 (its recall is at one confidence), a classifier's by recall
    metric = "ap50" if report.get("task") == "detection" else "recall"
    shown = "AP50" if metric == "ap50" else "recall"
    weak = sorted((row.get(metric, 0.0), name) for name, row in report["per_class"].items())[:3]
    if weak:
        listed = ", ".join(f"`{n}` ({shown} {v:.3f})" for v, n in weak)
        notes.append(f"Weakest classes: {listed}.")
    absent = report.get("classes_without_boxes") or []
    if absent:
        names = ", ".join(f"`{n}`" for n in absent)
        notes.append(
            f"Not evaluated: {names} ({'has' if len(absent) == 1 else 'have'} no box in the "
            f"{report['split']} split): no metric or gate here covers "
            f"{'it' if len(absent) == 1 else 'them'}; add labelled images of "
            f"{'it' if len(absent) == 1 else 'them'} to that split."
        )
    failed = [g["name"] for g in report["gates"] if not g["passed"]]
    if failed:
        notes.append(f"Gates not met: {', '.join(failed)}: do not ship this model as is.")
    precision = _precision(report)
    if precision:
        notes.append(precision)
    if data and not data.get("ok", True):
        notes.append("Some data quality checks fail (see the data section).")
    notes.append(
        "Latency was measured on the machine that ran the evaluation; production "
        "hardware will differ."
    )
    notes.append("No fairness, robustness or out-of-distribution evaluation was run.")
    return "## Limitations\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _precision(report: dict[str, Any]) -> str | None:
    """How far the headline metric can be trusted, from the number of images it was measured
    on: a 95% Wilson interval for accuracy; a detector's image and box counts."""
    from cvspec.evaluate.metrics import wilson

    m = report["metrics"]
    images = int(m.get("images") or 0)
    if not images:
        return None
    if report.get("task") == "detection":
        boxes = int(m.get("boxes") or 0)
        rough = (
            ": on so few, mAP is a rough figure; more labelled images would make it firmer"
            if images < FEW_DETECTION_IMAGES
            else ""
        )
        measured = f"mAP50 {m.get('map50', 0.0):.3f} on {images} evaluation images"
        return f"{measured} with {boxes} boxes{rough}."
    if "accuracy" not in m:
        return None
    low, high = wilson(float(m["accuracy"]), images)
    return (
        f"Accuracy {m['accuracy']:.3f} on {images} images: 95% interval {low:.2f}-{high:.2f} "
        "(Wilson score interval); a larger evaluation split narrows it."
    )


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
