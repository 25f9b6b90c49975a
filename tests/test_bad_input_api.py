"""The bad-input suite, API answers: a target that answers what no Replicate API answers.

A stand-in for Replicate's cloud (a local HTTP server answering every request one bad
way) behind ``--local-url``: an answer no API gives ends the push with exit 2 and, last,
one line naming the request and what was wrong with it, instead of a decoding error deep
in the client; a secret an answer quotes (an error, here) is never shown.
"""

from __future__ import annotations

import http.server
import json
import re
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
    requests: list[str]

    def log_message(self, *args: object) -> None:
        """Quiet: the tests read the answers, not a request log."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.requests.append(f"{self.command} {self.path.partition('?')[0]}")
        if self.mode.isdigit():  # that status to everything, quoting the token it got
            body = json.dumps({"title": "no", "status": int(self.mode),
                               "detail": f"token {self.headers['authorization']}"}).encode()
            self.send_response(int(self.mode))
            self.send_header("content-type", "application/problem+json")
            self.send_header("retry-after", "0")  # retried at once: the test waits for none
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.mode == "redirect":  # to itself, with the empty body a redirect has
            self.send_response(302)
            self.send_header("location", self.path)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.mode == "echo":  # an error that quotes the token it was sent
            body = json.dumps({"detail": f"bad token {self.headers['authorization']}"})
            status, ctype, data = 400, "application/json", body.encode()
        elif self.mode == "no-id" and self.command == "GET":  # the models exist: the push is
            owner, _, name = self.path.removeprefix("/v1/models/").partition("/")  # reached
            body = json.dumps({"url": f"https://replicate.com/{owner}/{name}", "owner": owner,
                               "name": name, "visibility": "private", "run_count": 0,
                               "latest_version": None})
            status, ctype, data = 200, "application/json", body.encode()
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

    def start(mode: str, requests: list[str] | None = None) -> str:
        seen = [] if requests is None else requests
        handler = type("Handler", (_Handler,), {"mode": mode, "requests": seen})
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
    # the first request: the model is looked up before anything is pushed
    assert last == (f"error: alpha: push-test: GET {url}/v1/models/acme/alpha: "
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
    assert "acme/alpha: 400 bad token Bearer ***" in result.err  # the model's look-up
    assert LOCAL_TOKEN not in result.out + result.err
    assert LOCAL_TOKEN not in (root / "r.json").read_text()


@pytest.mark.parametrize(("status", "what"), [
    ("401", "answered 401 Unauthorized: it refused the token ($COGFLEET_LOCAL_TOKEN)"),
    ("403", "answered 403 Forbidden (acme/alpha: 403 token Bearer ***)"),  # the look-up
])
def test_a_refused_token_or_request_is_exit_2_naming_the_target(
    make_repo, cli, bad_api, monkeypatch, status, what
):
    """Not a failed check of the model (exit 1): the target refused; the token is not shown."""
    monkeypatch.setenv("COGFLEET_LOCAL_TOKEN", LOCAL_TOKEN)
    root = make_repo()
    requests: list[str] = []
    url = bad_api(status, requests)
    result = cli("push", "alpha", "--local-url", url, "--report-json", "r.json", cwd=root)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1] == f"error: alpha: push-test: {url} {what}"
    # the model's look-up (the first request), and nothing after it
    assert set(requests) <= {"POST /v1/models/acme/alpha-test/versions",
                             "GET /v1/models/acme/alpha"}, requests
    assert LOCAL_TOKEN not in result.out + result.err + (root / "r.json").read_text()
    assert "Traceback" not in result.err


def test_a_model_the_target_does_not_have_is_exit_2(make_repo, cli, bad_api):
    """The config names a model the target lacks: a configuration error, not a failed check,
    and no test model is created for it."""
    root = make_repo()
    requests: list[str] = []
    result = cli("push", "alpha", "--local-url", bad_api("404", requests), cwd=root)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1] == (
        "error: alpha: push-test: model acme/alpha does not exist on local; create it first")
    assert "POST /v1/models" not in requests  # nothing created


@pytest.mark.parametrize(("status", "phrase"), [
    ("503", "503 Service Unavailable"), ("500", "500 Internal Server Error"),
    ("429", "429 Too Many Requests"),
])
def test_a_target_failing_every_retry_is_exit_2_and_gets_nothing_more(
    make_repo, cli, bad_api, status, phrase
):
    """The push's retries used up on 5xx or 429: exit 2 naming the target and the status,
    and no request after them (the model's look-up running beside the push included)."""
    root = make_repo()
    requests: list[str] = []
    url = bad_api(status, requests)
    result = cli("push", "alpha", "--local-url", url, cwd=root)
    assert result.code == 2, result.err
    last = result.err.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: {re.escape(url)} answered {phrase} to every try "
                        r"\((POST|GET) /v1/models/acme/alpha(-test/versions)?: 8 tries in \d+ s\)",
                        last), last
    assert len(requests) <= 16, requests  # the push's tries and the look-up's, no more
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_a_target_failing_mid_run_stops_it_after_one_requests_retries(
    make_repo, cli, tmp_path, monkeypatch
):
    """The push passes, then the target answers 503 to every prediction: the first
    prediction's retries end the run (exit 2, naming the target); no other prediction is
    sent and the model is not promoted."""
    import replicate

    from cogfleet.server._embedded import LocalServer
    from tests.fakes.fault_proxy import FaultProxy, Rule

    root = make_repo({"cog-safe-push-configs/alpha.yaml": """\
        model: {{ model }}
        predict:
          test_cases: [{inputs: {prompt: hi}, exact_string: "hi:4"}]
          fuzz: {iterations: 3}
        """})
    down = Rule("POST", r"^/v1/predictions$", 503, headers={"Retry-After": "0"})
    with LocalServer(state_dir=tmp_path / "state", owners=["acme"]) as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="acme", name="alpha", visibility="public", hardware="cpu")
        monkeypatch.setenv("COGFLEET_LOCAL_TOKEN", server.token)
        with FaultProxy(server.base_url, [down]) as proxy:
            url = proxy.base_url
            result = cli("push", "alpha", "--local-url", url, "--parallel", "1", cwd=root)
        model = client.models.get("acme/alpha")
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1] == (
        f"error: {url} answered 503 Service Unavailable to every try "
        "(POST /v1/predictions: 8 tries in 0 s)")
    assert down.hits == 8  # one prediction's tries; none of the others was sent
    assert model.latest_version is None  # not promoted
