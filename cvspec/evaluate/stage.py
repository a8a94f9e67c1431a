"""The evaluate stage: measure the exported model, apply every gate, write metrics and card."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cvspec.tables import print_table
from cvspec.train.progress import say
from cvspec.train.runs import CURRENT, finished, read_json, write_json

if TYPE_CHECKING:
    from cvspec.run.context import RunContext, StageResult


def run(ctx: RunContext) -> StageResult:
    """`cvspec run SPEC --stage evaluate`: metrics.json, gates, MODEL_CARD.md; fail on a gate."""
    from rich.console import Console

    from cvspec.evaluate import export as exporting
    from cvspec.evaluate.card import trained_otherwise, write_card
    from cvspec.evaluate.gates import evaluate, gate_sources, table
    from cvspec.evaluate.latency import SETTING
    from cvspec.providers import providers
    from cvspec.run.context import StageResult

    providers(ctx.spec.evaluate.latency.device, SETTING)  # before any work: the device is here
    console = ctx.console or Console(stderr=True)
    if not exporting.is_fresh(ctx):
        say(console, "the export is missing or older than the trained model: exporting first")
        exporting.export(ctx)
    export_dir = ctx.runs / "export"
    out = ctx.stage_dir("evaluate")
    train_run = finished(ctx.runs / "train")
    status = read_json(train_run.status)
    options = {"profile": ctx.profile, "set": list(ctx.sets)}
    trained = read_json(ctx.runs / "train" / CURRENT).get("options")
    how = trained_otherwise(trained, options)
    if how is not None:  # a newcomer expects `--set train.epochs=2` to evaluate such a model
        say(
            console,
            f"evaluating run {train_run.run_id}, the current one, trained with {how}, not "
            "with this command's options; to evaluate what these options train, run the "
            "train stage with them first",
        )
    measured = measure(ctx, status, train_run.path, export_dir, out)
    results = evaluate(ctx.spec, measured, gate_sources(ctx.loaded))
    scalars = {k: v for k, v in measured.items() if isinstance(v, (int, float))}
    report = {
        "project": ctx.project,
        "task": status["task"],
        "run_id": train_run.run_id,
        "split": measured["split"],
        "metrics": scalars,
        "per_class": measured.get("per_class", {}),
        **(
            {"classes_without_boxes": measured["classes_without_boxes"]}
            if "classes_without_boxes" in measured
            else {}
        ),
        "gates": [r.to_json() for r in results],
        "passed": all(r.passed for r in results),
        # what the spec was run with: a pull request's `ci` profile is not the model that ships
        "options": options,
    }
    # what reproducing the model needs, in a file of its own: in metrics.json its hashes and
    # versions would crowd `dvc metrics show` and `dvc exp show`
    origin = provenance(ctx, status, trained) | {
        "model_sha256": exporting.sha256(export_dir / exporting.MODEL)  # the file measured
    }
    write_json(out / "metrics.json", report)
    write_json(out / "provenance.json", origin)
    write_json(out / "gates.json", report["gates"])
    print_table(console, table(results))
    export_info = read_json(export_dir / "export.json")
    card = write_card(ctx, {**report, "provenance": origin}, status, export_info)
    review = out / "label_review.json"
    if status["task"] == "classification" and review.is_file():
        queued = read_json(review)
        count = len(queued)
        # the queue as a Label Studio project too (cheap: a few KB), images served from the
        # repository root (from the data folder when it is elsewhere); `cvspec review` writes
        # it again for another document root
        from cvspec.evaluate import labelstudio

        inside = ctx.data_root.is_relative_to(ctx.root.resolve())
        urls = labelstudio.Urls(ctx.data_root, ctx.root.resolve() if inside else None)
        classes = [str(c) for c in read_json(export_dir / "labels.json")]
        labelstudio.write(out, queued, urls, classes, train_run.run_id)
        if count:
            from cvspec.evaluate.review import queue_summary

            shown = os.path.relpath(out / "label_review.md", ctx.root)
            what = queue_summary(count, measured.get("misclassified"))
            say(console, f"label review: {what} ({shown}; `cvspec review` for Label Studio)")
    failed = [r for r in results if not r.passed]
    for r in failed:
        say(console, r.message())
    head = headline(report)
    where = os.path.relpath(out / "metrics.json", ctx.root)
    card_at = os.path.relpath(card, ctx.root)
    if failed:
        names = ", ".join(r.name for r in failed)
        return StageResult(False, f"{head}; gates FAILED: {names} (see {where})")
    return StageResult(True, f"{head}; {len(results)} gates pass ({where}, {card_at})")


def provenance(ctx: RunContext, status: dict[str, Any], trained: Any) -> dict[str, Any]:
    """What reproducing this evaluation needs: the spec files' digests, the repository's
    commit, the data's fingerprint, the options the model was trained with (`trained`, from
    current.json; None when the train stage did not say) and the packages it was trained and
    evaluated with."""
    from cvspec.train.environment import environment, git_state, spec_digests

    data = ctx.runs / "data" / "report.json"
    dataset = read_json(data).get("dataset", {}) if data.is_file() else {}
    sources = {str(k): str(v) for k, v in ctx.loaded.raw.sources.items()}
    return {
        "spec": spec_digests(ctx.root, sources),
        "git": git_state(ctx.root),
        "data_fingerprint": dataset.get("fingerprint"),
        "train_options": trained,
        "trained_with": status.get("environment"),
        "evaluated_with": environment(),
    }


def measure(
    ctx: RunContext, status: dict[str, Any], run_path: Any, export_dir: Any, out: Any
) -> dict[str, Any]:
    """Quality metrics of the task, then latency, throughput and size of the exported model."""
    import numpy as np

    from cvspec.evaluate.latency import measure as time_model
    from cvspec.evaluate.latency import model_size_mb
    from cvspec.preprocess import Preprocess, to_array

    info = read_json(export_dir / "export.json")
    if status["task"] == "detection":
        from cvspec.evaluate.detect import evaluate_detector

        measured = evaluate_detector(  # the model that ships: its ONNX export, not best.pt
            ctx, run_path, export_dir / "model.onnx", int(status["image_size"]), out
        )
    else:
        from cvspec.evaluate.classify import evaluate_classifier

        measured = evaluate_classifier(ctx, export_dir, out)
    pre = Preprocess.from_json(read_json(export_dir / "preprocess.json"))
    from cvspec.evaluate.export import sample_images

    images = sample_images(ctx, 4)
    sample = (
        to_array(images, pre)
        if images
        else np.zeros((1, 3, pre.image_size, pre.image_size), dtype=np.float32)
    )
    measured |= time_model(export_dir / "model.onnx", sample, ctx.spec.evaluate.latency)
    measured["model_size_mb"] = model_size_mb(export_dir, list(info["files"]))
    return measured


def headline(report: dict[str, Any]) -> str:
    """The one number a person looks at first, and the split it was measured on."""
    m = report["metrics"]
    if report["task"] == "detection":
        return f"mAP50 {m['map50']:.4f} on {report['split']}"
    return f"accuracy {m['accuracy']:.4f} on {report['split']} ({m['images']} images)"
