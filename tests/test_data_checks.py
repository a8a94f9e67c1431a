"""Every data check finds its planted defect, and a clean dataset yields no findings at all."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import write_tree
from PIL import Image, ImageFilter

from cvspec.data.analyze import analyze_file
from cvspec.data.checks import CheckResult, run_checks
from cvspec.data.phash import hamming, nearest_lower
from cvspec.data.stage import load_dataset
from cvspec.spec import load_spec
from cvspec.testing.data import synthetic_image

CLASSIFICATION = """\
cvspec: 1
project: {name: planted}
task: classification
data:
  path: ../data
  splits: {train: train, val: val}
  quality:
    min_side: 16
    max_class_ratio: 10
    duplicates: {exact: 0, near_fraction: 0.0}
    leakage: 0
    max_dark_fraction: 0
    max_bright_fraction: 0
    max_blurry_fraction: 0
model: {arch: timm/resnet18, image_size: 32}
"""


def encode(img: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    """An image's file bytes."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def clean_tree() -> dict[str, bytes]:
    """Two classes, train and val, distinct sharp scenes of one size."""
    files = {}
    for split, cls, seeds in (
        ("train", "cat", range(0, 6)),
        ("train", "dog", range(10, 16)),
        ("val", "cat", range(20, 23)),
        ("val", "dog", range(30, 33)),
    ):
        for seed in seeds:
            files[f"data/{split}/{cls}/s{seed:02d}.png"] = encode(synthetic_image(seed))
    return files


def planted_tree() -> dict[str, bytes]:
    """The clean tree plus one planted defect per check."""
    files = clean_tree()
    jpeg = encode(synthetic_image(40), "JPEG", quality=90)
    near = synthetic_image(10).resize((58, 58))
    cross = synthetic_image(1).resize((58, 58))
    files.update(
        {
            "data/train/cat/truncated.jpg": jpeg[: len(jpeg) // 2],
            "data/train/cat/s00_copy.png": files["data/train/cat/s00.png"],
            "data/train/dog/s10_small.jpg": encode(near, "JPEG", quality=70),
            "data/val/cat/s01_near.jpg": encode(cross, "JPEG", quality=70),
            "data/val/dog/leak.png": files["data/train/dog/s11.png"],
            "data/val/bird/b.png": encode(synthetic_image(50)),
            "data/train/dog/tiny.png": encode(synthetic_image(60).resize((4, 4))),
            "data/train/cat/black.png": encode(Image.new("RGB", (64, 64))),
            "data/train/dog/blurred.png": encode(
                synthetic_image(70).filter(ImageFilter.GaussianBlur(3))
            ),
        }
    )
    return files


def check_all(
    tmp_path: Path, files: dict[str, Any], spec: str = CLASSIFICATION
) -> dict[str, CheckResult]:
    """Write the tree, load the spec, run every check; results by name."""
    write_tree(tmp_path, {"specs/p.yaml": spec, **files})
    loaded = load_spec(tmp_path / "specs/p.yaml")
    ds = load_dataset(loaded.spec, tmp_path / "data")
    return {r.name: r for r in run_checks(ds)}


def found(result: CheckResult) -> list[tuple[str, tuple[str, ...]]]:
    """(path, related) of each finding."""
    return [(f.path, f.related) for f in result.findings]


def test_clean_dataset_has_no_findings(tmp_path: Path) -> None:
    results = check_all(tmp_path, clean_tree())
    assert {n: found(r) for n, r in results.items() if r.findings} == {}
    assert {r.status for r in results.values()} == {"pass", "info"}
    assert [n for n, r in results.items() if r.status == "info"] == [
        "skipped_files",
        "size_outliers",
    ]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CheckResult]:
    return check_all(tmp_path_factory.mktemp("planted"), planted_tree())


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("decodable", [("train/cat/truncated.jpg", ())]),
        (
            "exact_duplicates",
            [
                ("train/cat/s00_copy.png", ("train/cat/s00.png",)),
                ("val/dog/leak.png", ("train/dog/s11.png",)),
            ],
        ),
        (
            "near_duplicates",
            [
                ("train/dog/s10_small.jpg", ("train/dog/s10.png",)),
                ("val/cat/s01_near.jpg", ("train/cat/s01.png",)),
            ],
        ),
        (
            "leakage",
            [
                ("val/cat/s01_near.jpg", ("train/cat/s01.png",)),
                ("val/dog/leak.png", ("train/dog/s11.png",)),
            ],
        ),
        ("unseen_labels", [("bird", ())]),
        ("min_side", [("train/dog/tiny.png", ())]),
        ("size_outliers", [("train/dog/tiny.png", ())]),
        ("dark", [("train/cat/black.png", ())]),
        ("blurry", [("train/dog/blurred.png", ())]),
        ("bright", []),
        ("layout", []),
        ("classes", []),
    ],
)
def test_each_planted_defect_is_found(
    planted: dict[str, CheckResult], check: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    result = planted[check]
    assert found(result) == expected
    if expected and result.limit is not None:
        assert result.status == "fail"


def test_findings_say_why(planted: dict[str, CheckResult]) -> None:
    assert planted["decodable"].findings[0].message.startswith("does not decode: OSError")
    assert planted["unseen_labels"].findings[0].message == "1 val images but none in train"
    assert planted["min_side"].value == 4
    assert planted["min_side"].findings[0].message == "4x4 px, shorter side below 16"
    assert planted["leakage"].findings[1].message == "val image is a byte copy of a train image"
    near = planted["leakage"].findings[0].message
    assert near.startswith("val image nearly identical to a train image (")
    assert planted["dark"].value == pytest.approx(1 / 26)  # 27 files, one does not decode


def test_a_value_just_under_a_bound_reads_as_under_it() -> None:
    from cvspec.data.checks_files import under

    assert under(24.96, 25) == "24.96" and under(24.9996, 25) == "24.9996"
    assert under(12.34, 25) == "12.3" and under(0.0, 25) == "0.0"


def test_near_duplicates_do_not_chain(tmp_path: Path) -> None:
    """A~B and B~C within near_hamming (6), A and C not: C is near B only, and C's nearest
    earlier-split image is too far, so only B leaks."""
    a, far = synthetic_image(86), synthetic_image(99)
    files = {
        **clean_tree(),
        "data/train/cat/a.png": encode(a),
        "data/val/cat/b.png": encode(Image.blend(a, far, 0.2)),
        "data/val/cat/c.png": encode(Image.blend(a, far, 0.3)),
    }
    results = check_all(tmp_path, files)
    chain = ("train/cat/a.png", "val/cat/b.png", "val/cat/c.png")
    hashes = [analyze_file(str(tmp_path / "data" / p)).phash for p in chain]
    ab, bc, ac = (hamming(hashes[i], hashes[j]) for i, j in ((0, 1), (1, 2), (0, 2)))
    assert ab <= 6 and bc <= 6 < ac, (ab, bc, ac)  # the premise: a chain, not a cluster
    near = results["near_duplicates"]
    assert [(f.path, f.message, f.related) for f in near.findings] == [
        ("val/cat/b.png", f"near-duplicate ({ab} bits apart)", ("train/cat/a.png",)),
        ("val/cat/c.png", f"near-duplicate ({bc} bits apart)", ("val/cat/b.png",)),
    ]
    assert near.value == pytest.approx(2 / 21)
    leak = "val image nearly identical to a train image"
    assert [(f.path, f.message, f.related) for f in results["leakage"].findings] == [
        ("val/cat/b.png", f"{leak} ({ab} bits apart)", ("train/cat/a.png",))
    ]


def test_nearest_lower_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = trial % 50
        hashes = rng.integers(0, 2**63, 4, dtype=np.uint64)[rng.integers(0, 4, n)]
        for _ in range(4):  # flip a few random bits of some hashes
            bit = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
            hashes ^= bit * (rng.random(n) < 0.5).astype(np.uint64)
        ranks = rng.integers(0, 3, n) if trial % 2 else np.arange(n)
        distance = int(rng.integers(0, 10))
        ((found, bits),) = nearest_lower(hashes, [ranks], distance)
        for i in range(n):
            close = [
                (hamming(int(hashes[i]), int(hashes[j])), int(ranks[j]), j)
                for j in range(n)
                if ranks[j] < ranks[i] and hamming(int(hashes[i]), int(hashes[j])) <= distance
            ]
            nearest = min(close, default=(0, 0, -1))
            assert (int(bits[i]), int(found[i])) == (nearest[0], nearest[2]), (trial, i)


def test_a_dataset_without_a_decodable_image_is_checked(tmp_path: Path) -> None:
    broken = encode(synthetic_image(1), "JPEG")[:100]
    results = check_all(tmp_path, {"data/train/cat/a.jpg": broken, "data/val/cat/b.jpg": broken})
    assert results["decodable"].value == 2 and results["decodable"].status == "fail"
    assert results["near_duplicates"].findings == ()
    assert found(results["leakage"]) == [("val/cat/b.jpg", ("train/cat/a.jpg",))]


def test_class_balance_limits(tmp_path: Path) -> None:
    files = clean_tree()
    for seed in range(100, 130):
        files[f"data/train/cat/extra{seed}.png"] = encode(synthetic_image(seed))
    spec = CLASSIFICATION.replace("max_class_ratio: 10", "max_class_ratio: 3") + (
        "  # min images\n"
    )
    spec = spec.replace("    min_side: 16\n", "    min_side: 16\n    min_images_per_class: 10\n")
    results = check_all(tmp_path, files, spec)
    ratio, minimum = results["max_class_ratio"], results["min_images_per_class"]
    assert (ratio.status, ratio.value) == ("fail", 39 / 9)
    assert found(ratio) == [("cat", ("dog",))]
    assert (minimum.status, minimum.value) == ("fail", 9)
    assert [f.message for f in minimum.findings] == ["9 images (at least 10 needed)"]


def test_an_empty_class_fails_the_class_ratio_by_name(tmp_path: Path) -> None:
    results = check_all(tmp_path, {**clean_tree(), "data/train/bird": {}, "data/val/bird": {}})
    ratio = results["max_class_ratio"]
    assert (ratio.status, ratio.value) == ("fail", float("inf"))
    assert [(f.path, f.message, f.related) for f in ratio.findings] == [
        ("bird", "no images, while the largest class, cat, has 9", ("cat",))
    ]
    assert ratio.describe().startswith(
        "max_class_ratio: fail (largest/smallest class ratio at most 10; measured inf)\n"
    )


DETECTION = """\
cvspec: 1
project: {name: boxes}
task: detection
data:
  path: ../data
  format: yolo
  classes: [a, b]
  splits: {train: images/train, val: images/val}
model: {arch: ultralytics/yolov8n.yaml, image_size: 64}
"""


def test_detection_box_sanity(tmp_path: Path) -> None:
    img = {
        f"data/images/{s}/{n}.png": encode(synthetic_image(i))
        for i, (s, n) in enumerate(
            [("train", "ok"), ("train", "bad"), ("train", "empty"), ("val", "v")]
        )
    }
    labels = {
        "data/labels/train/ok.txt": "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n",
        "data/labels/train/bad.txt": "99 0.5 0.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n1 0.5 0.5 0 0.1\n"
        # drawn to the border, 2 px past it at 640 px (a tool rounding): ultralytics trains on it
        "0 0.9031 0.5 0.2 0.2\n0 0.0969 0.5 0.2 0.2\n",
        "data/labels/train/empty.txt": "",
        "data/labels/val/v.txt": "1 0.5 0.5 0.4 0.4\n",
    }
    results = check_all(tmp_path, {**img, **labels}, DETECTION)
    at = "at labels/train/bad.txt"
    assert [f.message for f in results["boxes"].findings] == [
        f"box 1 (class 99) {at}:1: class id 99 is not in 0..1",
        f"box 2 (class 0) {at}:2: extends outside the image (x0, y0, x1, y1 = 0.850, 0.400, "
        "1.050, 0.600)",
        f"box 3 (class 1) {at}:3: width and height must be positive, got 0 x 0.1",
    ]
    assert results["boxes"].status == "fail"
    assert found(results["no_boxes"]) == [("images/train/empty.png", ())]
    assert results["no_boxes"].status == "info"
    assert results["unseen_labels"].findings == ()


def test_a_missing_label_file_is_not_a_background_image(tmp_path: Path) -> None:
    names = [("train", "ok"), ("train", "background"), ("train", "gone"), ("val", "v")]
    img = {f"data/images/{s}/{n}.png": encode(synthetic_image(i)) for i, (s, n) in enumerate(names)}
    labels = {
        "data/labels/train/ok.txt": "0 0.5 0.5 0.2 0.2\n",
        "data/labels/train/background.txt": "",
        "data/labels/val/v.txt": "1 0.5 0.5 0.4 0.4\n",
    }
    why = "no label file labels/train/gone.txt (an empty one marks a background image)"
    for limit, status in (("", "info"), ("0", "fail"), ("1", "pass"), ("null", "info")):
        quality = f"  quality: {{missing_labels: {limit}}}\nmodel:" if limit else "model:"
        spec = DETECTION.replace("model:", quality)
        results = check_all(tmp_path / (limit or "default"), {**img, **labels}, spec)
        missing = results["missing_labels"]
        assert [(f.path, f.message) for f in missing.findings] == [("images/train/gone.png", why)]
        assert (missing.status, missing.value) == (status, 1)
        assert found(results["no_boxes"]) == [("images/train/background.png", ())]
        assert results["layout"].findings == ()


def test_box_coordinates_must_be_finite_numbers(tmp_path: Path) -> None:
    img = {
        f"data/images/{s}/{n}.png": encode(synthetic_image(i))
        for i, (s, n) in enumerate([("train", "t"), ("val", "v")])
    }
    labels = {
        "data/labels/train/t.txt": (
            "0 nan 0.5 0.2 0.2\n1 0.5 inf 0.2 0.2\n0 0.5 0.5 -inf NaN\n"
            "1 0.1 0.1 nan 0.2 0.3 0.3\n1 0.1 0.1 0.2 nan 0.3 0.3\n0 0.5 0.5 0.2 0.2\n"
        ),
        "data/labels/val/v.txt": "1 0.5 0.5 0.4 0.4\n",
    }
    results = check_all(tmp_path, {**img, **labels}, DETECTION)
    at = "at labels/train/t.txt"
    assert [(f.path, f.message) for f in results["boxes"].findings] == [
        ("images/train/t.png", f"box 1 (class 0) {at}:1: not a finite number: cx = nan"),
        ("images/train/t.png", f"box 2 (class 1) {at}:2: not a finite number: cy = inf"),
        ("images/train/t.png", f"box 3 (class 0) {at}:3: not a finite number: w = -inf, h = nan"),
        ("images/train/t.png", f"box 4 (class 1) {at}:4: not a finite number: cx = nan, w = nan"),
        ("images/train/t.png", f"box 5 (class 1) {at}:5: not a finite number: cy = nan, h = nan"),
    ]
    assert results["boxes"].status == "fail"


def test_coco_boxes_must_be_finite_numbers(tmp_path: Path) -> None:
    spec = DETECTION.replace("format: yolo", "format: coco").replace(
        "{train: images/train, val: images/val}", "{train: train, val: val}"
    )
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    image = {"id": 1, "file_name": "p.png", "width": 64, "height": 64}
    train = {
        "images": [image],
        "annotations": [{"image_id": 1, "category_id": 2, "bbox": [float("nan"), 0, 8, 8]}],
        "categories": categories,
    }
    val = {**train, "annotations": [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 8, 8]}]}
    files = {
        "data/train/p.png": encode(synthetic_image(1)),
        "data/train/coco.json": json.dumps(train),  # NaN: json's (and Python's) extension
        "data/val/p.png": encode(synthetic_image(2)),
        "data/val/coco.json": json.dumps(val),
    }
    results = check_all(tmp_path, files, spec)
    assert "missing_labels" not in results  # COCO has no label files
    assert [(f.path, f.message) for f in results["boxes"].findings] == [
        (
            "train/p.png",
            "box 1 (class 1) at train/coco.json#annotations[0]: not a finite number: cx = nan",
        )
    ]


def test_a_box_labelled_twice_is_a_duplicate_box(tmp_path: Path) -> None:
    img = {
        f"data/images/{s}/{n}.png": encode(synthetic_image(i))
        for i, (s, n) in enumerate([("train", "t"), ("train", "crowd"), ("val", "v")])
    }
    labels = {
        "data/labels/train/t.txt": (
            "0 0.5 0.5 0.2 0.2\n"
            "1 0.5 0.5 0.2 0.2\n"  # another class on the same spot: two objects
            "0 0.5 0.5 0.2 0.2\n"  # a pasted repeat of line 1
            "0 0.502 0.5 0.2 0.2\n"  # redrawn a pixel off: IoU 0.98
            "0 0.2 0.2 0.1 0.1\n"
        ),
        # a crowd: boxes of one class overlapping by half are distinct objects
        "data/labels/train/crowd.txt": "0 0.40 0.5 0.2 0.4\n0 0.47 0.5 0.2 0.4\n",
        "data/labels/val/v.txt": "1 0.5 0.5 0.4 0.4\n",
    }
    results = check_all(tmp_path, {**img, **labels}, DETECTION)
    at = "at labels/train/t.txt"
    assert [(f.path, f.message) for f in results["duplicate_boxes"].findings] == [
        (
            "images/train/t.png",
            f"box 3 (class 0) {at}:3 repeats box 1 {at}:1: one object labelled twice?",
        ),
        (
            "images/train/t.png",
            f"box 4 (class 0) {at}:4 overlaps box 1 {at}:1 by IoU 0.98: one object labelled twice?",
        ),
    ]
    assert (results["duplicate_boxes"].status, results["duplicate_boxes"].value) == ("fail", 2)
    assert results["boxes"].findings == ()  # a repeat is a valid box
    spec = DETECTION.replace("model:", "  quality: {duplicate_boxes: null}\nmodel:")
    relaxed = check_all(tmp_path / "relaxed", {**img, **labels}, spec)
    assert (relaxed["duplicate_boxes"].status, relaxed["duplicate_boxes"].value) == ("info", 2)


def test_a_coco_annotation_given_twice_is_a_duplicate_box(tmp_path: Path) -> None:
    spec = DETECTION.replace("format: yolo", "format: coco").replace(
        "{train: images/train, val: images/val}", "{train: train, val: val}"
    )
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    image = {"id": 1, "file_name": "p.png", "width": 64, "height": 64}
    box = {"image_id": 1, "category_id": 2, "bbox": [8, 8, 16, 16]}
    train = {"images": [image], "annotations": [box, box], "categories": categories}
    files = {
        "data/train/p.png": encode(synthetic_image(1)),
        "data/train/coco.json": json.dumps(train),
        "data/val/p.png": encode(synthetic_image(2)),
        "data/val/coco.json": json.dumps({**train, "annotations": [box]}),
    }
    results = check_all(tmp_path, files, spec)
    assert [(f.path, f.message) for f in results["duplicate_boxes"].findings] == [
        (
            "train/p.png",
            "box 2 (class 1) at train/coco.json#annotations[1] repeats box 1 at "
            "train/coco.json#annotations[0]: one object labelled twice?",
        )
    ]


def test_a_copy_under_another_label_says_both_labels(tmp_path: Path) -> None:
    """`cp 3/0003.png 5/x.png`: one of the two labels is wrong, and the findings say which
    class each copy is in."""
    files = clean_tree()
    files["data/train/dog/x.png"] = files["data/train/cat/s00.png"]
    files["data/train/dog/same.png"] = files["data/train/dog/s10.png"]  # same label: no note
    files["data/val/dog/y.png"] = files["data/train/cat/s01.png"]
    near = synthetic_image(2).resize((58, 58))  # train/cat/s02, re-encoded
    files["data/train/dog/z.jpg"] = encode(near, "JPEG", quality=70)
    results = check_all(tmp_path, files)
    messages = {
        name: {f.path: (f.message, f.related) for f in results[name].findings}
        for name in ("exact_duplicates", "near_duplicates", "leakage")
    }
    assert messages["exact_duplicates"] == {
        "train/dog/x.png": (
            "byte-identical copy (labelled dog here, cat there)",
            ("train/cat/s00.png",),
        ),
        "train/dog/same.png": ("byte-identical copy", ("train/dog/s10.png",)),
        "val/dog/y.png": (
            "byte-identical copy (labelled dog here, cat there)",
            ("train/cat/s01.png",),
        ),
    }
    message, related = messages["near_duplicates"]["train/dog/z.jpg"]
    assert related == ("train/cat/s02.png",)
    assert message.startswith("near-duplicate (") and message.endswith(
        " bits apart; labelled dog here, cat there)"
    )
    assert messages["leakage"] == {
        "val/dog/y.png": (
            "val image is a byte copy of a train image (labelled dog here, cat there)",
            ("train/cat/s01.png",),
        )
    }


def test_the_duplicate_and_leakage_limits_count_what_their_descriptions_say(
    tmp_path: Path,
) -> None:
    from cvspec.spec.model_data import Duplicates, Quality

    exact = Duplicates.model_fields["exact"].description or ""
    near = Duplicates.model_fields["near_fraction"].description or ""
    hamming = Duplicates.model_fields["near_hamming"].description or ""
    leak = Quality.model_fields["leakage"].description or ""
    assert "three copies of one image count 2" in exact and "leakage" in exact
    assert "leakage" in near and "near_fraction and leakage alike" in hamming
    assert "duplicates.near_hamming" in leak and "duplicates.exact" in leak

    files = clean_tree()
    files["data/train/cat/a.png"] = files["data/train/cat/b.png"] = files["data/train/cat/s00.png"]
    files["data/val/cat/c.png"] = files["data/train/dog/s10.png"]  # across splits
    near = synthetic_image(11).resize((58, 58))
    files["data/val/dog/d.jpg"] = encode(near, "JPEG", quality=70)  # near train/dog/s11
    results = check_all(tmp_path, files)
    assert results["exact_duplicates"].value == 3  # 2 of the three, 1 across splits
    assert results["leakage"].value == 2  # the copy and the near one
    assert results["near_duplicates"].value == pytest.approx(1 / 22)
    spec = CLASSIFICATION.replace("near_fraction: 0.0}", "near_fraction: 0.0, near_hamming: 0}")
    strict = check_all(tmp_path / "strict", files, spec)
    assert strict["leakage"].value == 1  # near_hamming decides what leaks, too


def test_a_fraction_limit_reads_in_the_unit_of_what_is_measured() -> None:
    """0.0001 printed as '0.0%' read as no copies allowed, beside a measured 0.002688."""
    from cvspec.data.checks import limit_rule

    rule = limit_rule("near-duplicate images", fraction=True)
    assert rule(0.0001) == "at most 0.0001 (0.01%) near-duplicate images"
    assert rule(0.05) == "at most 0.05 (5%) near-duplicate images"


def test_bit_counts_are_the_same_without_numpys_bitwise_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """numpy 1.x (the floor) has no np.bitwise_count: a byte table counts the hash bits."""
    from cvspec.data.phash import popcount

    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, size=(50, 40), dtype=np.uint64, endpoint=False)
    values[0, :3] = [0, 2**64 - 1, 2**63]
    native = popcount(values)
    monkeypatch.delattr(np, "bitwise_count")
    fallback = popcount(values)
    assert fallback.dtype == native.dtype == np.uint8
    assert np.array_equal(fallback, native)
