"""`cvspec serve`: a real server on 127.0.0.1 answers predictions, refuses bad input, stays up."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import MINIMAL_SPEC, cvspec, health_once_load_failed, project

from cvspec.preprocess import Preprocess, open_image, to_array
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

LABELS = ["red", "green", "blue"]
LIMIT = 200_000  # --max-image-bytes of the shared server


def image(color: tuple[int, int, int], size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    """Bytes of a solid-colour image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def noise_jpeg(side: int = 64) -> bytes:
    """A JPEG of random pixels (seeded)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_model(tmp_path_factory.mktemp("export"), LABELS, image_size=16)


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[ServerProcess]:
    args = [
        "--model-dir",
        str(model_dir),
        "--max-image-bytes",
        str(LIMIT),
        "--max-pixels",
        "1000000",
        "--threads",
        "1",
    ]
    with ServerProcess(args) as running:
        yield running


def test_predictions_equal_the_same_session_on_the_same_preprocessing(
    server: ServerProcess, model_dir: Path
) -> None:
    import onnxruntime as ort  # type: ignore[import-untyped]

    blobs = [image((200, 10, 10)), image((10, 10, 200), fmt="JPEG"), noise_jpeg(), noise_jpeg(256)]
    # the 256 px image sends the multipart request's decoding to a thread; the raw one stays inline
    pre = Preprocess.from_json(json.loads((model_dir / "preprocess.json").read_text()))
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    batch = to_array([open_image(b) for b in blobs], pre)
    expected = session.run(None, {"images": batch})[0]

    raw = httpx.post(
        f"{server.url}/predict", content=blobs[0], headers={"content-type": "image/png"}
    )
    files = [("file", (f"{i}.img", b, "application/octet-stream")) for i, b in enumerate(blobs)]
    multi = httpx.post(f"{server.url}/predict", files=files)

    assert raw.status_code == 200 and multi.status_code == 200, (raw.text, multi.text)
    answers = multi.json()["predictions"]
    assert raw.json()["predictions"] == answers[:1]
    assert [a["label"] for a in answers] == [LABELS[i] for i in expected.argmax(axis=1)]
    got = [
        [t["confidence"] for t in sorted(a["top"], key=lambda t: LABELS.index(t["label"]))]
        for a in answers
    ]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert raw.json()["model"]["version"] == multi.json()["model"]["version"]


BAD_INPUTS = [
    ("truncated jpeg", noise_jpeg()[:400], "image/jpeg", 400, "bad_image"),
    (
        "truncated 256 px jpeg, decoded in a thread",
        noise_jpeg(256)[:3000],
        "image/jpeg",
        400,
        "bad_image",
    ),
    ("zero bytes", b"", "image/jpeg", 400, "empty"),
    ("not an image", b"hello, world", "image/png", 400, "bad_image"),
    ("50000x50000 png header", png_header(50_000, 50_000), "image/png", 413, "too_many_pixels"),
    ("wrong content type", b'{"image": "x"}', "application/json", 415, "unsupported_media_type"),
    ("body over the limit", b"\xff" * (LIMIT + 1), "image/jpeg", 413, "too_large"),
    ("broken multipart", b"--x\r\nnonsense", "multipart/form-data; boundary=x", 400, "empty"),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_a_json_4xx_and_the_server_stays_healthy(
    server: ServerProcess, body: bytes, ctype: str, status: int, code: str
) -> None:
    answer = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": ctype})
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    ok = httpx.post(
        f"{server.url}/predict", content=image((10, 200, 10)), headers={"content-type": "image/png"}
    )
    assert ok.json()["predictions"][0]["label"] == "green"


def test_a_streamed_body_over_the_limit_is_cut_off(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(5):
            yield b"\0" * (LIMIT // 4)

    answer = httpx.post(
        f"{server.url}/predict", content=chunks(), headers={"content-type": "image/jpeg"}
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"


def test_health_names_the_model(server: ServerProcess, model_dir: Path) -> None:
    import hashlib

    digest = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()[:12]
    assert httpx.get(f"{server.url}/health").json() == {
        "status": "ok",
        "model": model_dir.parent.name,
        "version": digest,
    }


def test_answers_name_no_server_software(server: ServerProcess) -> None:
    for answer in (httpx.get(f"{server.url}/health"), httpx.get(f"{server.url}/nothing")):
        assert "server" not in answer.headers, answer.headers


def test_serve_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    result = cvspec("serve", cwd=tmp_path)
    assert (result.code, result.err) == (2, "error: give a spec file or --model-dir DIR\n")
    missing = cvspec("serve", "--model-dir", "nowhere", cwd=tmp_path)
    assert missing.code == 2
    assert missing.err == (
        "error: nowhere: no exported model here (missing model.onnx, labels.json, "
        "preprocess.json); run `cvspec run SPEC --stage export` first\n"
    )


def test_a_model_that_fails_to_load_tells_clients_no_paths(tmp_path: Path) -> None:
    """/health and /predict say the model failed; why (with its path) is in the log only."""
    import subprocess
    import sys

    from cvspec.serve.launch import free_port

    export = write_demo_model(tmp_path / "secret-folder", LABELS, image_size=16)
    (export / "model.onnx").write_bytes(b"not an ONNX model")
    port, log = free_port(), tmp_path / "server.log"
    args = ["--model-dir", str(export), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cvspec", "serve", *args, "--metrics-port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        health = health_once_load_failed(port, proc)
        assert health is not None and health.status_code == 503, health
        predict = httpx.post(
            f"http://127.0.0.1:{port}/predict", content=b"x", headers={"content-type": "image/png"}
        )
    finally:
        proc.terminate()
        proc.wait(15)
    message = "the model failed to load; the server's log says why"
    assert health.json() == {"status": "failed", "error": message}
    assert predict.status_code == 503
    assert predict.json() == {"error": {"code": "not_ready", "message": message}}
    assert "secret-folder" in log.read_text()  # the operator still learns where and why


def test_a_server_on_cuda_without_cudas_onnxruntime_stops_before_taking_a_port(
    model_dir: Path,
) -> None:
    result = cvspec("serve", "--model-dir", str(model_dir), "--device", "cuda", cwd=model_dir)
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.startswith("error: serve.device is cuda, but this onnxruntime (")
    assert "has no CUDA provider" in result.err and "set serve.device: cpu" in result.err
    wrong = cvspec("serve", "--model-dir", str(model_dir), "--device", "gpu", cwd=model_dir)
    assert (wrong.code, wrong.err) == (2, "error: --device 'gpu': cpu or cuda\n")


def test_a_taken_port_is_a_clear_error(server: ServerProcess, model_dir: Path) -> None:
    result = cvspec(
        "serve", "--model-dir", str(model_dir), "--port", str(server.port), cwd=model_dir
    )
    assert result.code == 2
    assert result.err.startswith(f"error: cannot serve the API on 127.0.0.1:{server.port}: ")


def test_the_serve_stage_needs_an_export(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = cvspec("run", "specs/demo.yaml", "--stage", "serve", cwd=root)
    assert result.code == 1
    assert "no exported model here" in result.err and "runs/demo/export" in result.err


def test_serve_a_spec_uses_its_serve_section(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + "serve: {max_batch: 4, max_image_bytes: 1000}\n"
    root = project(tmp_path, spec)
    write_demo_model(root / "runs/demo/export", LABELS, image_size=16)
    with ServerProcess(["specs/demo.yaml"], cwd=root) as running:
        assert httpx.get(f"{running.url}/health").json()["model"] == "demo"
        big = httpx.post(
            f"{running.url}/predict", content=b"\0" * 1001, headers={"content-type": "image/png"}
        )
        assert big.status_code == 413
        ok = httpx.post(
            f"{running.url}/predict",
            content=image((1, 2, 3), (4, 4)),
            headers={"content-type": "image/png"},
        )
        assert ok.status_code == 200, ok.text


@pytest.mark.slow
def test_workers_share_one_metrics_view(model_dir: Path) -> None:
    args = ["--model-dir", str(model_dir), "--workers", "2", "--threads", "1"]
    with ServerProcess(args) as running:
        codes: list[int] = []
        while codes.count(200) < 6 and len(codes) < 30:
            answer = httpx.post(
                f"{running.url}/predict",
                content=image((200, 0, 0)),
                headers={"content-type": "image/png"},
            )
            codes.append(answer.status_code)  # 503: the other worker is still loading its model
        text = httpx.get(running.metrics_url).text
    assert set(codes) <= {200, 503} and codes.count(200) == 6
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("cvspec_"))
    assert float(lines['cvspec_predictions_total{class="red"}']) == 6
    assert float(lines["cvspec_batch_size_count"]) == 6
    assert float(lines['cvspec_requests_total{route="/predict",status="200"}']) == 6
