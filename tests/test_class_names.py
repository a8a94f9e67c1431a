"""Class names as folders have them: spaces and letters of any script, in the spec, the data
stage, the generated files and the label review's paste-ready relabel block."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from helpers import cvspec, project, tool
from test_data_checks import encode

from cvspec.spec import load_spec
from cvspec.testing.data import synthetic_image

CAFE_NFD = unicodedata.normalize("NFD", "café")  # as a macOS file system spells the folder
NAMES = ["golden retriever", "café", "狗", "3", "no", "a.b-c_d"]

SPEC = """\
cvspec: 1
project: {name: pets}
task: classification
data:
  path: ../data
  classes: auto
  splits: {val: 0.3, test: 0.0, seed: 0}
  quality: {min_images_per_class: 4, duplicates: {exact: 0}, leakage: 0}
model: {arch: timm/resnet18, image_size: 32}
"""


def test_class_names_may_hold_spaces_and_any_script() -> None:
    from cvspec.spec.model_base import is_class_name

    for name in [*NAMES, CAFE_NFD]:
        assert is_class_name(name), name
    bad = [" x", "x ", "_x", "-x", ".x", "a/b", "a\tb", "a\nb", "a\u00a0b", "", "a:b", "a$b"]
    for name in bad:
        assert not is_class_name(name), name


def test_a_spec_names_them_and_the_schema_agrees(tmp_path: Path) -> None:
    listed = ", ".join(json.dumps(n, ensure_ascii=False) for n in NAMES)
    relabel = '    "golden retriever/001.jpg": "café"\n'
    spec = SPEC.replace("classes: auto", f"classes: [{listed}]\n  relabel:\n{relabel.rstrip()}")
    root = project(tmp_path, spec, "pets.yaml")
    result = cvspec("validate", "specs/pets.yaml", cwd=root)
    assert result.code == 0, result.err
    loaded = load_spec(root / "specs/pets.yaml")
    assert list(loaded.spec.data.classes) == NAMES
    assert dict(loaded.spec.data.relabel) == {"golden retriever/001.jpg": "café"}
    schema = Path(__file__).resolve().parent.parent / "schemas/cvspec.schema.json"
    checker = tool("check-jsonschema")
    checked = subprocess.run(
        [checker, "--schemafile", str(schema), str(root / "specs/pets.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    long = SPEC.replace("classes: auto", f"classes: [a, {'b' * 101}]")
    (root / "specs/pets.yaml").write_text(long, encoding="utf-8")
    too_long = cvspec("validate", "specs/pets.yaml", cwd=root)
    assert (
        too_long.code == 2 and "data.classes[1]: must have at most 100 characters" in too_long.err
    )


def test_the_label_reviews_relabel_block_pastes_back_into_the_spec(tmp_path: Path) -> None:
    from cvspec.evaluate.review import write_review

    items = [
        {"path": f"{label}/{i:03d} x.jpg", "label": label, "predicted": predicted,
         "confidence": 0.9, "label_probability": 0.05}
        for i, (label, predicted) in enumerate(zip(NAMES, NAMES[1:] + NAMES[:1], strict=True))
    ]  # fmt: skip
    write_review(tmp_path, items, "data", "val")
    md = (tmp_path / "label_review.md").read_text(encoding="utf-8")
    block = md.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert '"golden retriever/000 x.jpg": "café"\n' in block  # UTF-8, not "caf\xE9"
    assert "\\x" not in block and "\\u" not in block
    assert '"狗/002 x.jpg": "3"\n' in block  # a digit is a name, not a number
    relabel = "".join(f"    {line}\n" for line in block.splitlines())
    listed = ", ".join(json.dumps(n, ensure_ascii=False) for n in NAMES)
    spec = SPEC.replace("classes: auto", f"classes: [{listed}]\n  relabel:\n{relabel.rstrip()}")
    root = project(tmp_path, spec, "pets.yaml")
    assert cvspec("validate", "specs/pets.yaml", cwd=root).code == 0
    loaded = load_spec(root / "specs/pets.yaml")
    assert dict(loaded.spec.data.relabel) == {i["path"]: i["predicted"] for i in items}


def test_one_name_with_its_accents_composed_two_ways_is_listed_twice(tmp_path: Path) -> None:
    listed = ", ".join(json.dumps(n, ensure_ascii=False) for n in ["café", "dog", CAFE_NFD])
    root = project(tmp_path, SPEC.replace("classes: auto", f"classes: [{listed}]"), "pets.yaml")
    result = cvspec("validate", "specs/pets.yaml", cwd=root)
    assert result.code == 2, result.err
    assert (
        f"specs/pets.yaml:6:28: error[duplicate]: class '{CAFE_NFD}' is listed twice" in result.err
    )
    assert "already at index 0 (the same name, its accents composed differently)" in result.err


def test_a_path_splits_the_same_whichever_way_its_accents_are_spelled() -> None:
    """A macOS checkout (combining accents) and a Linux one (composed letters) of one dataset
    put each image in the same split."""
    from cvspec.data.index import assign_split

    paths = [f"café/{i:03d}.png" for i in range(50)]
    nfc = [assign_split(p, 0, 0.3, 0.2) for p in paths]
    nfd = [assign_split(unicodedata.normalize("NFD", p), 0, 0.3, 0.2) for p in paths]
    assert nfc == nfd and len(set(nfc)) == 3
    assert assign_split("rows/000.png", 0, 0.25, 0.25) == "test"  # ASCII paths split as before


def test_a_folder_spelled_with_a_combining_accent_is_the_specs_class(tmp_path: Path) -> None:
    """A dataset copied from a macOS disk (NFD folder names), a spec typed in an editor (NFC):
    the class, data.relabel and data.exclude all find the folder."""
    root = project(tmp_path, SPEC, "pets.yaml")
    seed = 0
    for name in (CAFE_NFD, "dog"):
        for i in range(6):
            (root / "data" / name).mkdir(parents=True, exist_ok=True)
            (root / "data" / name / f"{i:03d}.png").write_bytes(encode(synthetic_image(seed)))
            seed += 1
    spec = root / "specs/pets.yaml"
    text = spec.read_text(encoding="utf-8").replace("classes: auto", "classes: [café, dog]")
    extra = '  relabel:\n    "café/001.png": dog\n  exclude: ["café/005.png"]\n'
    spec.write_text(text.replace("  splits:", extra + "  splits:"), encoding="utf-8")
    assert "café" in spec.read_text(encoding="utf-8") and CAFE_NFD not in spec.read_text("utf-8")
    stage = cvspec("run", "specs/pets.yaml", "--stage", "data", cwd=root)
    assert stage.code == 0, stage.err
    report = json.loads((root / "runs/pets/data/report.json").read_text(encoding="utf-8"))
    assert report["classes"] == ["café", "dog"]
    assert "not in data.classes" not in json.dumps(report, ensure_ascii=False)
    assert report["relabeled"]["count"] == 1 and report["relabeled"]["unknown_paths"] == []
    assert report["relabeled"]["labels"][0]["was"] == "café"
    assert report["relabeled"]["labels"][0]["now"] == "dog"
    assert "1 label(s) corrected by data.relabel" in stage.err
    totals = {
        c: sum(split.get(c, 0) for split in report["class_counts"].values())
        for c in ["café", "dog"]
    }
    assert totals == {"café": 4, "dog": 7}  # café: 6, less one relabelled and one excluded


def pets(root: Path) -> None:
    """Images in class folders named as people name them."""
    seed = 0
    for name in ("golden retriever", "café", "狗"):
        for i in range(6):
            (root / "data" / name).mkdir(parents=True, exist_ok=True)
            (root / "data" / name / f"{i:03d}.png").write_bytes(encode(synthetic_image(seed)))
            seed += 1


@pytest.mark.slow
def test_the_data_stage_the_build_and_the_data_tests_take_such_names(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC, "pets.yaml")
    pets(root)
    stage = cvspec("run", "specs/pets.yaml", "--stage", "data", cwd=root)
    assert stage.code == 0, stage.err
    report = json.loads((root / "runs/pets/data/report.json").read_text(encoding="utf-8"))
    assert report["classes"] == ["café", "golden retriever", "狗"]
    # the label review's suggestion for one of them, pasted into the spec
    spec = root / "specs/pets.yaml"
    relabel = '  relabel:\n    "golden retriever/001.png": "狗"\n'
    text = spec.read_text(encoding="utf-8").replace("  splits:", relabel + "  splits:")
    text = text.replace("classes: auto", 'classes: [café, golden retriever, "狗"]')
    spec.write_text(text, encoding="utf-8")
    stage = cvspec("run", "specs/pets.yaml", "--stage", "data", cwd=root)
    assert stage.code == 0, stage.err
    assert "1 label(s) corrected by data.relabel" in stage.err
    md = (root / "runs/pets/data/report.md").read_text(encoding="utf-8")
    assert "- `golden retriever/001.png`: golden retriever -> 狗" in md
    build = cvspec("build", "specs/pets.yaml", cwd=root)
    assert build.code == 0, build.err
    import yaml  # generated YAML is ASCII (escapes), so any reader parses it the same

    config = yaml.safe_load((root / "generated/pets/train/config.yaml").read_bytes())
    assert config["data"]["classes"] == ["café", "golden retriever", "狗"]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "generated/pets/tests"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout


def test_a_chart_without_freetype_still_draws_any_name() -> None:
    from PIL import Image, ImageDraw, ImageFont

    from cvspec.data.report import draw_name

    draw = ImageDraw.Draw(Image.new("RGB", (60, 20), "white"))
    draw.font = ImageFont.load_default_imagefont()  # PIL's Latin-1 bitmap font
    for name in ("café", "狗"):
        draw_name(draw, (0, 0), name)
