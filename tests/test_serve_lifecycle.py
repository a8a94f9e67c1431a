"""A real server's life as an orchestrator sees it: SIGTERM drains, workers die and come back.

The model call is held by a gate file (a sitecustomize on the server's PYTHONPATH: the workers
are fresh processes too), so requests are in the model or the batch queue when the signal comes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import solid_png

from cvspec.serve import metric_names as m
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

pytest.importorskip("httptools")

DEADLINE_S = 60  # for a hung test, not a timing assertion
GATE = """
import os, time
import cvspec.serve.model as model
_run = model.Model.run
def run(self, batch):
    while os.path.exists(os.environ["TEST_GATE"]):
        time.sleep(0.02)
    return _run(self, batch)
model.Model.run = run
"""


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The model folder and the server's environment; the gate file holds every model call."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(GATE)
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    gate = tmp_path / "gate"
    env = {"PYTHONPATH": path, "TEST_GATE": str(gate), "CVSPEC_LOG_LEVEL": "info"}
    yield write_demo_model(tmp_path / "export", ["red", "green"], image_size=8), env
    gate.unlink(missing_ok=True)


def post_in_background(url: str, count: int) -> tuple[list[threading.Thread], list[object]]:
    answers: list[object] = []

    def post() -> None:
        try:
            answer = httpx.post(
                f"{url}/predict",
                content=solid_png(),
                headers={"content-type": "image/png"},
                timeout=DEADLINE_S,
            )
            answers.append((answer.status_code, answer.json()))
        except httpx.HTTPError as exc:
            answers.append(exc)

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, answers


def wait_until(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def queued_or_running(server: ServerProcess) -> float:
    """/predict requests not answered yet, as the metrics see them: images queued + in the model
    (each worker holds one in the model once its queue is non-empty, so this under-counts)."""
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith(f"{m.QUEUE_DEPTH} "):
            return float(line.split()[1])
    raise AssertionError(f"no {m.QUEUE_DEPTH}")


def refused(url: str) -> bool:
    """True once a new connection is refused; False while the server still answers. A
    connection accepted but never answered (the listening socket left open) fails the test."""
    try:
        httpx.get(f"{url}/health", timeout=10)
    except httpx.ConnectError:
        return True
    except httpx.TimeoutException as exc:
        raise AssertionError("a new connection was accepted and never answered") from exc
    return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_what_was_admitted_refuses_new_connections_and_exits_0(
    gated: tuple[Path, dict[str, str]], workers: int
) -> None:
    model, env = gated
    args = ["--model-dir", str(model), "--threads", "1", "--max-batch", "1"]
    with ServerProcess([*args, "--workers", str(workers)], env=env) as server:
        assert server.proc is not None
        # every worker has its model: each one logs the line (a worker's INFO lines were lost)
        wait_until(
            "a worker never said what it serves", lambda: server.log().count("serving ") == workers
        )
        assert "(version " in server.log()
        Path(env["TEST_GATE"]).touch()
        threads, answers = post_in_background(server.url, 4)
        wait_until("the requests never reached the queue", lambda: queued_or_running(server) >= 1)
        server.proc.send_signal(signal.SIGTERM)
        wait_until("new connections were never refused", lambda: refused(server.url))
        Path(env["TEST_GATE"]).unlink()
        for thread in threads:
            thread.join(DEADLINE_S)
        code = server.proc.wait(DEADLINE_S)
        log = server.log()
    assert [a if isinstance(a, Exception) else a[0] for a in answers] == [200] * 4, answers
    assert code == 0, log  # not 143: killed by the SIGTERM it had handled


@pytest.mark.slow
def test_a_model_call_past_the_drain_deadline_is_a_503_and_the_server_still_exits(
    gated: tuple[Path, dict[str, str]],
) -> None:
    model, env = gated
    env["CVSPEC_DRAIN_S"] = "1"
    args = ["--model-dir", str(model), "--threads", "1", "--max-batch", "1"]
    with ServerProcess(args, env=env) as server:
        assert server.proc is not None
        Path(env["TEST_GATE"]).touch()  # and never removed: the model hangs
        threads, answers = post_in_background(server.url, 2)
        wait_until("the requests never reached the queue", lambda: queued_or_running(server) >= 1)
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(DEADLINE_S)  # its inference thread held it up for ever
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server never exited:\n{server.log()}")
        for thread in threads:
            thread.join(DEADLINE_S)
        log = server.log()
    shutting_down = {"error": {"code": "shutting_down", "message": "the server is shutting down"}}
    assert answers == [(503, shutting_down)] * 2  # JSON with Retry-After, not uvicorn's text 500
    assert code == 1  # not a clean drain
    assert "a model call is still running after the drain deadline" in log
    assert "Traceback" not in log, log


def test_a_new_worker_drops_the_gauges_of_a_worker_that_was_killed(tmp_path: Path) -> None:
    """A worker killed with 4 images queued never marks itself dead; its replacement does."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    killed = (
        "import os; from prometheus_client import Gauge; "
        f"Gauge('{m.QUEUE_DEPTH}', '', multiprocess_mode='livesum').set(4); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", killed], env=env, check=True)
    replacement = (
        "import sys; from cvspec.serve.metrics import ServerMetrics; "
        "sys.stdout.write(ServerMetrics().exposition()[0].decode())"
    )
    scrape = subprocess.run(
        [sys.executable, "-c", replacement], env=env, check=True, capture_output=True, text=True
    )
    assert f"{m.QUEUE_DEPTH} 0.0" in scrape.stdout.splitlines(), scrape.stdout
