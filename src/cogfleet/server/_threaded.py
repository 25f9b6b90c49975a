"""Serving an ASGI app with uvicorn from a background thread on a loopback port.

Used by the embedded local server (and by test doubles that speak other HTTP APIs).
Start-up is reported through an event, never by polling the port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Literal

import uvicorn


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
    ) -> None:
        self.app = app
        self.name = name
        self.host = host
        self.port = port
        self.lifespan = lifespan
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
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
            access_log=False,
        )
        server = _Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
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
