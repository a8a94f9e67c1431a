"""One send per response: CoalescingTransport over a real socket pair and a real event loop."""

from __future__ import annotations

import asyncio
import socket

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httptools")

from cvspec.serve.transport import COALESCE_BYTES, CoalescingTransport


class Recorder(asyncio.Protocol):
    """The server side of the socket pair; its transport is what gets wrapped."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class CountingTransport:
    """Forwards to the real transport and records every write it receives."""

    def __init__(self, real: asyncio.Transport) -> None:
        self.real, self.writes = real, []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.real.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


async def pair() -> tuple[CountingTransport, CoalescingTransport, socket.socket]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(Recorder, ours)
    counting = CountingTransport(transport)  # type: ignore[arg-type]
    return counting, CoalescingTransport(counting, loop), theirs  # type: ignore[arg-type]


async def receive(sock: socket.socket, size: int) -> bytes:
    loop, got = asyncio.get_running_loop(), b""
    while len(got) < size:
        got += await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5)
    return got


def test_a_response_head_and_body_leave_in_one_write() -> None:
    async def main() -> None:
        counting, transport, peer = await pair()
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        transport.write(head)
        transport.write(b"{}")
        assert counting.writes == []  # held until this step of the loop ends
        assert transport.get_write_buffer_size() == len(head) + 2
        got = await receive(peer, len(head) + 2)
        assert counting.writes == [head + b"{}"]
        assert got == counting.writes[0]
        transport.close()
        peer.close()

    asyncio.run(main())


def test_a_large_body_goes_out_at_once_so_flow_control_sees_it() -> None:
    async def main() -> None:
        counting, transport, peer = await pair()
        transport.write(b"head\r\n\r\n")
        transport.write(memoryview(b"x" * COALESCE_BYTES))
        assert counting.writes == [b"head\r\n\r\n" + b"x" * COALESCE_BYTES]  # no wait
        transport.write(b"tail")  # held again, in order after what was sent
        assert await receive(peer, COALESCE_BYTES + 12) == (
            b"head\r\n\r\n" + b"x" * COALESCE_BYTES + b"tail"
        )
        transport.close()
        peer.close()

    asyncio.run(main())


def test_close_sends_what_is_held_first() -> None:
    async def main() -> None:
        counting, transport, peer = await pair()
        transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        transport.close()
        assert transport.is_closing()
        assert await receive(peer, 28) == b"HTTP/1.1 400 Bad Request\r\n\r\n"
        await asyncio.sleep(0)  # the flush scheduled by write finds nothing left to send
        assert len(counting.writes) == 1
        peer.close()

    asyncio.run(main())


def test_writes_after_the_peer_is_gone_are_dropped() -> None:
    async def main() -> None:
        counting, transport, peer = await pair()
        counting.real.abort()
        transport.write(b"late")
        await asyncio.sleep(0)
        assert counting.writes == []  # nothing written to a closing transport
        peer.close()

    asyncio.run(main())
