"""COCO datasets: the reader's findings, the YOLO view ultralytics trains from, a run end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cvspec, snapshot, write_tree
from test_data_checks import check_all, encode
from test_train import current_run

from cvspec.data.index import Box, read_layout
from cvspec.testing.data import synthetic_image

SHAPES = ("circle", "square", "triangle")  # the example's class order, YOLO ids 0, 1, 2
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


RATIO = DETECTION.replace("{train: train, val: val}", "{val: 0.5, test: 0.0, seed: 0}")


def test_an_image_ultralytics_does_not_train_on_is_skipped_not_counted_or_linked(
    tmp_path: Path,
) -> None:
    """A .gif or .jfif file_name: reported by skipped_files (as in a YOLO dataset), never
    counted, checked or linked into the YOLO view, where ultralytics would drop it unsaid."""
    from cvspec.generate.builtin.train_config import COCO_KEY
    from cvspec.train.yolo_view import coco_view

    names = ["train/a.png", "train/b.gif", "val/c.jpg", "val/d.jfif", "val/e.GIF", "val/g.png"]
    images = [
        {"id": n, "file_name": name, "width": 16, "height": 16} for n, name in enumerate(names)
    ]
    boxes = [{"image_id": n, "category_id": 1, "bbox": [4, 4, 8, 4]} for n in range(len(names))]
    formats = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jfif": "JPEG"}
    files: dict[str, Any] = {
        f"data/{name}": encode(synthetic_image(n, 16), formats[Path(name).suffix.lower()])
        for n, name in enumerate(names)
    }
    files["data/all.json"] = coco_json(images, boxes)
    results = check_all(tmp_path, files, RATIO)
    assert [(f.path, f.message, f.related) for f in results["skipped_files"].findings] == [
        ("*.gif", "2 file(s) skipped: ultralytics does not train on .gif files",
         ("train/b.gif", "val/e.GIF")),
        ("*.jfif", "1 file(s) skipped: ultralytics does not train on .jfif files (a .jfif or "
         ".jpe file is a JPEG: rename it .jpg)", ("val/d.jfif",)),
    ]  # fmt: skip
    assert results["layout"].findings == ()
    spec = check_spec(tmp_path)
    layout = read_layout(spec, tmp_path / "data")
    assert [(r.path, r.split) for r in layout.entries] == [
        ("train/a.png", "train"),
        ("val/c.jpg", "train"),
        ("val/g.png", "val"),
    ]
    assert layout.skipped == ("train/b.gif", "val/d.jfif", "val/e.GIF")
    data = {
        "path": str(tmp_path / "data"),
        COCO_KEY: {"classes": ["a", "b"], "splits": {"val": 0.5, "test": 0.0, "seed": 0}},
    }
    run = tmp_path / "run"
    view = coco_view(data, run)
    linked = sorted(
        p.relative_to(run).as_posix() for p in (run / "yolo").rglob("*") if p.suffix != ".txt"
        if not p.is_dir()
    )  # fmt: skip
    assert linked == [
        "yolo/images/train/train/a.png", "yolo/images/train/val/c.jpg",
        "yolo/images/val/val/g.png",
    ]  # fmt: skip
    assert view["nc"] == 2


def test_no_listed_image_found_names_the_file_names_not_an_empty_folder(tmp_path: Path) -> None:
    """Image folders renamed after all.json was written: every file_name misses. The data and
    train stages say which were looked for where, not 'no images found' beside 160 images."""
    names = [f"train/{n:04d}.png" for n in range(5)]
    images = [
        {"id": n, "file_name": name, "width": 16, "height": 16} for n, name in enumerate(names)
    ]
    files: dict[str, Any] = {
        f"data/coco/renamed/{n:04d}.png": encode(synthetic_image(n, 16)) for n in range(5)
    }
    files["data/coco/all.json"] = coco_json(images, [])
    spec = RATIO.replace("path: ../data", "path: ../data/coco")
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": spec, **files})
    for stage in ("data", "train"):
        result = cvspec("run", "specs/p.yaml", "--stage", stage, cwd=root)
        assert result.code == 2, result.err
        assert (
            "specs/p.yaml:5:9: error[data-empty]: data.path: all.json lists 5 images, none found: "
            "train/0000.png, train/0001.png, train/0002.png (and 2 more) do not exist (relative "
            "to data/coco/)\n" in result.err
        ), result.err
        assert "help: a file_name is relative to the folder of its .json" in result.err
        assert "no images found" not in result.err and "Traceback" not in result.err


def test_cocos_own_layout_is_named_with_the_folder_its_images_are_in(tmp_path: Path) -> None:
    """annotations/instances_train2017.json as a split: its file_names are relative to data.path,
    not to the json's folder, and COCO keeps the images in train2017/. The error says where
    the images are and how to give that layout, not the folder-of-its-json rule."""
    files: dict[str, Any] = {}
    for split, first in (("train", 0), ("val", 100)):
        ids = range(first, first + 3)
        images = [{"id": n, "file_name": f"{n:012d}.jpg", "width": 16, "height": 16} for n in ids]
        files[f"data/annotations/instances_{split}2017.json"] = coco_json(images, [])
        for n in ids:
            files[f"data/{split}2017/{n:012d}.jpg"] = encode(synthetic_image(n, 16), "JPEG")
    spec = DETECTION.replace(
        "{train: train, val: val}",
        "{train: annotations/instances_train2017.json, val: annotations/instances_val2017.json}",
    )
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": spec, **files})
    result = cvspec("run", "specs/p.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert (
        "annotations/instances_train2017.json lists 3 images, none found: 000000000000.jpg, "
        "000000000001.jpg, 000000000002.jpg do not exist (relative to data/); 000000000000.jpg "
        "is in data/train2017/; annotations/instances_val2017.json lists 3 images, none found: "
        in result.err
    ), result.err
    assert "000000000100.jpg is in data/val2017/\n" in result.err
    assert (
        "help: a split given as a .json lists file_names relative to data.path; COCO's own "
        "layout (annotations/instances_train2017.json, images in train2017/) reads as split "
        "folders: move each .json into its image folder and give the folders, e.g. splits: "
        "{train: train2017, val: val2017}" in " ".join(result.err.split())
    ), result.err
    assert "Traceback" not in result.err


def test_ids_and_sizes_of_the_wrong_type_are_findings_not_internal_errors(
    tmp_path: Path,
) -> None:
    """A hand-edited or script-written export: a width of '640px', ids that are lists or null.
    Each is a layout finding at its entry; the stage reports them, it does not crash."""
    images = [
        {"id": 1, "file_name": "p.png", "width": "16px", "height": 16},
        {"id": [2], "file_name": "q.png", "width": 16, "height": 16},
        {"id": 3, "file_name": "r.png", "width": "16", "height": 16.0},  # "16": a number
    ]
    annotations = [
        {"image_id": [2], "category_id": 1, "bbox": [0, 0, 4, 4]},
        {"image_id": 3, "category_id": [1], "bbox": [0, 0, 4, 4]},
        {"image_id": 3, "category_id": 2, "bbox": [0, 0, 8, 8]},
    ]
    files = {
        "data/train/ann.json": coco_json(images, annotations),
        "data/val/ann.json": coco_json(
            [{"id": 1, "file_name": "v.png", "width": 16, "height": 16}], []
        ),
        **{f"data/train/{n}.png": encode(synthetic_image(i, 16)) for i, n in enumerate("pqr")},
        "data/val/v.png": encode(synthetic_image(5, 16)),
    }
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": DETECTION, **files})
    result = cvspec("run", "specs/p.yaml", "--stage", "data", cwd=root)
    assert result.code == 1 and "internal error" not in result.err, result.err
    assert (
        "layout: fail (no unreadable annotations or stray files; measured 4)\n"
        "  train/ann.json#annotations[0]: needs 'image_id', 'category_id' and 'bbox'\n"
        "  train/ann.json#annotations[1]: category_id [1] is not one of the file's categories\n"
        "  train/ann.json#images[0]: width and height must be numbers of pixels, got '16px' x 16\n"
        "  train/ann.json#images[1]: needs 'id' and 'file_name'\n"
    ) in result.err, result.err
    layout = read_layout(check_spec(root), root / "data")
    assert [(r.path, r.boxes) for r in layout.entries] == [
        ("train/p.png", ()),
        ("train/r.png", (Box(1, 0.25, 0.25, 0.5, 0.5),)),
        ("val/v.png", ()),
    ]


def test_a_roboflow_coco_export_read_with_ratio_splits_names_its_split_folders(
    tmp_path: Path,
) -> None:
    """Roboflow exports COCO as train/, valid/ and test/, each with _annotations.coco.json:
    read with ratio splits (the default), data.path holds no .json. The error says which
    folders hold one and the splits that read them. A macOS resource fork beside the .json
    (._x.json) is no second annotation file."""
    files: dict[str, Any] = {}
    for n, split in enumerate(("train", "valid", "test")):
        images = [{"id": 0, "file_name": f"{split}.png", "width": 16, "height": 16}]
        files[f"data/{split}/_annotations.coco.json"] = coco_json(images, [])
        files[f"data/{split}/{split}.png"] = encode(synthetic_image(n, 16))
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": RATIO, **files})
    result = cvspec("run", "specs/p.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert f"data.path: expected exactly one COCO *.json in {root / 'data'}, found 0" in result.err
    assert (
        "help: its folders test/, train/, valid/ hold one .json each: give them as folder "
        "splits, e.g. splits: {train: train, val: valid, test: test}\n"
    ) in result.err, result.err
    spec = RATIO.replace("{val: 0.5, test: 0.0, seed: 0}", "{train: train, val: valid, test: test}")
    (root / "specs/p.yaml").write_text(spec)
    # copied from a Mac to an exFAT drive: ._x beside each file (resource forks), not a 2nd .json
    fork = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    write_tree(root, {"data/train/.__annotations.coco.json": fork, "data/train/._train.png": fork})
    result = cvspec("run", "specs/p.yaml", "--stage", "data", cwd=root)
    assert "3 images, 2 classes" in result.err, result.err


def to_coco(root: Path, exclude: str = "") -> None:
    """The shapes example as a COCO dataset under data/coco ({train, val}/ann.json with the
    images beside it), and its spec changed to read it, as a user converting it would."""
    from PIL import Image

    source, out = root / "data/shapes", root / "data/coco"
    for split in ("train", "val"):
        (out / split).mkdir(parents=True)
        images, annotations = [], []
        for i, path in enumerate(sorted((source / "images" / split).iterdir())):
            (out / split / path.name).write_bytes(path.read_bytes())
            width, height = Image.open(path).size
            images.append({"id": i, "file_name": path.name, "width": width, "height": height})
            for line in (source / "labels" / split / f"{path.stem}.txt").read_text().splitlines():
                c, x, y, w, h = map(float, line.split())
                box = [(x - w / 2) * width, (y - h / 2) * height, w * width, h * height]
                annotations.append(
                    {"id": len(annotations), "image_id": i, "category_id": int(c) + 1,
                     "bbox": box, "iscrowd": 0}
                )  # fmt: skip
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(SHAPES)]
        doc = {"images": images, "annotations": annotations, "categories": categories}
        (out / split / "ann.json").write_text(json.dumps(doc))
    spec = root / "specs/shapes.yaml"
    text = spec.read_text()
    changes = {
        "path: ../data/shapes": "path: ../data/coco",
        "format: yolo": "format: coco",
        "splits: {train: images/train, val: images/val}": (
            "splits: {train: train, val: val}" + (f"\n  exclude: [{exclude}]" if exclude else "")
        ),
        # the spec's class order, not the categories' ids, numbers the classes
        "classes: [circle, square, triangle]": "classes: [triangle, circle, square]",
    }
    text = "".join(line for line in text.splitlines(True) if "missing_labels:" not in line)
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)


def yolo_lines(path: Path, order: tuple[str, ...]) -> list[tuple[str, int, int, int, int]]:
    """A YOLO label file's boxes: the class name (its id into `order`), coordinates in 1e-4."""
    out = []
    for line in path.read_text().splitlines():
        c, x, y, w, h = line.split()
        out.append((order[int(c)], *(round(float(v) * 1e4) for v in (x, y, w, h))))
    return sorted(out)


def test_a_coco_dataset_reaches_ultralytics_as_a_yolo_view_in_the_run(tmp_path: Path) -> None:
    """Ratio splits, classes from the categories, data.exclude, two images with one stem and
    images in an images/ folder: each image is linked into the view, and its label file is
    where ultralytics looks for it, with the boxes in class order; the dataset is untouched."""
    from cvspec.data.index import assign_split
    from cvspec.generate.builtin.train_config import COCO_KEY
    from cvspec.train.ultra import _data_yaml, _training_data

    names = ["images/a.png", "images/a.jpg", "b.png", "sub/c.png", "d.png", "e.png", "gone.png"]
    images = [
        {"id": n, "file_name": name, "width": 16, "height": 16} for n, name in enumerate(names)
    ]
    boxes = [
        {"image_id": n, "category_id": 2 - n % 2, "bbox": [4, 4, 8, 4]} for n in range(len(names))
    ]
    spec = (
        DETECTION.replace("classes: [a, b]", "classes: auto")
        .replace(
            "{train: train, val: val}", "{val: 0.4, test: 0.0, seed: 0}\n  exclude: [gone.png]"
        )
        .replace("path: ../data", "path: ../data/coco")
    )
    files = {f"data/coco/{name}": encode(synthetic_image(n, 16)) for n, name in enumerate(names)}
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": spec, **files})
    (root / "data/coco/ann.json").write_text(
        json.dumps(
            {"images": images, "annotations": boxes,
             "categories": [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}]}
        )
    )  # fmt: skip
    assert cvspec("build", cwd=root).code == 0
    generated = (root / "generated/boxes/train/data.yaml").read_text()
    assert f"{COCO_KEY}:" in generated and "\ntrain:" not in generated
    before = snapshot(root / "data")

    run = root / "runs/boxes/train/r1"
    run.mkdir(parents=True)
    data = _training_data(_data_yaml(root / "generated/boxes/train/data.yaml", root), run)
    assert (data["nc"], data["names"]) == (2, {0: "a", 1: "b"})  # `auto`: by category id
    assert COCO_KEY not in data and "cvspec_exclude" not in data
    links: dict[str, list[str]] = {}
    for split in ("train", "val"):
        folder = Path(data[split])
        assert folder == run / "yolo/images" / split
        found = sorted(p for p in folder.rglob("*") if not p.is_dir() and p.suffix != ".txt")
        links[split] = [str(p) for p in found]
    assert "test" not in data
    every = links["train"] + links["val"]
    labels = dict(zip(every, label_paths(every, tmp_path), strict=True))
    linked: dict[str, str] = {}
    for split, paths in links.items():
        for path in map(Path, paths):
            assert path.is_symlink()
            rel = path.resolve().relative_to((root / "data/coco").resolve()).as_posix()
            assert assign_split(rel, 0, 0.4, 0.0) == split
            linked[rel] = Path(labels[str(path)]).read_text()
    assert sorted(linked) == sorted(n for n in names if n != "gone.png")
    # a.jpg and a.png (both train with seed 0) would share ultralytics' a.txt
    assert (run / "yolo/images/train/images/a~1.png").resolve() == root / "data/coco/images/a.png"
    for n, name in enumerate(names[:-1]):  # category 2 is "b" (class 1), category 1 is "a"
        assert linked[name] == f"{1 - n % 2} 0.500000 0.375000 0.500000 0.250000\n", name
    assert snapshot(root / "data") == before


def label_paths(images: list[str], tmp: Path) -> list[str]:
    """Where ultralytics looks for the label file of each image (in a process of its own)."""
    code = (
        "import json, sys\n"
        "from cvspec.train.ultra import offline\n"
        "offline()\n"
        "from ultralytics.data.utils import img2label_paths\n"
        "print(json.dumps(img2label_paths(json.loads(sys.stdin.read()))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(images), capture_output=True, text=True,
        env={**os.environ, "YOLO_CONFIG_DIR": str(tmp / "yolo"), "MPLCONFIGDIR": str(tmp / "mpl")},
        check=True, timeout=300,
    )  # fmt: skip
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_an_ultralytics_dataset_error_is_a_clear_error_without_colour_codes() -> None:
    from cvspec.errors import CvspecError
    from cvspec.train.ultra import dataset_errors

    # an exception raised in ultralytics' dataset code, as ultralytics colours its messages
    code = compile(
        "raise ValueError('\\x1b[34m\\x1b[1mtrain: \\x1b[0mNo labels found in /x/train.cache.')",
        os.sep.join(("", "site", "ultralytics", "data", "dataset.py")),
        "exec",
    )
    with pytest.raises(CvspecError) as caught, dataset_errors("training"):
        exec(code)
    assert caught.value.message == (
        "training stopped: ultralytics could not use the dataset: train: No labels found in "
        "/x/train.cache. (`cvspec run SPEC --stage data` checks it)"
    )
    # ultralytics' trainer re-raises its dataset check's error `from` it
    with pytest.raises(CvspecError, match=r"Dataset 'd\.yaml' error"), dataset_errors("training"):
        try:
            exec(code)
        except ValueError as exc:
            raise RuntimeError("Dataset 'd.yaml' error \x1b[0m") from exc
    with pytest.raises(ValueError, match="not the data"), dataset_errors("training"):
        raise ValueError("not the data")  # anything else is not the dataset's


@pytest.mark.slow
def test_an_ultralytics_dataset_error_is_no_internal_error(tmp_path: Path) -> None:
    """A YOLO dataset whose train labels are gone: ultralytics refuses it; cvspec says so."""
    (tmp_path / ".git").mkdir()
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    for label in (tmp_path / "data/shapes/labels/train").iterdir():
        label.unlink()
    assert cvspec("build", cwd=tmp_path).code == 0
    result = cvspec(
        "run", "specs/shapes.yaml", "--profile", "ci", "--stage", "train", cwd=tmp_path, env=env,
        timeout=600,
    )  # fmt: skip
    assert result.code == 2, result.err[-3000:]
    assert "internal error" not in result.err and "\x1b" not in result.err
    assert (
        "error: training stopped: ultralytics could not use the dataset: train: No labels found "
        f"in {tmp_path / 'data/shapes/labels/train.cache'}."
    ) in result.err
    assert not list((tmp_path / "data/shapes").rglob("*.cache"))


def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None and not path.is_file():
        time.sleep(0.05)


@pytest.mark.slow
def test_a_coco_dataset_trains_resumes_exports_evaluates_and_tests(tmp_path: Path) -> None:
    """The shapes example converted to COCO, one image excluded, classes in another order:
    every stage runs; a run killed after its first epoch resumes."""
    (tmp_path / ".git").mkdir()
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    to_coco(tmp_path, exclude="train/0000.jpg")
    assert cvspec("build", cwd=tmp_path).code == 0
    data = cvspec("run", "specs/shapes.yaml", "--stage", "data", cwd=tmp_path, env=env)
    assert data.code == 0, data.err[-3000:]
    before = snapshot(tmp_path / "data/coco")

    # two epochs, killed once the first is saved
    command = [sys.executable, "-m", "cvspec", "run", "specs/shapes.yaml", "--stage", "train",
               "--set", "train.epochs=2"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(tmp_path / "runs/shapes/train/current.json", proc, 300)
        wait_for(current_run(tmp_path, "shapes") / "weights/last.pt", proc, 600)
        time.sleep(1)  # the checkpoint written whole; the second epoch takes longer
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run must die mid-training: {proc.returncode}"
    killed = current_run(tmp_path, "shapes")
    assert json.loads((killed / "run.json").read_text())["state"] == "running"

    result = cvspec(
        "run", "specs/shapes.yaml", "--set", "train.epochs=2", "--set",
        "evaluate.gates.map50.min=0", "--stage", "train", "--stage", "export", "--stage",
        "evaluate", "--stage", "test",
        cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    assert "ok train" in result.err and f"resumed run {killed.name}" in result.err
    assert "\x1b" not in result.out + result.err
    run = current_run(tmp_path, "shapes")
    assert run == killed
    order = ("triangle", "circle", "square")
    status = json.loads((run / "run.json").read_text())
    assert status["state"] == "done" and status["classes"] == list(order)
    assert status["metrics"]["epochs"] == 2
    export = tmp_path / "runs/shapes/export"
    assert json.loads((export / "labels.json").read_text()) == list(order)

    # the view: a link per kept image, its label the example's boxes in the spec's class order
    shapes = tmp_path / "data/shapes"
    for split, count in (("train", 119), ("val", 40)):
        links = sorted((run / "yolo/images" / split).rglob("*.jpg"))
        assert len(links) == count and all(p.is_symlink() for p in links)
        for link in links:
            assert link.resolve() == (tmp_path / "data/coco" / split / link.name).resolve()
            label = run / "yolo/labels" / split / split / f"{link.stem}.txt"
            original = shapes / "labels" / split / f"{link.stem}.txt"
            assert yolo_lines(label, order) == yolo_lines(original, SHAPES), link
    assert not (run / "yolo/images/train/train/0000.jpg").exists()  # data.exclude

    # ultralytics read every box: the evaluation counts the val annotations
    val = json.loads((tmp_path / "data/coco/val/ann.json").read_text())
    report = json.loads((tmp_path / "runs/shapes/evaluate/metrics.json").read_text())
    assert (report["metrics"]["images"], report["metrics"]["boxes"]) == (
        40, len(val["annotations"])
    )  # fmt: skip
    assert report["run_id"] == run.name and report["passed"]
    card = (tmp_path / "runs/shapes/evaluate/MODEL_CARD.md").read_text()
    assert "- Dataset: `../data/coco` (coco)" in card
    assert "`triangle`, `circle`, `square`" in card
    assert "ok test" in result.err
    assert snapshot(tmp_path / "data/coco") == before  # no label cache, nothing written there


def test_category_ids_written_as_whole_floats_are_those_categories(tmp_path: Path) -> None:
    """`"id": 1.0` (a script that wrote numpy floats) is category 1, and its boxes are read;
    before, the category was skipped and each of its boxes was a layout finding."""
    categories = [{"id": 1.0, "name": "a"}, {"id": 2.0, "name": "b"}]
    images = [{"id": 1, "file_name": "p.png", "width": 16, "height": 16}]
    annotations = [{"image_id": 1, "category_id": 2.0, "bbox": [0, 0, 8, 8]}]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    files = {
        "data/train/ann.json": json.dumps(doc),
        "data/val/ann.json": json.dumps({**doc, "annotations": []}),
        "data/train/p.png": encode(synthetic_image(1, 16)),
        "data/val/p.png": encode(synthetic_image(2, 16)),
    }
    root = write_tree(tmp_path, {".git/HEAD": "", "specs/p.yaml": DETECTION, **files})
    layout = read_layout(check_spec(root), root / "data")
    assert [(r.path, r.boxes) for r in layout.entries] == [
        ("train/p.png", (Box(1, 0.25, 0.25, 0.5, 0.5),)),
        ("val/p.png", ()),
    ]
    assert not layout.problems
