"""The retrying transport: TLS set up only for https, once per process; retries counted."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from cogfleet._http import ResilientTransport, TargetDown, tls_context


class _Handler(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).calls += 1
        status = 503 if type(self).calls == 1 else 200  # the first answer is transient
        body = b"busy" if status == 503 else b"ok"
        self.send_response(status)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test's output free of the request log."""


@pytest.fixture
def plain_url() -> Iterator[str]:
    _Handler.calls = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_plain_http_reads_no_ca_bundle(plain_url: str) -> None:
    tls_context.cache_clear()
    transport = ResilientTransport()
    with httpx.Client(transport=transport) as client:
        assert client.get(plain_url).text == "ok"

    async def get() -> str:
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get(plain_url)).text

    assert asyncio.run(get()) == "ok"
    assert (transport.requests, transport.retries) == (3, 1)  # the 503 was retried
    assert tls_context.cache_info().misses == 0  # no TLS context was made


def test_https_transports_share_one_context() -> None:
    tls_context.cache_clear()
    first, second = ResilientTransport(), ResilientTransport()
    url = httpx.URL("https://api.example.invalid/v1/models")
    contexts = {
        id(first._inner(first._sync, httpx.HTTPTransport, url)._pool._ssl_context),
        id(first._inner(first._async, httpx.AsyncHTTPTransport, url)._pool._ssl_context),
        id(second._inner(second._sync, httpx.HTTPTransport, url)._pool._ssl_context),
    }
    assert contexts == {id(tls_context())}
    assert tls_context().verify_mode.name == "CERT_REQUIRED"
    assert tls_context.cache_info().misses == 1
    first.close()
    second.close()


class _Dropper(http.server.BaseHTTPRequestHandler):
    """Reads each request and closes the connection without an answer, ``drops`` times;
    answers after that."""

    drops = 0
    connections = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).connections += 1
        if type(self).connections <= type(self).drops:
            self.close_connection = True
            return  # nothing written: the client sees the connection close
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        """Keep the test's output free of the request log."""


@pytest.fixture
def dropper() -> Iterator[tuple[str, type[_Dropper]]]:
    handler = type("Handler", (_Dropper,), {"drops": 0, "connections": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_dropped_connection_is_retried(dropper: tuple[str, type[_Dropper]]) -> None:
    url, handler = dropper
    handler.drops = 1  # one transient drop
    transport = ResilientTransport(attempts=3, base_delay=0.01)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{url}/v1/x").text == "ok"
    assert transport.failure is None and handler.connections == 2


def test_an_origin_that_drops_every_try_gets_nothing_more(
    dropper: tuple[str, type[_Dropper]],
) -> None:
    """Once one request has used up its retries, later requests to that origin (sync or
    async) fail at once instead of spending the retries again; the failure names it."""
    url, handler = dropper
    handler.drops = 1_000
    transport = ResilientTransport(attempts=3, base_delay=0.01)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{url}/v1/first")
        assert handler.connections == 3
        assert transport.failure == (f"{url} closed every connection without an answer "
                                     "(GET /v1/first: 3 tries in 0 s)")
        with pytest.raises(TargetDown, match=r"^not sent: http://127\.0\.0\.1:\d+ closed"):
            client.post(f"{url}/v1/second")

    async def later() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(f"{url}/v1/third")

    with pytest.raises(TargetDown):
        asyncio.run(later())
    assert handler.connections == 3  # nothing more was sent
