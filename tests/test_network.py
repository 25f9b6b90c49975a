"""URLs that cannot be fetched: named with the reason, kept apart from model failures."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cogfleet import ExitCode
from cogfleet._errors import NetworkError
from cogfleet._predict import FileCache, network_reason
from tests import mci_repo
from tests.conftest import write_files

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path == "/slow":
            self.server.release.wait(30)  # type: ignore[attr-defined]
            return
        if self.path == "/ok.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG_1PX)))
            self.end_headers()
            self.wfile.write(PNG_1PX)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """A loopback HTTP server: /ok.png, /slow (never answers) and 404 for anything else."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once closed


def test_reasons_name_dns_connect_timeout_and_status(web, closed_port):
    cache = FileCache(None, timeout=1.0)
    with pytest.raises(NetworkError) as err:
        cache(f"{web}/missing.png")
    assert str(err.value) == f"cannot fetch {web}/missing.png: HTTP 404 Not Found"
    with pytest.raises(NetworkError) as err:
        cache.probe(f"http://127.0.0.1:{closed_port}/x.png")
    assert err.value.reason.startswith("connection failed (")
    with pytest.raises(NetworkError) as err:
        cache(f"{web}/slow")
    assert err.value.reason == "timed out after 1s waiting for data"
    dns = httpx.ConnectError("[Errno -2] Name or service not known")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert network_reason(dns).startswith("DNS lookup failed (")
    assert cache(f"{web}/ok.png").data == PNG_1PX


def test_probe_is_tried_once_per_url(web):
    cache = FileCache(None)
    url = f"{web}/missing.png"
    with pytest.raises(NetworkError) as first:
        cache.probe(url)
    with pytest.raises(NetworkError) as second:
        cache.probe(url)
    assert first.value is second.value


def test_offline_refuses_remote_urls_at_once_but_not_loopback(web):
    cache = FileCache(None, offline=True)
    with pytest.raises(NetworkError) as err:
        cache.probe("https://storage.example.com/fast-car.jpg")
    assert str(err.value) == (
        "cannot fetch https://storage.example.com/fast-car.jpg: not fetched: --offline"
    )
    assert cache(f"{web}/ok.png").data == PNG_1PX  # this machine is not the network


@pytest.fixture
def adopted(tmp_path: Path) -> Path:
    root = tmp_path / "flux"
    write_files(root, dict(mci_repo.FILES))
    write_files(root, {"variants.yaml": mci_repo.VARIANTS_YAML,
                       "pyproject.toml": mci_repo.PYPROJECT})
    return root


@pytest.mark.slow
def test_cases_fail_as_network_model_or_checker_in_the_report(adopted, cli, web, closed_port):
    write_files(adopted, {"safe-push-configs/dev.yaml": f"""\
        model: acme/flux-dev
        predict:
          test_cases:
            - inputs: {{prompt: a cat}}
              exact_string: "flux:a cat:28"
            - inputs: {{prompt: a cat, reference: "http://127.0.0.1:{closed_port}/ref.png"}}
              exact_string: "flux:a cat:28"
            - inputs: {{prompt: a cat}}
              match_url: "{web}/missing.png"
            - inputs: {{prompt: a cat}}
              exact_string: "something else"
            - inputs: {{prompt: fail}}
          fuzz:
            iterations: 0
        """})
    report = adopted.parent / "report.json"
    result = cli("test", "dev", "--report-json", str(report), cwd=adopted)
    assert result.code == ExitCode.CHECKS_FAILED
    cases = {c["index"]: c for c in json.loads(report.read_text())["cases"]}
    assert cases[0]["status"] == "passed" and "error_kind" not in cases[0]
    assert cases[1]["error_kind"] == "network" and cases[1]["prediction_id"] is None
    assert cases[1]["message"].startswith(
        f"input 'reference': cannot fetch http://127.0.0.1:{closed_port}/ref.png: "
        "connection failed ("
    )
    assert cases[2]["error_kind"] == "network"
    assert cases[2]["message"] == f"match_url: cannot fetch {web}/missing.png: HTTP 404 Not Found"
    assert cases[3]["error_kind"] == "checker"
    assert cases[4]["error_kind"] == "model"  # the predictor raised
    assert "failed on purpose" in cases[4]["message"]


@pytest.mark.slow
def test_offline_fails_remote_urls_at_once(adopted, cli):
    write_files(adopted, {"safe-push-configs/dev.yaml": """\
        model: acme/flux-dev
        predict:
          test_cases:
            - inputs: {prompt: a cat}
              exact_string: "flux:a cat:28"
            - inputs: {prompt: a cat}
              match_url: "https://storage.example.com/cog-safe-push-public/fast-car.jpg"
        """})
    report = adopted.parent / "report.json"
    result = cli("test", "dev", "--offline", "--report-json", str(report), cwd=adopted)
    assert result.code == ExitCode.CHECKS_FAILED
    cases = {c["index"]: c for c in json.loads(report.read_text())["cases"]}
    assert cases[0]["status"] == "passed"
    assert cases[1] == {**cases[1], "status": "failed", "error_kind": "network",
                        "message": "match_url: cannot fetch https://storage.example.com/"
                                   "cog-safe-push-public/fast-car.jpg: not fetched: --offline"}


@pytest.mark.slow
def test_an_unreachable_fixed_fuzz_input_fails_fuzzing_once(adopted, cli, closed_port):
    url = f"http://127.0.0.1:{closed_port}/ref.png"
    write_files(adopted, {"safe-push-configs/dev.yaml": f"""\
        model: acme/flux-dev
        predict:
          fuzz:
            iterations: 3
            fixed_inputs: {{prompt: "{url}"}}
        """})
    report = adopted.parent / "report.json"
    result = cli("test", "dev", "--report-json", str(report), cwd=adopted)
    assert result.code == ExitCode.CHECKS_FAILED
    run = json.loads(report.read_text())
    fuzz = [c for c in run["cases"] if c["kind"] == "fuzz"]
    assert len(fuzz) == 1 and fuzz[0]["error_kind"] == "network"
    assert fuzz[0]["message"].startswith(f"fixed_inputs: input 'prompt': cannot fetch {url}")
