"""The HTTP protocol uvicorn runs: coalesced writes, and limits on how a request head arrives.

uvicorn's httptools protocol closes a kept-alive connection that stays idle for
`timeout_keep_alive`, but a connection that never sends a request, or sends its head a byte at
a time, stays open for ever, and httptools buffers a head of any size (a 20 MB header line was
taken whole). Once uvicorn's `limit_concurrency` is gone (runner.py says why), nothing else
closes such connections, so the protocol below does:

- a connection must deliver a complete request head within `timeout_keep_alive` seconds of
  opening, or of its previous response: a new idle connection is as idle as a kept-alive one,
  and a head sent slowly (slowloris) is cut off at the same deadline;
- a head over MAX_HEAD_BYTES is answered 431 and the connection closed (h11, uvicorn's other
  parser, refuses heads over 16 KiB the same way).

Bytes that do not parse as HTTP get uvicorn's own 400 and a close; the protocol counts those too.

Both happen before the app sees a request, so neither reaches the request metrics: they are
connections, not requests, counted in cvspec_connections_closed_total by reason (a connection
closed idle, before any byte of a request, is not counted: kept-alive connections end so).
Once the head is in, the app's own limits apply (app.py).
"""

from __future__ import annotations

import asyncio

from cvspec.serve import metrics
from cvspec.serve.transport import CoalescingHttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; a normal head is well under 2 KiB
PROTOCOL = "cvspec.serve.protocol:GuardedHttpToolsProtocol"  # uvicorn's `http=` setting
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 27\r\nconnection: close\r\n\r\n"
    b"the request head is too big"
)


class GuardedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the clock for the first request head."""
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between the first byte of a request and the end of its head
        self._head_bytes = 0
        self._message_began = False
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, counting the bytes that belong to an unfinished head.

        A chunk in which a request begins is not counted: it may also hold the end of the
        previous body. The count is short by at most one chunk; the deadline still holds.
        """
        self._message_began = False
        super().data_received(data)
        if self._in_head and not self._message_began:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.logger.info("a request head over %d bytes: closed", MAX_HEAD_BYTES)
                metrics.count_closed("head_too_large")
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that do not parse as HTTP: counted, then sent."""
        metrics.count_closed("bad_request")
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        """A request starts: its head is counted from here."""
        self._in_head, self._head_bytes, self._message_began = True, 0, True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is in time: from here the app reads the body under its own limits."""
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """Wait for the next head, unless one already waits (pipelining) or the socket closes."""
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            if self._in_head:  # not an idle connection: a head begun and not finished in time
                metrics.count_closed("head_timeout")
            self.transport.close()
