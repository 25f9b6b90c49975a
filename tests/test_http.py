"""The retrying transport: TLS set up only for https, once per process; retries counted."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from cogfleet._http import ResilientTransport, tls_context


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
