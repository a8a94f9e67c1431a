"""Label Studio's formats, both ways: the label review queue as tasks to import (with the model's
guess as a pre-annotation) and the labelling config; a Label Studio JSON export read back into
corrections for data.relabel.

The formats are Label Studio's documented JSON (labelstud.io/guide/tasks, /guide/predictions,
/guide/task_format): a list of tasks, each `{"data": {...}, "predictions": [...]}` on import and
`{"id", "data", "annotations": [{"was_cancelled", "result": [...]}], ...}` on export. They are
small, so this module writes and reads them with json alone: label-studio-sdk would pull in a
web client and its dependencies for what is a few dictionaries.

Images reach Label Studio through its local-files serving: the server, started with
LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=DIR,
serves `/data/local-files/?d=PATH` (PATH relative to DIR) to a project that has a Local Files
storage whose path holds the file. `--url-prefix` serves them some other way instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from cvspec.atomic import write_text
from cvspec.spec.load import display_path as shown

TASKS = "label_review.labelstudio.json"  # beside label_review.json in runs/<p>/evaluate/
CONFIG = "label_studio.xml"
CONTROL = "label"  # the <Choices name=...> a result's from_name names
OBJECT = "image"  # the <Image name=...> a result's to_name names, and the data key it reads
LOCAL_FILES = "/data/local-files/?d="
ENV_SERVING = "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"
ENV_ROOT = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"


def label_config(classes: Sequence[str]) -> str:
    """The labelling interface: the image and one single choice per class, in class order."""
    from xml.sax.saxutils import quoteattr

    choices = "".join(f"    <Choice value={quoteattr(c)}/>\n" for c in classes)
    return (
        "<View>\n"
        f'  <Image name="{OBJECT}" value="${OBJECT}"/>\n'
        f'  <Choices name="{CONTROL}" toName="{OBJECT}" choice="single" showInline="true">\n'
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )


class Urls(NamedTuple):
    """How a task names its image: local-files serving under `document_root`, or `prefix`
    followed by the image's path relative to data.path."""

    data_root: Path
    document_root: Path | None = None
    prefix: str | None = None

    def url(self, path: str) -> str:
        """The URL of the image at `path` (relative to data.path); ValueError when it is not
        under the document root."""
        if self.prefix is not None:
            return self.prefix + quote(path, safe="/")
        root = (self.document_root or self.data_root).resolve()
        # as Label Studio joins it to its root: by name, a symlinked image is not followed
        image = Path(os.path.normpath(self.data_root.resolve() / path))
        if not image.is_relative_to(root):
            raise ValueError(f"{image} is not under the document root {root}")
        return LOCAL_FILES + quote(image.relative_to(root).as_posix(), safe="/")


def tasks(items: Iterable[dict[str, Any]], urls: Urls, model_version: str) -> list[dict[str, Any]]:
    """One task per image: `path` (relative to data.path, as data.relabel names it) and its
    current label in `data`, the model's guess, where an item has one, as the prediction."""
    out = []
    for item in items:
        data: dict[str, Any] = {
            OBJECT: urls.url(item["path"]),
            "path": item["path"],
            "current_label": item["label"],
        }
        task: dict[str, Any] = {"data": data}
        if item.get("predicted") is not None:
            data["predicted"] = item["predicted"]
            prediction: dict[str, Any] = {
                "model_version": model_version,
                "result": [choice(str(item["predicted"]))],
            }
            if isinstance(item.get("confidence"), int | float):
                data["confidence"] = item["confidence"]
                prediction["score"] = item["confidence"]
            task["predictions"] = [prediction]
        out.append(task)
    return out


def choice(cls: str) -> dict[str, Any]:
    """One result: the class chosen in the config's <Choices>."""
    return {"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [cls]}}


def write(
    folder: Path,
    items: Iterable[dict[str, Any]],
    urls: Urls,
    classes: Sequence[str],
    model_version: str,
    name: str = TASKS,
) -> tuple[Path, Path]:
    """The tasks file and the labelling config in `folder`; their paths."""
    found = tasks(items, urls, model_version)
    path, config = folder / name, folder / CONFIG
    write_text(path, json.dumps(found, indent=2, ensure_ascii=False) + "\n")
    write_text(config, label_config(classes))
    return path, config


class Answer(NamedTuple):
    """What the labellers chose for one task of an export."""

    task: str  # `task 12` (Label Studio's id) or `task #3` (its place in the file)
    path: str  # data.path of the task: the image, relative to data.path
    chosen: tuple[str, ...]  # one class per annotation that was not cancelled, in order


def read_export(file: Path) -> tuple[list[Answer], list[str]]:
    """The answers of a Label Studio JSON export, and a located message per malformed task.

    A cancelled (skipped) annotation counts for nothing; a task without any other answer is
    returned with no classes chosen."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        return [], [f"cannot read {shown(file)}: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return [], [f"{shown(file)} is not UTF-8 text: a Label Studio JSON export is"]
    except ValueError as exc:
        return [], [f"{shown(file)} is not JSON ({exc}): export the project as JSON"]
    if not isinstance(data, list):
        return [], [
            f"{shown(file)} is not a Label Studio JSON export: it holds a "
            f"{type(data).__name__}, not a list of tasks"
        ]
    answers, problems = [], []
    for place, task in enumerate(data, 1):
        where = _task_name(task, place)
        try:
            answers.append(_answer(task, where))
        except ValueError as exc:
            problems.append(f"{shown(file)}: {where}: {exc}")
    return answers, problems


def _task_name(task: Any, place: int) -> str:
    tid = task.get("id") if isinstance(task, dict) else None
    return f"task {tid}" if isinstance(tid, int | str) and tid != "" else f"task #{place}"


def _answer(task: Any, where: str) -> Answer:
    if not isinstance(task, dict):
        raise ValueError(f"is a {type(task).__name__}, not a task object")
    data = task.get("data")
    if not isinstance(data, dict):
        hint = " (a JSON-MIN export? export as JSON)" if OBJECT in task else ""
        raise ValueError(f"has no `data` object{hint}")
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(
            "its data has no `path` (the image relative to data.path): import tasks that "
            "`cvspec review` wrote"
        )
    where = f"{where} ({path})"
    annotations = task.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{path}: `annotations` is not a list")
    chosen = []
    for k, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise ValueError(f"{path}: annotations[{k}] is not an object")
        if annotation.get("was_cancelled"):
            continue
        picked = _choices(annotation.get("result"), f"{path}: annotations[{k}]")
        if picked is not None:
            chosen.append(picked)
    return Answer(where, path, tuple(chosen))


def _choices(result: Any, where: str) -> str | None:
    """The class one annotation chose; None when it chose none (an empty submission)."""
    if not isinstance(result, list):
        raise ValueError(f"{where}: `result` is not a list")
    picked: list[str] = []
    for n, item in enumerate(result):
        if not isinstance(item, dict) or item.get("from_name") != CONTROL:
            continue  # another control of a config the labeller extended
        value = item.get("value")
        got = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(got, list) or not all(isinstance(c, str) for c in got):
            raise ValueError(f"{where}.result[{n}]: `value.choices` is not a list of class names")
        picked += got
    if len(set(picked)) > 1:
        raise ValueError(f"{where} chose several classes ({', '.join(picked)}): choose one")
    return picked[0] if picked else None
