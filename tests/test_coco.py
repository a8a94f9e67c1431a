"""COCO datasets: the reader's findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import write_tree
from test_data_checks import check_all, encode

from cvspec.data.index import Box, read_layout
from cvspec.testing.data import synthetic_image

DETECTION = """\
cvspec: 1
project: {name: boxes}
task: detection
data:
  path: ../data
  format: coco
  classes: [a, b]
  splits: {train: train, val: val}
model: {arch: ultralytics/yolov8n.yaml, image_size: 64}
"""
CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def coco_json(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> str:
    return json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})


def check_spec(root: Path) -> Any:
    from cvspec.spec import load_spec

    return load_spec(root / "specs/p.yaml").spec


def test_an_image_listed_twice_is_a_layout_finding_not_a_duplicate_or_background(
    tmp_path: Path,
) -> None:
    images = [
        {"id": 1, "file_name": "p.png", "width": 16, "height": 16},
        {"id": 2, "file_name": "q.png", "width": 16, "height": 16},
        {"id": 7, "file_name": "./p.png", "width": 16, "height": 16},  # p.png again
        {"id": 2, "file_name": "r.png", "width": 16, "height": 16},  # id 2 again
    ]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [4, 4, 8, 4]},
        {"image_id": 7, "category_id": 2, "bbox": [0, 0, 8, 8]},
    ]
    png = encode(synthetic_image(0, 16))
    write_tree(
        tmp_path,
        {
            "data/train/ann.json": coco_json(images, annotations),
            "data/train/p.png": png,
            "data/train/q.png": encode(synthetic_image(1, 16)),
            "data/train/r.png": encode(synthetic_image(2, 16)),
            "data/val/ann.json": coco_json(
                [
                    {"id": 1, "file_name": "v.png", "width": 16, "height": 16},
                    {"id": 9, "file_name": "../train/q.png", "width": 16, "height": 16},
                ],
                [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 4, 4]}],
            ),
            "data/val/v.png": encode(synthetic_image(3, 16)),
        },
    )
    results = check_all(tmp_path, {}, DETECTION)
    layout = [(f.path, f.message) for f in results["layout"].findings]
    assert layout == [
        (
            "train/ann.json#images[2]",
            "train/p.png is listed twice: as image id 1 (images[0]) and as image id 7; only the "
            "first is read; its 1 annotation(s) are not used",
        ),
        (
            "train/ann.json#images[3]",
            "image id 2 is given to train/r.png and to train/q.png (images[1]): which image its "
            "annotations mark is unknown; train/r.png is left out",
        ),
        (  # listed by another split's file too: it would leak into both
            "val/ann.json#images[1]",
            "train/q.png is listed twice: as image id 2 (train/ann.json#images[1]) and as image "
            "id 9; only the first is read; its 1 annotation(s) are not used",
        ),
    ]
    assert results["layout"].status == "fail"
    assert not results["exact_duplicates"].findings  # not a duplicate of itself
    assert not results["leakage"].findings
    assert [f.path for f in results["no_boxes"].findings] == ["train/q.png", "val/v.png"]
    spec = check_spec(tmp_path)
    entries = read_layout(spec, tmp_path / "data").entries
    assert [(r.path, r.boxes) for r in entries] == [
        ("train/p.png", (Box(0, 0.5, 0.375, 0.5, 0.25),)),
        ("train/q.png", ()),
        ("val/v.png", ()),
    ]
    # data.exclude leaves the image out with its findings
    text = DETECTION.replace(
        "splits:", "exclude: [train/p.png, train/q.png, train/r.png]\n  splits:"
    )
    results = check_all(tmp_path, {}, text)
    assert results["layout"].findings == ()


def test_a_size_the_annotations_give_wrongly_is_a_finding_naming_the_image(tmp_path: Path) -> None:
    from PIL import Image

    turned = Image.new("RGB", (48, 32), (90, 120, 150))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees: 32 x 48
    images = [
        {"id": 1, "file_name": "right.png", "width": 64, "height": 64},
        {"id": 2, "file_name": "wrong.png", "width": 128, "height": 64},
        {"id": 3, "file_name": "turned.jpg", "width": 32, "height": 48},  # as shown: right
        {"id": 4, "file_name": "swapped.png", "width": 32, "height": 48},  # no EXIF: wrong
    ]
    boxes = [{"image_id": n, "category_id": 1, "bbox": [0, 0, 8, 8]} for n in (1, 2, 3, 4)]
    files = {
        "data/train/ann.json": coco_json(images, boxes),
        "data/train/right.png": encode(synthetic_image(1)),
        "data/train/wrong.png": encode(synthetic_image(2)),
        "data/train/turned.jpg": encode(turned, "JPEG", exif=exif),
        "data/train/swapped.png": encode(Image.new("RGB", (48, 32), (20, 40, 60))),
        "data/val/ann.json": coco_json(
            [{"id": 1, "file_name": "v.png", "width": 64, "height": 64}], boxes[:1]
        ),
        "data/val/v.png": encode(synthetic_image(3)),
    }
    results = check_all(tmp_path, files, DETECTION)
    assert [(f.path, f.message) for f in results["layout"].findings] == [
        (
            "train/swapped.png",
            "train/ann.json#images[3] gives its size as 32 x 48 px, but the image is 48 x 32 px: "
            "its boxes, relative to the size given, are misplaced; correct width and height there",
        ),
        (
            "train/wrong.png",
            "train/ann.json#images[1] gives its size as 128 x 64 px, but the image is 64 x 64 px: "
            "its boxes, relative to the size given, are misplaced; correct width and height there",
        ),
    ]
    assert results["layout"].status == "fail"
    text = DETECTION.replace("splits:", "exclude: [train/wrong.png, train/swapped.png]\n  splits:")
    assert check_all(tmp_path, {}, text)["layout"].findings == ()
