"""The local Replicate-compatible server, driven by the official replicate client over HTTP."""

from __future__ import annotations

import asyncio
import base64
import http.client
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from replicate.exceptions import ModelError, ReplicateError

from cogfleet._errors import RemoteError
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import (
    async_promote_version,
    async_push_build,
    build_id_for,
    promote_version,
    push_build,
    version_id_for,
)

FIXTURES = Path(__file__).parent / "fixtures" / "server"
TOKEN = "r8_test-token"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    state = tmp_path_factory.mktemp("state")
    official = ["acme/echo", "acme/echo-prod"]
    with LocalServer(state_dir=state, token=TOKEN, page_size=3, official=official) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> replicate.Client:
    client = replicate.Client(api_token=server.token, base_url=server.base_url)
    client.poll_interval = 0.05
    return client


@pytest.fixture(scope="module")
def echo(client: replicate.Client) -> dict[str, object]:
    client.models.create(owner="acme", name="echo", visibility="private", hardware="cpu")
    return push_build(client, "acme", "echo", FIXTURES / "echo")


def _raw(server: LocalServer, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


def _assert_problem(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_account_and_hardware(client: replicate.Client) -> None:
    account = client.accounts.current()
    assert account.username and account.name
    skus = [h.sku for h in client.hardware.list()]
    assert "cpu" in skus and "gpu-t4" in skus


def test_unauthenticated_is_401_problem(server: LocalServer) -> None:
    with _raw(server, token=None) as http:
        body = _assert_problem(http.get("/v1/account"), 401)
        assert body["title"] == "Unauthenticated"
    bad = replicate.Client(api_token="wrong", base_url=server.base_url)
    with pytest.raises(ReplicateError) as info:
        bad.models.get("acme/echo")
    assert info.value.status == 401


def test_unknown_resources_are_404(server: LocalServer, client: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as info:
        client.models.get("acme/nope")
    assert info.value.status == 404
    with pytest.raises(ReplicateError) as info:
        client.predictions.get("doesnotexist")
    assert info.value.status == 404
    with _raw(server) as http:
        body = _assert_problem(http.get("/v1/trainings/zzz"), 404)
        assert body["detail"] == "The requested resource could not be found."
        _assert_problem(http.get("/v1/deployments/local/nope"), 404)
        _assert_problem(http.get("/v1/files/nope"), 404)


def test_push_is_content_addressed(
    server: LocalServer, client: replicate.Client, echo: dict[str, object], tmp_path: Path
) -> None:
    vid = version_id_for(FIXTURES / "echo", "acme/echo")
    assert echo["id"] == vid and len(vid) == 64
    assert echo["cog_version"]
    schema = echo["openapi_schema"]
    assert isinstance(schema, dict)
    props = schema["components"]["schemas"]["Input"]["properties"]
    assert props["num_outputs"]["maximum"] == 4
    build = build_id_for(FIXTURES / "echo")
    assert build != vid
    assert (server.config.state_dir / "builds" / build / ".cog" / "openapi_schema.json").is_file()

    # The rendered publishing config and caches are not part of the build.
    copy = tmp_path / "echo"
    shutil.copytree(FIXTURES / "echo", copy)
    (copy / "cog-safe-push.yaml").write_text("model: acme/echo\n")
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert build_id_for(copy) == build
    again = push_build(server.base_url, "acme", "echo", copy, token=TOKEN)
    assert again["id"] == vid
    from_async = asyncio.run(async_push_build(server.base_url, TOKEN, "acme", "echo", copy))
    assert from_async["id"] == vid
    versions = client.models.get("acme/echo").versions.list()
    assert [v.id for v in versions] == [vid]

    (copy / "predict.py").write_text((copy / "predict.py").read_text() + "\n# changed\n")
    changed = version_id_for(copy, "acme/echo-zip")
    assert build_id_for(copy) != build
    # A zip body works too; versions list newest first.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel in ("cog.yaml", "predict.py", "train.py"):
            zf.write(copy / rel, rel)
    with _raw(server) as http:
        resp = http.post(
            "/v1/models/acme/echo-zip/versions",
            content=buf.getvalue(),
            headers={"Content-Type": "application/zip"},
        )
        _assert_problem(resp, 404)
        client.models.create(owner="acme", name="echo-zip", visibility="private", hardware="cpu")
        promoted = promote_version(client, "acme", "echo-zip", vid)
        # The same build on another model is a version of its own.
        assert promoted["id"] == version_id_for(FIXTURES / "echo", "acme/echo-zip") != vid
        resp = http.post(
            "/v1/models/acme/echo-zip/versions",
            content=buf.getvalue(),
            headers={"Content-Type": "application/zip"},
        )
        assert resp.status_code == 201 and resp.json()["id"] == changed
    listed = client.models.get("acme/echo-zip").versions.list()
    assert [v.id for v in listed] == [changed, promoted["id"]]


def test_push_rejects_invalid_build(client: replicate.Client, tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match=r"\(404\)"):
        push_build(client, "acme", "no-such-model", FIXTURES / "echo")
    client.models.create(owner="acme", name="invalid", visibility="private", hardware="cpu")
    (tmp_path / "cog.yaml").write_text('build:\n  python_version: "3.11"\npredict: "nope.py:P"\n')
    with pytest.raises(Exception, match="nope"):
        push_build(client, "acme", "invalid", tmp_path)


def test_prediction_with_wait(
    server: LocalServer, client: replicate.Client, echo: dict[str, object]
) -> None:
    pred = client.predictions.create(
        version=str(echo["id"]), input={"prompt": "world", "num_outputs": 2}, wait=True
    )
    assert pred.status == "succeeded", pred.error
    assert pred.output == "hello world hello world"
    assert "echoing 'world'" in (pred.logs or "")
    assert pred.metrics and pred.metrics["predict_time"] > 0
    assert pred.started_at and pred.started_at.endswith("Z")
    assert pred.completed_at and pred.completed_at.endswith("Z")
    assert pred.model == "acme/echo" and pred.version == echo["id"]
    assert "stream" not in pred.urls
    with _raw(server) as http:
        raw = http.get(f"/v1/predictions/{pred.id}").json()
    assert raw["data_removed"] is False and raw["source"] == "api"
    assert raw["urls"]["get"] == f"{server.base_url}/v1/predictions/{pred.id}"
    assert raw["urls"]["cancel"] == f"{server.base_url}/v1/predictions/{pred.id}/cancel"
    assert raw["created_at"].endswith("Z") and raw["metrics"]["total_time"] > 0

    # run() with owner/name:version (POST then version GET) and owner/name.
    assert client.run(f"acme/echo:{echo['id']}", input={"prompt": "a"}) == "hello a"
    assert client.run("acme/echo", input={"prompt": "b"}) == "hello b"


def test_every_prediction_counts_once_in_the_models_run_count(
    client: replicate.Client, echo: dict[str, object]
) -> None:
    before = client.models.get("acme/echo").run_count
    with ThreadPoolExecutor(4) as pool:
        preds = list(pool.map(
            lambda i: client.predictions.create(
                version=str(echo["id"]), input={"prompt": f"n{i}"}, wait=True
            ),
            range(6),
        ))
    assert {p.status for p in preds} == {"succeeded"}
    assert client.models.get("acme/echo").run_count == before + 6


def test_prediction_by_polling(client: replicate.Client, echo: dict[str, object]) -> None:
    pred = client.predictions.create(version=str(echo["id"]), input={"prompt": "poll"})
    assert pred.status in ("starting", "processing")
    pred.wait()
    assert pred.status == "succeeded"
    assert pred.output == "hello poll"
    assert client.predictions.get(pred.id).output == "hello poll"
    listed = replicate.paginate(client.predictions.list)
    assert pred.id in {p.id for page in listed for p in page}


def test_prefer_wait_answers_in_time(client: replicate.Client, echo: dict[str, object]) -> None:
    start = time.monotonic()
    pred = client.predictions.create(
        version=str(echo["id"]), input={"prompt": "slow", "delay": 2.5}, wait=1
    )
    assert time.monotonic() - start < 1.5
    assert pred.status == "starting"
    pred.wait()
    assert pred.status == "succeeded" and pred.output == "hello slow"


def test_invalid_input_is_422_worded_as_replicate(
    server: LocalServer, client: replicate.Client, echo: dict[str, object]
) -> None:
    with pytest.raises(ReplicateError) as info:
        client.predictions.create(version=str(echo["id"]), input={"prompt": "x", "num_outputs": 9})
    assert info.value.status == 422
    assert info.value.title == "Input validation failed"
    assert info.value.detail == "- input.num_outputs: Must be less than or equal to 4\n"
    with _raw(server) as http:
        resp = http.post(
            "/v1/predictions",
            json={"version": echo["id"], "input": {"prompt": 3, "num_outputs": 0}},
        )
        assert _assert_problem(resp, 422)["invalid_fields"] == [
            {
                "type": "number_gte",
                "field": "input.num_outputs",
                "description": "Must be greater than or equal to 1",
            },
            {
                "type": "invalid_type",
                "field": "input.prompt",
                "description": "Invalid type. Expected: string, given: integer",
            },
        ]
    with _raw(server) as http:
        resp = http.post("/v1/predictions", json={"version": echo["id"], "input": {}})
        body = _assert_problem(resp, 422)
        assert "prompt is required" in str(body["detail"])
        resp = http.post("/v1/predictions", json={"version": "f" * 64, "input": {}})
        assert _assert_problem(resp, 422)["title"] == "Invalid version or not permitted"


def test_cancel_stops_the_predictor(client: replicate.Client, echo: dict[str, object]) -> None:
    pred = client.predictions.create(
        version=str(echo["id"]), input={"prompt": "long", "delay": 60}, wait=1
    )
    assert pred.status == "starting"
    start = time.monotonic()
    pred.cancel()
    pred.reload()
    assert pred.status == "canceled"
    assert pred.completed_at
    assert time.monotonic() - start < 15
    # The slot is free again: the next prediction on the same runner succeeds at once.
    after = client.predictions.create(version=str(echo["id"]), input={"prompt": "next"}, wait=30)
    assert after.status == "succeeded" and after.output == "hello next"


def test_setup_failure_fails_prediction(client: replicate.Client) -> None:
    client.models.create(owner="acme", name="broken", visibility="private", hardware="cpu")
    version = push_build(client, "acme", "broken", FIXTURES / "broken")
    pred = client.predictions.create(version=str(version["id"]), input={}, wait=True)
    if pred.status not in ("succeeded", "failed", "canceled"):
        pred.wait()
    assert pred.status == "failed"
    assert "weights missing" in (pred.logs or "") + (pred.error or "")
    with pytest.raises(ModelError):
        client.run(f"acme/broken:{version['id']}", input={})


def test_failed_prediction_keeps_its_logs(client: replicate.Client) -> None:
    client.models.create(owner="acme", name="failing", visibility="private", hardware="cpu")
    version = str(push_build(client, "acme", "failing", FIXTURES / "failing")["id"])
    # Waited for (the runner then gets no webhook) and polled (it does): same logs.
    waited = client.predictions.create(version=version, input={"text": "w"}, wait=True)
    polled = client.predictions.create(version=version, input={"text": "p"})
    polled.wait()
    for pred, text in ((waited, "w"), (polled, "p")):
        assert pred.status == "failed"
        assert f"ValueError: failed on '{text}'" in (pred.error or "")
        assert f"about to fail on '{text}'" in (pred.logs or "")
        assert "to stderr as well" in (pred.logs or "")


def test_training_creates_destination_version(
    client: replicate.Client, echo: dict[str, object]
) -> None:
    client.models.create(owner="acme", name="echo-trained", visibility="private", hardware="cpu")
    training = client.trainings.create(
        version=f"acme/echo:{echo['id']}",
        input={"greeting": "howdy"},
        destination="acme/echo-trained",
    )
    assert training.status in ("starting", "processing")
    # Training has no wait() in the 1.0.7 client: poll like its Prediction.wait() does.
    deadline = time.monotonic() + 60
    while training.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline
        time.sleep(client.poll_interval)
        training.reload()
    assert training.status == "succeeded", training.error
    model, _, new_id = training.output["version"].partition(":")
    assert model == "acme/echo-trained" and len(new_id) == 64 and new_id != echo["id"]
    assert client.trainings.get(training.id).status == "succeeded"
    assert training.id in {t.id for page in replicate.paginate(client.trainings.list) for t in page}
    # Canceling a finished training leaves it unchanged.
    assert client.trainings.cancel(training.id).status == "succeeded"
    out = client.run(f"acme/echo-trained:{new_id}", input={"prompt": "partner"})
    assert out == "howdy partner"
    # The base version is untouched by the trained weights.
    assert client.run(f"acme/echo:{echo['id']}", input={"prompt": "x"}) == "hello x"


def test_deployment_round_trip(client: replicate.Client, echo: dict[str, object]) -> None:
    dep = client.deployments.create(
        name="echo-app",
        model="acme/echo",
        version=str(echo["id"]),
        hardware="cpu",
        min_instances=0,
        max_instances=2,
    )
    assert dep.current_release.number == 1
    assert dep.current_release.configuration.max_instances == 2
    got = client.deployments.get(f"{dep.owner}/echo-app")
    assert got.current_release.version == echo["id"]
    updated = client.deployments.update(dep.owner, "echo-app", max_instances=4)
    assert updated.current_release.number == 2
    assert updated.current_release.configuration.max_instances == 4
    assert updated.current_release.configuration.hardware == "cpu"
    pred = client.deployments.predictions.create(f"{dep.owner}/echo-app", input={"prompt": "d"})
    pred.wait()
    assert pred.output == "hello d" and pred.model == "acme/echo"
    assert "echo-app" in {
        d.name for page in replicate.paginate(client.deployments.list) for d in page
    }
    assert client.deployments.delete(dep.owner, "echo-app") is True
    with pytest.raises(ReplicateError) as info:
        client.deployments.get(f"{dep.owner}/echo-app")
    assert info.value.status == 404


def test_file_inputs_reach_the_predictor(
    client: replicate.Client, echo: dict[str, object], tmp_path: Path
) -> None:
    doc = tmp_path / "note.txt"
    doc.write_text("from a file")
    uploaded = client.files.create(doc, metadata={"k": 1})
    assert uploaded.name == "note.txt" and uploaded.size == len("from a file")
    assert uploaded.metadata == {"k": 1}
    assert client.files.get(uploaded.id).etag == uploaded.etag
    vid = str(echo["id"])
    pred = client.predictions.create(
        version=vid, input={"prompt": "f", "document": uploaded.urls["get"]}, wait=True
    )
    assert pred.output == "hello f | from a file"
    # The client uploading a Path itself, and the base64 data: URI strategy.
    with doc.open("rb") as fh:
        pred = client.predictions.create(
            version=vid, input={"prompt": "p", "document": fh}, wait=True
        )
    assert pred.output == "hello p | from a file"
    pred = client.predictions.create(
        version=vid,
        input={"prompt": "b", "document": doc},
        wait=True,
        file_encoding_strategy="base64",
    )
    assert pred.output == "hello b | from a file"
    assert uploaded.id in {f.id for f in client.files.list()}
    client.files.delete(uploaded.id)
    with pytest.raises(ReplicateError):
        client.files.get(uploaded.id)


def test_promote_copies_the_version(
    server: LocalServer, client: replicate.Client, echo: dict[str, object]
) -> None:
    client.models.create(owner="acme", name="echo-prod", visibility="public", hardware="cpu")
    promoted = promote_version(client, "acme", "echo-prod", str(echo["id"]))
    assert promoted["id"] == version_id_for(FIXTURES / "echo", "acme/echo-prod") != echo["id"]
    model = client.models.get("acme/echo-prod")
    assert model.latest_version is not None and model.latest_version.id == promoted["id"]
    # A bare version id names one model: the prediction is credited to echo-prod.
    pred = client.predictions.create(version=promoted["id"], input={"prompt": "c"}, wait=True)
    assert pred.model == "acme/echo-prod" and pred.output == "hello c"
    assert client.run("acme/echo-prod", input={"prompt": "prod"}) == "hello prod"
    client.models.create(owner="acme", name="echo-prod2", visibility="public", hardware="cpu")
    again = asyncio.run(
        async_promote_version(server.base_url, TOKEN, "acme", "echo-prod2", str(echo["id"]))
    )
    assert again["id"] == version_id_for(FIXTURES / "echo", "acme/echo-prod2")
    with pytest.raises(RemoteError, match="does not exist"):
        promote_version(client, "acme", "echo-prod2", "0" * 64)


def test_pagination_is_followed(server: LocalServer, client: replicate.Client) -> None:
    names = {f"page-{i}" for i in range(7)}
    for name in sorted(names):
        client.models.create(owner="pager", name=name, visibility="private", hardware="cpu")
    first = client.models.list()
    assert len(first.results) == 3
    assert first.next and first.next.startswith(server.base_url + "/v1/models?cursor=")
    seen = [m for page in replicate.paginate(client.models.list) for m in page]
    assert names <= {m.name for m in seen if m.owner == "pager"}
    assert len(seen) == len({(m.owner, m.name) for m in seen})


def test_delete_version_and_model(client: replicate.Client, echo: dict[str, object]) -> None:
    client.models.create(owner="acme", name="tmp", visibility="private", hardware="cpu")
    vid = promote_version(client, "acme", "tmp", str(echo["id"]))["id"]
    model = client.models.get("acme/tmp")
    with pytest.raises(ReplicateError) as info:
        client.models.delete("acme/tmp")
    assert info.value.status == 409
    # 202 Accepted like Replicate (the 1.0.7 client reports it as False).
    assert model.versions.delete(vid) is False
    with pytest.raises(ReplicateError):
        model.versions.get(vid)
    assert client.models.delete("acme/tmp") is True


def test_a_deleted_version_no_longer_runs_by_either_reference(
    client: replicate.Client, echo: dict[str, object]
) -> None:
    client.models.create(owner="acme", name="gone", visibility="private", hardware="cpu")
    vid = promote_version(client, "acme", "gone", str(echo["id"]))["id"]
    refs = [vid, f"acme/gone:{vid}"]
    for ref in refs:  # looked up once before: the server has seen both references
        assert client.predictions.create(version=ref, input={"prompt": "x"}, wait=True).output
    client.models.get("acme/gone").versions.delete(vid)
    for ref in refs:
        with pytest.raises(ReplicateError) as info:
            client.predictions.create(version=ref, input={"prompt": "x"})
        assert info.value.status == 422 and info.value.title == "Invalid version or not permitted"


def test_a_model_created_again_counts_only_its_own_runs(
    client: replicate.Client, echo: dict[str, object]
) -> None:
    client.models.create(owner="acme", name="again", visibility="private", hardware="cpu")
    vid = promote_version(client, "acme", "again", str(echo["id"]))["id"]
    pred = client.predictions.create(version=f"acme/again:{vid}", input={"prompt": "x"}, wait=True)
    assert pred.status == "succeeded"
    assert client.models.get("acme/again").run_count == 1
    client.models.get("acme/again").versions.delete(vid)
    assert client.models.delete("acme/again") is True
    client.models.create(owner="acme", name="again", visibility="private", hardware="cpu")
    assert client.models.get("acme/again").run_count == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; read its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def test_state_survives_restart_and_no_orphans(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalServer(state_dir=state) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="keep", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "keep", FIXTURES / "echo")
        pred = client.predictions.create(
            version=str(version["id"]), input={"prompt": "k"}, wait=True
        )
        assert pred.status == "succeeded"
        pids = srv.runner_processes()
        assert pids and all(_alive(p) for p in pids)
        in_flight = client.predictions.create(
            version=str(version["id"]), input={"prompt": "late", "delay": 60}
        )
    assert not any(_alive(p) for p in pids)
    with LocalServer(state_dir=state) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        model = client.models.get("acme/keep")
        assert model.latest_version is not None and model.latest_version.id == version["id"]
        again = client.predictions.get(pred.id)
        assert again.status == "succeeded" and again.output == "hello k"
        assert client.predictions.get(in_flight.id).status in ("failed", "canceled")


def test_rendered_demo_variant(
    server: LocalServer, client: replicate.Client, demo_repo: Path, cli: Callable[..., Any]
) -> None:
    result = cli("render", "schnell", cwd=demo_repo)
    assert result.code == 0, result.err
    build = demo_repo / ".cogfleet" / "build" / "schnell"
    client.models.create(
        owner="cogfleet-demo", name="imagegen-schnell", visibility="private", hardware="cpu"
    )
    version = push_build(client, "cogfleet-demo", "imagegen-schnell", build)
    assert version["id"] == version_id_for(build, "cogfleet-demo/imagegen-schnell")
    stored = server.config.state_dir / "builds" / build_id_for(build)
    assert (stored / "cog.yaml").is_file() and not (stored / "cog-safe-push.yaml").exists()
    ref = f"cogfleet-demo/imagegen-schnell:{version['id']}"
    images = client.run(ref, input={"prompt": "a red fox", "num_outputs": 2, "seed": 1})
    assert len(images) == 2
    first = images[0].read()
    assert first[:4] == b"RIFF" and first[8:12] == b"WEBP"
    assert first != images[1].read()
    with pytest.raises(ReplicateError) as info:
        client.predictions.create(
            version=str(version["id"]), input={"prompt": "x", "num_outputs": 9}
        )
    assert info.value.status == 422
    assert "- input.num_outputs: Must be less than or equal to 4" in str(info.value.detail)


def test_file_outputs_are_data_uris(client: replicate.Client) -> None:
    client.models.create(owner="acme", name="frames", visibility="private", hardware="cpu")
    version = push_build(client, "acme", "frames", FIXTURES / "frames")
    pred = client.predictions.create(version=str(version["id"]), input={"count": 2}, wait=True)
    assert pred.output == [
        "data:text/plain;base64," + base64.b64encode(f"frame {i}".encode()).decode()
        for i in range(2)
    ]
    # run() turns data: URIs into FileOutput objects.
    frames = client.run(f"acme/frames:{version['id']}", input={"count": 3})
    assert [f.read() for f in frames] == [b"frame 0", b"frame 1", b"frame 2"]


def test_token_scheme_and_concurrent_requests(
    server: LocalServer, client: replicate.Client, echo: dict[str, object]
) -> None:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Token {TOKEN}"}
    ) as http:
        assert http.get("/v1/account").status_code == 200
    vid = str(echo["id"])

    def create(i: int) -> str:
        local = replicate.Client(api_token=TOKEN, base_url=server.base_url)
        local.poll_interval = 0.05
        pred = local.predictions.create(version=vid, input={"prompt": f"c{i}"})
        pred.wait()
        assert pred.output == f"hello c{i}"
        return pred.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(16)))
    assert len(set(ids)) == 16
    for i, pid in enumerate(ids):
        got = client.predictions.get(pid)
        assert got.status == "succeeded" and got.input == {"prompt": f"c{i}"}


def test_idle_runners_are_stopped(tmp_path: Path) -> None:
    with LocalServer(state_dir=tmp_path, idle_timeout=0.5) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="idle", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "idle", FIXTURES / "noop")
        pred = client.predictions.create(version=str(version["id"]), input={}, wait=True)
        assert pred.status == "succeeded"
        pids = srv.runner_processes()
        assert pids
        # The pool reaps in the server's loop; there is no event to wait on from here.
        deadline = time.monotonic() + 20
        while srv.runner_processes():
            assert time.monotonic() < deadline, "idle runner was not stopped"
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
        # A new prediction starts a fresh runner.
        again = client.predictions.create(version=str(version["id"]), input={}, wait=True)
        assert again.status == "succeeded"


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], str]] = []
    completed = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).received.append((dict(self.headers.items()), body))
        if json.loads(body)["status"] in ("succeeded", "failed", "canceled"):
            type(self).completed.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_webhooks_are_signed_and_filtered(
    client: replicate.Client, echo: dict[str, object]
) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook?x=1"
        pred = client.predictions.create(
            version=str(echo["id"]),
            input={"prompt": "hook"},
            webhook=url,
            webhook_events_filter=["start", "completed"],
        )
        assert _Hooks.completed.wait(30)
    finally:
        receiver.shutdown()
        receiver.server_close()
    secret = client.webhooks.default.secret()
    statuses = []
    for headers, body in _Hooks.received:
        replicate.webhooks.validate(headers=headers, body=body, secret=secret)
        # Message ids look like Replicate's (Svix's): msg_ and letters and digits.
        assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", headers["webhook-id"]), headers
        event = json.loads(body)
        assert event["id"] == pred.id
        statuses.append(event["status"])
    assert statuses == ["processing", "succeeded"]
    assert json.loads(_Hooks.received[-1][1])["output"] == "hello hook"


def test_streaming_iterator_outputs(server: LocalServer, client: replicate.Client) -> None:
    client.models.create(owner="acme", name="tokens", visibility="private", hardware="cpu")
    version = push_build(client, "acme", "tokens", FIXTURES / "tokens")
    ref = f"acme/tokens:{version['id']}"
    arrivals: list[float] = []
    outputs: list[str] = []
    kinds: list[str] = []
    for event in client.stream(ref, input={"text": "one two three"}):
        kinds.append(event.event.value)
        if event.event.value == "output":
            outputs.append(str(event))
            arrivals.append(time.monotonic())
    assert outputs == ["one ", "two ", "three "]
    assert kinds[-1] == "done" and "logs" in kinds
    # Outputs arrived while the predictor was still running, not all at the end.
    assert arrivals[-1] - arrivals[0] >= 0.3
    assert list(client.run(ref, input={"text": "a b"})) == ["a ", "b "]
    plain = client.predictions.create(version=str(version["id"]), input={"text": "x"})
    assert plain.urls["stream"].startswith(f"{server.base_url}/v1/streams/{plain.id}-")


def test_secret_inputs_are_not_stored(server: LocalServer, client: replicate.Client) -> None:
    client.models.create(owner="acme", name="secret", visibility="private", hardware="cpu")
    version = push_build(client, "acme", "secret", FIXTURES / "secret")
    key = "sk-very-private-value-123"
    pred = client.predictions.create(version=str(version["id"]), input={"api_key": key}, wait=True)
    assert pred.output == f"sk-... ({len(key)} chars)"
    assert pred.input == {"api_key": "**********"}
    assert client.predictions.get(pred.id).input == {"api_key": "**********"}
    # A listing writes the store's queue first: the prediction is in the files below.
    assert pred.id in [p.id for p in client.predictions.list().results]
    for path in server.config.state_dir.glob("state.sqlite3*"):
        assert key.encode() not in path.read_bytes()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cogfleet", "serve", "--port", "0", "--state", str(tmp_path)]
        + list(args),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # uvicorn announces the bound port once it listens
        lines.append(line)
        match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return proc, match.group(1), lines
    proc.wait()
    raise AssertionError("cogfleet serve did not start: " + "".join(lines))


def test_serve_command(tmp_path: Path) -> None:
    listing = tmp_path / "collections.yaml"
    listing.write_text(
        "tools:\n  name: Tools\n  description: Useful ones\n  full_description: '# Tools'\n"
        "  models: [acme/cli]\n"
    )
    proc, base_url, lines = _start_serve(
        tmp_path,
        *("--token", "cli-token=alice,acme", "--token", "other-token=bob"),
        *("--official", "acme/cli", "--collection", "featured=acme/cli"),
        *("--collections", str(listing)),
    )
    try:
        assert "tokens for alice, bob" in "".join(lines)
        # started with --port 0: every address it announces has the port it really got
        assert not re.search(r"http://\S+:0\b", "".join(lines)), lines
        assert "permissive" not in "".join(lines)
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"\x00 not http\r\n\r\n")  # problem JSON even below the app
            assert b"application/problem+json" in sock.recv(65536)
        with pytest.raises(ReplicateError) as info:
            replicate.Client(api_token="unknown", base_url=base_url).accounts.current()
        assert info.value.status == 401
        client = replicate.Client(api_token="cli-token", base_url=base_url)
        assert client.accounts.current().username == "alice"
        client.models.create(owner="acme", name="cli", visibility="private", hardware="cpu")
        with pytest.raises(ReplicateError) as info:
            client.models.create(owner="bob", name="cli", visibility="private", hardware="cpu")
        assert info.value.status == 403
        version = push_build(base_url, "acme", "cli", FIXTURES / "noop", token="cli-token")
        assert client.run(f"acme/cli:{version['id']}", input={"text": "hi"}) == "hi"
        assert client.run("acme/cli", input={"text": "official"}) == "official"
        assert [m.name for m in client.collections.get("featured").models] == ["cli"]
        listed = [(c.slug, c.name, c.description) for c in client.collections.list()]
        assert listed == [("tools", "Tools", "Useful ones"), ("featured", "featured", "")]
        assert [m.name for m in client.collections.get("tools").models] == ["cli"]
        tools = httpx.get(
            f"{base_url}/v1/collections/tools", headers={"Authorization": "Bearer cli-token"}
        ).json()
        assert tools["full_description"] == "# Tools"
        # bob neither sees alice's private model nor runs it.
        bob = replicate.Client(api_token="other-token", base_url=base_url)
        assert bob.collections.get("featured").models == []
        with pytest.raises(ReplicateError) as info:
            bob.models.get("acme/cli")
        assert info.value.status == 404
        runners = _children(proc.pid)
        assert runners and all(_alive(p) for p in runners)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert not any(_alive(p) for p in runners)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_says_when_it_is_permissive(tmp_path: Path) -> None:
    proc, base_url, lines = _start_serve(tmp_path)
    try:
        assert "permissive mode (no --token)" in "".join(lines)
        client = replicate.Client(api_token="anything", base_url=base_url)
        client.models.create(owner="whoever", name="m", visibility="private", hardware="cpu")
        assert client.accounts.current().username == "local"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_serve_rejects_a_bad_collections_file(tmp_path: Path, cli: Callable[..., Any]) -> None:
    listing = tmp_path / "collections.yaml"
    listing.write_text("tools:\n  models: [not-a-model]\n")
    result = cli("serve", "--state", str(tmp_path / "state"), "--collections", str(listing))
    assert result.code == 2, result.err
    assert "collection 'tools': expected OWNER/NAME, got 'not-a-model'" in result.err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "justatoken"], "--token: expected TOKEN=ACCOUNT[,ORG...]"),
        (["--token", "t=bad name"], "--token: expected TOKEN=ACCOUNT[,ORG...]"),
        (["--official", "nope"], "--official: expected OWNER/NAME"),
        (["--collection", "featured"], "--collection: expected SLUG=OWNER/NAME"),
        (["--collection", "Bad Slug=a/b"], "collection slug 'Bad Slug'"),
        (["--collections", "missing.yaml"], "--collections missing.yaml: no such file"),
    ],
)
def test_serve_rejects_bad_flags(
    tmp_path: Path, cli: Callable[..., Any], args: list[str], message: str
) -> None:
    result = cli("serve", "--state", str(tmp_path / "state"), *args, cwd=tmp_path)
    assert result.code == 2, result.err
    assert message in result.err
    assert "secret" not in result.err and "justatoken" not in result.err


def _two_requests_on_one_connection(base_url: str, idle: float) -> list[int]:
    """The statuses of two requests sent on one connection, ``idle`` seconds apart."""
    conn = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=30)
    statuses = []
    try:
        for pause in (0.0, idle):
            time.sleep(pause)
            sock = conn.sock
            conn.request("GET", "/v1/hardware")
            response = conn.getresponse()  # RemoteDisconnected if the server closed it
            response.read()
            statuses.append(response.status)
            assert sock is None or conn.sock is sock  # the first connection, kept
    finally:
        conn.close()
    return statuses


def test_an_idle_connection_outlives_the_clients_keep_alive(
    server: LocalServer, tmp_path: Path
) -> None:
    # httpx (the replicate client) reuses a connection idle for up to 5 s and aiohttp
    # up to 15 s. A server that closes idle connections first races with a request
    # already on its way (a reset connection, a failed prediction), so both the
    # embedded server and `cogfleet serve` keep them longer than any of those.
    # The two servers are checked at once: each connection idles on its own.
    idle, both_answered = 6.0, [401, 401]
    proc, base_url, _ = _start_serve(tmp_path)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            embedded = pool.submit(_two_requests_on_one_connection, server.base_url, idle)
            served = pool.submit(_two_requests_on_one_connection, base_url, idle)
            assert embedded.result() == both_answered
            assert served.result() == both_answered
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
