"""Dynamic batching: concurrent images share model calls; a full queue answers 503 + Retry-After."""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import solid_png

from cvspec.serve.app import build_app
from cvspec.serve.batching import Batcher, BatchFailed, QueueFull
from cvspec.serve.config import ServeConfig
from cvspec.serve.demo_model import write_demo_model


def double(batch: Any) -> Any:
    return batch * 2


def test_concurrent_images_share_one_call_and_get_their_own_rows() -> None:
    sizes: list[int] = []

    async def scenario() -> list[list[Any]]:
        batcher = Batcher(
            double,
            max_batch=4,
            max_wait_s=0.2,
            capacity=16,
            pending=lambda: 1,
            on_batch=lambda n, s: sizes.append(n),
        )
        loop = asyncio.create_task(batcher.serve_forever())
        try:
            rows = [np.full((2,), i, dtype=np.float32) for i in range(6)]
            return await asyncio.gather(*(batcher.submit([r]) for r in rows))
        finally:
            loop.cancel()

    results = asyncio.run(scenario())
    assert [float(r[0][0]) for r in results] == [0, 2, 4, 6, 8, 10]
    assert sizes == [4, 2]  # the second batch stops waiting: max_wait bounds it, then it runs


def test_a_batch_waits_for_images_arriving_one_by_one_until_max_wait() -> None:
    sizes: list[int] = []

    async def scenario() -> list[list[Any]]:
        batcher = Batcher(
            double,
            max_batch=4,
            max_wait_s=0.3,
            capacity=16,
            pending=lambda: 1,  # more are always on their way: only max_wait ends a batch
            on_batch=lambda n, s: sizes.append(n),
        )
        loop = asyncio.create_task(batcher.serve_forever())

        async def later(delay: float, value: float) -> list[Any]:
            await asyncio.sleep(delay)
            return await batcher.submit([np.full((1,), value)])

        try:
            # 0 and 1 share the first batch; 2 comes after its wait ended and starts the next
            return list(await asyncio.gather(later(0, 0), later(0.1, 1), later(0.6, 2)))
        finally:
            loop.cancel()

    results = asyncio.run(scenario())
    assert [float(r[0][0]) for r in results] == [0, 2, 4]  # no image lost to a wait that ended
    assert sizes == [2, 1]


def test_finish_runs_once_per_batch_with_each_images_meta_in_order() -> None:
    calls: list[tuple[list[float], list[str]]] = []

    def finish(out: Any, metas: Any) -> list[str]:
        calls.append(([float(row[0]) for row in out], list(metas)))
        return [f"{meta}={float(row[0]):g}" for row, meta in zip(out, metas, strict=True)]

    async def scenario() -> list[list[Any]]:
        batcher = Batcher(
            double, max_batch=3, max_wait_s=0.2, capacity=16, pending=lambda: 1, finish=finish
        )
        loop = asyncio.create_task(batcher.serve_forever())
        try:
            jobs = [
                batcher.submit([np.full((1,), 1.0)], ["a"]),
                batcher.submit([np.full((1,), 2.0), np.full((1,), 3.0)], ["b", "c"]),
                batcher.submit([np.full((1,), 4.0)], ["d"]),
            ]
            return list(await asyncio.gather(*jobs))
        finally:
            loop.cancel()

    assert asyncio.run(scenario()) == [["a=2"], ["b=4", "c=6"], ["d=8"]]
    assert calls == [([2.0, 4.0, 6.0], ["a", "b", "c"]), ([8.0], ["d"])]


def test_a_lone_request_does_not_wait_for_company() -> None:
    async def scenario() -> Any:
        batcher = Batcher(double, max_batch=8, max_wait_s=3600, capacity=8)  # pending: 0
        loop = asyncio.create_task(batcher.serve_forever())
        try:
            return await asyncio.wait_for(batcher.submit([np.ones(1)]), timeout=30)
        finally:
            loop.cancel()

    assert float(asyncio.run(scenario())[0][0]) == 2.0


def threads_of_calls(alone: bool, requests: int = 3) -> tuple[int, list[int]]:
    """The event loop's thread, and the thread each of `requests` lone model calls ran in."""
    ran_in: list[int] = []

    def run(batch: Any) -> Any:
        ran_in.append(threading.get_ident())
        return batch * 2

    async def scenario() -> int:
        batcher = Batcher(run, max_batch=8, max_wait_s=0.005, capacity=8, alone=lambda: alone)
        loop = asyncio.create_task(batcher.serve_forever())
        try:
            for i in range(requests):  # one after another: each the only request in flight
                assert float((await batcher.submit([np.full((1,), i)]))[0][0]) == 2 * i
            return threading.get_ident()
        finally:
            loop.cancel()

    return asyncio.run(scenario()), ran_in


def test_a_quick_call_for_the_only_request_in_flight_runs_on_the_event_loop() -> None:
    loop_thread, ran_in = threads_of_calls(alone=True)
    # the first call's time is unknown: the inference thread; once quick, no thread hops
    assert ran_in[0] != loop_thread
    assert ran_in[1:] == [loop_thread, loop_thread]


def test_calls_stay_in_the_inference_thread_under_load_or_when_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread, ran_in = threads_of_calls(alone=False)  # other requests in flight
    assert loop_thread not in ran_in
    monkeypatch.setattr("cvspec.serve.batching.INLINE_CALL_S", 0.0)  # every call is "slow"
    loop_thread, ran_in = threads_of_calls(alone=True)
    assert loop_thread not in ran_in


def test_a_model_error_reaches_every_request_of_the_batch() -> None:
    def broken(batch: Any) -> Any:
        raise RuntimeError("bad weights")

    async def scenario() -> list[Any]:
        batcher = Batcher(broken, max_batch=4, max_wait_s=0.05, capacity=8, pending=lambda: 1)
        loop = asyncio.create_task(batcher.serve_forever())
        try:
            jobs = [batcher.submit([np.ones(1)]) for _ in range(3)]
            return list(await asyncio.gather(*jobs, return_exceptions=True))
        finally:
            loop.cancel()

    errors = asyncio.run(scenario())
    assert [str(e) for e in errors] == ["RuntimeError: bad weights"] * 3
    assert all(isinstance(e, BatchFailed) for e in errors)
    assert len({e.reference for e in errors}) == 1  # one batch, one reference


def test_more_images_than_the_queue_holds_are_refused_at_once() -> None:
    async def scenario() -> None:
        batcher = Batcher(double, max_batch=2, max_wait_s=0, capacity=3)
        with pytest.raises(QueueFull, match=r"0 images are waiting \(limit 3\)"):
            await batcher.submit([np.ones(1)] * 4)

    asyncio.run(scenario())


BLUE = solid_png((0, 0, 255))


@pytest.fixture
def pil_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """build_app sets PIL's pixel limit and warning filter for its process: undo both after."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        yield


@pytest.mark.usefixtures("pil_state")
def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    model = write_demo_model(tmp_path / "export", ["red", "green", "blue"], image_size=8)
    config = ServeConfig(model, max_batch=1, max_wait_ms=0, queue_size=1, threads=1)
    app = build_app(config)
    service = app.service
    release, running = threading.Event(), threading.Event()

    async def scenario() -> list[httpx.Response]:
        await service.start()
        assert service.model is not None
        real_run = service.model.run

        def slow_run(batch: Any) -> Any:  # holds the one model call until released
            running.set()
            release.wait(30)
            return real_run(batch)

        service.model.run = slow_run  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:

            async def post() -> httpx.Response:
                return await client.post(
                    "/predict",
                    content=BLUE,
                    headers={"content-type": "image/png"},
                )

            first = asyncio.create_task(post())
            while not running.is_set():
                await asyncio.sleep(0.01)
            second = asyncio.create_task(post())  # waits in the queue (capacity 1)
            assert service.batcher is not None
            while service.batcher.depth < 1:
                await asyncio.sleep(0.01)
            third = await post()
            release.set()
            answers = [third, await first, await second]
        await service.stop()
        return answers

    third, first, second = asyncio.run(scenario())
    assert third.status_code == 503 and third.headers["retry-after"] == "1"
    assert third.json() == {
        "error": {"code": "overloaded", "message": "1 images are waiting (limit 1)"}
    }
    assert [first.status_code, second.status_code] == [200, 200]
    assert first.json()["predictions"][0]["label"] == "blue"


@pytest.mark.usefixtures("pil_state")
def test_a_failing_model_is_a_json_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = write_demo_model(tmp_path / "export", ["red", "green"], image_size=8)
    # a long wait: the batcher still stops waiting once no request is on its way
    app = build_app(ServeConfig(model, threads=1, max_wait_ms=1000))
    service = app.service

    async def scenario() -> list[httpx.Response]:
        await service.start()
        assert service.model is not None

        def broken(batch: Any) -> Any:
            raise RuntimeError("out of memory")

        service.model.run = broken  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            post = partial(
                client.post,
                "/predict",
                content=BLUE,
                headers={"content-type": "image/png"},
            )
            answers = await asyncio.gather(*(post() for _ in range(6)))
        await service.stop()
        return list(answers)

    with caplog.at_level(logging.ERROR, logger="cvspec.serve"):
        answers = asyncio.run(scenario())
    assert {a.status_code for a in answers} == {500}
    errors = [a.json()["error"] for a in answers]
    assert {e["code"] for e in errors} == {"model_error"}
    # the model's own text (onnxruntime's: node names, the server's paths) stays in the log,
    # under the reference the client is given: once per batch, with its traceback
    assert not any("out of memory" in a.text for a in answers)
    references = {e["message"].rsplit("reference ", 1)[1].rstrip(")") for e in errors}
    logged = [r for r in caplog.records if any(ref in r.getMessage() for ref in references)]
    assert len(logged) == len(references) < len(answers)
    assert all("out of memory" in str(r.exc_info[1]) for r in logged if r.exc_info)
    assert all(r.exc_info for r in logged)


def sample_images() -> list[Any]:
    """RGB, grey and 16-bit images of several sizes and aspects."""
    from PIL import Image

    rng = np.random.default_rng(3)
    shapes = [(64, 64), (30, 50), (100, 7), (32, 32), (1, 1)]
    images = [Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in shapes]
    images.append(Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8)))
    images.append(Image.fromarray(rng.integers(0, 65536, (40, 60), dtype=np.uint16)))
    return images


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
@pytest.mark.parametrize("resample", ["bilinear", "nearest", "bicubic"])
def test_a_batch_normalised_at_once_is_the_input_of_each_image_alone(
    fit: str, resample: str
) -> None:
    """The server normalises a whole batch in one pass; evaluation gets the same bits."""
    from cvspec.preprocess import Preprocess, normalize, resized, to_array

    pre = Preprocess(17, (0.1, 0.5, 0.9), (0.2, 0.3, 0.4), resample, fit=fit)
    images = sample_images()
    batch = normalize(np.stack([resized(img, pre) for img in images]), pre)
    alone = np.concatenate([to_array([img], pre) for img in images])
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    assert np.array_equal(batch, alone)
    pixels = np.asarray(images[0].resize((17, 17), resample=2), dtype=np.float64)
    if (fit, resample) == ("stretch", "bilinear"):  # the formula, channel by channel
        expected = (pixels / 255 - pre.mean) / pre.std
        assert np.allclose(batch[0].transpose(1, 2, 0), expected, atol=1e-5)


def test_the_statistics_of_a_batch_are_those_of_each_image_alone() -> None:
    from cvspec.imagestats import grey_histogram, image_stats, stats_of

    images = [img.convert("RGB") for img in sample_images()[:-1]]
    batch = stats_of([grey_histogram(img) for img in images], [img.size for img in images])
    assert batch == [image_stats(img) for img in images]
    assert stats_of([grey_histogram(images[0])], [images[0].size]) == batch[:1]
    assert batch[-1]["width"] == 60.0 and batch[-1]["height"] == 40.0
    grey = np.asarray(images[0].convert("L"), dtype=np.float64) / 255
    assert batch[0]["brightness"] == pytest.approx(grey.mean(), abs=1e-12)
    assert batch[0]["contrast"] == pytest.approx(grey.std(), abs=1e-12)


def test_only_a_lone_request_on_the_cpu_may_have_its_call_on_the_event_loop(
    tmp_path: Path,
) -> None:
    from cvspec.serve.model import read_model_dir
    from cvspec.serve.service import Service

    files = read_model_dir(write_demo_model(tmp_path / "export", ["a", "b"], 8, 8))
    cpu = Service(ServeConfig(model_dir=files.path), files)
    gpu = Service(ServeConfig(model_dir=files.path, device="cuda"), files)
    cpu.in_flight = gpu.in_flight = 1
    assert cpu._alone() and not gpu._alone()  # a GPU call can hang where the drain cannot end it
    cpu.in_flight = 2
    assert not cpu._alone()
