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


def closed_total(server: ServerProcess, reason: str) -> float:
    """cvspec_connections_closed_total{reason}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.metrics_url).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == m.CONNECTIONS_CLOSED and s.labels["reason"] == reason
    )


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
        length = content_length(head)
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
    timed_out = closed_total(server, "head_timeout")
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
    # counted, as the requests are not: the slow head only (idle connections end that way)
    assert closed_total(server, "head_timeout") == timed_out + 1


def test_a_request_head_over_the_limit_is_refused_with_431(server: ServerProcess) -> None:
    from cvspec.serve.protocol import MAX_HEAD_BYTES

    too_large = closed_total(server, "head_too_large")
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
    assert closed_total(server, "head_too_large") == too_large + 1


def test_bytes_that_are_not_http_are_a_counted_400(server: ServerProcess) -> None:
    bad = closed_total(server, "bad_request")
    before = requests_total(server)
    with connect(server) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # TLS to a plain port
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 400 "), head
        while sock.recv(1024):  # the rest of the answer, then the server closes
            pass
    assert closed_total(server, "bad_request") == bad + 1
    assert requests_total(server) == before  # a connection, not a request: no route, no status


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


def test_a_body_that_stops_coming_is_a_408_and_frees_its_slot(server: ServerProcess) -> None:
    from cvspec.serve.inputs import BODY_GAP_S

    before = requests_total(server)
    with connect(server) as sock:
        sock.settimeout(BODY_GAP_S + 10)
        sock.sendall(predict_head(100_000) + b"\x89PNG" + b"\0" * 1020)  # then nothing
        started = time.monotonic()
        head = read_head(sock)
        waited = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert waited >= BODY_GAP_S - 0.5  # the gap it allows, not sooner
    timed_out = (m.PREDICT_ROUTE, "408")
    wait_for_count(server, timed_out, before.get(timed_out, 0) + 1)  # counted, as requests are
    assert httpx.get(f"{server.url}/health").status_code == 200


BIG = 4000  # a 4000 x 4000 solid-colour PNG: 50 KB compressed, 16 M pixels decoded


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Room to decode two BIG images at once (2 x --max-pixels), eight more may wait."""
    model = write_demo_model(tmp_path_factory.mktemp("export"), ["red", "green"], image_size=8)
    args = ["--model-dir", str(model), "--threads", "1", "--queue-size", "8"]
    args += ["--max-pixels", str(BIG * BIG), "--max-image-bytes", "1000000"]
    with ServerProcess(args) as running:
        yield running


def decode_pixels(server: ServerProcess) -> float:
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith(f"{m.DECODE_PIXELS} "):
            return float(line.split()[1])
    raise AssertionError(f"no {m.DECODE_PIXELS} on /metrics")


def test_parallel_decodes_of_large_images_are_bounded_and_the_rest_refused(
    big_server: ServerProcess,
) -> None:
    import json
    import threading

    body, uploads = png(BIG), 24
    before = requests_total(big_server)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(decode_pixels(big_server))

    with ExitStack() as stack:
        socks = [stack.enter_context(connect(big_server)) for _ in range(uploads)]
        for sock in socks:  # every upload but its last byte, then all last bytes at once
            sock.sendall(predict_head(len(body)) + body[:-1])
        sampler = threading.Thread(target=sample)
        sampler.start()
        for sock in socks:
            sock.sendall(body[-1:])
        answers = [read_answer(sock) for sock in socks]
        done.set()
        sampler.join()

    statuses = [status for status, _, _ in answers]
    refused = [(head, json.loads(text)) for status, head, text in answers if status == 503]
    assert set(statuses) <= {200, 503}, answers
    assert statuses.count(200) >= 2 and refused, statuses  # not all 24 decoded at once
    for head, error in refused:
        assert b"\r\nretry-after: 1\r\n" in head.lower() and error["error"]["code"] == "overloaded"
    assert any("pixels are being decoded" in e["error"]["message"] for _, e in refused)
    assert max(samples, default=0) <= 2 * BIG * BIG  # never more than the budget at once
    after = requests_total(big_server)
    for status in (200, 503):
        key = (m.PREDICT_ROUTE, str(status))
        assert after.get(key, 0) - before.get(key, 0) == statuses.count(status)
    assert decode_pixels(big_server) == 0
    assert httpx.get(f"{big_server.url}/health").status_code == 200


def content_length(head: bytes) -> int:
    """The Content-Length of a response head."""
    return next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )


def read_answer(sock: socket.socket) -> tuple[int, bytes, str]:
    """Status, head and body of one response (the body by Content-Length)."""
    got = read_head(sock)
    head, body = got.split(b"\r\n\r\n", 1)
    length = content_length(head)
    while len(body) < length:
        body += sock.recv(4096)
    return int(head.split()[1]), head + b"\r\n", body.decode()


def test_the_pixel_budget_grants_in_order_makes_a_short_line_and_refuses_past_it() -> None:
    import asyncio

    from cvspec.serve.admission import PixelBudget
    from cvspec.serve.batching import QueueFull

    seen: list[int] = []
    budget = PixelBudget(limit=10, max_waiting=2, on_change=seen.append)
    order: list[str] = []

    async def decode(name: str, pixels: int, release: asyncio.Event) -> None:
        async with budget.hold(pixels):
            order.append(name)
            await release.wait()

    async def scenario() -> None:
        events = {name: asyncio.Event() for name in "abcde"}
        a = asyncio.create_task(decode("a", 6, events["a"]))
        b = asyncio.create_task(decode("b", 4, events["b"]))
        await asyncio.sleep(0)
        assert (order, budget.in_use) == (["a", "b"], 10)
        c = asyncio.create_task(decode("c", 8, events["c"]))
        d = asyncio.create_task(decode("d", 1, events["d"]))  # fits, but waits behind c
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match=r"10 pixels are being decoded \(limit 10\) and 2 "):
            await decode("e", 1, events["e"])
        events["a"].set()
        await a
        assert order == ["a", "b"]  # 4 + 8 > 10: c still waits, and d behind it
        events["b"].set()
        await b
        await asyncio.sleep(0)
        assert (order, budget.in_use) == (["a", "b", "c", "d"], 9)
        c.cancel()  # a request cancelled while it decodes gives its pixels back
        await asyncio.gather(c, return_exceptions=True)
        events["d"].set()
        await d
        assert budget.in_use == 0

    asyncio.run(scenario())
    assert seen[-1] == 0 and max(seen) == 10


def test_a_request_cancelled_while_it_waits_leaves_the_line() -> None:
    import asyncio

    from cvspec.serve.admission import PixelBudget

    budget = PixelBudget(limit=4, max_waiting=1)

    async def scenario() -> None:
        release = asyncio.Event()

        async def hold(pixels: int) -> None:
            async with budget.hold(pixels):
                await release.wait()

        first = asyncio.create_task(hold(4))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(hold(4))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        third = asyncio.create_task(hold(2))  # the line has room again
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, third)
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_a_cancelled_decode_holds_its_pixels_until_its_thread_is_done() -> None:
    import asyncio
    import threading

    from cvspec.serve.admission import PixelBudget, held_until_done

    budget = PixelBudget(limit=4, max_waiting=1)
    finish = threading.Event()

    def decode() -> str:  # a decode still running in its worker thread
        finish.wait(5)
        return "pixels"

    async def scenario() -> None:
        task = asyncio.create_task(held_until_done(budget, 3, lambda: asyncio.to_thread(decode)))
        await asyncio.sleep(0.05)
        task.cancel()  # the request goes away (shutdown, a dropped connection)
        await asyncio.sleep(0.05)
        assert budget.in_use == 3 and not task.done()  # its pixels are still being decoded
        finish.set()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and budget.in_use == 0

    asyncio.run(scenario())


def test_a_cancelled_decode_that_then_fails_leaves_no_unretrieved_error() -> None:
    import asyncio
    import threading

    from cvspec.serve.admission import PixelBudget, held_until_done

    budget = PixelBudget(limit=4, max_waiting=1)
    finish = threading.Event()
    unhandled: list[object] = []

    def decode() -> str:  # a bad image, found bad after its request went away
        finish.wait(5)
        raise ValueError("not an image")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: unhandled.append(context))
        task = asyncio.create_task(held_until_done(budget, 3, lambda: asyncio.to_thread(decode)))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        finish.set()
        await asyncio.gather(task, return_exceptions=True)
        assert budget.in_use == 0

    asyncio.run(scenario())
    import gc

    gc.collect()  # an exception never retrieved is reported when its task is collected
    assert unhandled == []


@pytest.mark.parametrize(
    ("gap", "deadline", "pieces", "said"),
    [
        (0.2, 30.0, 1, "the body stopped: nothing came for 0.2 s after 4 bytes"),
        (5.0, 0.4, 1000, "the body did not arrive within 0.4 s"),
    ],
)
def test_a_slow_body_is_a_408_that_names_the_limit_it_broke(
    monkeypatch: pytest.MonkeyPatch, gap: float, deadline: float, pieces: int, said: str
) -> None:
    """A silence longer than the gap, or a trickle past the deadline (one piece every 0.05 s)."""
    import asyncio

    from starlette.requests import Request

    from cvspec.serve import inputs

    monkeypatch.setattr(inputs, "BODY_GAP_S", gap)
    monkeypatch.setattr(inputs, "BODY_DEADLINE_S", deadline)
    sent = 0

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            await asyncio.sleep(0.05 if sent < pieces else 3600)
        sent += 1
        return {"type": "http.request", "body": b"\x89PNG", "more_body": True}

    scope = {"type": "http", "method": "POST", "headers": [], "path": m.PREDICT_ROUTE}
    started = time.monotonic()
    with pytest.raises(inputs.InputError) as caught:
        asyncio.run(inputs._read_body(Request(scope, receive), 1_000_000))
    assert (caught.value.status, caught.value.code) == (408, "body_timeout")
    assert caught.value.message.startswith(said), caught.value.message
    assert min(gap, deadline) - 0.1 <= time.monotonic() - started < min(gap, deadline) + 2
