"""Bad input to the local server: always a 4xx problem JSON, never a 5xx, nothing stored.

Raw HTTP (httpx), since most of these are requests no client library would send.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

FIXTURES = Path(__file__).parent / "fixtures" / "server"
TOKEN = "r8_bad-input"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path_factory.mktemp("state"), token=TOKEN) as srv:
        client = replicate.Client(api_token=TOKEN, base_url=srv.base_url)
        client.models.create(owner="acme", name="echo", visibility="private", hardware="cpu")
        push_build(client, "acme", "echo", FIXTURES / "echo")
        yield srv


@pytest.fixture(scope="module")
def version(server: LocalServer) -> str:
    client = replicate.Client(api_token=TOKEN, base_url=server.base_url)
    return str(client.models.get("acme/echo").latest_version.id)


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
        yield client


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"]
    return body


# --- routes, methods, paths ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nope", 404),
        ("GET", "/", 404),
        ("GET", "/v1/models/acme", 404),
        ("GET", "/v1/files/../../etc/passwd", 404),
        ("GET", "/v1/files/..%2F..%2Fetc%2Fpasswd", 404),
        ("GET", "/v1/weights/..%2Fstate.sqlite3", 404),
        ("GET", "/delivery/..%2F..%2Fstate.sqlite3/out-0.txt", 404),
        ("GET", "/v1/streams/..%2F..", 404),
        ("DELETE", "/v1/predictions", 405),
        ("PUT", "/v1/models/acme/echo", 405),
        ("PATCH", "/v1/account", 405),
        # A method HTTP does not register is not HTTP (see the server's docstring).
        ("BREW", "/v1/models", 400),
    ],
)
def test_unknown_routes_and_methods_are_problem_json(
    http: httpx.Client, method: str, path: str, status: int
) -> None:
    resp = http.request(method, path)
    body = _problem(resp, status)
    if status == 404:
        assert body["detail"] == "The requested resource could not be found."
    elif status == 400:
        assert body["detail"] == "Invalid HTTP request received."
    else:
        assert body["title"] == "Method Not Allowed" and method in body["detail"]
        assert "allow" in resp.headers


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        # Paths that several routes serve name every method of all of them.
        ("/v1/predictions", "GET, HEAD, POST"),
        ("/v1/models", "GET, HEAD, POST, QUERY"),
        ("/v1/models/acme/echo", "DELETE, GET, HEAD, PATCH"),
        ("/v1/deployments/acme/app", "DELETE, GET, HEAD, PATCH"),
        ("/v1/files/abc", "DELETE, GET, HEAD"),
        ("/v1/predictions/abc/cancel", "POST"),
    ],
)
def test_method_not_allowed_names_every_allowed_method(
    http: httpx.Client, path: str, allowed: str
) -> None:
    resp = http.request("PUT", path)
    _problem(resp, 405)
    assert resp.headers["allow"] == allowed


def test_unauthenticated_unknown_route_is_401_problem(server: LocalServer) -> None:
    _problem(httpx.get(f"{server.base_url}/v1/nope"), 401)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x00\x01 not http at all\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n",  # no Host
        b"POST /v1/models HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /v1/models HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_requests_that_are_not_http_get_problem_json(
    server: LocalServer, request_bytes: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body) == {
        "title": "Bad request",
        "detail": "Invalid HTTP request received.",
        "status": 400,
    }


def test_a_client_that_leaves_mid_body_is_no_server_error(
    server: LocalServer, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    head = b"POST /v1/models HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + TOKEN.encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    # The server is still there, and logged no failure for the abandoned request.
    assert http.get("/v1/account").status_code == 200
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


# --- bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "status", "says"),
    [
        ("/v1/predictions", b"{not json", 400, "not valid JSON"),
        ("/v1/predictions", b"[1, 2]", 400, "must be a JSON object"),
        ("/v1/predictions", b'"text"', 400, "must be a JSON object"),
        ("/v1/predictions", b"\xff\xfe", 400, "not valid JSON"),
        ("/v1/predictions", b"[" * 100_000 + b"]" * 100_000, 400, "nested"),
        (
            "/v1/predictions",
            b'{"input": {"a": ' + b"[" * 70 + b"1" + b"]" * 70 + b"}}",
            400,
            "nested",
        ),
        ("/v1/models", b"{}", 422, "owner is required"),
        ("/v1/deployments", b'{"name": 5}', 422, "Invalid type. Expected: string"),
    ],
)
def test_malformed_bodies(
    http: httpx.Client, path: str, content: bytes, status: int, says: str
) -> None:
    resp = http.post(path, content=content, headers={"Content-Type": "application/json"})
    assert says in _problem(resp, status)["detail"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"NaN", "NaN is not a JSON value"),
        (b"Infinity", "Infinity is not a JSON value"),
        (b"-Infinity", "-Infinity is not a JSON value"),
        (b"1e999", "out of range"),
        (b"9" * 5000, "not valid JSON"),
    ],
)
def test_numbers_json_has_not_are_400_and_store_nothing(
    server: LocalServer, http: httpx.Client, version: str, value: bytes, says: str
) -> None:
    # A valid version, so that only the number stands between the body and the store.
    body = b'{"version": "%s", "input": {"prompt": "x", "delay": %s}}' % (version.encode(), value)
    before = server.api.store.count("predictions")
    resp = http.post("/v1/predictions", content=body, headers={"Content-Type": "application/json"})
    assert says in _problem(resp, 400)["detail"]
    assert server.api.store.count("predictions") == before
    meta = http.post(
        "/v1/files", files={"content": ("a.txt", b"hi")}, data={"metadata": b'{"a": %s}' % value}
    )
    assert "metadata is not valid JSON" in _problem(meta, 400)["detail"]


def test_lone_surrogates_are_read_as_replacement_characters(
    http: httpx.Client, version: str
) -> None:
    # Go's JSON decoder (Replicate's) reads an unpaired "\ud800" as U+FFFD.
    body = b'{"version": "%s", "input": {"prompt": "a\\ud800b"}}' % version.encode()
    resp = http.post(
        "/v1/predictions",
        content=body,
        headers={"Content-Type": "application/json", "Prefer": "wait"},
    )
    assert resp.status_code == 201, resp.text
    pred = resp.json()
    assert pred["status"] == "succeeded", pred
    assert pred["input"]["prompt"] == "a\ufffdb" and pred["output"] == "hello a\ufffdb"


def test_bytes_that_are_not_utf8_are_read_as_replacement_characters(
    http: httpx.Client, version: str
) -> None:
    # So does it read invalid UTF-8 in a string (a Latin-1 "é" here), not a 400.
    body = b'{"version": "%s", "input": {"prompt": "caf\xe9"}}' % version.encode()
    resp = http.post("/v1/predictions", content=body, headers={"Prefer": "wait"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["input"]["prompt"] == "caf\ufffd"
    # Outside a string it is no JSON at all.
    _problem(http.post("/v1/predictions", content=b'{"version": \xe9}'), 400)


def test_bodies_over_the_limit_are_413(http: httpx.Client, version: str) -> None:
    big = {"version": version, "input": {"prompt": "x" * (6 * 1024 * 1024)}}
    _problem(http.post("/v1/predictions", json=big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"version": "' + version.encode() + b'", "input": {"prompt": "'
        for _ in range(7):
            yield b"x" * (1024 * 1024)
        yield b'"}}'

    _problem(http.post("/v1/predictions", content=chunks()), 413)


def test_an_upload_over_the_files_limit_is_413_as_on_replicate(server: LocalServer) -> None:
    # Refused from its declared length, before a byte of it is read.
    head = (
        b"POST /v1/files HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n"
    ) % (TOKEN.encode(), 101 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413 "), answer
    assert json.loads(body)["detail"] == "Files must be less than 100MB in size"


@pytest.mark.parametrize(
    "body",
    [
        {"version": 5, "input": {}},
        {"version": "f" * 64, "input": "text"},
        {"version": "acme/echo:" + "0" * 64, "input": {}},
        {"version": "acme/echo/extra", "input": {}},
        {"version": "", "input": {}},
        {"input": {"prompt": "x"}},
        {"version": "V", "input": {}, "webhook": 5},
        {"version": "V", "input": {}, "webhook_events_filter": "start"},
        {"version": "V", "input": {}, "stream": "yes"},
        {"version": "V", "input": {"prompt": "x"}, "webhook": "not a url"},
        {"version": "V", "input": {"prompt": "x"}, "webhook": "http://[::1/hook"},
        {"version": "V", "input": {"prompt": "x"}, "webhook": "http://exa mple.com/hook"},
        {"version": "V", "input": {"prompt": "x"}, "webhook_completed": "ftp://host/done"},
        {"version": "V", "input": {"prompt": 5}},
        {"version": "V", "input": {"prompt": "x", "num_outputs": "many"}},
        {"version": "V", "inputs": {"prompt": "x"}},
    ],
)
def test_bad_prediction_bodies_are_422(
    http: httpx.Client, version: str, body: dict[str, Any]
) -> None:
    if body.get("version") == "V":
        body = {**body, "version": version}
    problem = _problem(http.post("/v1/predictions", json=body), 422)
    assert problem["title"] in ("Input validation failed", "Invalid version or not permitted")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/models",
            {"owner": "acme", "name": "UPPER", "visibility": "private", "hardware": "cpu"},
        ),
        (
            "POST",
            "/v1/models",
            {"owner": "acme", "name": "x", "visibility": "private", "hardware": "tpu-v9"},
        ),
        (
            "POST",
            "/v1/models",
            {"owner": "a/b", "name": "x", "visibility": "private", "hardware": "cpu"},
        ),
        ("PATCH", "/v1/models/acme/echo", {"description": ["a"]}),
        (
            "POST",
            "/v1/deployments",
            {
                "name": "d",
                "model": "acme/echo",
                "version": "V",
                "hardware": "cpu",
                "min_instances": 3,
                "max_instances": 1,
            },
        ),
        (
            "POST",
            "/v1/deployments",
            {
                "name": "d",
                "model": "acme/echo",
                "version": "V",
                "hardware": "cpu",
                "min_instances": True,
                "max_instances": 1,
            },
        ),
        (
            "POST",
            "/v1/deployments",
            {
                "name": "d",
                "model": "acme",
                "version": "V",
                "hardware": "cpu",
                "min_instances": 0,
                "max_instances": 1,
            },
        ),
        ("POST", "/v1/models/acme/echo/versions/V/trainings", {"input": {}}),
        (
            "POST",
            "/v1/models/acme/echo/versions/V/trainings",
            {"input": {}, "destination": "nowhere"},
        ),
        ("POST", "/v1/models/acme/echo/versions", {"from_version": 5}),
    ],
)
def test_bad_resource_bodies_are_422(
    http: httpx.Client, version: str, method: str, path: str, body: dict[str, Any]
) -> None:
    body = {k: (version if v == "V" else v) for k, v in body.items()}
    resp = http.request(method, path.replace("/V/", f"/{version}/"), json=body)
    _problem(resp, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "!!!"},
        {"cursor": "cD0tNQ=="},  # p=-5
        {"cursor": "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},  # past SQLite's integers
        {"created_before": "31/12/2024"},
    ],
)
def test_bad_query_parameters(http: httpx.Client, params: dict[str, str]) -> None:
    resp = http.get("/v1/predictions", params=params)
    assert resp.status_code in (400, 422)
    _problem(resp, resp.status_code)


@pytest.mark.parametrize(
    ("params", "everything"),
    [
        ({"created_after": "0001-01-01T00:00:00Z"}, True),
        ({"created_after": "0001-01-01T00:00:00+01:00"}, True),
        ({"created_after": "9999-12-31T23:59:59-05:00"}, False),
        ({"created_before": "9999-12-31T23:59:59.999999Z"}, True),
        ({"created_before": "9999-12-31T23:59:59-05:00"}, True),
        ({"created_before": "0001-01-01T00:00:00+01:00"}, False),
    ],
)
def test_list_filters_at_the_ends_of_time(
    http: httpx.Client, version: str, params: dict[str, str], everything: bool
) -> None:
    made = http.post("/v1/predictions", json={"version": version, "input": {"prompt": "t"}})
    assert made.status_code == 201, made.text
    resp = http.get("/v1/predictions", params=params)
    assert resp.status_code == 200, resp.text
    ids = [p["id"] for p in resp.json()["results"]]
    assert (made.json()["id"] in ids) is everything, (params, ids)


@pytest.mark.parametrize(
    "limit", ["\u00b2", "\u0663", "0", "51", "-1", "1e1", "99999999999999999999"]
)
def test_bad_search_limits_are_400(http: httpx.Client, limit: str) -> None:
    _problem(http.get("/v1/search", params={"query": "echo", "limit": limit}), 400)


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"just bytes", "application/octet-stream"),
        (
            b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nunterminated',
            "multipart/form-data; boundary=b",
        ),
        (b"--b\r\nbroken headers\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        (
            b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        (b"", "multipart/form-data"),
    ],
)
def test_bad_file_uploads(http: httpx.Client, content: bytes, ctype: str) -> None:
    resp = http.post("/v1/files", content=content, headers={"Content-Type": ctype})
    assert resp.status_code in (400, 422)
    _problem(resp, resp.status_code)


def test_file_names_are_at_most_255_bytes(http: httpx.Client) -> None:
    # Replicate's files.create takes a filename of at most 255 bytes.
    long_name = "é" * 126 + ".txt"  # 256 bytes
    resp = http.post("/v1/files", files={"content": (long_name, b"hi", "text/plain")})
    assert _problem(resp, 422)["invalid_fields"][0]["field"] == "filename"
    resp = http.post("/v1/files", files={"content": ("a.txt", b"hi")}, data={"filename": "x" * 256})
    _problem(resp, 422)
    fits = http.post("/v1/files", files={"content": ("é" * 125 + ".txt", b"hi", "text/plain")})
    assert fits.status_code == 201, fits.text


def test_file_parts_sent_as_files_are_read_as_text(http: httpx.Client) -> None:
    # curl -F metadata=@meta.json -F filename=@name.txt sends those parts as files.
    resp = http.post(
        "/v1/files",
        files={
            "content": ("a.bin", b"hi"),
            "metadata": ("meta.json", b'{"a": 1}'),
            "filename": ("name.txt", b"notes.txt"),
            "type": ("type.txt", b"text/markdown"),
        },
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert (made["name"], made["content_type"], made["metadata"]) == (
        "notes.txt",
        "text/markdown",
        {"a": 1},
    )
    resp = http.post(
        "/v1/files",
        files={"content": ("a.bin", b"hi"), "filename": ("name.txt", b"\xff\xfe")},
    )
    assert _problem(resp, 422)["invalid_fields"][0]["field"] == "filename"


@pytest.mark.parametrize(
    ("header", "status"),
    [("bytes=abc", 400), ("items=0-1", 400), ("bytes=5-1", 400), ("bytes=100-200", 416)],
)
def test_bad_download_ranges_are_problem_json(http: httpx.Client, header: str, status: int) -> None:
    made = http.post("/v1/files", files={"content": ("a.txt", b"0123456789", "text/plain")})
    download = f"/v1/files/{made.json()['id']}/download"
    assert http.get(download, headers={"Range": "bytes=2-4"}).content == b"234"
    resp = http.get(download, headers={"Range": header})
    _problem(resp, status)
    if status == 416:
        assert resp.headers["content-range"] == "bytes */10"


def test_file_metadata_must_be_an_object(http: httpx.Client) -> None:
    resp = http.post("/v1/files", files={"content": ("a.txt", b"hi")}, data={"metadata": "[1, 2]"})
    assert "metadata" in _problem(resp, 422)["detail"]


# --- build archives ------------------------------------------------------------------


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        cog = b'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
        info = tarfile.TarInfo("cog.yaml")
        info.size = len(cog)
        tar.addfile(info, io.BytesIO(cog))
        add(tar)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)

    return add


def _both(*adds: Callable[[tarfile.TarFile], None]) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        for one in adds:
            one(tar)

    return add


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore", UserWarning)  # a duplicate name is the point
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


_COG = b'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
ARCHIVES = {
    "file and folder": _tar(_both(_file("a"), _file("a/b"))),
    "folder then file": _tar(_both(_file("a/b"), _file("a"))),
    "symlink": _tar(_special("link", tarfile.SYMTYPE, "/etc/passwd")),
    "hard link": _tar(_special("hard", tarfile.LNKTYPE, "cog.yaml")),
    "character device": _tar(_special("dev", tarfile.CHRTYPE)),
    "fifo": _tar(_special("fifo", tarfile.FIFOTYPE)),
    "absolute path": _tar(_file("/evil")),
    "dot-dot": _tar(_file("../evil")),
    "inner dot-dot": _tar(_file("a/../../evil")),
    "duplicate": _tar(_file("cog.yaml", b"again")),
    "backslash": _tar(_file("a\\..\\evil")),
    "zip symlink": _zip([("cog.yaml", _COG, 0o100644), ("link", b"/etc/passwd", 0o120777)]),
    "zip duplicate": _zip([("cog.yaml", _COG, 0o100644), ("cog.yaml", _COG, 0o100644)]),
    "zip file and folder": _zip(
        [("cog.yaml", _COG, 0o100644), ("a", b"x", 0o100644), ("a/b", b"y", 0o100644)]
    ),
    "zip dot-dot": _zip([("cog.yaml", _COG, 0o100644), ("../evil", b"x", 0o100644)]),
    "truncated gzip": _tar(_file("predict.py"))[:60],
    "garbage": b"\x00\x01not an archive at all",
    "damaged zip": b"PK\x03\x04" + b"\x00" * 40,
}


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_unusual_archives_are_422_and_store_nothing(
    server: LocalServer, http: httpx.Client, name: str
) -> None:
    builds = server.config.state_dir / "builds"
    before = sorted(p.name for p in builds.iterdir())
    resp = http.post(
        "/v1/models/acme/echo/versions",
        content=ARCHIVES[name],
        headers={"Content-Type": "application/gzip"},
    )
    problem = _problem(resp, 422)
    assert problem["title"] == "Invalid build"
    assert sorted(p.name for p in builds.iterdir()) == before
    assert not list((server.config.state_dir / "tmp").iterdir())
    assert not (server.config.state_dir.parent / "evil").exists()
