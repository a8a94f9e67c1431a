"""Images as every stage reads them: 16-bit files keep their grey levels (value >> 8, as
OpenCV and so ultralytics read them) in the data checks, training, evaluation and serving."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import cvspec, project
from PIL import Image
from test_data_checks import CLASSIFICATION, clean_tree, encode

from cvspec.data.analyze import analyze_file
from cvspec.preprocess import open_image
from cvspec.serve.demo_model import write_demo_detector
from cvspec.serve.launch import ServerProcess


def sixteen_bit(img: Image.Image) -> Image.Image:
    """The grey image as a 16-bit one with the same levels (v * 257: 0 -> 0, 255 -> 65535)."""
    return Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)


def png(img: Image.Image, **options: Any) -> bytes:
    return encode(img, "PNG", **options)


def test_a_16_bit_image_decodes_to_its_high_byte() -> None:
    levels = np.array([[0, 0x00FF, 0x0100, 0x8000], [0x80FF, 0xFF00, 0xFFFF, 0x1234]], np.uint16)
    want = (levels >> 8).astype(np.uint8)
    sixteen = Image.fromarray(levels)
    assert sixteen.mode == "I;16"
    # a 16-bit PNG and TIFF; a 32-bit TIFF (older Pillow also opens 16-bit PNGs as mode "I")
    for img, fmt in ((sixteen, "PNG"), (sixteen, "TIFF"), (sixteen.convert("I"), "TIFF")):
        opened = Image.open(io.BytesIO(encode(img, fmt)))
        assert opened.mode == img.mode, (opened.mode, fmt)
        decoded = open_image(encode(img, fmt))
        assert decoded.mode == "RGB", (img.mode, fmt)
        for channel in decoded.split():
            np.testing.assert_array_equal(np.asarray(channel), want, f"{img.mode} {fmt}")


def test_the_data_checks_measure_a_16_bit_image_as_its_8_bit_twin(tmp_path: Path) -> None:
    from cvspec.testing.data import synthetic_image

    grey = synthetic_image(3).convert("L")
    (tmp_path / "8.png").write_bytes(png(grey))
    (tmp_path / "16.png").write_bytes(png(sixteen_bit(grey)))
    eight, sixteen = (analyze_file(str(tmp_path / name)) for name in ("8.png", "16.png"))
    assert sixteen.mode == "I;16" and sixteen.error == ""
    assert sixteen._replace(sha256="", mode="") == eight._replace(sha256="", mode="")


def test_a_16_bit_dataset_passes_the_data_stage_it_passes_in_8_bits(tmp_path: Path) -> None:
    """PIL's own conversion clips 16-bit levels to white: every image of a class became one
    blank image, near-duplicates and bright images of each other."""
    files = {
        path: png(sixteen_bit(Image.open(io.BytesIO(data)))) if "/cat/" in path else data
        for path, data in clean_tree().items()
    }
    root = project(tmp_path, CLASSIFICATION, "planted.yaml", files)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 0, result.err
    report = json.loads((root / "runs/planted/data/report.json").read_text())
    assert report["ok"] and report["images"]["decoded"] == 18


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server of the demo detector: a box of class 0 centred in the image, scored by the
    image's mean red level; 2048 pixels at most per image."""
    export = write_demo_detector(tmp_path_factory.mktemp("export"), ["red", "blue"], 32)
    args = ["--model-dir", str(export), "--threads", "1", "--max-pixels", "2048"]
    with ServerProcess(args) as server:
        yield server


def boxes(server: ServerProcess, *images: bytes) -> list[list[tuple[str, float, list[float]]]]:
    files = [("f", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    answer = httpx.post(f"{server.url}/predict", files=files)
    assert answer.status_code == 200, answer.text
    return [
        [(b["label"], b["confidence"], b["box"]) for b in found["boxes"]]
        for found in answer.json()["predictions"]
    ]


def test_the_server_reads_a_16_bit_image_as_the_data_stage_does(detector: Any) -> None:
    grey = Image.new("L", (32, 32), 0x99)  # red and blue 0.6 (white, 1.0, when clipped)
    eight, sixteen = boxes(detector, png(grey), png(sixteen_bit(grey)))
    assert eight == sixteen
    assert [(label, score) for label, score, _ in eight] == [
        ("red", pytest.approx(0.6)),
        ("blue", pytest.approx(0.6)),
    ]
