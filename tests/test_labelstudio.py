"""The labelling loop: the label review queue out to Label Studio (`cvspec review`), a labeller's
export back in as data.relabel entries (`cvspec relabel`), the data stage reading them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, write_tree
from test_train import CLASSES, TINY_SPEC, write_images

from cvspec.cli.relabel import _edit, _merged
from cvspec.evaluate.labelstudio import label_config
from cvspec.spec.load import load_text

# Comments and a list indented unlike the mappings: what the edit must leave as it is.
SPEC = TINY_SPEC.replace(
    "data:\n  path: ../data/tiny\n",
    "data:\n  path: ../data/tiny   # the stripes\n  exclude:\n  - rows/015.png  # blank\n",
).replace("model:", "\n# the model\nmodel:")
EVALUATED = "runs/tiny/evaluate"


def queue() -> list[dict[str, Any]]:
    """A label review queue as the evaluate stage writes it."""
    rows = [("rows/001.png", "rows", "checks", 0.97), ("columns/002.png", "columns", "rows", 0.9),
            ("checks/003.png", "checks", "columns", 0.8), ("rows/004.png", "rows", "columns", 0.7),
            ("columns/005.png", "columns", "checks", 0.6)]  # fmt: skip
    return [
        {"path": p, "label": label, "predicted": guess, "confidence": c,
         "label_probability": round(1 - c, 4)}
        for p, label, guess, c in rows
    ]  # fmt: skip


def tiny(tmp_path: Path, spec: str = SPEC) -> Path:
    """The tiny imagefolder project with a label review queue on disk (no training)."""
    root = project(tmp_path, spec, "tiny.yaml")
    write_images(root / "data" / "tiny", per_class=16)
    write_tree(
        root,
        {
            f"{EVALUATED}/label_review.json": json.dumps(queue()),
            f"{EVALUATED}/metrics.json": json.dumps({"run_id": "run-7f3a"}),
        },
    )
    return root


def annotation(*classes: str, cancelled: bool = False) -> dict[str, Any]:
    """One annotation as Label Studio's JSON export holds it."""
    result = [
        {"id": f"r{i}", "from_name": "label", "to_name": "image", "type": "choices",
         "origin": "manual", "value": {"choices": [c]}}
        for i, c in enumerate(classes)
    ]  # fmt: skip
    return {"id": 100, "completed_by": 1, "result": result, "was_cancelled": cancelled,
            "ground_truth": False, "lead_time": 2.5, "task": 1}  # fmt: skip


def exported(tasks: list[dict[str, Any]], answers: list[list[dict[str, Any]]]) -> Any:
    """What Label Studio's JSON export gives back for the imported `tasks`: each with an id,
    its annotations, the imported data and predictions, and Label Studio's own fields."""
    return [
        {"id": 40 + n, "annotations": given, "drafts": [], "file_upload": None, "project": 3,
         "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-02T10:05:00Z",
         "inner_id": n + 1, "total_annotations": len(given), "cancelled_annotations": 0,
         "total_predictions": 1, "comment_count": 0, "updated_by": None,
         "data": task["data"], "meta": {},
         "predictions": [{**p, "id": n, "created_ago": "5 minutes"} for p in task["predictions"]]}
        for n, (task, given) in enumerate(zip(tasks, answers, strict=True))
    ]  # fmt: skip


def test_the_queue_goes_to_label_studio_and_the_answers_into_the_spec(tmp_path: Path) -> None:
    root = tiny(tmp_path)
    review = cvspec("review", "specs/tiny.yaml", cwd=root)
    assert review.code == 0, review.err
    tasks = json.loads((root / EVALUATED / "label_review.labelstudio.json").read_text())
    assert [t["data"]["path"] for t in tasks] == [q["path"] for q in queue()]
    first = tasks[0]
    assert first["data"] == {
        "image": "/data/local-files/?d=data/tiny/rows/001.png",  # the repository is the root
        "path": "rows/001.png",
        "current_label": "rows",
        "predicted": "checks",
        "confidence": 0.97,
    }
    assert first["predictions"] == [
        {
            "model_version": "run-7f3a",
            "score": 0.97,
            "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                        "value": {"choices": ["checks"]}}],
        }
    ]  # fmt: skip
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root.resolve()}" in review.err
    assert "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true" in review.err
    config = ET.fromstring((root / EVALUATED / "label_studio.xml").read_text())
    assert [c.get("value") for c in config.iter("Choice")] == sorted(CLASSES)

    # the labeller: agrees with the model, keeps the label, skips, disagrees with a colleague,
    # and leaves one alone
    answers = [
        [annotation("checks"), annotation(cancelled=True)],
        [annotation("columns")],
        [annotation("rows")],
        [annotation("columns"), annotation("checks")],
        [],
    ]
    export = root / "export.json"
    export.write_text(json.dumps(exported(tasks, answers)))
    original = (root / "specs/tiny.yaml").read_text()
    printed = cvspec("relabel", "specs/tiny.yaml", "export.json", cwd=root)
    assert printed.code == 0, printed.err
    import yaml

    assert yaml.safe_load(printed.out) == {
        "data": {"relabel": {"rows/001.png": "checks", "checks/003.png": "rows"}}
    }
    assert "task 43 (rows/004.png): the annotations disagree (columns, checks)" in printed.err
    assert "2 correction(s), 1 image(s) keep their label, 1 task(s) without an answer" in (
        printed.err
    )
    assert (root / "specs/tiny.yaml").read_text() == original  # printed, not written

    written = cvspec("relabel", "specs/tiny.yaml", "export.json", "--write", cwd=root)
    assert written.code == 0, written.err
    assert "added to data.relabel in specs/tiny.yaml" in written.err
    text = (root / "specs/tiny.yaml").read_text()
    added = '  relabel:\n    "rows/001.png": "checks"\n    "checks/003.png": "rows"\n'
    anchor = "  path: ../data/tiny   # the stripes\n"
    assert text == original.replace(anchor, anchor + added)  # every other line as it was
    assert cvspec("validate", "specs/tiny.yaml", cwd=root).code == 0

    stage = cvspec("run", "specs/tiny.yaml", "--stage", "data", cwd=root, timeout=300)
    assert stage.code == 0, stage.err
    report = json.loads((root / "runs/tiny/data/report.json").read_text())
    assert {(r["path"], r["was"], r["now"]) for r in report["relabeled"]["labels"]} == {
        ("rows/001.png", "rows", "checks"),
        ("checks/003.png", "checks", "rows"),
    }

    # the same export again: the spec already says so, nothing to add
    again = cvspec("relabel", "specs/tiny.yaml", "export.json", "--write", cwd=root)
    assert again.code == 0 and "nothing to add to data.relabel" in again.err
    assert (root / "specs/tiny.yaml").read_text() == text
    # a second review puts the corrected label in the tasks
    cvspec("review", "specs/tiny.yaml", cwd=root)
    tasks = json.loads((root / EVALUATED / "label_review.labelstudio.json").read_text())
    assert tasks[0]["data"]["current_label"] == "checks"


def test_the_labelling_config_is_xml_with_one_choice_per_class() -> None:
    names = ["golden retriever", "café", "狗", "3", "a.b-c_d"]
    config = label_config(names)
    view = ET.fromstring(config)
    assert view.tag == "View"
    image = view.find("Image")
    assert image is not None and image.attrib == {"name": "image", "value": "$image"}
    choices = view.find("Choices")
    assert choices is not None
    assert choices.get("name") == "label" and choices.get("toName") == "image"
    assert choices.get("choice") == "single"
    assert [c.get("value") for c in choices.iter("Choice")] == names


def test_other_images_and_other_ways_to_serve_them(tmp_path: Path) -> None:
    root = tiny(tmp_path)
    (root / "picked.txt").write_text("checks/000.png\n./rows/002.png\n\n")
    result = cvspec(
        "review", "specs/tiny.yaml", "--images", "picked.txt",
        "--url-prefix", "http://files:8081/tiny/", "--out", "ls/tasks.json", cwd=root,
    )  # fmt: skip
    assert result.code == 0, result.err
    tasks = json.loads((root / "ls/tasks.json").read_text())
    assert tasks == [
        {"data": {"image": "http://files:8081/tiny/checks/000.png", "path": "checks/000.png",
                  "current_label": "checks"}},
        {"data": {"image": "http://files:8081/tiny/rows/002.png", "path": "rows/002.png",
                  "current_label": "rows"}},
    ]  # fmt: skip
    assert (root / "ls/label_studio.xml").is_file()
    data = cvspec("review", "specs/tiny.yaml", "--document-root", "data", cwd=root)
    assert data.code == 0, data.err
    tasks = json.loads((root / EVALUATED / "label_review.labelstudio.json").read_text())
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=tiny/rows/001.png"

    for args, message in [
        (["--document-root", "specs"], "is not under the document root"),
        (["--document-root", "data", "--url-prefix", "x/"], "not both"),
        (["--images", "nothing.txt"], "--images nothing.txt: file not found"),
    ]:
        bad = cvspec("review", "specs/tiny.yaml", *args, cwd=root)
        assert bad.code == 2 and message in bad.err, (args, bad.err)
        assert "Traceback" not in bad.err
    (root / "picked.txt").write_text("rows/001.png\nrows/999.png\n")
    gone = cvspec("review", "specs/tiny.yaml", "--images", "picked.txt", cwd=root)
    assert gone.code == 2 and "not images of the dataset" in gone.err and "rows/999.png" in gone.err
    (root / EVALUATED / "label_review.json").unlink()
    none = cvspec("review", "specs/tiny.yaml", cwd=root)
    assert none.code == 2 and "--stage evaluate` first" in none.err


def _task(path: str, **extra: Any) -> dict[str, Any]:
    return {"id": 7, "data": {"image": "/data/local-files/?d=x", "path": path}, **extra}


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ("{not json", "export.json is not JSON"),
        ('{"tasks": []}', "not a list of tasks"),
        ([{"id": 7, "image": "x.png", "label": "rows"}],
         "task 7: has no `data` object (a JSON-MIN"),
        ([{"id": 7, "data": {"image": "x"}}], "task 7: its data has no `path`"),
        ([_task("rows/001.png", annotations=[annotation("zebra")])],
         "task 7 (rows/001.png): class 'zebra' is not one of the spec's classes"),
        ([_task("../../specs/tiny.yaml", annotations=[annotation("rows")])],
         "task 7 (../../specs/tiny.yaml): the image is outside the data folder"),
        ([_task("/etc/passwd", annotations=[annotation("rows")])],
         "the image is outside the data folder"),
        ([_task("rows/999.png", annotations=[annotation("rows")])],
         "task 7 (rows/999.png): no such image under data/tiny"),
        ([_task("rows/015.png", annotations=[annotation("rows")])],
         "task 7 (rows/015.png): is not one of the dataset's images (data.exclude"),
        ([_task("rows/001.png", annotations=[annotation("rows", "checks")])],
         "annotations[0] chose several classes (rows, checks)"),
        ([_task("rows/001.png", annotations={"a": 1})], "`annotations` is not a list"),
        ([_task("rows/001.png", annotations=[{"result": [{"from_name": "label",
                                                         "value": {"choices": "rows"}}]}])],
         "annotations[0].result[0]: `value.choices` is not a list of class names"),
        ([3], "task #1: is a int, not a task object"),
    ],
)  # fmt: skip
def test_a_bad_export_names_the_task_and_why(tmp_path: Path, export: Any, message: str) -> None:
    root = tiny(tmp_path)
    text = export if isinstance(export, str) else json.dumps(export)
    (root / "export.json").write_text(text)
    before = (root / "specs/tiny.yaml").read_text()
    result = cvspec("relabel", "specs/tiny.yaml", "export.json", "--write", cwd=root)
    assert result.code == 2, result.err
    assert message in result.err, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert (root / "specs/tiny.yaml").read_text() == before


def test_a_detector_and_an_extended_relabel_are_refused(tmp_path: Path) -> None:
    root = tiny(tmp_path)
    (root / "export.json").write_text(json.dumps([_task("rows/001.png")]))
    detector = (
        MINIMAL_SPEC.replace("classification", "detection")
        .replace("timm/resnet18", "ultralytics/yolov8n.pt")
        .replace("{path: ../data/demo}", "{path: ../data/demo, classes: [car]}")
    )
    (root / "specs/det.yaml").write_text(detector)
    for command in (["relabel", "specs/det.yaml", "export.json"], ["review", "specs/det.yaml"]):
        result = cvspec(*command, cwd=root)
        assert result.code == 2 and "a detector's labels are boxes" in result.err, result.err
    base = SPEC.replace("  splits:", '  relabel:\n    "checks/009.png": rows\n  splits:')
    (root / "specs/_base.yaml").write_text(base)
    (root / "specs/tiny.yaml").write_text("extends: _base.yaml\nproject: {name: tiny}\n")
    tasks = [_task("rows/001.png", annotations=[annotation("checks")])]
    (root / "export.json").write_text(json.dumps(tasks))
    refused = cvspec("relabel", "specs/tiny.yaml", "export.json", "--write", cwd=root)
    line = base.splitlines().index("  relabel:") + 1
    assert refused.code == 2
    assert f"data.relabel of specs/tiny.yaml is set in specs/_base.yaml:{line}" in refused.err
    assert (root / "specs/tiny.yaml").read_text() == "extends: _base.yaml\nproject: {name: tiny}\n"
    printed = cvspec("relabel", "specs/tiny.yaml", "export.json", cwd=root)
    assert printed.code == 0 and '"rows/001.png": "checks"' in printed.out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data: {path: ../d}   # flow\nmodel: {arch: x}\n",
         'data: {path: ../d, relabel: {"a/1.png": "b", "c/2.png": "a"}}   # flow\n'
         "model: {arch: x}\n"),
        ("data:\n    path: ../d  # where\n    relabel:\n        c/2.png: b   # checked\n"
         "        d/3.png: a\n\n# the model\nmodel:\n    arch: x\n",
         "data:\n    path: ../d  # where\n    relabel:\n        c/2.png: \"a\"   # checked\n"
         "        d/3.png: a\n        \"a/1.png\": \"b\"\n\n# the model\nmodel:\n    arch: x\n"),
        ("data:\n  path: ../d\n  relabel: {}   # none yet\n  exclude:\n  - x.png\n",
         'data:\n  path: ../d\n  relabel:   # none yet\n    "a/1.png": "b"\n    "c/2.png": "a"\n'
         "  exclude:\n  - x.png\n"),
        ("data:\n  path: ../d\n  relabel: {d/1.png: a}\n",
         'data:\n  path: ../d\n  relabel: {d/1.png: a, "a/1.png": "b", "c/2.png": "a"}\n'),
        ("extends: base.yaml\nproject: {name: x}",
         'extends: base.yaml\nproject: {name: x}\ndata:\n  relabel:\n    "a/1.png": "b"\n'
         '    "c/2.png": "a"\n'),
    ],
)  # fmt: skip
def test_the_edit_adds_lines_and_leaves_the_rest(text: str, expected: str) -> None:
    fixes = {"a/1.png": "b", "c/2.png": "a"}
    edited = _edit(text, fixes, "spec.yaml")
    assert edited == expected
    before = (load_text(text, "spec.yaml").data.get("data") or {}).get("relabel") or {}
    after = load_text(edited, "spec.yaml").data["data"]["relabel"]
    assert after == _merged(dict(before), fixes)
