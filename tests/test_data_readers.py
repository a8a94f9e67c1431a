"""Readers for imagefolder, YOLO and COCO build one index; bad layouts become findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cvspec, project, write_tree
from test_data_checks import encode

from cvspec.data.index import Box, build_index, read_layout
from cvspec.errors import CvspecError
from cvspec.spec import load_spec
from cvspec.testing.data import synthetic_image

PNG = encode(synthetic_image(0, 16))
JPG = encode(synthetic_image(1, 16), "JPEG")


def spec_of(tmp_path: Path, data: str, task: str = "classification") -> Any:
    """A validated spec whose data section is `data` (YAML flow text), data.path ../data."""
    arch = "timm/resnet18" if task == "classification" else "ultralytics/yolov8n.yaml"
    text = (
        f"cvspec: 1\nproject: {{name: t}}\ntask: {task}\n"
        f"data: {{path: ../data, {data}}}\nmodel: {{arch: {arch}, image_size: 32}}\n"
    )
    write_tree(tmp_path, {"specs/t.yaml": text})
    return load_spec(tmp_path / "specs/t.yaml").spec


def problems(layout: Any) -> list[tuple[str, str, str]]:
    return [(p.check, p.path, p.message) for p in layout.problems]


def test_imagefolder_ratio_splits_are_sorted_hashed_and_stable(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"data/{c}/{n:02d}.png": PNG for c in ("b", "a") for n in range(30)})
    spec = spec_of(tmp_path, "splits: {val: 0.3, test: 0.2, seed: 7}")
    index = build_index(spec, tmp_path / "data")
    assert index.classes == ("a", "b")
    assert [r.path for r in index.records] == sorted(r.path for r in index.records)
    first = index.records[0]
    assert (first.path, first.label, first.width, first.height, first.mode) == (
        "a/00.png",
        0,
        16,
        16,
        "RGB",
    )
    assert len(first.sha256) == 64
    assert {r.split for r in index.records} == {"train", "val", "test"}
    before = {r.path: r.split for r in index.records}
    write_tree(tmp_path, {f"data/{c}/new{n}.png": PNG for c in ("a", "b", "c") for n in range(20)})
    after = {r.path: r.split for r in build_index(spec, tmp_path / "data").records}
    assert {p: after[p] for p in before} == before  # adding files never moves existing ones


def test_imagefolder_folder_splits_and_explicit_classes(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "data/train/cat/1.png": PNG,
            "data/train/dog/1.jpg": JPG,
            "data/train/cow/1.png": PNG,
            "data/val/cat/2.png": PNG,
            "data/train/stray.png": PNG,
            "data/train/README.txt": "hi",
            "data/val/dog/notes.txt": "not an image extension: not listed",
        },
    )
    spec = spec_of(tmp_path, "classes: [dog, cat, bird], splits: {train: train, val: val}")
    layout = read_layout(spec, tmp_path / "data")
    assert layout.classes == ("dog", "cat", "bird")
    assert [(r.path, r.split, r.label) for r in layout.entries] == [
        ("train/cat/1.png", "train", 1),
        ("train/dog/1.jpg", "train", 0),
        ("val/cat/2.png", "val", 1),
    ]
    assert problems(layout) == [
        ("layout", "train/stray.png", "not inside a class folder; ignored"),
        ("classes", "cow", "class folder is not in data.classes; its images are ignored"),
    ]


def test_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, "splits: {train: train, val: val}")
    with pytest.raises(CvspecError, match=r"data folder not found: .*/data \(data.path"):
        build_index(spec, tmp_path / "data")
    write_tree(tmp_path, {"data/train/a/1.png": PNG})
    with pytest.raises(
        CvspecError,
        match=r"data.splits.val: folder not found: .*/data/val; split folders are relative to",
    ):
        build_index(spec, tmp_path / "data")


def test_cli_names_a_missing_data_folder(tmp_path: Path) -> None:
    root = project(tmp_path)
    for stage in ("data", "train"):
        result = cvspec("run", "specs/demo.yaml", "--stage", stage, cwd=root)
        assert result.code == 2
        assert "specs/demo.yaml:4:14: error[data-missing]: data.path: no folder at" in result.err
        assert f"  | {' ' * 13}{'^' * len('../data/demo')}\n" in result.err  # the whole path
        assert "error:" not in result.err.replace("error[", "")  # said once, at the line
        assert "Traceback" not in result.err
        assert not (root / "runs").exists()  # nothing half-made, for either stage


YOLO = "format: yolo, classes: [a, b], splits: {train: images/train, val: images/val}"


def test_yolo_reader_boxes_polygons_and_malformed_lines(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "data/images/train/x.png": PNG,
            "data/images/train/y.png": PNG,
            "data/images/train/nolabel.png": PNG,
            "data/images/val/v.jpg": JPG,
            "data/labels/train/x.txt": (
                "0 0.5 0.5 0.2 0.4\n\n1 0.125 0.125 0.375 0.125 0.375 0.625\n99 0.5 0.5 0.1 0.1\n"
                "0 0.5 0.5\nzero 0.5 0.5 0.1 0.1\n1.5 0.5 0.5 0.1 0.1\n0 1 2 3 4 5\n"
                "1.0 0.5 0.5 0.1 0.1\n"
            ),
            "data/labels/train/y.txt": b"\xff\xfe not utf-8",
            "data/labels/train/orphan.txt": "0 0.5 0.5 0.1 0.1\n",
            "data/labels/val/v.txt": "1 0.5 0.5 0.5 0.5\n",
            "data/data.yaml": "names: {0: a, 1: c}\n",
        },
    )
    layout = read_layout(spec_of(tmp_path, YOLO, "detection"), tmp_path / "data")
    boxes = {r.path: (r.split, r.boxes) for r in layout.entries}
    assert boxes == {
        "images/train/nolabel.png": ("train", ()),
        "images/train/x.png": (
            "train",
            (
                Box(0, 0.5, 0.5, 0.2, 0.4),
                Box(1, 0.25, 0.375, 0.25, 0.5),
                Box(99, 0.5, 0.5, 0.1, 0.1),
                Box(1, 0.5, 0.5, 0.1, 0.1),  # '1.0': class 1, as ultralytics trains it
            ),
        ),
        "images/train/y.png": ("train", ()),
        "images/val/v.jpg": ("val", (Box(1, 0.5, 0.5, 0.5, 0.5),)),
    }
    usage = "expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...' for a polygon)"
    got = problems(layout)
    assert got[0] == (
        "classes",
        "data.yaml",
        "names ['a', 'c'] differ from data.classes ['a', 'b']",
    )
    assert got[1] == (
        "missing_labels",
        "images/train/nolabel.png",
        "no label file labels/train/nolabel.txt (an empty one marks a background image)",
    )
    assert got[2:7] == [
        ("layout", "labels/train/x.txt:5", f"3 values; {usage}"),
        ("layout", "labels/train/x.txt:6", f"not numbers: 'zero 0.5 0.5 0.1 0.1'; {usage}"),
        ("layout", "labels/train/x.txt:7", f"class id '1.5' is not a whole number; {usage}"),
        (
            "layout",
            "labels/train/x.txt:8",
            f"6 values (a box and a confidence, as predictions saved with save_conf are?); {usage}",
        ),
        (
            "layout",
            "labels/train/x.txt",
            "mixes box lines ('class cx cy w h', line 1) and polygon lines (line 3): ultralytics "
            "leaves the whole image out of training ('labels mix segment and detection rows'); "
            "write every object of a file the same way",
        ),
    ]
    assert got[7][:2] == ("layout", "labels/train/y.txt")
    assert got[7][2].startswith("cannot read the label file: 'utf-8' codec can't decode")
    assert got[8:] == [("layout", "labels/train/orphan.txt", "label file without an image")]


def test_yolo_label_files_from_windows_and_polygon_files_read_as_ultralytics_reads_them(
    tmp_path: Path,
) -> None:
    """A byte-order mark and CRLF line ends (Windows editors) are read as ultralytics reads them
    (utf-8-sig), not as a malformed first line; a file of polygons only (ultralytics' seg
    format) gives each polygon's bounding box, without a finding."""
    files = {
        "data/images/train/bom.png": PNG,
        "data/images/train/seg.png": PNG,
        "data/images/val/v.png": PNG,
        "data/labels/train/bom.txt": "\ufeff0 0.5 0.5 0.2 0.4\r\n1 0.25 0.25 0.1 0.1\r\n".encode(),
        "data/labels/train/seg.txt": (
            "0 0.1 0.1 0.3 0.1 0.3 0.3\n1 0.5 0.5 0.9 0.5 0.9 0.9 0.5 0.9\n"
        ),
        "data/labels/val/v.txt": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n",
    }
    spec = """\
        cvspec: 1
        project: {name: w}
        task: detection
        data:
          path: ../data
          format: yolo
          classes: [a, b]
          splits: {train: images/train, val: images/val}
        model: {arch: ultralytics/yolov8n.yaml, image_size: 32}
        """
    root = project(tmp_path, spec, "w.yaml", files)
    result = cvspec("run", "specs/w.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    layout = read_layout(load_spec(root / "specs/w.yaml").spec, root / "data")
    assert {
        r.path: [(b.cls, round(b.cx, 3), round(b.w, 3)) for b in r.boxes] for r in layout.entries
    } == {
        "images/train/bom.png": [(0, 0.5, 0.2), (1, 0.25, 0.1)],
        "images/train/seg.png": [(0, 0.2, 0.2), (1, 0.7, 0.4)],
        "images/val/v.png": [(0, 0.5, 0.2), (1, 0.5, 0.2)],
    }
    assert problems(layout) == []


def test_a_darknet_classes_txt_in_another_order_fails_the_classes_check(tmp_path: Path) -> None:
    """Label Studio's and labelImg's YOLO exports name the classes in classes.txt (CVAT's in
    obj.names), one per line in id order; one that orders them otherwise than data.classes
    means every box would train as another class. It is a classes finding, as a data.yaml's
    names are."""
    spec = (
        "cvspec: 1\nproject: {name: demo}\ntask: detection\n"
        "data:\n  path: ../data/demo\n  format: yolo\n  classes: [car, person]\n"
        "  splits: {train: images/train, val: images/val}\n"
        "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    )
    root = project(tmp_path, spec)
    two = "0 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.1 0.1\n"
    write_tree(
        root / "data/demo",
        {
            "images/train/1.png": PNG,
            "images/val/2.png": PNG,
            "labels/train/1.txt": two,
            "labels/val/2.txt": two,
            "classes.txt": "person\r\ncar\r\n",
            "notes.json": "{}",
        },
    )
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert (
        "classes: fail (no classes in the data missing from the spec; measured 1)\n"
        "  classes.txt: names ['person', 'car'] differ from data.classes ['car', 'person']\n"
    ) in result.err, result.err
    (root / "data/demo/classes.txt").write_text("car\nperson\n")
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    (root / "data/demo/obj.names").write_text("person\ncar\n")  # CVAT's YOLO 1.1 export
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert (
        "  obj.names: names ['person', 'car'] differ from data.classes ['car', 'person']\n"
    ) in result.err, result.err


def test_darknet_label_files_beside_their_images_are_labels_not_skipped_files(
    tmp_path: Path,
) -> None:
    """Darknet's layout (x.txt beside x.jpg, no images/ folder; ultralytics reads it too): the
    label files are read, so skipped_files does not list them as files cvspec left unread."""
    spec = (
        "cvspec: 1\nproject: {name: demo}\ntask: detection\n"
        "data:\n  path: ../data/demo\n  format: yolo\n  classes: [a]\n"
        "  splits: {train: train, val: val}\n"
        "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    )
    root = project(tmp_path, spec)
    files = {
        "train/1.png": PNG,
        "train/1.txt": "0 0.5 0.5 0.5 0.5\n",
        "train/notes.md": "exported by labelImg",
        "val/2.png": encode(synthetic_image(2, 16)),
        "val/2.txt": "0 0.5 0.5 0.25 0.25\n",
    }
    write_tree(root / "data/demo", files)
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    report = json.loads((root / "runs/demo/data/report.json").read_text())
    skipped = next(c for c in report["checks"] if c["name"] == "skipped_files")
    assert [f["related"] for f in skipped["findings"]] == [["train/notes.md"]]
    layout = read_layout(load_spec(root / "specs/demo.yaml").spec, root / "data/demo")
    assert [(r.path, r.boxes) for r in layout.entries] == [
        ("train/1.png", (Box(0, 0.5, 0.5, 0.5, 0.5),)),
        ("val/2.png", (Box(0, 0.5, 0.5, 0.25, 0.25),)),
    ]


def test_yolo_ratio_splits_read_images_folder(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"data/images/{n}.png": PNG for n in range(20)})
    spec = spec_of(tmp_path, "format: yolo, classes: [a], splits: {val: 0.5, test: 0}", "detection")
    index = build_index(spec, tmp_path / "data")
    assert {r.split for r in index.records} == {"train", "val"}
    write_tree(tmp_path / "empty", {"x.txt": "no images folder"})
    with pytest.raises(CvspecError, match="YOLO dataset without an images/ folder"):
        build_index(spec, tmp_path / "empty")


def test_a_yolo_export_per_split_read_with_ratio_splits_names_its_split_folders(
    tmp_path: Path,
) -> None:
    """Roboflow exports YOLO as train/images, valid/images (labels beside each): read with
    ratio splits, which look for DATA/images/, the error is at data.path and names the folder
    splits that read it, not a bare 'without an images/ folder'."""
    spec = (
        "cvspec: 1\nproject: {name: demo}\ntask: detection\n"
        "data:\n  path: ../data/demo\n  format: yolo\n  classes: [a]\n"
        "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    )
    root = project(tmp_path, spec)
    files = {}
    for n, split in enumerate(("train", "valid")):
        files[f"{split}/images/{n}.png"] = encode(synthetic_image(n, 16))
        files[f"{split}/labels/{n}.txt"] = "0 0.5 0.5 0.5 0.5\n"
    write_tree(root / "data/demo", files)
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert (
        "specs/demo.yaml:5:9: error[spec-value]: data.path: YOLO dataset without an images/ "
        f"folder: {root / 'data/demo/images'}; it holds train/images/, valid/images/ instead\n"
    ) in result.err, result.err
    assert (
        "help: ratio splits read one images/ folder; give the split folders, e.g. splits: "
        "{train: train/images, val: valid/images}\n"
    ) in result.err, result.err


def coco(images: list[dict[str, Any]], annotations: list[Any], categories: Any = None) -> str:
    cats = categories or [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return json.dumps({"images": images, "annotations": annotations, "categories": cats})


def test_coco_folder_splits_missing_images_and_bad_annotations(tmp_path: Path) -> None:
    train = coco(
        [
            {"id": 1, "file_name": "p.png", "width": 16, "height": 16},
            {"id": 2, "file_name": "gone.png", "width": 16, "height": 16},
            {"id": 3, "file_name": "../../secret.png", "width": 16, "height": 16},
            {"file_name": "noid.png"},
        ],
        [
            {"image_id": 1, "category_id": 1, "bbox": [4, 4, 8, 4]},
            {"image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 8]},
            {"image_id": 1, "category_id": 2, "bbox": [0, 0, 16, 16], "iscrowd": 1},
            {"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]},
            {"image_id": 1, "category_id": 1, "bbox": "wide"},
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]},
        ],
        [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "zebra"}],
    )
    write_tree(
        tmp_path,
        {
            "data/train/p.png": PNG,
            "data/train/_annotations.coco.json": train,
            "data/val/q.png": PNG,
            "data/val/_annotations.coco.json": coco(
                [{"id": 5, "file_name": "q.png", "width": 16, "height": 16}], []
            ),
        },
    )
    spec = spec_of(
        tmp_path, "format: coco, classes: [a, b], splits: {train: train, val: val}", "detection"
    )
    layout = read_layout(spec, tmp_path / "data")
    assert [(r.path, r.split, r.boxes) for r in layout.entries] == [
        ("train/p.png", "train", (Box(0, 0.5, 0.375, 0.5, 0.25),)),
        ("val/q.png", "val", ()),
    ]
    where = "train/_annotations.coco.json"
    assert problems(layout) == [
        (
            "classes",
            "categories",
            "category 'zebra' (id 3) is not in data.classes; its boxes ignored",
        ),
        ("layout", f"{where}#annotations[3]", "category_id 9 is not one of the file's categories"),
        ("layout", f"{where}#annotations[4]", "bbox must be [x, y, width, height], got 'wide'"),
        ("layout", f"{where}#annotations[5]", "image id 7 is not listed with a width and height"),
        ("layout", "train/gone.png", f"listed in {where} but the file does not exist"),
        ("layout", f"{where}#images[2]", "'../../secret.png' is outside data.path"),
        ("layout", f"{where}#images[3]", "needs 'id' and 'file_name'"),
    ]
    # excluding an image leaves out its annotations' problems with it, not others'
    spec = spec_of(
        tmp_path,
        "format: coco, classes: [a, b], splits: {train: train, val: val}, exclude: [train/p.png]",
        "detection",
    )
    left = [where for _, where, _ in problems(read_layout(spec, tmp_path / "data"))]
    assert left == [
        "categories", f"{where}#annotations[5]", "train/gone.png", f"{where}#images[2]",
        f"{where}#images[3]",
    ]  # fmt: skip


def test_coco_one_json_with_ratio_splits_and_auto_classes(tmp_path: Path) -> None:
    images = [{"id": n, "file_name": f"img/{n}.png", "width": 16, "height": 16} for n in range(10)]
    write_tree(tmp_path, {f"data/img/{n}.png": PNG for n in range(10)})
    write_tree(
        tmp_path,
        {
            "data/annotations.json": coco(
                images,
                [{"image_id": 0, "category_id": 2, "bbox": [0, 0, 16, 16]}],
                [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}],
            )
        },
    )
    spec = spec_of(tmp_path, "format: coco, splits: {val: 0.5, test: 0}", "detection")
    index = build_index(spec, tmp_path / "data")
    assert index.classes == ("a", "b")
    assert index.records[0].boxes == (Box(1, 0.5, 0.5, 1.0, 1.0),)
    assert len(index.records) == 10 and index.problems == ()


def test_coco_category_ids_mean_what_their_own_file_says(tmp_path: Path) -> None:
    """val.json exported from another task numbers the same classes the other way round: each
    box takes the class its own file names, not the one train.json gave that id."""
    image = [{"id": 1, "file_name": "p.png", "width": 16, "height": 16}]
    box = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 16, 16]}]
    write_tree(
        tmp_path,
        {
            "data/train/p.png": PNG,
            "data/val/p.png": PNG,
            "data/train/ann.json": coco(
                image, box, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
            ),
            "data/val/ann.json": coco(image, box, [{"id": 1, "name": "b"}, {"id": 2, "name": "a"}]),
        },
    )
    for classes in ("auto", "[a, b]"):
        spec = spec_of(
            tmp_path, f"format: coco, classes: {classes}, splits: {{train: train, val: val}}",
            "detection",
        )  # fmt: skip
        layout = read_layout(spec, tmp_path / "data")
        assert layout.classes == ("a", "b")
        assert [(r.path, [b.cls for b in r.boxes]) for r in layout.entries] == [
            ("train/p.png", [0]),
            ("val/p.png", [1]),
        ]
        assert problems(layout) == []
    # a val.json split off by a script without its categories reads them as train.json's
    write_tree(tmp_path, {"data/val/ann.json": json.dumps({"images": image, "annotations": box})})
    layout = read_layout(spec, tmp_path / "data")
    assert [[b.cls for b in r.boxes] for r in layout.entries] == [[0], [0]]
    assert problems(layout) == []


ROBOFLOW_CATEGORIES = [  # a Roboflow COCO export: category 0 is the dataset itself
    {"id": 0, "name": "parts", "supercategory": "none"},
    {"id": 1, "name": "bolt", "supercategory": "parts"},
    {"id": 2, "name": "nut", "supercategory": "parts"},
]


def test_a_roboflow_dataset_category_is_no_class(tmp_path: Path) -> None:
    """Roboflow lists the dataset as category 0, the supercategory of the others, without
    annotations: no class with no images (min_images_per_class fails), nor one missing from
    data.classes; the data stage of the export passes."""
    annotations = [
        {"id": n, "image_id": n, "category_id": 1 + n % 2, "bbox": [0, 0, 8, 8], "area": 64,
         "iscrowd": 0, "segmentation": []}
        for n in range(4)
    ]  # fmt: skip
    for split in ("train", "valid"):
        images = [{"id": n, "file_name": f"{n}.png", "width": 16, "height": 16} for n in range(4)]
        write_tree(
            tmp_path,
            {
                f"data/{split}/_annotations.coco.json": coco(
                    images, annotations, ROBOFLOW_CATEGORIES
                ),
                **{f"data/{split}/{n}.png": encode(synthetic_image(n, 16)) for n in range(4)},
            },
        )
    for classes in ("auto", "[bolt, nut]"):
        spec = f"""\
            cvspec: 1
            project: {{name: rf}}
            task: detection
            data:
              path: ../data
              format: coco
              classes: {classes}
              splits: {{train: train, val: valid}}
            model: {{arch: ultralytics/yolov8n.yaml, image_size: 32}}
            """
        root = project(tmp_path, spec, "rf.yaml")
        result = cvspec("run", "specs/rf.yaml", "--stage", "data", cwd=root)
        assert result.code == 0, result.err
        assert "8 images, 2 classes" in result.err
        report = json.loads((root / "runs/rf/data/report.json").read_text())
        assert report["classes"] == ["bolt", "nut"]
    # a category 0 that does mark boxes is a class
    annotations[0]["category_id"] = 0
    write_tree(
        tmp_path,
        {"data/train/_annotations.coco.json": coco(images, annotations, ROBOFLOW_CATEGORIES)},
    )
    spec = spec_of(tmp_path, "format: coco, splits: {train: train, val: valid}", "detection")
    assert read_layout(spec, tmp_path / "data").classes == ("parts", "bolt", "nut")


def test_coco_broken_json_is_a_clear_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"data/annotations.json": "{not json"})
    spec = spec_of(tmp_path, "format: coco", "detection")
    with pytest.raises(CvspecError, match=r"cannot read COCO annotations .*annotations.json: "):
        build_index(spec, tmp_path / "data")
    write_tree(tmp_path, {"data/annotations.json": "[]"})
    with pytest.raises(CvspecError, match=r"not a COCO annotation file \(no 'images' list\)"):
        build_index(spec, tmp_path / "data")


def test_a_split_folder_or_format_that_does_not_fit_is_named_at_its_line(tmp_path: Path) -> None:
    spec = (
        "cvspec: 1\nproject: {name: demo}\ntask: detection\n"
        "data:\n  path: ../data/demo\n  format: yolo\n  classes: [a]\n"
        "  splits: {train: images/train, val: images/valid}\n"
        "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    )
    root = project(tmp_path, spec)
    write_tree(root / "data/demo", {"images/train/1.png": PNG, "labels/train/1.txt": "",
                                    "images/val/2.png": PNG, "labels/val/2.txt": ""})  # fmt: skip
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert (
        f"specs/demo.yaml:8:38: error[spec-value]: data.splits.val: folder not found: "
        f"{root / 'data/demo/images/valid'}\n"
    ) in result.err
    assert "help: split folders are relative to data.path" in result.err
    coco = (root / "specs/demo.yaml").read_text().replace("format: yolo", "format: coco")
    (root / "specs/demo.yaml").write_text(coco.replace("images/valid", "images/val"))
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert (
        "specs/demo.yaml:8:19: error[spec-value]: data.splits.train: expected exactly one COCO "
        f"*.json in {root / 'data/demo/images/train'}, found 0\n"
    ) in result.err
    assert "help: is data.format right? A YOLO dataset has images/ and labels/" in result.err


def test_an_ultralytics_image_list_as_a_split_is_named_as_a_file(tmp_path: Path) -> None:
    """`train: train.txt` (ultralytics' list of image paths): the file exists, so 'folder not
    found' sent the user looking for a missing file; the error says it is a list cvspec does
    not read, and what to give instead."""
    spec = (
        "cvspec: 1\nproject: {name: demo}\ntask: detection\n"
        "data:\n  path: ../data/demo\n  format: yolo\n  classes: [a]\n"
        "  splits: {train: train.txt, val: images/val}\n"
        "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    )
    root = project(tmp_path, spec)
    write_tree(root / "data/demo", {"images/train/1.png": PNG, "labels/train/1.txt": "",
                                    "images/val/2.png": PNG, "labels/val/2.txt": "",
                                    "train.txt": "./images/train/1.png\n"})  # fmt: skip
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert (
        "specs/demo.yaml:8:19: error[spec-value]: data.splits.train: is a file, not a folder: "
        f"{root / 'data/demo/train.txt'}\n"
    ) in result.err, result.err
    assert (
        "help: ultralytics' .txt image lists are not read: give the split's image folder (e.g. "
        "images/train), or move the images it lists into one\n"
    ) in result.err, result.err


def test_jfif_and_jpe_files_are_jpegs_and_other_files_in_class_folders_are_reported(
    tmp_path: Path,
) -> None:
    from test_data_checks import CLASSIFICATION, check_all, clean_tree

    files = clean_tree()
    files["data/train/cat/phone.jfif"] = encode(synthetic_image(81), "JPEG")
    files["data/train/cat/scan.JPE"] = encode(synthetic_image(82), "JPEG")
    for n in range(5):
        files[f"data/train/dog/raw{n}.heic"] = b"ftypheic, not read by PIL"
    files["data/val/cat/notes.txt"] = b"a note"
    files["data/val/cat/LICENSE"] = b"no extension"
    files["data/README.md"] = b"beside the splits: not in a class folder, not reported"
    results = check_all(tmp_path, files, CLASSIFICATION)
    index = load_dataset_index(tmp_path)
    assert {"train/cat/phone.jfif", "train/cat/scan.JPE"} <= {r.path for r in index.records}
    assert results["decodable"].findings == ()  # both decode
    skipped = results["skipped_files"]
    assert (skipped.status, skipped.value, skipped.limit) == ("info", 7, None)
    assert [(f.path, f.message, f.related) for f in skipped.findings] == [
        ("(no extension)", "1 file(s) skipped: not an image file name", ("val/cat/LICENSE",)),
        (
            "*.heic",
            "5 file(s) skipped: cvspec does not read .heic images: convert them to JPEG or PNG",
            ("train/dog/raw0.heic", "train/dog/raw1.heic", "train/dog/raw2.heic"),
        ),
        ("*.txt", "1 file(s) skipped: not an image file name", ("val/cat/notes.txt",)),
    ]
    quarantined = CLASSIFICATION.replace(
        "  splits:", '  exclude: ["*.heic", "val/cat/notes.txt"]\n  splits:'
    )
    again = check_all(tmp_path / "q", files, quarantined)
    assert [f.path for f in again["skipped_files"].findings] == ["(no extension)"]


def load_dataset_index(root: Path) -> Any:
    return build_index(load_spec(root / "specs/p.yaml").spec, root / "data")


def test_a_detectors_images_are_those_ultralytics_trains_on(tmp_path: Path) -> None:
    from test_data_checks import DETECTION, check_all

    files: dict[str, Any] = {
        "data/images/train/a.png": PNG,
        "data/images/train/b.jfif": JPG,
        "data/images/train/c.gif": encode(synthetic_image(3, 16), "GIF"),
        "data/images/train/d.heic": b"not read by PIL",
        "data/images/val/v.jpg": JPG,
    }
    files.update(
        {f"data/labels/{p[12:].rsplit('.', 1)[0]}.txt": "0 0.5 0.5 0.2 0.2\n" for p in list(files)}
    )
    results = check_all(tmp_path, files, DETECTION)
    index = load_dataset_index(tmp_path)
    assert [r.path for r in index.records] == ["images/train/a.png", "images/val/v.jpg"]
    assert [(f.path, f.message) for f in results["skipped_files"].findings] == [
        (
            "*.gif",
            "1 file(s) skipped: ultralytics does not train on .gif files",
        ),
        (
            "*.heic",
            "1 file(s) skipped: cvspec does not read .heic images (ultralytics may still train "
            "on them): convert them to JPEG or PNG",
        ),
        (
            "*.jfif",
            "1 file(s) skipped: ultralytics does not train on .jfif files (a .jfif or .jpe file "
            "is a JPEG: rename it .jpg)",
        ),
    ]
    orphans = [f.path for f in results["layout"].findings]
    assert orphans == ["labels/train/b.txt", "labels/train/c.txt", "labels/train/d.txt"]


def test_the_detection_image_types_are_ultralytics_own() -> None:
    import ast
    import importlib.util

    from cvspec.data.files import DETECTION_EXTENSIONS, IMAGE_EXTENSIONS, ULTRALYTICS_EXTENSIONS

    # read from its source: importing ultralytics patches PIL.Image.open for this process
    found = importlib.util.find_spec("ultralytics")
    if found is None or not found.submodule_search_locations:
        pytest.skip("ultralytics is not installed")
    source = Path(found.submodule_search_locations[0], "data", "utils.py").read_text()
    (formats,) = [
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "IMG_FORMATS" for t in node.targets)
    ]
    assert {f".{e}" for e in formats} == ULTRALYTICS_EXTENSIONS
    assert DETECTION_EXTENSIONS == ULTRALYTICS_EXTENSIONS & IMAGE_EXTENSIONS


def test_the_data_stage_says_which_files_it_skipped(tmp_path: Path) -> None:
    from test_data_checks import CLASSIFICATION, clean_tree

    files: dict[str, Any] = {**clean_tree(), "data/train/cat/IMG_1.HEIC": b"heic"}
    root = project(tmp_path, CLASSIFICATION, "planted.yaml", files)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    assert (
        "skipped_files: info (files in class or image folders that are not read as images: "
        "reported; measured 1)\n  *.heic: 1 file(s) skipped: cvspec does not read .heic images: "
        "convert them to JPEG or PNG [train/cat/IMG_1.HEIC]" in result.err
    )
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    skipped = next(c for c in report["checks"] if c["name"] == "skipped_files")
    assert skipped["findings"][0]["related"] == ["train/cat/IMG_1.HEIC"]


def test_a_class_folder_linked_to_a_missing_folder_is_named_not_dropped(tmp_path: Path) -> None:
    """train/bird links to a drive that is not mounted: with classes: auto the class would
    vanish unsaid (two classes trained, not three); it is a layout finding naming the link."""
    from test_data_checks import CLASSIFICATION, clean_tree

    root = project(tmp_path, CLASSIFICATION, "planted.yaml", clean_tree())
    (root / "data/train/bird").symlink_to(tmp_path / "mnt/nas/bird", target_is_directory=True)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert (
        "layout: fail (no unreadable annotations or stray files; measured 1)\n"
        f"  train/bird: a link to {tmp_path / 'mnt/nas/bird'}, which does not exist; ignored\n"
    ) in result.err, result.err


def test_split_folders_read_with_ratio_splits_are_no_classes(tmp_path: Path) -> None:
    """train/cat, val/dog ... with the default ratio splits: the 'classes' were train and val,
    and the data stage passed, for a model that would learn which split an image is in. It is
    an error at data.path naming the split folders; a class named train (images in it) is
    still a class."""
    from test_data_checks import clean_tree

    spec = (
        "cvspec: 1\nproject: {name: sp}\ntask: classification\n"
        "data: {path: ../data}\nmodel: {arch: timm/resnet18, image_size: 32}\n"
    )
    root = project(tmp_path, spec, "sp.yaml", clean_tree())
    result = cvspec("run", "specs/sp.yaml", "--stage", "data", cwd=root)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert (
        "specs/sp.yaml:4:14: error[spec-value]: data.path: its folders train/, val/ are split "
        "folders with a folder per class in each, but data.splits are ratios, which read each "
        "folder under data.path as a class (the classes would be the splits)\n"
    ) in result.err, result.err
    assert "help: give the split folders, e.g. splits: {train: train, val: val}\n" in result.err
    # vehicles: a class named train holds its images
    write_tree(
        tmp_path / "v",
        {
            f"data/{c}/{n}.png": encode(synthetic_image(n, 16))
            for c in ("train", "bus")
            for n in (1, 2)
        },
    )
    layout = read_layout(spec_of(tmp_path / "v", "classes: auto"), tmp_path / "v/data")
    assert layout.classes == ("bus", "train")


def test_a_zip_made_on_macos_unpacks_no_class(tmp_path: Path) -> None:
    """A dataset zipped on macOS unpacks with __MACOSX/ (._x.jpg resource forks, mirroring the
    class folders) and .DS_Store files: no class __MACOSX with 0 images (classes: auto), no
    class folder missing from data.classes, no skipped files; nor are Windows' Thumbs.db and
    desktop.ini skipped files."""
    from test_data_checks import clean_tree

    spec = (
        "cvspec: 1\nproject: {name: mac}\ntask: classification\n"
        "data: {path: ../data, classes: CLASSES, splits: {train: train, val: val}}\n"
        "model: {arch: timm/resnet18, image_size: 32}\n"
    )
    fork = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
    files: dict[str, Any] = {
        **clean_tree(),
        "data/train/__MACOSX/cat/._s00.png": fork,
        "data/train/__MACOSX/._cat": fork,
        "data/train/cat/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "data/train/cat/._s00.png": fork,
        "data/val/dog/__MACOSX/._s30.png": fork,
        "data/val/dog/Thumbs.db": b"\xd0\xcf\x11\xe0",
        "data/train/cat/desktop.ini": "[.ShellClassInfo]\n",
    }
    for classes in ("auto", "[cat, dog]"):
        root = project(tmp_path, spec.replace("CLASSES", classes), "mac.yaml", files)
        result = cvspec("run", "specs/mac.yaml", "--stage", "data", cwd=root)
        assert result.code == 0, result.err
        assert "18 images, 2 classes" in result.err, result.err
        report = json.loads((root / "runs/mac/data/report.json").read_text())
        assert report["classes"] == ["cat", "dog"]
        skipped = next(c for c in report["checks"] if c["name"] == "skipped_files")
        assert skipped["findings"] == []


def test_a_folder_without_images_fails_early_at_data_path(tmp_path: Path) -> None:
    """Data not pulled yet (a typical CI mistake): one error at data.path, not every count
    check failing with 'measured 0'."""
    spec = "cvspec: 1\nproject: {name: demo}\ntask: classification\ndata:\n  path: ../data/empty\n"
    spec += "  versioning: dvc\nmodel: {arch: timm/resnet18, image_size: 32}\n"
    root = project(tmp_path, spec, "demo.yaml", {"data/empty/cat": {}, "data/empty/dog": {}})
    for stage in ("data", "train"):
        result = cvspec("run", "specs/demo.yaml", "--stage", stage, cwd=root)
        assert result.code == 2, result.err
        assert (
            "specs/demo.yaml:5:9: error[data-empty]: data.path: no images found under data/empty "
            "(format imagefolder: one folder per class, e.g. data/empty/cat/0001.jpg)\n"
            in result.err
        )
        assert "help: data.versioning is dvc: run `dvc pull` to fetch the images" in result.err
        assert "measured 0" not in result.err and "Traceback" not in result.err
        assert not (root / "runs/demo/data").exists()
    write_tree(root, {"data/empty/cat/IMG_1.heic": b"heic", "data/empty/cat/IMG_2.heic": b"heic"})
    spec_path = root / "specs/demo.yaml"
    spec_path.write_text(spec_path.read_text().replace("  versioning: dvc\n", ""))
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert (
        "no images found under data/empty (format imagefolder: one folder per class, e.g. "
        "data/empty/cat/0001.jpg); it holds 2 other file(s), e.g. cat/IMG_1.heic, cat/IMG_2.heic"
        in result.err
    )
    assert "help: data.path is relative to the spec file" in result.err


def test_images_outside_the_layout_are_named_instead_of_no_images(tmp_path: Path) -> None:
    """Images at the top of an imagefolder dataset, or in folders data.classes does not list:
    the error says what is there, and its help says to move them or change the spec, not to
    pull data that is there already."""
    spec = "cvspec: 1\nproject: {name: demo}\ntask: classification\ndata:\n  path: ../data\n"
    spec += "  versioning: dvc\nmodel: {arch: timm/resnet18, image_size: 32}\n"
    flat = {f"data/{i:04d}.png": PNG for i in range(5)}
    root = project(tmp_path, spec, "demo.yaml", flat)
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert (
        "error[data-empty]: data.path: no images found under data (format imagefolder: one "
        "folder per class, e.g. data/cat/0001.jpg); what it found instead: not inside a class "
        "folder; ignored: 0000.png, 0001.png, 0002.png and 2 more\n" in result.err
    )
    assert "help: move the images into that layout, or set data.format" in result.err
    assert "dvc pull" not in result.err
    spec_path = root / "specs/demo.yaml"
    spec_path.write_text(
        spec_path.read_text().replace("  versioning", "  classes: [a, b]\n  versioning")
    )
    write_tree(root, {"data/cat/x.png": PNG, "data/dog/y.png": PNG})
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert "class folder is not in data.classes; its images are ignored: cat, dog" in result.err


def test_absolute_coco_file_names_are_one_kind_of_finding_with_where_the_images_are(
    tmp_path: Path,
) -> None:
    """An exporter that wrote absolute paths (Label Studio, a script on another machine): the
    error says it once, with the file beside the .json, and counts the rest (it listed each)."""
    spec = "cvspec: 1\nproject: {name: demo}\ntask: detection\ndata:\n  path: ../data\n"
    spec += "  format: coco\n  classes: [a]\n  splits: {train: train, val: val}\n"
    spec += "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\n"
    files: dict[str, Any] = {}
    for split in ("train", "val"):
        images = [
            {"id": n, "file_name": f"/home/alice/export/{split}/{n}.png", "width": 16, "height": 16}
            for n in range(4)
        ]
        files.update({f"data/{split}/{n}.png": PNG for n in range(4)})
        files[f"data/{split}/coco.json"] = coco(images, [], [{"id": 1, "name": "a"}])
    root = project(tmp_path, spec, "demo.yaml", files)
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 2, result.err
    assert (
        "what it found instead: '/home/alice/export/train/0.png' is outside data.path ('0.png' "
        "is in 'data/train': a file_name is read relative to the folder of its .json): "
        "train/coco.json#images[0], and 7 more like it (train/coco.json#images[1], "
        "train/coco.json#images[2], ...)\n" in result.err
    )
    assert "/home/alice/export/val/3.png" not in result.err


def test_a_class_folder_that_nearly_matches_a_listed_class_is_named_as_a_typo(
    tmp_path: Path,
) -> None:
    """`classes: [red, gren, blue]` with a `green/` folder: the data stage's report pairs the
    two names instead of leaving an unknown folder and an empty class to be matched by eye."""
    spec = "cvspec: 1\nproject: {name: demo}\ntask: classification\n"
    spec += "data: {path: ../data, classes: [red, gren, blue]}\n"
    spec += "model: {arch: timm/resnet18, image_size: 32}\n"
    tree = {
        f"data/{c}/{i}.png": encode(synthetic_image(i, 16))
        for c in ("red", "green", "blue")
        for i in range(3)
    }
    root = project(tmp_path, spec, "demo.yaml", tree)
    result = cvspec("run", "specs/demo.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert (
        "green: class folder is not in data.classes; its images are ignored (data.classes lists "
        "'gren', which has no folder: a typo?)" in result.out + result.err
    )
    report = (root / "runs/demo/data/report.md").read_text()
    assert "'gren', which has no folder: a typo?" in report


def test_a_yolo_folder_without_images_and_an_exclude_that_takes_all_are_named(
    tmp_path: Path,
) -> None:
    from cvspec.errors import SpecValueError

    write_tree(tmp_path, {"data/images/train/.keep": b"", "data/labels/train/a.txt": ""})
    spec = spec_of(tmp_path, "format: yolo, classes: [a], splits: {val: 0.5, test: 0}", "detection")
    with pytest.raises(SpecValueError) as caught:
        read_layout(spec, tmp_path / "data")
    assert caught.value.key == ("data", "path")
    assert "(format yolo: images/ with a labels/ tree beside it, e.g. " in caught.value.message
    write_tree(tmp_path, {"data/images/train/a.png": PNG})
    spec = spec_of(
        tmp_path,
        'format: yolo, classes: [a], splits: {val: 0.5, test: 0}, exclude: ["images/*"]',
        "detection",
    )
    with pytest.raises(SpecValueError) as caught:
        read_layout(spec, tmp_path / "data")
    assert caught.value.key == ("data", "exclude")
    assert "leaves out every image (1) of " in caught.value.message
