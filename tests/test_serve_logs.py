"""CVSPEC_LOG_FORMAT=json: every line a server writes, cvspec's and uvicorn's, parent and
workers, is one JSON object; a traceback stays inside its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers import solid_png

from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

pytest.importorskip("httptools")

# The model fails on any real image (the warm-up's zeros pass): a batch failure to log.
BROKEN = """
import cvspec.serve.model as model
_run = model.Model.run
def run(self, batch):
    if batch.any():
        raise RuntimeError("node conv1: boom")
    return _run(self, batch)
model.Model.run = run
"""


@pytest.mark.slow
def test_json_logs_from_uvicorn_cvspec_and_every_worker(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BROKEN)
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    env = {"PYTHONPATH": path, "CVSPEC_LOG_LEVEL": "info", "CVSPEC_LOG_FORMAT": "json"}
    model = write_demo_model(tmp_path / "export", ["red", "green"], image_size=8)
    args = ["--model-dir", str(model), "--threads", "1", "--workers", "2"]
    with ServerProcess(args, env=env) as server:
        deadline = time.monotonic() + 60
        while server.log().count('"serving ') < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = httpx.post(
            f"{server.url}/predict", content=solid_png(), headers={"content-type": "image/png"}
        )
        assert answer.status_code == 500
        server.stop()
        text = server.log()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    assert all({"time", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    serving = [line for line in lines if line["message"].startswith("serving ")]
    assert len({line["pid"] for line in serving}) == 2  # each worker's own line
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's lines too
    assert any(line["message"].startswith("no drift baseline") for line in lines)  # the parent's
    failed = [line for line in lines if "the model failed on a batch" in line["message"]]
    assert len(failed) == 1 and failed[0]["level"] == "error"
    assert "RuntimeError: node conv1: boom" in failed[0]["exc_info"]
    assert failed[0]["exc_info"].startswith("Traceback")


def test_a_log_format_it_does_not_know_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    model = write_demo_model(tmp_path / "export", ["red", "green"], image_size=8)
    env = {**os.environ, "CVSPEC_LOG_FORMAT": "xml"}
    run = subprocess.run(
        [sys.executable, "-m", "cvspec", "serve", "--model-dir", str(model), "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "CVSPEC_LOG_FORMAT='xml': one of text, json" in run.stderr
    assert "Traceback" not in run.stderr
