"""Detection end to end on the shapes example: ultralytics offline, cvspec's run layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Result, cvspec
from test_train import current_run

# The shapes example as a user changes it: started from a detector of their own (a local .pt
# file), mosaic on, one image left out; trained for the ci profile's 1 epoch.
SHAPES_CHANGES = {
    "    - hflip: {p: 0.5}\n": "    - hflip: {p: 0.5}\n    - mosaic: {p: 1.0}\n",
    "  splits: {train: images/train, val: images/val}\n": (
        "  splits: {train: images/train, val: images/val}\n  exclude: [images/train/0000.jpg]\n"
    ),
    "  pretrained: false\n": "  pretrained: true\n  weights: ../mybest.pt\n",
}
# A yolov8n for the 3 shapes, untrained, saved as ultralytics loads a .pt file.
WEIGHTS = """\
from cvspec.train.ultra import offline
offline()
import torch
from ultralytics.nn.tasks import DetectionModel
torch.save({"model": DetectionModel("yolov8n.yaml", nc=3, verbose=False)}, "mybest.pt")
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """The changed shapes example through data, train, export and evaluate."""
    root = tmp_path_factory.mktemp("shapes")
    (root / ".git").mkdir()
    env = {"YOLO_CONFIG_DIR": str(root / "yolo"), "MPLCONFIGDIR": str(root / "mpl")}
    assert cvspec("init", "--example", "shapes", ".", cwd=root).code == 0
    spec = root / "specs/shapes.yaml"
    text = spec.read_text()
    for old, new in SHAPES_CHANGES.items():
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    made = subprocess.run(
        [sys.executable, "-c", WEIGHTS], cwd=root, env={**os.environ, **env},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert cvspec("build", cwd=root).code == 0
    result = cvspec(
        "run", "specs/shapes.yaml", "--profile", "ci",  # its map50 gate is 0: a smoke run
        "--stage", "data", "--stage", "train", "--stage", "export", "--stage", "evaluate",
        cwd=root, env=env, timeout=900,
    )  # fmt: skip
    return root, result


@pytest.mark.slow
def test_shapes_trains_exports_and_evaluates_for_one_epoch(shapes: tuple[Path, Result]) -> None:
    tmp_path, result = shapes
    assert result.code == 0, result.err[-3000:]
    assert (tmp_path / "yolo/Ultralytics/Arial.ttf").is_file()  # no font download was tried
    assert not list((tmp_path / "data/shapes").rglob("*.cache"))  # the versioned data as it was
    log = result.out + result.err  # not a terminal: lines, not ultralytics' redraws
    assert "\x1b" not in log and "\r" not in log
    assert "all " in log and "mAP50" in log  # its validation table still reaches the log

    run = current_run(tmp_path, "shapes")
    status = json.loads((run / "run.json").read_text())
    assert status["state"] == "done" and status["task"] == "detection"
    assert status["arch"] == "yolov8n.yaml"  # the architecture mybest.pt holds
    assert status["classes"] == ["circle", "square", "triangle"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    assert {"map50", "map50_95", "precision", "recall", "train_box_loss"} <= set(rows[0])
    assert (run / "weights/best.pt").is_file() and (run / "config.yaml").is_file()

    export = tmp_path / "runs/shapes/export"
    assert json.loads((export / "labels.json").read_text()) == status["classes"]
    pre = json.loads((export / "preprocess.json").read_text())
    assert pre["image_size"] == 128 and pre["mean"] == [0.0, 0.0, 0.0] and pre["std"] == [1, 1, 1]
    info = json.loads((export / "export.json").read_text())
    assert info["exporter"] == "ultralytics" and info["parity"]["onnx"] >= 0.0

    report = json.loads((tmp_path / "runs/shapes/evaluate/metrics.json").read_text())
    assert report["task"] == "detection" and report["split"] == "val"
    for key in ("map50", "map50_95", "precision", "recall", "latency_p95_ms", "model_size_mb"):
        assert isinstance(report["metrics"][key], float), key
    assert [g["name"] for g in report["gates"]] == ["map50", "latency_p95_ms"]
    card = (tmp_path / "runs/shapes/evaluate/MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: shapes\n")


@pytest.mark.slow
def test_the_detector_card_tells_what_the_run_did(shapes: tuple[Path, Result]) -> None:
    root, result = shapes
    assert result.code == 0, result.err[-3000:]
    card = (root / "runs/shapes/evaluate/MODEL_CARD.md").read_text()
    # what ultralytics trained: the weights file's architecture, from its weights
    assert "- Model: `ultralytics/yolov8n.yaml`, initialised from `mybest.pt`\n" in card
    assert str(root) not in card and "from scratch" not in card  # no path of this machine
    # mosaic was on, but ultralytics closes it for the last 10 epochs, and this run had 1
    assert (
        "- Augmentations: hflip, mosaic (never applied: ultralytics' close_mosaic (1) covers "
        "all 1 epochs of this run)\n"
    ) in card
    # the data stage's report of data.exclude
    report = json.loads((root / "runs/shapes/data/report.json").read_text())
    assert report["excluded"]["count"] == 1
    assert "- 1 image(s) left out by data.exclude (see `runs/shapes/data/report.md`)\n" in card
    # the exported preprocessing letterboxes, and the card says so
    pre = json.loads((root / "runs/shapes/export/preprocess.json").read_text())
    assert pre["fit"] == "letterbox"
    assert (
        "- Input: RGB images scaled to fit 128 x 128 px with their aspect ratio kept, the rest "
        "padded with grey (letterbox; see `export/preprocess.json`)\n"
    ) in card
    assert "resized to" not in card
    # the evaluation's own counts: the val split's 40 images and every box their labels hold
    boxes = sum(
        len(p.read_text().splitlines()) for p in (root / "data/shapes/labels/val").glob("*.txt")
    )
    metrics = json.loads((root / "runs/shapes/evaluate/metrics.json").read_text())["metrics"]
    assert (metrics["images"], metrics["boxes"]) == (40, boxes)
    assert (
        f"- mAP50 {metrics['map50']:.3f} on 40 evaluation images with {boxes} boxes: on so few, "
        "mAP is a rough figure; more labelled images would make it firmer.\n"
    ) in card
    assert "a few percentage points" not in card


@pytest.mark.slow
def test_a_bad_ultralytics_override_is_a_clear_error(tmp_path: Path) -> None:
    from test_train import train_module

    (tmp_path / ".git").mkdir()
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    assert cvspec("build", cwd=tmp_path).code == 0
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    result = train_module(
        "--config-dir", "generated/shapes/train", "epochz=1", cwd=tmp_path, env=env
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: invalid training override 'epochz=1': expected KEY=VALUE with an ultralytics "
        "train argument as KEY (e.g. epochs=3)\n"
    )


def test_a_detector_whose_arch_is_a_local_file_is_not_asked_for_weights(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    spec = tmp_path / "specs/shapes.yaml"
    text = spec.read_text().replace("ultralytics/yolov8n.yaml", "ultralytics/mine.pt")
    spec.write_text(text.replace("  pretrained: false\n", "  pretrained: true\n"))
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    result = cvspec("run", "specs/shapes.yaml", "--stage", "train", cwd=tmp_path, env=env)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "model weights mine.pt not found locally" in result.err  # the file, not pretrained:
    assert "model.pretrained: true" not in result.err


def test_an_unknown_ultralytics_model_config_is_reported_at_model_arch(tmp_path: Path) -> None:
    """ultralytics raises FileNotFoundError from inside its model builder: a located error."""
    (tmp_path / ".git").mkdir()
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    spec = tmp_path / "specs/shapes.yaml"
    spec.write_text(spec.read_text().replace("yolov8n.yaml", "yolov99n.yaml"))
    assert cvspec("build", cwd=tmp_path).code == 0
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    result = cvspec("run", "specs/shapes.yaml", "--stage", "train", cwd=tmp_path, env=env)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "internal error" not in result.err
    assert (
        "error[spec-value]: model.arch: ultralytics has no model config 'yolov99n.yaml'; did "
        "you mean ultralytics/yolov9" in result.err
    )


@pytest.mark.slow
def test_a_flat_yolo_dataset_with_ratio_splits_trains(tmp_path: Path) -> None:
    """`cvspec new --task detection`'s layout: one images/ and labels/ folder, split by ratio.

    Ultralytics gets one list of images per split, assigned as the data stage assigns them.
    """
    import shutil

    from cvspec.data.index import assign_split

    (tmp_path / ".git").mkdir()
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    data = tmp_path / "data/shapes"
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            for path in sorted((data / kind / split).iterdir()):
                shutil.move(path, data / kind / f"{split}-{path.name}")
            (data / kind / split).rmdir()
    spec = tmp_path / "specs/shapes.yaml"
    text = spec.read_text()
    old = "splits: {train: images/train, val: images/val}"
    assert old in text
    spec.write_text(text.replace(old, "splits: {val: 0.3, test: 0.0, seed: 7}"))
    assert cvspec("build", cwd=tmp_path).code == 0
    result = cvspec(
        "run", "specs/shapes.yaml", "--profile", "ci", "--stage", "data", "--stage", "train",
        cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    run = current_run(tmp_path, "shapes")
    lists = {s: (run / f"{s}.txt").read_text().splitlines() for s in ("train", "val")}
    assert not (run / "test.txt").exists()
    images = sorted(p.name for p in (data / "images").iterdir())
    assert sorted(Path(p).name for p in lists["train"] + lists["val"]) == images
    for split, paths in lists.items():
        assert lists[split], split
        for path in paths:
            assert assign_split(f"images/{Path(path).name}", 7, 0.3, 0.0) == split
    assert json.loads((run / "run.json").read_text())["state"] == "done"


def test_excluded_images_never_reach_ultralytics_lists(tmp_path: Path) -> None:
    """Ultralytics reads folders or lists of images: with data.exclude every split becomes a
    list without the excluded images, for folder and for ratio splits alike."""
    from cvspec.data.index import assign_split
    from cvspec.train.ultra import _with_split_lists

    root = tmp_path / "data"
    for rel in ("images/train/a.png", "images/train/b.png", "images/val/c.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")  # names only: nothing here decodes an image
    folders = {"path": str(root), "train": "images/train", "val": "images/val"}
    kept = _with_split_lists({**folders, "cvspec_exclude": ["images/train/b.png"]}, tmp_path)
    assert Path(kept["train"]).read_text() == f"{root}/images/train/a.png\n"
    assert Path(kept["val"]).read_text() == f"{root}/images/val/c.png\n"
    assert "cvspec_exclude" not in kept
    assert _with_split_lists(dict(folders), tmp_path) == folders  # nothing to list

    flat = {"path": str(root), "cvspec_ratio_splits": {"val": 0.5, "test": 0.0, "seed": 3}}
    for name in "defghijk":
        (root / f"images/{name}.png").write_bytes(b"")
    ratio = _with_split_lists({**flat, "cvspec_exclude": ["images/train", "images/val"]}, tmp_path)
    listed = Path(ratio["train"]).read_text().split() + Path(ratio["val"]).read_text().split()
    assert sorted(Path(p).name for p in listed) == [f"{n}.png" for n in "defghijk"]
    for split in ("train", "val"):
        for path in Path(ratio[split]).read_text().split():
            assert assign_split(f"images/{Path(path).name}", 3, 0.5, 0.0) == split


def test_the_data_digest_of_a_detection_run_is_its_content(tmp_path: Path) -> None:
    """A checkout or a restored file (new mtimes, same bytes) reuses the finished run; a
    change to an excluded file does too; a changed label does not."""
    import os

    from cvspec.train.ultra import _files_digest

    label = tmp_path / "labels/train/a.txt"
    label.parent.mkdir(parents=True)
    label.write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "images/train/bad.png").write_bytes(b"broken")
    first = _files_digest(tmp_path, ("images/train/bad.png",))
    os.utime(label, (1, 1))
    (tmp_path / "images/train/bad.png").write_bytes(b"broken differently")
    assert _files_digest(tmp_path, ("images/train/bad.png",)) == first
    label.write_text("0 0.5 0.5 0.3 0.3\n")
    assert _files_digest(tmp_path, ("images/train/bad.png",)) != first


def test_new_detector_weights_at_the_same_path_are_another_run(tmp_path: Path) -> None:
    """The run id takes a local .pt's (or the repository's .yaml's) bytes, not only its path:
    weights written over start.pt start a new run instead of reusing the finished one; an
    ultralytics config by name keeps the id it had."""
    from cvspec.train.runs import run_id
    from cvspec.train.ultra import model_identity

    weights = tmp_path / "weights/start.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"first weights")
    first = run_id(model_identity(str(weights), tmp_path))
    assert run_id(model_identity("weights/start.pt", tmp_path)) != first  # another name
    weights.write_bytes(b"second weights")
    assert run_id(model_identity(str(weights), tmp_path)) != first
    weights.write_bytes(b"first weights")
    assert run_id(model_identity(str(weights), tmp_path)) == first
    assert model_identity("yolo11n.yaml", tmp_path) == {"model": "yolo11n.yaml"}


def test_a_detection_run_adds_no_augmentation_of_ultralytics_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the albumentations package installed, ultralytics adds its default Albumentations
    pipeline (Blur, MedianBlur, ToGray, CLAHE: 1 % of training images each) to any training
    run whose train call has no `augmentations`; cvspec passes an empty list, so the spec's
    data.augment (here hflip alone) is all the augmentation there is."""
    import inspect

    from cvspec.train import ultra

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    ultra.offline()
    from ultralytics.data.augment import Albumentations

    if "transforms" not in inspect.signature(Albumentations.__init__).parameters:
        pytest.skip("this ultralytics has no `augmentations` argument (before September 2025)")
    (tmp_path / ".git").mkdir()
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    assert cvspec("build", cwd=tmp_path).code == 0
    calls: list[dict[str, object]] = []

    class Stop(Exception):
        pass

    class Model:
        def train(self, **kwargs: object) -> None:
            calls.append(kwargs)
            raise Stop

    monkeypatch.setattr(ultra, "yolo", lambda source, **kwargs: Model())
    with pytest.raises(Stop):
        ultra.train(tmp_path / "generated/shapes/train", [], tmp_path,
                    tmp_path / "runs/shapes/train", None)  # fmt: skip
    (train,) = calls
    assert train["augmentations"] == []
    assert (train["fliplr"], train["mosaic"], train["hsv_v"]) == (0.5, 0.0, 0.0)


@pytest.mark.parametrize("plugin", [False, True])
def test_a_process_that_trained_a_detector_still_names_a_non_image(
    tmp_path: Path, plugin: bool
) -> None:
    """ultralytics' import replaces PIL.Image.open with an opener that tries to pip-install a
    HEIF plugin for any file PIL cannot identify (ModuleNotFoundError offline); after cvspec
    imports ultralytics, a data check in the same process still says what the file is. An
    installed plugin (here a stand-in for pi-heif, which is not installed) is registered once,
    as ultralytics would, so a detector's .heic images still load."""
    (tmp_path / "notes.jpg").write_text("not a picture\n")
    code = (
        "import sys\nfrom pathlib import Path\nfrom cvspec.train.ultra import offline\n"
        "offline()\nassert 'ultralytics' in sys.modules\n"
        "from cvspec.data.files import probe\nprint(probe(Path(sys.argv[1])).error)\n"
    )
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "yolo")}
    if plugin:
        (tmp_path / "site/pi_heif").mkdir(parents=True)
        (tmp_path / "site/pi_heif/__init__.py").write_text(
            "def register_heif_opener():\n    print('registered')\n"
        )
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "notes.jpg")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "not an image (PIL cannot identify the format)"
    assert "pi-heif" not in proc.stdout + proc.stderr
    assert proc.stdout.count("registered") == plugin


def test_label_caches_a_run_makes_leave_with_it_and_others_stay(tmp_path: Path) -> None:
    from cvspec.train.ultra import dataset_untouched

    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/old.cache").write_text("the user's")
    with dataset_untouched(tmp_path):
        (tmp_path / "labels/train.cache").write_text("ultralytics'")
        (tmp_path / "labels.cache").write_text("ultralytics'")
    assert sorted(p.name for p in tmp_path.rglob("*.cache")) == ["old.cache"]


def test_an_unfinished_detection_run_says_how_many_epochs_it_did(tmp_path: Path) -> None:
    from cvspec.errors import CvspecError
    from cvspec.train.runs import RunDir, finished, set_current

    run = RunDir(tmp_path / "abc")
    run.path.mkdir()
    (run.path / "run.json").write_text('{"task": "detection", "state": "running"}')
    (run.path / "results.csv").write_text("epoch,map50\n1,0.1\n2,0.2\n")
    set_current(tmp_path, run, "detection")
    with pytest.raises(CvspecError, match=r"run abc has not finished training \(2 epoch\(s\) done"):
        finished(tmp_path)


def test_ratio_split_lists_hold_only_images_ultralytics_trains_on(tmp_path: Path) -> None:
    """The data stage reports a .jfif in a detector's images/ as skipped (ultralytics does not
    train on it): the split lists the trainer writes leave it out the same way."""
    from PIL import Image

    from cvspec.generate.builtin.train_config import RATIO_SPLITS_KEY
    from cvspec.train.ultra import _with_split_lists

    images = tmp_path / "data/images"
    images.mkdir(parents=True)
    for i in range(12):
        Image.new("RGB", (8, 8)).save(images / f"{i:02d}.png")
    Image.new("RGB", (8, 8)).save(images / "photo.jfif", "JPEG")
    ratio = {"images": "images", "val": 0.25, "test": 0.0, "seed": 0}
    data = {"path": str(tmp_path / "data"), RATIO_SPLITS_KEY: ratio}
    run = tmp_path / "run"
    run.mkdir()
    out = _with_split_lists(data, run)
    lists = [Path(out[split]).read_text().split() for split in ("train", "val")]
    listed = [Path(line).name for lines in lists for line in lines]
    assert sorted(listed) == [f"{i:02d}.png" for i in range(12)]


def test_ultralytics_p6_and_scaled_config_names_are_known() -> None:
    """yolov8n6.yaml is ultralytics' old name of yolov8n-p6.yaml: accepted, as it accepts it."""
    from cvspec.errors import SpecValueError
    from cvspec.train.ultra import _known_config

    for name in ("yolov8n6.yaml", "yolov5s6.yaml", "yolov8n-p6.yaml", "yolov8n.yaml"):
        _known_config(name, Path("."))
    with pytest.raises(SpecValueError):
        _known_config("yolov8n7.yaml", Path("."))


@pytest.mark.slow
def test_the_card_names_classes_the_evaluation_split_has_no_box_of(tmp_path: Path) -> None:
    """A class only the training split shows has no AP on val: the per-class rows and the
    min_class_ap50 gate leave it out, so the card says it was not evaluated; the weakest
    classes of a detector rank by their AP50, and the card says that is the number shown."""
    (tmp_path / ".git").mkdir()
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    assert cvspec("init", "--example", "shapes", ".", cwd=tmp_path).code == 0
    for labels in (tmp_path / "data/shapes/labels/val").glob("*.txt"):  # no triangle in val
        kept = [line for line in labels.read_text().splitlines() if not line.startswith("2 ")]
        labels.write_text("".join(f"{line}\n" for line in kept))
    result = cvspec(
        "run", "specs/shapes.yaml", "--profile", "ci", "--set", "model.image_size=64",
        "--set", "evaluate.gates.min_class_ap50={min: 0.0}",
        "--stage", "train", "--stage", "export", "--stage", "evaluate",
        cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    report = json.loads((tmp_path / "runs/shapes/evaluate/metrics.json").read_text())
    assert sorted(report["per_class"]) == ["circle", "square"]
    assert report["classes_without_boxes"] == ["triangle"]
    card = (tmp_path / "runs/shapes/evaluate/MODEL_CARD.md").read_text()
    assert (
        "- Not evaluated: `triangle` (has no box in the val split): no metric or gate here "
        "covers it; add labelled images of it to that split.\n"
    ) in card
    weakest = next(line for line in card.splitlines() if line.startswith("- Weakest classes: "))
    assert weakest.count("(AP50 ") == 2, weakest
