"""Dynamic batching: images from many requests share one model call, through a bounded queue."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

log = logging.getLogger("cvspec.serve")
# A model call that took at most this long the last time runs on the event loop itself while its
# request is the only one in flight: the hop to the inference thread and back costs about 0.5 ms
# on a 2-core VM, a quarter of a lone request's time in the server (benchmarks/README.md). Under
# load, or for a model slower than this, calls run in the inference thread as before, so the loop
# goes on reading and decoding the next requests meanwhile.
INLINE_CALL_S = 0.005


class BatchFailed(Exception):
    """The model call, or its post-processing, failed for the batch a request was in. The
    reason is logged once per batch, with its traceback, under `reference`; each request of the
    batch gets the reference (a client learns no server detail), not a traceback of its own."""

    def __init__(self, reference: str, reason: BaseException) -> None:
        super().__init__(f"{type(reason).__name__}: {reason}")
        self.reference = reference


class QueueFull(Exception):
    """The queue has no room for a request's images: answer 503 and ask to retry."""


class _Item(NamedTuple):
    array: Any  # one preprocessed image, (3, S, S)
    meta: Any  # what `finish` needs besides the model's row (the image's size, its statistics)
    future: asyncio.Future[Any]


def _rows(out: Any, metas: Sequence[Any]) -> Sequence[Any]:
    return list(out)


class Batcher:
    """Collects up to max_batch images, waiting at most max_wait_s, and runs them in one call.

    It waits only while more images are on their way (requests being decoded, as `pending`
    reports): a lone request never waits for company that is not coming. `run` (the model call)
    runs in a worker thread; `finish` turns its output into one result per image on the event
    loop, once per batch, so post-processing and bookkeeping are vectorised over the batch too.
    """

    def __init__(
        self,
        run: Callable[[Any], Any],
        max_batch: int,
        max_wait_s: float,
        capacity: int,
        pending: Callable[[], int] = lambda: 0,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
        on_depth: Callable[[int], None] = lambda depth: None,
        finish: Callable[[Any, Sequence[Any]], Sequence[Any]] = _rows,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.run, self.max_batch, self.max_wait_s, self.capacity = (
            run,
            max_batch,
            max_wait_s,
            capacity,
        )
        self.pending, self.on_batch, self.on_depth = pending, on_batch, on_depth
        self.finish, self.alone = finish, alone
        self._last_call_s = math.inf  # unknown until a first call in the inference thread
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cvspec-infer")

    @property
    def depth(self) -> int:
        """Images waiting for a batch."""
        return self._queue.qsize()

    async def submit(self, arrays: Sequence[Any], metas: Sequence[Any] | None = None) -> list[Any]:
        """`finish`'s result for each image; QueueFull when they do not all fit."""
        if self._queue.qsize() + len(arrays) > self.capacity:
            raise QueueFull(f"{self._queue.qsize()} images are waiting (limit {self.capacity})")
        loop = asyncio.get_running_loop()
        metas = [None] * len(arrays) if metas is None else metas
        items = [_Item(a, m, loop.create_future()) for a, m in zip(arrays, metas, strict=True)]
        for item in items:
            self._queue.put_nowait(item)
        self.on_depth(self._queue.qsize())
        if len(items) == 1:  # the usual case: no gathering future for one image
            return [await items[0].future]
        return list(await asyncio.gather(*(i.future for i in items)))

    async def serve_forever(self) -> None:
        """Form and run batches until cancelled."""
        import numpy as np

        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = await self._collect(loop)
                self.on_depth(self._queue.qsize())
                try:
                    arrays = np.stack([i.array for i in batch])
                    if self._last_call_s <= INLINE_CALL_S and self.alone():
                        out, seconds = self._timed(arrays)
                    else:
                        out, seconds = await loop.run_in_executor(
                            self._executor, self._timed, arrays
                        )
                    self._last_call_s = seconds
                    rows = self.finish(out, [i.meta for i in batch])
                except Exception as exc:  # the model or `finish` failed: every request learns so
                    reference = uuid.uuid4().hex[:12]
                    log.error(
                        "the model failed on a batch of %d image(s) (reference %s)",
                        len(batch),
                        reference,
                        exc_info=exc,
                    )
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(BatchFailed(reference, exc))
                    continue
                self.on_batch(len(batch), seconds)
                for row, item in zip(rows, batch, strict=True):
                    if not item.future.done():
                        item.future.set_result(row)
        finally:
            self._fail_waiting()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _timed(self, arrays: Any) -> tuple[Any, float]:
        """The model's output and how long the call took (the thread hops not counted)."""
        started = time.perf_counter()
        out = self.run(arrays)
        return out, time.perf_counter() - started

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Item]:
        batch = [await self._queue.get()]
        if self.max_wait_s <= 0:  # no waiting: what is queued now
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            return batch
        # One timeout for the whole batch (asyncio.wait_for makes a task per image it waits for
        # on Python 3.11); a get() cancelled by it leaves its item in the queue.
        try:
            async with asyncio.timeout_at(loop.time() + self.max_wait_s):
                while len(batch) < self.max_batch:
                    if not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                    elif self.pending() == 0:
                        break
                    else:
                        batch.append(await self._queue.get())
        except TimeoutError:
            pass
        return batch

    def _fail_waiting(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(QueueFull("the server is shutting down"))
