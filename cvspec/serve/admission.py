"""A budget of decoded pixels: how much image memory the server may hold at once.

max_image_bytes bounds the compressed upload only: a 6000 x 6000 solid-colour PNG is 119 KB
and decodes to 36 M pixels, 180 MB at the peak (PIL keeps 4 bytes a pixel, the grey histogram
takes 1 more; an RGBA image converted to RGB, 9 in all). Decoding runs on Starlette's thread
pool (40 threads), so 24 such uploads at once took a server from 305 MB to 3.7 GB. The budget
below caps the pixels being decoded at once; requests beyond it wait in a short first-come
line (they hold only their compressed bytes) and past that line are refused with 503 +
Retry-After, as a full batch queue is.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from cvspec.serve.batching import QueueFull

T = TypeVar("T")


class PixelBudget:
    """Pixels of images being decoded now, at most `limit`; at most `max_waiting` requests wait.

    A request takes the pixels of its largest image (its images are decoded one after another
    and each is freed before the next, Service.prepare). `on_change` gets the pixels in use.
    """

    def __init__(
        self, limit: int, max_waiting: int, on_change: Callable[[int], None] = lambda n: None
    ) -> None:
        self.limit, self.max_waiting, self.on_change = limit, max_waiting, on_change
        self.in_use = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold `pixels` of the budget for the block: wait for them, or QueueFull at once."""
        pixels = min(pixels, self.limit)  # one image never exceeds max_pixels <= limit
        await self._acquire(pixels)
        try:
            yield
        finally:
            self._release(pixels)

    async def _acquire(self, pixels: int) -> None:
        if not self._waiting and self.in_use + pixels <= self.limit:
            self._take(pixels)
            return
        if len(self._waiting) >= self.max_waiting:
            raise QueueFull(
                f"{self.in_use} pixels are being decoded (limit {self.limit}) and "
                f"{len(self._waiting)} requests wait to decode (limit {self.max_waiting})"
            )
        entry = (pixels, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():  # granted as it was cancelled
                self._release(pixels)
            elif entry in self._waiting:
                self._waiting.remove(entry)
                self._wake()  # the requests behind it may fit now
            raise

    def _take(self, pixels: int) -> None:
        self.in_use += pixels
        self.on_change(self.in_use)

    def _release(self, pixels: int) -> None:
        self.in_use -= pixels
        self.on_change(self.in_use)
        self._wake()

    def _wake(self) -> None:
        """Grant waiting requests in order while the first of them fits."""
        while self._waiting and self.in_use + self._waiting[0][0] <= self.limit:
            pixels, future = self._waiting.popleft()
            if not future.done():
                self._take(pixels)
                future.set_result(None)


async def held_until_done(budget: PixelBudget, pixels: int, start: Callable[[], Awaitable[T]]) -> T:
    """Run `start()` (a decode in a worker thread) holding `pixels` of the budget. A caller
    cancelled meanwhile (a shutdown, a dropped connection) keeps holding them until the
    thread is done: its decoded pixels stay in memory until then."""
    async with budget.hold(pixels):
        task = asyncio.ensure_future(start())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # a bad image nobody waits for any more: not worth a log line
            raise
