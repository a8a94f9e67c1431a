"""One send() per response: uvicorn writes each response's head and body separately.

uvicorn's HTTP protocols call `transport.write` once for the status line and headers and once
for the body; on an idle socket asyncio sends each at once, so a small JSON answer costs two
`send` system calls and two TCP segments (and two wake-ups of the client). At 16 clients those
sends were 18 % of the event loop's time in a profile of the batching server. The transport
below holds small writes until the end of the current event-loop step and sends them joined;
a write that brings the held bytes to COALESCE_BYTES goes out at once, so a large or streamed
body meets asyncio's flow control exactly as before.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

COALESCE_BYTES = 64 * 1024


class CoalescingTransport:
    """Wraps an asyncio transport; `write` joins what one event-loop step writes."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold `data` until this loop step ends, or send everything now once it is large."""
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= COALESCE_BYTES:
            self.flush()
        elif len(self._held) == 1:
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is held to the real transport (one send when the socket takes it)."""
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what is held, then close (asyncio sends its own buffer before closing)."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Send what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet sent: the real transport's buffer plus what is held here."""
        return self._transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a CoalescingTransport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, wrapped))
