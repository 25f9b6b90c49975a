"""How the local server's HTTP protocol puts responses on the wire."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from cogfleet.server._threaded import ProblemHttpProtocol


async def _json(request: Request) -> Response:
    return JSONResponse({"status": "succeeded"})


async def _events(request: Request) -> Response:
    async def lines() -> Any:
        for n in range(3):
            yield f"event: output\ndata: {n}\n\n"
            await asyncio.sleep(0)

    return StreamingResponse(lines(), media_type="text/event-stream")


class _Counting:
    """Forwards to the socket's transport, counting the writes that reach it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _exchange(request: bytes, expect: bytes) -> tuple[list[bytes], bytes]:
    app = Starlette(routes=[Route("/json", _json), Route("/events", _events)])
    config = uvicorn.Config(app, http=ProblemHttpProtocol, log_level="error")
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    proto = ProblemHttpProtocol(config, ServerState(), {}, loop)
    transport, _ = await loop.create_connection(lambda: proto, sock=ours)
    counting = _Counting(transport)  # type: ignore[arg-type]
    proto.transport._transport = counting  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection(sock=theirs)
    writer.write(request)
    received = b""
    while expect not in received:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, received
        received += chunk
    writer.close()
    transport.close()
    return counting.writes, received


def test_a_response_head_and_body_leave_in_one_write() -> None:
    writes, received = asyncio.run(
        _exchange(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n", b'{"status":"succeeded"}')
    )
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(writes) == 1
    assert writes[0].endswith(b'\r\n\r\n{"status":"succeeded"}')


def test_stream_events_still_leave_as_they_come() -> None:
    writes, received = asyncio.run(
        _exchange(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", b"0\r\n\r\n")
    )
    assert [received.count(f"data: {n}".encode()) for n in range(3)] == [1, 1, 1]
    # The head goes with the first event; each later event is written in its own turn.
    assert 2 <= len(writes) <= 4
    assert b"data: 0" in writes[0] and b"data: 2" not in writes[0]
