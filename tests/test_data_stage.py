"""`cvspec run --stage data` and the generated data tests, run for real on small datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import cvspec, project
from PIL import Image
from test_data_checks import CLASSIFICATION, DETECTION, clean_tree, encode

from cvspec.imagestats import image_stats, summarize
from cvspec.testing.data import synthetic_image


def checked_project(tmp_path: Path, files: dict[str, bytes] | None = None) -> Path:
    return project(tmp_path, CLASSIFICATION, "planted.yaml", files or clean_tree())


def test_clean_dataset_passes_and_writes_the_report(tmp_path: Path) -> None:
    root = checked_project(tmp_path)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    assert "ok data" in result.err and "18 images, 2 classes; 13 checks pass" in result.err
    out = root / "runs/planted/data"
    assert sorted(p.name for p in out.iterdir()) == [
        "class_histogram.png",
        "report.json",
        "report.md",
        "stats.json",
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is True
    assert report["images"] == {"total": 18, "decoded": 18, "train": 12, "val": 6, "test": 0}
    assert report["class_counts"] == {"train": {"cat": 6, "dog": 6}, "val": {"cat": 3, "dog": 3}}
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == []
    md = (out / "report.md").read_text()
    assert md.startswith("# Data report: planted\n\n18 images in `data` (imagefolder): 12 train")
    assert (
        "| min_side | pass | 64 | 16 | 0 | every image at least 16 px on its shorter side |" in md
    )
    with Image.open(out / "class_histogram.png") as img:
        assert img.format == "PNG" and img.width > 100
    again = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert again.code == 0
    assert json.loads((out / "report.json").read_text()) == report  # no clock in the report


def test_the_report_says_which_data_it_describes(tmp_path: Path) -> None:
    """A fingerprint of the exact images and labels, and the .dvc file versioning them."""
    spec = CLASSIFICATION.replace("  splits:", "  versioning: dvc\n  splits:")
    root = project(tmp_path, spec, "planted.yaml", clean_tree())
    report = root / "runs/planted/data/report.json"

    def dataset() -> Any:
        result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
        assert result.code == 0, result.err
        return result.err, json.loads(report.read_text())["dataset"]

    said, first = dataset()
    assert len(first["fingerprint"]) == 64 and first["dvc"] is None
    assert "warning: data.versioning is dvc, but data is not tracked by DVC yet: run " in said
    assert "`dvc add data`" in said
    (root / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data\n")
    said, tracked = dataset()
    assert "warning: data.versioning" not in said
    assert tracked == {**first, "dvc": {"file": "data.dvc", "md5": "0123abcd.dir"}}
    moved = root / "data/train/cat/s00.png"  # the same bytes under another label
    moved.rename(root / "data/train/dog/s00.png")
    assert dataset()[1]["fingerprint"] != first["fingerprint"]


def test_excluded_images_are_left_out_and_stale_patterns_named(tmp_path: Path) -> None:
    files = clean_tree()
    files["data/val/dog/copy.png"] = files["data/train/cat/s00.png"]  # a leak, mislabelled
    root = checked_project(tmp_path, files)
    dirty = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert dirty.code == 1 and "exact_duplicates" in dirty.err and "leakage" in dirty.err
    spec = root / "specs/planted.yaml"
    quarantine = '  exclude: [val/dog/copy.png, "old/*"]  # copy.png: a copy of a train cat\n'
    spec.write_text(spec.read_text().replace("  splits:", quarantine + "  splits:"))
    clean = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert clean.code == 0, clean.err
    assert "1 image(s) left out by data.exclude" in clean.err
    line = spec.read_text().splitlines().index(quarantine.rstrip("\n")) + 1
    assert (
        f"specs/planted.yaml:{line}: warning: data.exclude pattern 'old/*' matches no image: "
        "remove it" in clean.err
    )
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    assert report["images"]["total"] == 18
    assert report["excluded"] == {
        "count": 1,
        "paths": ["val/dog/copy.png"],
        "unmatched_patterns": ["old/*"],
    }
    md = (root / "runs/planted/data/report.md").read_text()
    assert "## excluded by data.exclude\n\n- `val/dog/copy.png`\n" in md
    assert "- pattern `old/*` matches no image: remove it from data.exclude" in md


def test_exclude_patterns_name_files_folders_or_shell_patterns() -> None:
    from cvspec.data.index import Exclusions

    def is_excluded(path: str, patterns: list[str]) -> bool:
        return Exclusions(tuple(patterns)).match(path) is not None

    patterns = ["3/0003.png", "raw", "*/tmp_*.png", "val/[ab]?.jpg"]
    for path in ("3/0003.png", "raw/x.png", "raw/deep/y.png", "cat/tmp_1.png", "val/a1.jpg"):
        assert is_excluded(path, patterns), path
    for path in ("3/0003.png.bak", "rawdata/x.png", "3/00031.png", "val/c1.jpg", "x/tmp.png"):
        assert not is_excluded(path, patterns), path


def test_stats_json_is_the_drift_baseline_of_the_train_split(tmp_path: Path) -> None:
    root = checked_project(tmp_path)
    assert cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root).code == 0
    stats = json.loads((root / "runs/planted/data/stats.json").read_text())
    train = [Image.open(p) for p in sorted((root / "data/train").rglob("*.png"))]
    per_image = [image_stats(img) for img in train]
    for key in ("brightness", "contrast", "width", "height"):
        want = summarize([s[key] for s in per_image])
        assert stats[key] == pytest.approx(want, abs=1e-6), key


def test_failed_check_exits_1_and_names_files(tmp_path: Path) -> None:
    files = clean_tree()
    files["data/train/cat/black.png"] = encode(Image.new("RGB", (64, 64)))
    root = checked_project(tmp_path, files)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 1
    assert (
        "dark: fail (no nearly black images; measured 0.05263; from specs/planted.yaml:12)"
        in result.err
    )
    assert "  train/cat/black.png: nearly black: 95% of pixels below 0.00 grey" in result.err
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    assert report["ok"] is False


def test_a_failed_check_cites_where_the_spec_sets_its_limit(tmp_path: Path) -> None:
    """As the evaluate gates do: the stage output, report.json and report.md name the line of
    data.quality.<key>, or the --set flag, or the default, that set the failed limit."""
    files = clean_tree()
    files["data/train/cat/copy.png"] = files["data/train/cat/s00.png"]
    files["data/train/dog/broken.png"] = files["data/train/dog/s10.png"][:200]
    root = checked_project(tmp_path, files)
    spec = root / "specs/planted.yaml"
    line = spec.read_text().splitlines().index("    duplicates: {exact: 0, near_fraction: 0.0}") + 1
    flag = "data.quality.min_images_per_class=20"
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", "--set", flag, cwd=root)
    assert result.code == 1, result.err
    for said in (
        f"exact_duplicates: fail (no byte-identical copies; measured 1; from specs/planted.yaml:"
        f"{line})",
        "min_images_per_class: fail (every class has at least 20 images; measured 10; from "
        f"--set {flag})",
        "decodable: fail (no images that fail to decode; measured 1; from default "
        "data.quality.decodable)",
    ):
        assert said in result.err
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    sources = {c["name"]: c["source"] for c in report["checks"]}
    assert sources["exact_duplicates"] == sources["near_duplicates"] == f"specs/planted.yaml:{line}"
    assert sources["layout"] == sources["size_outliers"] == ""  # a fixed limit, or none
    md = (root / "runs/planted/data/report.md").read_text()
    assert "| exact_duplicates | FAIL | 1 | 0 | 1 | no byte-identical copies | " in md
    assert f"copies | `specs/planted.yaml:{line}` |\n" in md
    assert f"## exact_duplicates (fail, limit from `specs/planted.yaml:{line}`)" in md


def test_an_empty_class_folder_fails_cleanly(tmp_path: Path) -> None:
    root = project(tmp_path, CLASSIFICATION, "planted.yaml", {**clean_tree(), "data/val/bird": {}})
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert "internal error" not in result.err
    assert (
        "max_class_ratio: fail (largest/smallest class ratio at most 10; measured inf; from "
        "specs/planted.yaml:9)" in result.err
    )
    assert "  bird: no images, while the largest class, cat, has 9 [cat]" in result.err
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    ratio = next(c for c in report["checks"] if c["name"] == "max_class_ratio")
    assert (ratio["status"], ratio["value"], ratio["findings_count"]) == ("fail", "inf", 1)


def test_a_nan_box_fails_the_data_stage(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "data/images/train/t.png": encode(synthetic_image(1)),
        "data/images/val/v.png": encode(synthetic_image(2)),
        "data/labels/train/t.txt": "0 nan 0.5 0.2 0.2\n",
        "data/labels/val/v.txt": "0 0.5 0.5 0.2 0.2\n",
    }
    root = project(tmp_path, DETECTION, "boxes.yaml", files)
    result = cvspec("run", "specs/boxes.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert "boxes: fail (no invalid boxes; measured 1)" in result.err
    assert (
        "  images/train/t.png: box 1 (class 0) at labels/train/t.txt:1: not a finite number: "
        "cx = nan" in result.err
    )


def test_an_image_without_a_label_file_fails_the_data_stage(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "data/images/train/t.png": encode(synthetic_image(1)),
        "data/images/train/ok.png": encode(synthetic_image(4)),
        "data/images/train/background.png": encode(synthetic_image(3)),
        "data/images/val/v.png": encode(synthetic_image(2)),
        "data/labels/train/ok.txt": "0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n",
        "data/labels/train/background.txt": "",
        "data/labels/val/v.txt": "0 0.5 0.5 0.2 0.2\n",
    }
    root = project(tmp_path, DETECTION, "boxes.yaml", files)
    gated = "--set", "data.quality.missing_labels=0"
    result = cvspec("run", "specs/boxes.yaml", "--stage", "data", *gated, cwd=root)
    assert result.code == 1, result.err
    assert "failed: missing_labels (see " in result.err
    assert (
        "missing_labels: fail (no images without a label file; measured 1; from --set "
        "data.quality.missing_labels=0)" in result.err
    )
    assert (
        "  images/train/t.png: no label file labels/train/t.txt (an empty one marks a "
        "background image)" in result.err
    )
    # by default, as ultralytics reads it: a background image, reported but not failed
    assert cvspec("run", "specs/boxes.yaml", "--stage", "data", cwd=root).code == 0


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_generated_data_tests_pass_then_name_the_bad_file(tmp_path: Path) -> None:
    root = checked_project(tmp_path)
    assert cvspec("build", "specs/planted.yaml", cwd=root).code == 0
    text = (root / "generated/planted/tests/test_data.py").read_text()
    assert '    "near_duplicates": 0.0,\n    "leakage": 0,\n    "min_side": 16,\n' in text
    assert "size_outliers" not in text  # a check without a limit gets no test
    ok = run_pytest(root, "generated/planted/tests")
    assert ok.returncode == 0, ok.stdout
    assert "13 passed" in ok.stdout
    (root / "data/val/dog/s30.png").write_bytes(encode(synthetic_image(5)))  # train/cat/s05
    bad = run_pytest(root, "generated/planted/tests")
    assert bad.returncode == 1
    assert "2 failed, 11 passed" in bad.stdout
    assert "FAILED generated/planted/tests/test_data.py::test_data[exact_duplicates]" in bad.stdout
    line = (root / "specs/planted.yaml").read_text().splitlines().index("    leakage: 0") + 1
    assert (
        "leakage: fail (no val/test images copied from another split; measured 1; from "
        f"specs/planted.yaml:{line})" in bad.stdout
    )
    assert (
        "val/dog/s30.png: val image is a byte copy of a train image (labelled dog here, cat "
        "there) [train/cat/s05.png]" in bad.stdout
    )
    assert "cvspec/testing" not in bad.stdout  # the check's lines, not the helper's frames
    assert "def check_data" not in bad.stdout


def test_a_failed_data_test_shows_a_few_offending_files_then_the_count() -> None:
    from cvspec.data.checks import CheckResult, Finding
    from cvspec.testing.data import failure

    findings = tuple(Finding(f"cat/{i:02d}.png", "nearly black") for i in range(25))
    result = CheckResult("dark", "no nearly black images", "fail", 0.25, 0, findings, "s.yaml:9")
    assert failure(result, " [s.yaml with --set x=1]").splitlines() == [
        "dark: fail (no nearly black images; measured 0.25; from s.yaml:9) [s.yaml with --set x=1]",
        "  25 offending, the first 5:",
        *(f"  cat/{i:02d}.png: nearly black" for i in range(5)),
    ]
    one = CheckResult("dark", "no nearly black images", "fail", 0.5, 0, findings[:1], "s.yaml:9")
    assert failure(one).splitlines()[1:] == ["  1 offending:", "  cat/00.png: nearly black"]


def test_excluding_an_image_takes_its_label_file_and_an_emptied_class_with_it(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from helpers import write_tree

    from cvspec.data.index import read_layout

    def layout(root: Path, **data: Any) -> Any:
        spec = SimpleNamespace(data=SimpleNamespace(**data))
        return read_layout(spec, root / "data")

    yolo = tmp_path / "yolo"
    write_tree(yolo, {
        "data/images/train/a.png": encode(synthetic_image(1)),
        "data/images/train/b.png": encode(synthetic_image(2)),
        "data/labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n",
        "data/labels/train/b.txt": "0 abc 0.5 0.1 0.1\n",  # malformed
        "data/images/val/c.png": encode(synthetic_image(3)),
        "data/labels/val/c.txt": "0 0.5 0.5 0.2 0.2\n",
    })  # fmt: skip
    splits = SimpleNamespace(train="images/train", val="images/val", test=None)
    common = {"format": "yolo", "classes": ["thing"], "splits": splits}
    dirty = layout(yolo, exclude=[], **common)
    assert any(p.path.startswith("labels/train/b.txt") for p in dirty.problems)
    clean = layout(yolo, exclude=["./images/train/b.png"], **common)
    assert [e.path for e in clean.entries] == ["images/train/a.png", "images/val/c.png"]
    assert clean.problems == () and clean.unmatched == ()

    folders = tmp_path / "folders"
    write_tree(folders, {
        f"data/{cls}/{i}.png": encode(synthetic_image(i)) for cls in ("a", "b", "c") for i in (1, 2)
    } | {"data/d/.keep": b""})  # fmt: skip
    (folders / "data/d/.keep").unlink()  # an empty class folder: the checks report it
    ratio = SimpleNamespace(val=0.0, test=0.0, seed=0)
    auto = {"format": "imagefolder", "classes": "auto", "splits": ratio}
    kept = layout(folders, exclude=["b/*/", "b"], **auto)
    assert kept.classes == ("a", "c", "d") and kept.unmatched == ("b/*/",)
    assert {(e.path.split("/")[0], e.label) for e in kept.entries} == {("a", 0), ("c", 1)}


def test_relabel_corrects_labels_in_place_and_names_stale_paths(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from helpers import write_tree

    from cvspec.data.index import Relabel, read_layout
    from cvspec.errors import SpecValueError

    write_tree(tmp_path, {
        f"data/{cls}/{i}.png": encode(synthetic_image(i)) for cls in ("a", "b", "c") for i in (1, 2)
    })  # fmt: skip
    ratio = SimpleNamespace(val=0.0, test=0.0, seed=0)

    def layout(**data: Any) -> Any:
        spec = SimpleNamespace(
            data=SimpleNamespace(format="imagefolder", classes="auto", splits=ratio, **data)
        )
        return read_layout(spec, tmp_path / "data")

    fixed = layout(
        exclude=["c/2.png"],
        relabel={"a/1.png": "c", "./b/2.png": "a", "gone.png": "a", "c/2.png": "a"},
    )
    labels = {e.path: fixed.classes[e.label] for e in fixed.entries}
    assert labels == {
        "a/1.png": "c", "a/2.png": "a", "b/1.png": "b", "b/2.png": "a", "c/1.png": "c",
    }  # fmt: skip
    assert fixed.relabeled == (Relabel("a/1.png", "a", "c"), Relabel("b/2.png", "b", "a"))
    assert fixed.unknown_relabels == ("gone.png", "c/2.png")  # no such image, or excluded
    with pytest.raises(SpecValueError) as caught:
        layout(exclude=[], relabel={"a/1.png": "zebra"})
    assert caught.value.key == ("data", "relabel", "a/1.png")
    assert "class 'zebra' is not one of the dataset's classes" in caught.value.message
