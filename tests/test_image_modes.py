"""Images as every stage reads them: 16-bit files keep their grey levels (value >> 8, as
OpenCV and so ultralytics read them), and a photo's EXIF orientation is applied, in the data
checks, training, evaluation and serving."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import cvspec, project
from PIL import Image, ImageOps
from test_data_checks import CLASSIFICATION, clean_tree, encode

from cvspec.data.analyze import analyze_file
from cvspec.preprocess import open_image
from cvspec.serve.demo_model import write_demo_detector
from cvspec.serve.launch import ServerProcess
from cvspec.testing.data import synthetic_image


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


# orientation -> what turns the upright image into the pixels a file with it stores
STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # the file is shown turned 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def stored_pixels(upright: Image.Image, turn: int) -> Image.Image:
    """The pixels a file with EXIF orientation `turn` stores to show `upright`."""
    return upright.transpose(STORE[turn]) if turn in STORE else upright.copy()


def stored_turned(upright: Image.Image, turn: int, fmt: str = "PNG") -> bytes:
    """A file that shows `upright` through its EXIF orientation `turn` (as a phone writes a
    photo taken sideways)."""
    stored = stored_pixels(upright, turn)
    if fmt == "TIFF":
        return encode(stored, fmt, tiffinfo={0x0112: turn})
    exif = Image.Exif()
    exif[0x0112] = turn
    return encode(stored, fmt, exif=exif)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_an_exif_orientation_is_applied_as_pil_and_opencv_apply_it(fmt: str) -> None:
    scene = synthetic_image(7).crop((0, 0, 64, 40))  # not square: 5-8 store it 40 x 64
    for turn in range(1, 9):
        data = stored_turned(scene, turn, fmt)
        want = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        got = open_image(data)
        assert got.size == want.size == (64, 40), (fmt, turn)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), f"{fmt} {turn}")
        if fmt in ("PNG", "TIFF"):  # lossless: the very scene, upright
            np.testing.assert_array_equal(np.asarray(got), np.asarray(scene), f"{fmt} {turn}")


def test_the_data_checks_and_the_index_see_the_upright_image(tmp_path: Path) -> None:
    from cvspec.data.files import probe

    scene = synthetic_image(8).crop((0, 0, 64, 40))
    (tmp_path / "upright.png").write_bytes(png(scene))
    (tmp_path / "turned.png").write_bytes(stored_turned(scene, 6))
    (tmp_path / "turned.tif").write_bytes(stored_turned(scene, 5, "TIFF"))
    (tmp_path / "turned.jpg").write_bytes(stored_turned(scene, 8, "JPEG"))
    upright = analyze_file(str(tmp_path / "upright.png"))
    for name in ("turned.png", "turned.tif"):
        turned = analyze_file(str(tmp_path / name))
        assert (turned.width, turned.height) == (64, 40), name
        assert turned._replace(sha256="") == upright._replace(sha256=""), name
    assert analyze_file(str(tmp_path / "turned.jpg"))[1:3] == (64, 40)
    for name in ("turned.png", "turned.tif", "turned.jpg"):  # the index's header read
        assert probe(tmp_path / name)[1:4] == (64, 40, "RGB"), name


def test_the_data_stage_finds_a_sideways_copy_of_a_training_image(tmp_path: Path) -> None:
    files = clean_tree()
    scene = Image.open(io.BytesIO(files["data/train/cat/s00.png"]))
    files["data/val/cat/phone.png"] = stored_turned(scene, 6)
    root = project(tmp_path, CLASSIFICATION, "planted.yaml", files)
    result = cvspec("run", "specs/planted.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert (
        "  val/cat/phone.png: val image nearly identical to a train image (0 bits apart) "
        "[train/cat/s00.png]" in result.err
    )


def test_the_server_answers_for_the_upright_image(detector: Any) -> None:
    """The demo detector's box is centred in the image: its place in the answer shows which
    way up the server read the image. Pixel limits hold for the turned size too."""
    red = Image.new("RGB", (64, 32), (204, 0, 0))
    turned, twin, stored = boxes(
        detector, stored_turned(red, 6), png(red), png(stored_pixels(red, 6))
    )
    assert turned == twin
    assert [(label, box) for label, _, box in turned] == [("red", [16.0, 0.0, 48.0, 32.0])]
    assert stored != turned  # the file's own pixels lie the other way
    over = stored_turned(Image.new("RGB", (64, 33), (204, 0, 0)), 6)  # 2112 > 2048 pixels
    answer = httpx.post(
        f"{detector.url}/predict", content=over, headers={"content-type": "image/png"}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_many_pixels"
