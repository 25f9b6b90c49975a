"""Output files are read once: a checker and the report share one fetch over real HTTP."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cogfleet._predict import FileCache

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class FileServer:
    """Serves ``/out.png`` (slowly, so concurrent readers overlap) and counts requests."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        self.arrived = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                owner.arrived.set()
                if self.path == "/missing.png":
                    self.send_error(404)
                    return
                owner.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    try:
        yield srv
    finally:
        srv.close()


def test_concurrent_readers_share_one_fetch(server: FileServer) -> None:
    files = FileCache(repo_root=None)
    url = f"{server.url}/out.png"
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(files, url)
        assert server.arrived.wait(30)  # the first read is on the wire, held by the server
        rest = [pool.submit(files, url) for _ in range(3)]
        # the other three wait for the first read instead of fetching again
        assert [r.done() for r in rest] == [False] * 3
        server.release.set()
        results = [p.result(timeout=30) for p in [first, *rest]]
    assert all(r.data == PNG and r.content_type == "image/png" for r in results)
    assert server.hits == {"/out.png": 1}
    assert files.fetches == 1


def test_embed_turns_urls_into_data_uris_without_fetching_again(server: FileServer) -> None:
    server.release.set()
    files = FileCache(repo_root=None)
    url = f"{server.url}/out.png"
    files(url)  # a checker read it first
    output = {"images": [url, "data:text/plain;base64,aGk="], "caption": "a cat",
              "missing": f"{server.url}/missing.png"}
    embedded = files.embed(output)
    assert embedded["images"][0] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert embedded["images"][1] == "data:text/plain;base64,aGk="  # already embedded
    assert embedded["caption"] == "a cat"
    assert embedded["missing"] == f"{server.url}/missing.png"  # unreadable: the URL stays
    assert server.hits["/out.png"] == 1
    # a file larger than the limit keeps its URL (and is not fetched again either)
    assert files.embed([url], max_bytes=10) == [url]
    assert server.hits["/out.png"] == 1


def test_failed_read_is_not_cached(server: FileServer, tmp_path: Path) -> None:
    files = FileCache(repo_root=tmp_path)
    with pytest.raises(ValueError, match="not found in the repo"):
        files("reference.png")
    (tmp_path / "reference.png").write_bytes(PNG)
    assert files("reference.png").data == PNG
