"""Serving a detector: YOLO-shaped outputs become boxes in image pixels, after NMS."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from cvspec.evaluate.export import detection_preprocess
from cvspec.serve.demo_model import write_demo_detector
from cvspec.serve.launch import ServerProcess
from cvspec.serve.postprocess import detect

LABELS = ("circle", "square", "triangle")


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    # (4 + 3 classes, 4 anchors): two overlapping circles, one square on the same spot, one weak
    raw = np.zeros((7, 4), dtype=np.float32)
    raw[:4, 0] = [10, 10, 8, 8]
    raw[:4, 1] = [11, 10, 8, 8]
    raw[:4, 2] = [10, 10, 8, 8]
    raw[:4, 3] = [30, 30, 4, 4]
    raw[4, 0], raw[4, 1], raw[5, 2], raw[6, 3] = 0.9, 0.8, 0.7, 0.1
    answer = detect(raw, LABELS, (64, 32), side=32)
    assert answer == {
        "boxes": [
            {"label": "circle", "confidence": 0.9, "box": [12.0, 6.0, 28.0, 14.0]},
            {"label": "square", "confidence": 0.7, "box": [12.0, 6.0, 28.0, 14.0]},
        ]
    }


def test_a_crowded_image_keeps_as_many_boxes_as_ultralytics() -> None:
    """Up to ultralytics' max_det (300), the boxes its validator counted in the evaluate
    stage's mAP: 250 separate objects are 250 boxes, not the first 100."""
    raw = np.zeros((7, 250), dtype=np.float32)
    raw[0] = np.arange(250) % 25 * 10 + 5  # a 25 x 10 grid of 4-pixel boxes, 10 px apart
    raw[1] = np.arange(250) // 25 * 10 + 5
    raw[2:4] = 4
    raw[4] = np.linspace(0.9, 0.5, 250)
    answer = detect(raw, LABELS, (250, 100), side=250)
    assert len(answer["boxes"]) == 250


def png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_a_detector_answers_boxes_and_counts_them(tmp_path: Path) -> None:
    export = write_demo_detector(tmp_path / "export", list(LABELS), image_size=32)
    with ServerProcess(["--model-dir", str(export), "--threads", "1"]) as server:
        files = [
            ("f", ("a.png", png((204, 0, 0), (64, 32)), "image/png")),
            ("f", ("b.png", png((0, 0, 153), (32, 32)), "image/png")),
            ("f", ("c.png", png((51, 0, 0), (32, 32)), "image/png")),
        ]
        answer = httpx.post(f"{server.url}/predict", files=files)
        metrics = httpx.get(server.metrics_url).text
    assert answer.status_code == 200, answer.text
    boxes = [a["boxes"] for a in answer.json()["predictions"]]
    assert [[(b["label"], b["box"]) for b in found] for found in boxes] == [
        # centred in the letterboxed square (the image in its middle rows, grey above and
        # below), mapped back through the letterbox: the image's whole height
        [("circle", [16.0, 0.0, 48.0, 32.0])],
        [("triangle", [0.0, 0.0, 8.0, 8.0])],
        [],  # red 0.2 is under the 0.25 confidence floor
    ]
    assert [b["confidence"] for found in boxes for b in found] == pytest.approx(
        [(204 + 114) / 2 / 255, 0.6],
        abs=1e-5,  # half the square is the letterbox's grey
    )
    assert 'cvspec_predictions_total{class="circle"} 1.0' in metrics
    assert 'cvspec_predictions_total{class="triangle"} 1.0' in metrics
    assert 'task="detection"' in metrics


def test_the_letterbox_is_the_input_ultralytics_evaluates(tmp_path: Path) -> None:
    """The server's input for a detector is, bit for bit, what ultralytics' validator (the
    evaluate stage's mAP) feeds the model for the same image file: the same scale, rounding,
    resize filter, grey pad and place in the square; and a box maps back to the image."""
    import numpy as np
    from PIL import Image

    from cvspec.preprocess import letterbox, open_image, resized
    from cvspec.train.ultra import offline

    offline()
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.utils import DEFAULT_CFG

    side, rng = 64, np.random.default_rng(0)
    sizes = [(320, 200), (100, 301), (64, 64), (50, 30), (13, 40), (640, 480), (33, 100)]
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i, (w, h) in enumerate(sizes):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"images/{i}.png")
        (tmp_path / f"labels/{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    cfg = get_cfg(DEFAULT_CFG, {"imgsz": side, "rect": False})
    data = {"names": {0: "a"}, "nc": 1, "channels": 3}
    dataset = build_yolo_dataset(cfg, str(tmp_path / "images"), 4, data, mode="val", stride=32)
    pre = detection_preprocess(side)
    for item in (dataset[i] for i in range(len(dataset))):
        path = Path(item["im_file"])
        ours = resized(open_image(path.read_bytes()), pre)
        theirs = item["img"].numpy().transpose(1, 2, 0)  # RGB, as the model reads it
        assert np.array_equal(ours, theirs), path.name
        w, h = sizes[int(path.stem)]
        _, nw, nh, left, top = letterbox((w, h), side)
        (gain_h, gain_w), pad = item["ratio_pad"]
        assert (nw / w, nh / h, left, top) == pytest.approx((gain_w, gain_h, *pad))
        # a box around the whole placed image maps back to the whole original image
        row = np.array([left + nw / 2, top + nh / 2, nw, nh, 1.0], dtype=np.float32)
        box = detect(row[:, None], ("a",), (w, h), side, "letterbox")["boxes"][0]["box"]
        assert box == pytest.approx([0, 0, w, h], abs=0.01)


def test_the_box_confidence_floor_is_a_setting(tmp_path: Path) -> None:
    export = write_demo_detector(tmp_path / "export", list(LABELS), image_size=32)
    args = ["--model-dir", str(export), "--threads", "1", "--box-confidence", "0.61"]
    with ServerProcess(args) as server:
        files = [
            ("f", ("a.png", png((204, 0, 0), (64, 32)), "image/png")),  # circle at 0.62
            ("f", ("b.png", png((0, 0, 153), (32, 32)), "image/png")),  # triangle at 0.6
        ]
        answer = httpx.post(f"{server.url}/predict", files=files)
    assert answer.status_code == 200, answer.text
    labels = [[b["label"] for b in a["boxes"]] for a in answer.json()["predictions"]]
    assert labels == [["circle"], []]


def test_serving_a_detector_without_opencv_is_one_clear_error(tmp_path: Path) -> None:
    """Where OpenCV is not installed (cvspec[serve] without serve-detect), `cvspec serve` of a
    detector stops at start with what to install, instead of answering every request 500."""
    from helpers import REPO, cvspec

    model = write_demo_detector(tmp_path / "export", ["a", "b"])
    blocker = tmp_path / "no-opencv" / "cv2"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no OpenCV here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])}
    result = cvspec("serve", "--model-dir", str(model), "--port", "38411", cwd=tmp_path, env=env)
    assert result.code != 0
    assert "a detector's input is resized with OpenCV, as ultralytics resizes it: install " in (
        result.err
    )
    assert "cvspec[serve-detect]" in result.err and "Traceback" not in result.err
