"""Serving an ASGI app with uvicorn from a background thread on a loopback port.

Used by the embedded local server (and by test doubles that speak other HTTP APIs).
Start-up is reported through an event, never by polling the port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any, Literal

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

KEEP_ALIVE_S = 75
"""How long an idle client connection stays open. Clients reuse idle connections for
a while (httpx 5 s, aiohttp 15 s); a server that closes one first races with a request
already on its way, which then fails with a reset connection. uvicorn's default is 5 s."""


class _CorkedTransport:
    """A transport whose writes in one turn of the event loop leave as one.

    uvicorn writes a response's head and its body separately: two system calls and
    two TCP segments, and a client that reads the head wakes again for the body.
    Here what one turn writes (the head and body of a response, a stream event's
    lines) is joined and sent once, at the end of that turn; closing sends it first.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ProblemHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol, answering a request that is not valid
    HTTP/1.1 with problem JSON like every other error (uvicorn's own answer is
    text/plain), and refusing an HTTP/1.1 request without a ``Host`` header, which
    RFC 9112 requires and llhttp lets through.

    llhttp parses in C: about a third less of the server's CPU per request than
    uvicorn's pure-Python h11 protocol (``bench/server_overhead.py``). It knows
    every registered method (``QUERY`` included); a method it does not know is a
    400 here, where a server parsing any token as a method would answer 405.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Flow control (pausing reads) keeps the socket's own transport.
        self.transport = _CorkedTransport(transport, self.loop)  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        if self.parser.get_http_version() == "1.1" and not any(
            name == b"host" for name, _ in self.headers
        ):
            # Raised inside the parser's callback, it ends as the parser's own error.
            raise httptools.HttpParserError("HTTP/1.1 request without a Host header")
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"title": "Bad request", "detail": msg, "status": 400}).encode()
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


class ForegroundServer(uvicorn.Server):
    """uvicorn serving a socket bound beforehand (``cogfleet serve``).

    uvicorn says where it listens only for sockets it binds itself; this says it for
    the given one too, so ``--port 0`` announces the port it really got.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            self._log_started_message(sockets)


class _Server(uvicorn.Server):
    """uvicorn that reports start-up through a threading.Event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:
        # Signals belong to the host program when serving from a thread.
        return


class ThreadedServer:
    """``app`` served on ``host:port`` (0 = a free port) until :meth:`stop`."""

    def __init__(
        self,
        app: Any,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["on", "off"] = "off",
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 60.0,
        http: type[asyncio.Protocol] | str = "auto",
    ) -> None:
        self.app = app
        self.name = name
        self.host = host
        self.port = port
        self.lifespan = lifespan
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.http = http
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind the port and serve; returns once connections are accepted."""
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # listener says so, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan=self.lifespan,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_S,
            access_log=False,
            http=self.http,
        )
        server = _Server(config)
        self._server = server

        # uvicorn's "auto" loop: uvloop where it is installed (its event loop and
        # transports run in C, about a fifth of the server's CPU per request).
        loop_factory = config.get_loop_factory()

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    runner.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # surfaced to the starting thread below
                self._error = exc
            finally:
                sock.close()
                server.ready.set()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not server.ready.wait(self.startup_timeout) or not server.started:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self._error or 'timeout'}")

    def stop(self) -> None:
        """Stop serving (running the app's shutdown) and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.shutdown_timeout)
        self._server = None
        self._thread = None
