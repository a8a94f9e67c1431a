"""Serving a detector: YOLO-shaped outputs become boxes in image pixels, after NMS."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest

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


@pytest.mark.parametrize("size", [(64, 32), (33, 100), (640, 480), (32, 32)])
def test_the_letterbox_is_ultralytics_own(size: tuple[int, int]) -> None:
    """Where the image lands in the square, as ultralytics' LetterBox places it for the model
    it trained (the grey it pads with included)."""
    import numpy as np
    from PIL import Image

    from cvspec.preprocess import Preprocess, letterbox, to_array
    from cvspec.train.ultra import offline

    offline()
    from ultralytics.data.augment import LetterBox

    side = 32
    theirs = LetterBox(new_shape=(side, side), auto=False, scale_fill=False, scaleup=True)(
        image=np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    )
    rows, cols = np.nonzero(theirs[:, :, 0] == 255)
    _, nw, nh, left, top = letterbox(size, side)
    assert (left, top, left + nw - 1, top + nh - 1) == (
        cols.min(),
        rows.min(),
        cols.max(),
        rows.max(),
    )
    pre = Preprocess(side, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), fit="letterbox")
    ours = to_array([Image.new("RGB", size, (255, 255, 255))], pre)[0][0] * 255
    assert np.allclose(ours, theirs[:, :, 0], atol=1)


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
