"""Admission under load on a real server: idle and slow connections, requests in flight.

Every refusal the app makes is a JSON 503 with Retry-After, counted in cvspec_requests_total;
/health answers whatever the connections and uploads do.
"""

from __future__ import annotations

import io
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from cvspec.serve import metric_names as m
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

pytest.importorskip("httptools")  # the head limits live in the httptools protocol

QUEUE = 1  # --queue-size: 4 requests in flight at most (uvicorn's old limit: 4 connections)
SOCKET_TIMEOUT_S = 60  # generous: a deadline for a hung test, not a timing assertion


def png(side: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (0, 200, 0)).save(buf, "PNG")
    return buf.getvalue()


def requests_total(server: ServerProcess) -> dict[tuple[str, str], float]:
    """cvspec_requests_total by (route, status)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.metrics_url).text
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == m.REQUESTS
    }


def wait_for_count(server: ServerProcess, key: tuple[str, str], count: float) -> None:
    """Until cvspec_requests_total{key} reaches count: the server learns of hang-ups later."""
    deadline = time.monotonic() + SOCKET_TIMEOUT_S
    while requests_total(server).get(key, 0) < count:
        assert time.monotonic() < deadline, f"{key} never reached {count}"
        time.sleep(0.05)


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT_S)


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of the first response head on the socket."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {got!r}"
        got += chunk
    return got


def read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """The status lines of the next `count` responses (bodies by Content-Length, read whole)."""
    got, lines = b"", []
    while len(lines) < count:
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the connection after {got!r}"
            got += chunk
        head, got = got.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(got) < length:
            got += sock.recv(4096)
        got = got[length:]
        lines.append(head.split(b"\r\n")[0])
    return lines


def predict_head(length: int, expect_continue: bool = False) -> bytes:
    expect = "Expect: 100-continue\r\n" if expect_continue else ""
    return (
        f"POST {m.PREDICT_ROUTE} HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        f"Content-Length: {length}\r\n{expect}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model = write_demo_model(tmp_path_factory.mktemp("export"), ["red", "green"], image_size=8)
    args = ["--model-dir", str(model), "--threads", "1", "--queue-size", str(QUEUE)]
    with ServerProcess(args) as running:
        yield running


def test_idle_connections_do_not_take_health_or_predict_down(server: ServerProcess) -> None:
    before = requests_total(server)
    with ExitStack() as stack:
        for _ in range(40):  # 10x the requests in flight allowed; uvicorn's limit counted these
            stack.enter_context(connect(server))
        health = httpx.get(f"{server.url}/health")
        answer = httpx.post(
            f"{server.url}{m.PREDICT_ROUTE}", content=png(), headers={"content-type": "image/png"}
        )
    assert health.status_code == 200, health.text
    assert answer.status_code == 200, answer.text
    after = requests_total(server)
    assert after[("/health", "200")] == before[("/health", "200")] + 1
    assert after[(m.PREDICT_ROUTE, "200")] == before[(m.PREDICT_ROUTE, "200")] + 1


def test_a_connection_that_never_completes_a_request_head_is_closed(
    server: ServerProcess,
) -> None:
    health = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with connect(server) as idle, connect(server) as slow, connect(server) as kept:
        slow.sendall(health[:30])  # and nothing more
        kept.sendall(health)
        assert read_responses(kept, 1) == [b"HTTP/1.1 200 OK"]
        kept.sendall(health * 2)  # kept alive, then two requests in one write (pipelined)
        assert read_responses(kept, 2) == [b"HTTP/1.1 200 OK"] * 2
        assert idle.recv(1024) == b""  # closed by the server (after timeout_keep_alive)
        assert slow.recv(1024) == b""
        assert kept.recv(1024) == b""  # idle after its last answer
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_request_head_over_the_limit_is_refused_with_431(server: ServerProcess) -> None:
    from cvspec.serve.protocol import MAX_HEAD_BYTES

    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
        sent, answered = 0, False
        while sent < 4 * MAX_HEAD_BYTES and not answered:
            sock.sendall(b"a" * 16384)
            sent += 16384
            # wait a little after each piece, so that nothing is sent once the answer is out
            answered = bool(select.select([sock], [], [], 0.2)[0])
        head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert sent <= 2 * MAX_HEAD_BYTES  # refused while the head grew, not at its end
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_requests_in_flight_over_the_limit_get_the_apps_counted_503(
    server: ServerProcess,
) -> None:
    before = requests_total(server)
    with ExitStack() as stack:
        for _ in range(4 * QUEUE):  # each reads its body: 100 Continue says the app is waiting
            sock = stack.enter_context(connect(server))
            sock.sendall(predict_head(len(png()), expect_continue=True))
            assert read_head(sock).startswith(b"HTTP/1.1 100 ")
        refused = httpx.post(
            f"{server.url}{m.PREDICT_ROUTE}", content=png(), headers={"content-type": "image/png"}
        )
        health = httpx.get(f"{server.url}/health")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": {"code": "overloaded", "message": "4 requests in flight (limit 4)"}
    }
    assert health.status_code == 200
    closed = (m.PREDICT_ROUTE, "499")
    wait_for_count(server, closed, before.get(closed, 0) + 4 * QUEUE)  # the four hung up
    after = requests_total(server)
    assert after[(m.PREDICT_ROUTE, "503")] == before.get((m.PREDICT_ROUTE, "503"), 0) + 1


def test_a_client_that_hangs_up_mid_upload_is_a_499_not_a_500(server: ServerProcess) -> None:
    before = requests_total(server)
    with connect(server) as sock:
        sock.sendall(predict_head(100_000, expect_continue=True))
        assert read_head(sock).startswith(b"HTTP/1.1 100 ")  # the app is reading the body
        sock.sendall(b"\x89PNG" + b"\0" * 1020)  # 1 KB of the 100,000 announced, then gone
    closed, failed = (m.PREDICT_ROUTE, "499"), (m.PREDICT_ROUTE, "500")
    wait_for_count(server, closed, before.get(closed, 0) + 1)
    after = requests_total(server)
    assert after[closed] == before.get(closed, 0) + 1
    assert after.get(failed, 0) == before.get(failed, 0)
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log
    assert httpx.get(f"{server.url}/health").status_code == 200
