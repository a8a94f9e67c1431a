"""`cvspec review`: the evaluate stage's label review queue (or any list of images) as a Label
Studio project: tasks to import, with the model's guess as a pre-annotation, and the labelling
config. `cvspec relabel` reads the labellers' answers back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cvspec.cli.common import load_one
from cvspec.errors import CvspecError, UsageError
from cvspec.project import find_root
from cvspec.spec.load import display_path as shown


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Review these images instead of the queue: a text file of paths relative to "
            "data.path, one a line, or a JSON list of them (or of objects with a `path`).",
        ),
    ] = None,
    document_root: Annotated[
        Path | None,
        typer.Option(
            "--document-root",
            help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: image URLs are "
            "/data/local-files/?d=PATH relative to it. Default: the repository root.",
        ),
    ] = None,
    url_prefix: Annotated[
        str | None,
        typer.Option(
            "--url-prefix",
            help="Serve the images another way: each URL is this prefix followed by the "
            "image's path relative to data.path.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The tasks file to write; the labelling config goes beside it as "
            "label_studio.xml. Default: runs/<project>/evaluate/label_review.labelstudio.json.",
        ),
    ] = None,
) -> None:
    """Write the label review queue of the last evaluation (the images the model most
    confidently puts in another class) as Label Studio tasks, the model's guess pre-selected,
    with the labelling config (one choice per class). Serve the images with Label Studio's
    local files: start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to --document-root, and add a Local Files
    storage for the data folder to the project. Once labelled, export the project as JSON and
    run `cvspec relabel SPEC EXPORT.json`."""
    from cvspec.evaluate import labelstudio

    if document_root is not None and url_prefix is not None:
        raise UsageError("give --document-root or --url-prefix, not both")
    if document_root is not None and not document_root.is_dir():
        raise UsageError(f"--document-root {document_root}: not a folder")
    loaded = load_one(spec, None, None)
    if loaded.spec.task != "classification":
        raise UsageError(
            f"{spec}: the label review is for classification (data.relabel corrects a class; "
            "a detector's labels are boxes)"
        )
    root = find_root(Path.cwd())
    evaluated = root / "runs" / str(loaded.spec.project.name) / "evaluate"
    data_root = (loaded.path.parent / str(loaded.spec.data.path)).resolve()
    from cvspec.data.index import read_layout

    layout = read_layout(loaded.spec, data_root)
    if images is None:
        queue = evaluated / "label_review.json"
        if not queue.is_file():
            raise UsageError(
                f"no label review yet ({shown(queue)}): run "
                f"`cvspec run {spec} --stage evaluate` first, or give --images"
            )
        items = _read_list(queue)
    else:
        if not images.is_file():
            raise UsageError(f"--images {images}: file not found")
        items = _read_list(images)
    items = _with_labels(items, layout, data_root, images or evaluated / "label_review.json")
    urls = labelstudio.Urls(
        data_root, (document_root or root).resolve() if url_prefix is None else None, url_prefix
    )
    target = out or evaluated / labelstudio.TASKS
    if target.is_dir():
        raise UsageError(f"--out {target} is a folder; give the tasks file's name")
    try:
        labelstudio.tasks(items, urls, "")
    except ValueError as exc:
        raise UsageError(f"{exc}: give --document-root a folder above the data") from None
    version = _run_id(evaluated)
    tasks, config = labelstudio.write(
        target.parent, items, urls, list(layout.classes), version, target.name
    )
    print(f"wrote {len(items)} task(s) to {shown(tasks)}", file=sys.stderr)
    print(f"wrote the labelling config to {shown(config)}", file=sys.stderr)
    if url_prefix is None:
        print(
            f"serve the images: {labelstudio.ENV_SERVING}=true "
            f"{labelstudio.ENV_ROOT}={urls.document_root} label-studio, and add a Local Files "
            f"storage with the path {data_root} to the project (no sync needed)",
            file=sys.stderr,
        )


def _read_list(file: Path) -> list[dict[str, Any]]:
    """A list of images: label_review.json's objects, a JSON list of paths, or a text file of
    paths, one a line; each as {"path", ...}."""

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {shown(file)} as UTF-8 text: {exc}") from None
    if file.suffix.lower() != ".json":
        return [{"path": line.strip()} for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{shown(file)} is not JSON ({exc})") from None
    if not isinstance(data, list):
        raise UsageError(f"{shown(file)}: a JSON list of images is expected")
    items = []
    for n, item in enumerate(data):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise UsageError(f"{shown(file)}[{n}]: neither a path nor an object with a `path`")
        items.append(item)
    return items


def _with_labels(
    items: list[dict[str, Any]], layout: Any, data_root: Path, source: Path
) -> list[dict[str, Any]]:
    """Each item with the image's current label (as the data stage reads it now, data.relabel
    included); an image that is not the dataset's is an error naming it."""
    from cvspec.data.files import nfc

    labels = {nfc(e.path): layout.classes[e.label] for e in layout.entries if e.label is not None}
    found, missing = [], []
    for item in items:
        path = str(item["path"]).removeprefix("./")
        if nfc(path) not in labels:
            missing.append(path)
            continue
        found.append({**item, "path": path, "label": labels[nfc(path)]})
    if missing:
        more = f" and {len(missing) - 5} more" if missing[5:] else ""
        raise CvspecError(
            f"{shown(source)}: not images of the dataset under {shown(data_root)} "
            f"(moved, excluded, or outside it): {', '.join(missing[:5])}{more}"
        )
    return found


def _run_id(evaluated: Path) -> str:
    """The training run the evaluation measured: the predictions' model_version."""
    try:
        report = json.loads((evaluated / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "cvspec"
    return str(report.get("run_id") or "cvspec") if isinstance(report, dict) else "cvspec"
