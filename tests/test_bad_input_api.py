"""The bad-input suite, API answers: a target that answers what no Replicate API answers.

A stand-in for Replicate's cloud (a local HTTP server answering every request one bad
way) behind ``--local-url``: an answer no API gives ends the push with exit 2 and, last,
one line naming the request and what was wrong with it, instead of a decoding error deep
in the client; a secret an answer quotes (an error, here) is never shown.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

LOCAL_TOKEN = "local-secret-0123456789"

ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "html": (200, "text/html", b"<html><body>Sign in to the proxy</body></html>"),
    "array": (200, "application/json", b"[]"),
    "null": (200, "application/json", b"null"),
    "not-json": (200, "application/json", b"\x00\x01 not json"),
    "deep": (200, "application/json", b"[" * 100_000 + b"]" * 100_000),
    "no-id": (200, "application/json", b'{"owner": [], "versions": "x"}'),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "html"

    def log_message(self, *args: object) -> None:
        """Quiet: the tests read the answers, not a request log."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.mode == "redirect":  # to itself, with the empty body a redirect has
            self.send_response(302)
            self.send_header("location", self.path)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.mode == "echo":  # an error that quotes the token it was sent
            body = json.dumps({"detail": f"bad token {self.headers['authorization']}"})
            status, ctype, data = 400, "application/json", body.encode()
        else:
            status, ctype, data = ANSWERS[self.mode]
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: cogfleet hangs up once it has its answer (a request still being answered
        then fails to write), and socketserver would print that traceback to stderr."""


@pytest.fixture
def bad_api() -> Iterator[object]:
    """Start the stand-in answering in ``mode``; returns a function ``start(mode) -> url``."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(mode: str) -> str:
        handler = type("Handler", (_Handler,), {"mode": mode})
        server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("mode", "what"), [
    ("html", "200 answer is an HTML page, not JSON"),
    ("array", "200 answer is an array, not a JSON object"),
    ("null", "200 answer is null, not a JSON object"),
    ("not-json", "200 answer is not JSON"),
    ("deep", "200 answer is JSON nested too deeply"),
])
def test_an_answer_no_api_gives_is_exit_2_naming_the_request(make_repo, cli, bad_api, mode, what):
    root = make_repo()
    url = bad_api(mode)
    result = cli("push", "alpha", "--local-url", url, cwd=root)
    assert result.code == 2, result.err
    last = result.err.strip().splitlines()[-1]
    assert last == (f"error: alpha: push-test: POST {url}/v1/models/acme/alpha-test/versions: "
                     f"{what}; is this a Replicate API?")
    assert "Traceback" not in result.err and "internal error" not in result.err


@pytest.mark.parametrize(("mode", "what"), [
    ("no-id", "push to acme/alpha-test: the answer is no version (it has no id)"),
    ("redirect", "the target's answer could not be read (JSONDecodeError: Expecting value: "
                 "line 1 column 1 (char 0))"),
])
def test_an_answer_without_what_the_api_returns_is_exit_2(make_repo, cli, bad_api, mode, what):
    root = make_repo()
    result = cli("push", "alpha", "--local-url", bad_api(mode), cwd=root)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1] == (
        f"error: alpha: push-test: {what}; is this a Replicate API?"
    )
    assert "Traceback" not in result.err and "internal error" not in result.err


def test_a_token_the_answer_quotes_is_not_shown(make_repo, cli, bad_api, monkeypatch):
    monkeypatch.setenv("COGFLEET_LOCAL_TOKEN", LOCAL_TOKEN)
    root = make_repo()
    result = cli("push", "alpha", "--local-url", bad_api("echo"), "--report-json", "r.json",
                 cwd=root)
    assert result.code == 1, result.err  # an API error: the push test failed
    assert "(400): bad token Bearer ***" in result.err
    assert LOCAL_TOKEN not in result.out + result.err
    assert LOCAL_TOKEN not in (root / "r.json").read_text()
