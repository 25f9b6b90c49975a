"""The local server answers as Replicate would: accounts, validation, outputs, endpoints.

Through the official ``replicate`` client over real HTTP where it has a method, with
raw httpx otherwise. Two accounts: alice (who may also write under the ``acme``
organization) and bob.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput

from cogfleet._errors import RemoteError
from cogfleet._predict import FileCache
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import promote_version, push_build
from tests.conftest import ALICE, BOB

FIXTURES = Path(__file__).parent / "fixtures" / "server"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    collections = [
        {
            "slug": "featured",
            "name": "Featured",
            "description": "Models worth a look",
            "models": ["acme/echo", "acme/hidden", "acme/gone"],
        }
    ]
    with LocalServer(
        state_dir=tmp_path_factory.mktemp("state"),
        tokens={ALICE: "alice,acme", BOB: "bob"},
        official=["acme/echo-official"],
        collections=collections,
        page_size=2,
    ) as srv:
        yield srv


def _raw(server: LocalServer, token: str | None = ALICE) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=60)


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.fixture(scope="module")
def echo(alice: replicate.Client) -> dict[str, Any]:
    alice.models.create(owner="acme", name="echo", visibility="public", hardware="cpu")
    return push_build(alice, "acme", "echo", FIXTURES / "echo")


@pytest.fixture(scope="module")
def frames(alice: replicate.Client) -> dict[str, Any]:
    alice.models.create(owner="alice", name="frames", visibility="private", hardware="cpu")
    return push_build(alice, "alice", "frames", FIXTURES / "frames")


# --- accounts ------------------------------------------------------------------------


def test_each_token_acts_as_its_account(alice: replicate.Client, bob: replicate.Client) -> None:
    assert alice.accounts.current().username == "alice"
    assert bob.accounts.current().username == "bob"


def test_models_are_written_only_under_the_tokens_owners(
    server: LocalServer, alice: replicate.Client, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    alice.models.create(owner="alice", name="mine", visibility="private", hardware="cpu")
    alice.models.create(owner="acme", name="hidden", visibility="private", hardware="cpu")
    with pytest.raises(ReplicateError) as info:
        alice.models.create(owner="bob", name="theirs", visibility="private", hardware="cpu")
    assert info.value.status == 403
    # bob sees acme's public model but cannot change it; acme's private one is hidden.
    assert bob.models.get("acme/echo").owner == "acme"
    with pytest.raises(ReplicateError) as info:
        bob.models.delete("acme/echo")
    assert info.value.status == 403
    with pytest.raises(ReplicateError) as info:
        bob.models.get("acme/hidden")
    assert info.value.status == 404
    with pytest.raises(RemoteError, match=r"\(403\)"):
        push_build(bob, "acme", "echo", FIXTURES / "noop")
    with _raw(server, BOB) as http:
        _problem(http.patch("/v1/models/acme/echo", json={"description": "mine now"}), 403)


def test_search_and_lists_hide_other_accounts_private_models(
    server: LocalServer, alice: replicate.Client, bob: replicate.Client
) -> None:
    alice.models.create(
        owner="acme",
        name="needle-private",
        visibility="private",
        hardware="cpu",
        description="a needle in the haystack",
    )
    alice.models.create(
        owner="acme",
        name="needle-public",
        visibility="public",
        hardware="cpu",
    )

    def names(page: Any) -> set[str]:
        return {m.name for m in page.results}

    assert names(alice.models.search("needle")) == {"needle-private", "needle-public"}
    assert names(bob.models.search("needle")) == {"needle-public"}
    listed = {m.name for page in replicate.paginate(bob.models.list) for m in page}
    assert "needle-public" in listed and "needle-private" not in listed
    with _raw(server, BOB) as http:
        found = http.get("/v1/search", params={"query": "needle"}).json()
    assert found["query"] == "needle"
    assert [hit["model"]["name"] for hit in found["models"]] == ["needle-public"]
    assert all("metadata" in hit for hit in found["models"])


def test_search_needs_no_token_and_names_a_missing_query(
    server: LocalServer, alice: replicate.Client, echo: dict[str, Any]
) -> None:
    # Replicate's search takes no token (its spec's security is empty) and shows
    # public models only to a caller without one.
    alice.models.create(owner="acme", name="featured-secret", visibility="private", hardware="cpu")
    with httpx.Client(base_url=server.base_url, timeout=60) as anonymous:
        found = anonymous.get("/v1/search", params={"query": "ech"})
        assert found.status_code == 200, found.text
        assert "echo" in [hit["model"]["name"] for hit in found.json()["models"]]
        assert "featured-secret" not in anonymous.get(
            "/v1/search", params={"query": "featured"}
        ).text
        # A collection found by search lists its (visible) models by name.
        (featured,) = anonymous.get("/v1/search", params={"query": "worth a look"}).json()[
            "collections"
        ]
        assert featured["slug"] == "featured" and featured["models"] == ["acme/echo"]
        body = _problem(anonymous.get("/v1/search"), 400)
        assert body["detail"] == 'Query parameter "query" is required'
        _problem(anonymous.get("/v1/search", params={"query": "x", "limit": "51"}), 400)
        # Everything else still needs one.
        _problem(anonymous.get("/v1/models"), 401)


def test_runs_belong_to_their_account(
    server: LocalServer, alice: replicate.Client, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    pred = bob.predictions.create(version=echo["id"], input={"prompt": "bob"}, wait=True)
    assert pred.status == "succeeded"
    with pytest.raises(ReplicateError) as info:
        alice.predictions.get(pred.id)
    assert info.value.status == 404
    assert pred.id not in {
        p.id for page in replicate.paginate(alice.predictions.list) for p in page
    }
    assert pred.id in {p.id for page in replicate.paginate(bob.predictions.list) for p in page}


def test_files_are_their_uploaders(
    alice: replicate.Client, bob: replicate.Client, echo: dict[str, Any], tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("alice's note")
    uploaded = alice.files.create(note)
    url = uploaded.urls["get"]
    with httpx.Client(headers={"Authorization": f"Bearer {ALICE}"}) as http:
        download = http.get(f"{url}/download")
    # Its ETag is the file's etag (the MD5 of its bytes).
    assert download.content == b"alice's note"
    assert download.headers["etag"] == f'"{uploaded.etag}"'
    # Ids like Replicate's (26 lowercase letters and digits), and a URL that names it.
    assert re.fullmatch(r"[0-9a-z]{26}", uploaded.id) and url.endswith(f"/v1/files/{uploaded.id}")
    with pytest.raises(ReplicateError) as info:
        bob.files.get(uploaded.id)
    assert info.value.status == 404
    assert uploaded.id not in {f.id for f in bob.files.list()}
    # Nor can bob have a prediction read it for him by its URL.
    theirs = bob.predictions.create(
        version=echo["id"], input={"prompt": "b", "document": url}, wait=True
    )
    assert "alice's note" not in str(theirs.output) and theirs.status == "failed"
    mine = alice.predictions.create(
        version=echo["id"], input={"prompt": "a", "document": url}, wait=True
    )
    assert mine.output == "hello a | alice's note"


# --- Replicate's validation ----------------------------------------------------------


def test_unknown_body_fields_are_named(server: LocalServer, echo: dict[str, Any]) -> None:
    with _raw(server) as http:
        body = _problem(
            http.post("/v1/predictions", json={"version": echo["id"], "inputs": {"prompt": "x"}}),
            422,
        )
        assert body["title"] == "Input validation failed"
        assert "- Additional property inputs is not allowed\n" in body["detail"]
        assert "- input is required\n" in body["detail"]
        assert {
            "type": "additional_property_not_allowed",
            "field": "",
            "description": "Additional property inputs is not allowed",
        } in body["invalid_fields"]
        body = _problem(
            http.post(
                "/v1/models/acme/echo/predictions",
                json={"input": {}, "webhook_event_filter": ["start"]},
            ),
            422,
        )
        assert "Additional property webhook_event_filter is not allowed" in body["detail"]
        # Only prediction bodies are closed in Replicate's schema: models, deployments
        # and trainings ignore keys they do not know.
        created = http.post(
            "/v1/models",
            json={
                "owner": "acme",
                "name": "typo",
                "visibility": "private",
                "hardware": "cpu",
                "desciption": "typo",
            },
        )
        assert created.status_code == 201, created.text
        assert "desciption" not in created.json() and created.json()["description"] is None
        # Replicate's model object, field for field (no hardware, for one).
        assert set(created.json()) == {
            "url", "owner", "name", "description", "visibility", "github_url", "paper_url",
            "license_url", "cover_image_url", "run_count", "created_at", "is_official",
            "default_example", "latest_version",
        }
        updated = http.patch(
            "/v1/models/acme/typo",
            json={
                "readme": "# r",
                "colour": "red",
                "visibility": "public",
                "weights_url": "https://example.com/weights.tar",
            },
        )
        assert updated.status_code == 200 and "colour" not in updated.json()
        assert updated.json()["visibility"] == "private"  # not a field models.update takes
        # weights_url is taken but, as in Replicate's model object, not shown: the
        # object has the same fields before and after.
        assert set(updated.json()) == set(created.json())
        assert set(http.get("/v1/models/acme/typo").json()) == set(created.json())
        deployment = http.post(
            "/v1/deployments",
            json={
                "name": "extra-keys",
                "model": "acme/echo",
                "version": echo["id"],
                "hardware": "cpu",
                "min_instances": 0,
                "max_instances": 1,
                "region": "local",
            },
        )
        # 200, as Replicate's spec answers deployments.create.
        assert deployment.status_code == 200 and "region" not in deployment.text
        assert http.delete("/v1/deployments/alice/extra-keys").status_code == 204


def test_body_types_and_values_are_checked(alice: replicate.Client, echo: dict[str, Any]) -> None:
    with pytest.raises(ReplicateError) as info:
        alice.predictions.create(
            version=echo["id"],
            input={"prompt": "x"},
            webhook="https://example.com/hook",
            webhook_events_filter=["start", "finished"],
        )
    assert info.value.status == 422
    assert str(info.value.detail) == (
        '- webhook_events_filter.1: webhook_events_filter.1 must be one of the following: '
        '"start", "output", "logs", "completed"\n'
    )
    with pytest.raises(ReplicateError) as info:
        alice.predictions.create(version=echo["id"], input={"prompt": "x"}, webhook="example.com")
    assert info.value.status == 422
    assert "- webhook: Does not match format 'uri'" in str(info.value.detail)
    with pytest.raises(ReplicateError) as info:
        alice.models.create(owner="acme", name="x", visibility="secret", hardware="cpu")
    assert info.value.status == 422
    assert 'visibility must be one of the following: "public", "private"' in str(info.value.detail)
    with pytest.raises(ReplicateError) as info:
        alice.deployments.create(
            name="bad",
            model="acme/echo",
            version=echo["id"],
            hardware="cpu",
            min_instances=0,
            max_instances=99,
        )
    assert info.value.status == 422
    assert "max_instances: Must be less than or equal to 20" in str(info.value.detail)


def test_owner_name_predictions_only_for_official_models(
    server: LocalServer, alice: replicate.Client, echo: dict[str, Any]
) -> None:
    with pytest.raises(ReplicateError) as info:
        alice.run("acme/echo", input={"prompt": "x"})
    assert info.value.status == 422
    with pytest.raises(ReplicateError) as info:
        alice.predictions.create(version="acme/echo", input={"prompt": "x"})
    assert info.value.status == 422
    alice.models.create(owner="acme", name="echo-official", visibility="public", hardware="cpu")
    promote_version(alice, "acme", "echo-official", echo["id"])
    assert alice.run("acme/echo-official", input={"prompt": "o"}) == "hello o"
    with _raw(server) as http:
        assert http.get("/v1/models/acme/echo-official").json()["is_official"] is True
        assert http.get("/v1/models/acme/echo").json()["is_official"] is False


def test_deletion_rules(server: LocalServer, alice: replicate.Client, echo: dict[str, Any]) -> None:
    alice.models.create(owner="acme", name="public-empty", visibility="public", hardware="cpu")
    with pytest.raises(ReplicateError) as info:
        alice.models.delete("acme/public-empty")
    assert info.value.status == 409
    alice.models.create(owner="acme", name="deployed", visibility="private", hardware="cpu")
    vid = promote_version(alice, "acme", "deployed", echo["id"])["id"]
    alice.deployments.create(
        name="deployed-app",
        model="acme/deployed",
        version=vid,
        hardware="cpu",
        min_instances=0,
        max_instances=1,
    )
    model = alice.models.get("acme/deployed")
    with pytest.raises(ReplicateError) as info:
        model.versions.delete(vid)
    assert info.value.status == 409
    assert "deployed-app" in str(info.value.detail)
    assert alice.deployments.delete("alice", "deployed-app") is True
    # Nor while a training runs on it, nor on a public model.
    training = alice.trainings.create(
        version=f"acme/deployed:{vid}",
        input={"greeting": "hi", "delay": 60},
        destination="acme/public-empty",
    )
    with pytest.raises(ReplicateError) as info:
        model.versions.delete(vid)
    assert info.value.status == 409 and training.id in str(info.value.detail)
    alice.trainings.cancel(training.id)
    _until_terminal(training)
    assert training.status == "canceled"
    with pytest.raises(ReplicateError) as info:
        alice.models.get("acme/echo").versions.delete(echo["id"])
    assert info.value.status == 409 and "private" in str(info.value.detail)
    # Nor while a prediction of it runs (it would outlive the version).
    done = alice.predictions.create(version=vid, input={"prompt": "kept?"}, wait=True)
    running = alice.predictions.create(version=vid, input={"prompt": "slow", "delay": 60})
    with pytest.raises(ReplicateError) as info:
        model.versions.delete(vid)
    assert info.value.status == 409 and running.id in str(info.value.detail)
    alice.predictions.cancel(running.id)
    running.wait()  # the cancel's answer may come before the predictor has stopped
    assert running.status == "canceled"
    assert model.versions.delete(vid) is False  # 202 Accepted (the client says False)
    # As on Replicate, the version's predictions go with it.
    for gone in (done, running):
        with pytest.raises(ReplicateError) as info:
            alice.predictions.get(gone.id)
        assert info.value.status == 404
    assert alice.models.delete("acme/deployed") is True


def test_a_model_a_running_training_will_add_to_is_not_deleted(
    alice: replicate.Client, echo: dict[str, Any]
) -> None:
    alice.models.create(owner="alice", name="trained-into", visibility="private", hardware="cpu")
    training = alice.trainings.create(
        version=f"acme/echo:{echo['id']}",
        input={"greeting": "hi", "delay": 60},
        destination="alice/trained-into",
    )
    with pytest.raises(ReplicateError) as info:
        alice.models.delete("alice/trained-into")
    assert info.value.status == 409 and training.id in str(info.value.detail)
    alice.trainings.cancel(training.id)
    _until_terminal(training)  # the cancel's answer may come before the trainer stopped
    assert training.status == "canceled"
    assert alice.models.delete("alice/trained-into") is True


def _until_terminal(training: Any) -> None:
    give_up = time.monotonic() + 120
    while training.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < give_up, training.status
        time.sleep(0.1)
        training.reload()


def test_deleting_a_version_deletes_its_output_files(
    server: LocalServer, alice: replicate.Client, frames: dict[str, Any]
) -> None:
    alice.models.create(owner="alice", name="frames-gone", visibility="private", hardware="cpu")
    vid = promote_version(alice, "alice", "frames-gone", frames["id"])["id"]
    prediction = alice.predictions.create(version=vid, input={"count": 1})
    prediction.wait()
    url = prediction.output[0]
    with httpx.Client(timeout=60) as http:
        assert http.get(url).text == "frame 0"
        assert alice.models.get("alice/frames-gone").versions.delete(vid) is False
        _problem(http.get(url), 404)
    with pytest.raises(ReplicateError) as info:
        alice.predictions.get(prediction.id)
    assert info.value.status == 404


def test_training_needs_a_trainer(alice: replicate.Client) -> None:
    alice.models.create(owner="alice", name="no-trainer", visibility="private", hardware="cpu")
    version = push_build(alice, "alice", "no-trainer", FIXTURES / "noop")
    with pytest.raises(ReplicateError) as info:
        alice.trainings.create(
            version=f"alice/no-trainer:{version['id']}", input={}, destination="alice/no-trainer"
        )
    assert info.value.status == 422
    assert "declares no train" in str(info.value.detail)
    trainings = [t for page in replicate.paginate(alice.trainings.list) for t in page]
    assert "alice/no-trainer" not in {t.model for t in trainings}


# --- outputs as Replicate delivers them ----------------------------------------------


class _Hooks(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []
    completed = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if body["status"] == "succeeded":
            type(self).completed.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_file_outputs_are_urls_except_in_the_synchronous_answer(
    server: LocalServer, alice: replicate.Client, frames: dict[str, Any]
) -> None:
    waited = alice.predictions.create(version=frames["id"], input={"count": 2}, wait=True)
    assert all(str(o).startswith("data:text/plain;base64,") for o in waited.output)

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        polled = alice.predictions.create(
            version=frames["id"],
            input={"count": 2},
            webhook=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
            webhook_events_filter=["completed"],
        )
        polled.wait()
        assert _Hooks.completed.wait(30)
    finally:
        receiver.shutdown()
        receiver.server_close()
    urls = polled.output
    assert [u.split("/")[-1] for u in urls] == ["out-0.txt", "out-1.txt"]
    assert all(u.startswith(f"{server.base_url}/delivery/{polled.id}-") for u in urls)
    assert _Hooks.bodies[-1]["output"] == urls  # webhooks carry the URLs too
    # The client's FileOutput fetches them; so does a plain GET without a token.
    assert [FileOutput(u, alice).read() for u in urls] == [b"frame 0", b"frame 1"]
    with httpx.Client() as plain:
        resp = plain.get(urls[1])
        assert resp.status_code == 200 and resp.content == b"frame 1"
        assert resp.headers["content-type"].startswith("text/plain")
        # Byte ranges, as a CDN serves files (resumed downloads, media players).
        assert resp.headers["accept-ranges"] == "bytes"
        # A web app's page (another origin) may fetch it, as from Replicate's CDN.
        assert resp.headers["access-control-allow-origin"] == "*"
        part = plain.get(urls[1], headers={"Range": "bytes=2-4"})
        assert part.status_code == 206 and part.content == b"ame"
        assert part.headers["access-control-allow-origin"] == "*"
        assert part.headers["content-range"] == "bytes 2-4/7"
        # A range it cannot serve is an error like every other: problem JSON.
        beyond = plain.get(urls[1], headers={"Range": "bytes=50-60"})
        assert _problem(beyond, 416) and beyond.headers["content-range"] == "bytes */7"
        _problem(plain.get(urls[1], headers={"Range": "bytes=4-2"}), 400)
        head = plain.head(urls[1])
        assert head.status_code == 200 and head.headers["content-length"] == "7"
        _problem(plain.get(urls[1].replace(polled.id, "x" * 26)), 404)
    # cogfleet's own checkers read both forms alike.
    files = FileCache(None)
    assert files(urls[0]).data == files(str(waited.output[0])).data == b"frame 0"
    assert files(urls[0]).extension == "txt"


# --- the endpoints 1.0.7 has no method for -------------------------------------------


def test_models_update_readme_and_examples(
    server: LocalServer, alice: replicate.Client, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    with _raw(server) as http:
        resp = http.patch(
            "/v1/models/acme/echo",
            json={
                "description": "Says hello",
                "readme": "# Echo\n\nSays hello.",
                "github_url": "https://github.com/acme/echo",
            },
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["description"] == "Says hello"
        readme = http.get("/v1/models/acme/echo/readme")
        assert readme.status_code == 200 and readme.text == "# Echo\n\nSays hello."
        # Markdown served as text/plain, as Replicate's spec has it; none is a 404.
        assert readme.headers["content-type"] == "text/plain; charset=utf-8"
        alice.models.create(owner="alice", name="no-readme", visibility="private", hardware="cpu")
        _problem(http.get("/v1/models/alice/no-readme/readme"), 404)
    model = bob.models.get("acme/echo")
    assert model.description == "Says hello" and model.github_url == "https://github.com/acme/echo"

    mine = alice.predictions.create(version=echo["id"], input={"prompt": "example"}, wait=True)
    theirs = bob.predictions.create(version=echo["id"], input={"prompt": "guest"}, wait=True)
    with _raw(server, BOB) as http:
        examples = http.get("/v1/models/acme/echo/examples").json()
        ids = [p["id"] for p in examples["results"]]
        while examples["next"]:
            examples = http.get(examples["next"]).json()
            ids += [p["id"] for p in examples["results"]]
    assert mine.id in ids and theirs.id not in ids
    assert alice.models.get("acme/echo").default_example.id == mine.id


def test_collections(
    server: LocalServer, alice: replicate.Client, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    alice.models.create(owner="acme", name="hidden-too", visibility="private", hardware="cpu")
    listed = [c for page in replicate.paginate(alice.collections.list) for c in page]
    assert [(c.slug, c.name, c.description) for c in listed] == [
        ("featured", "Featured", "Models worth a look")
    ]
    names = [m.name for m in alice.collections.get("featured").models]
    assert names[0] == "echo" and "gone" not in names
    assert [m.name for m in bob.collections.get("featured").models] == ["echo"]
    with _raw(server, BOB) as http:
        assert http.get("/v1/collections/featured").json()["full_description"] is None
    with pytest.raises(ReplicateError) as info:
        alice.collections.get("nope")
    assert info.value.status == 404


def test_cancel_after_sets_a_deadline(server: LocalServer, echo: dict[str, Any]) -> None:
    with _raw(server) as http:
        # A bare number has no exponent and no "_" (as Go reads numbers).
        for bad in ("soon", "1s", "-5", "5x", "1e308", "99999999999h", "nan", "5_0", "1e1"):
            resp = http.post(
                "/v1/predictions",
                json={"version": echo["id"], "input": {"prompt": "x"}},
                headers={"Cancel-After": bad},
            )
            assert "Cancel-After" in _problem(resp, 400)["detail"]
        for given, seconds in (("1m", 60), ("1h30m45s", 5445), ("90", 90), ("2m30s", 150)):
            made = http.post(
                "/v1/predictions",
                json={"version": echo["id"], "input": {"prompt": "x"}},
                headers={"Cancel-After": given},
            ).json()
            span = _stamp(made["deadline"]) - _stamp(made["created_at"])
            assert seconds - 0.1 <= span.total_seconds() <= seconds + 1, (given, made)
        created = http.post(
            "/v1/predictions",
            json={"version": echo["id"], "input": {"prompt": "late", "delay": 120}},
            headers={"Cancel-After": "5s"},
        ).json()
        span = _stamp(created["deadline"]) - _stamp(created["created_at"])
        assert 4.9 <= span.total_seconds() <= 6
        give_up = time.monotonic() + 60
        while (pred := http.get(f"/v1/predictions/{created['id']}").json())["status"] not in (
            "succeeded",
            "failed",
            "canceled",
        ):
            assert time.monotonic() < give_up, pred
            time.sleep(0.2)
    assert pred["status"] == "canceled"


def test_prefer_variants(
    server: LocalServer, alice: replicate.Client, echo: dict[str, Any]
) -> None:
    body = {"version": echo["id"], "input": {"prompt": "p"}}
    with _raw(server) as http:
        for prefer, applied in (
            ("wait", "wait"), ("wait=5", "wait=5"), ("wait=61", "wait=60"),
            # RFC 7240: a list of preferences, parameters after ";"
            ("respond-async, wait=5", "wait=5"), ("handling=lenient; x=1, wait=7", "wait=7"),
        ):
            resp = http.post("/v1/predictions", json=body, headers={"Prefer": prefer})
            assert resp.status_code == 201, resp.text
            # Preference-Applied says what was applied: a wait beyond 60 s waits 60 s.
            assert resp.headers["preference-applied"] == applied
            assert resp.json()["status"] == "succeeded" and resp.json()["output"] == "hello p"
        for prefer in ("respond-async", "wait=soon"):  # not a wait: answered at once
            resp = http.post("/v1/predictions", json=body, headers={"Prefer": prefer})
            assert resp.status_code == 201 and "preference-applied" not in resp.headers
            assert resp.headers["location"] == resp.json()["urls"]["get"]
        # A wait that runs out answers "starting" (what makes run() poll), not yet started.
        slow = http.post(
            "/v1/predictions",
            json={"version": echo["id"], "input": {"prompt": "s", "delay": 30}},
            headers={"Prefer": "wait=1"},
        )
        assert slow.headers["preference-applied"] == "wait=1"
        assert slow.json()["status"] == "starting" and slow.json()["started_at"] is None
        assert slow.headers["location"] == slow.json()["urls"]["get"]
        assert http.post(f"/v1/predictions/{slow.json()['id']}/cancel").status_code == 200
        # Trainings take no Prefer: the answer comes at once.
        alice.models.create(owner="alice", name="prefer-dest", visibility="private", hardware="cpu")
        training = http.post(
            f"/v1/models/acme/echo/versions/{echo['id']}/trainings",
            json={"input": {"greeting": "g", "delay": 30}, "destination": "alice/prefer-dest"},
            headers={"Prefer": "wait"},
        )
        assert training.status_code == 201 and "preference-applied" not in training.headers
        assert training.json()["status"] in ("starting", "processing")
        alice.trainings.cancel(training.json()["id"])


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _listed(http: httpx.Client, **params: str) -> list[str]:
    """The ids of every page of ``GET /v1/predictions`` with ``params``."""
    page = http.get("/v1/predictions", params=params).json()
    ids = [p["id"] for p in page["results"]]
    while page["next"]:
        page = http.get(page["next"]).json()
        ids += [p["id"] for p in page["results"]]
    return ids


def test_prediction_list_filters(
    server: LocalServer, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    first = bob.predictions.create(version=echo["id"], input={"prompt": "1"}, wait=True)
    middle = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    later = [
        bob.predictions.create(version=echo["id"], input={"prompt": str(i)}, wait=True).id
        for i in range(3)
    ]
    with _raw(server, BOB) as http:
        page = http.get("/v1/predictions", params={"created_after": middle}).json()
        ids = [p["id"] for p in page["results"]]
        assert page["next"] and "created_after=" in page["next"]  # the filter carries over
        while page["next"]:
            page = http.get(page["next"]).json()
            ids += [p["id"] for p in page["results"]]
        assert ids == later[::-1]
        before = http.get("/v1/predictions", params={"created_before": middle}).json()
        assert first.id in [p["id"] for p in before["results"]]
        assert set(ids).isdisjoint(p["id"] for p in before["results"])
        # "at or after" includes a prediction created at that very time; "before" does not.
        at = http.get(f"/v1/predictions/{later[0]}").json()["created_at"]
        assert _listed(http, created_after=at) == later[::-1]
        assert later[0] not in _listed(http, created_before=at)
        assert http.get("/v1/predictions", params={"source": "web"}).json()["results"] == []
        assert http.get("/v1/predictions", params={"source": "api"}).json()["results"]
        body = _problem(http.get("/v1/predictions", params={"created_after": "yesterday"}), 422)
        assert "created_after" in body["detail"]
        _problem(http.get("/v1/predictions", params={"source": "cli"}), 422)


def test_list_cursors_are_positions(
    server: LocalServer, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    # A prediction created while a client pages does not push the ones it has seen
    # onto the next page (nor appear itself): Replicate's cursors are positions.
    for i in range(3):
        bob.predictions.create(version=echo["id"], input={"prompt": f"c{i}"}, wait=True)
    with _raw(server, BOB) as http:
        everything = _listed(http)
        page = http.get("/v1/predictions").json()
        assert len(page["results"]) == 2 and page["next"]
        seen = [p["id"] for p in page["results"]]
        newer = bob.predictions.create(version=echo["id"], input={"prompt": "new"}, wait=True)
        while page["next"]:
            page = http.get(page["next"]).json()
            seen += [p["id"] for p in page["results"]]
        assert seen == everything and newer.id not in seen
        assert _listed(http)[0] == newer.id  # a fresh listing starts with it


def test_models_list_sort_order(
    server: LocalServer, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    names = ["sort-1", "sort-2", "sort-3"]
    for name in names:
        bob.models.create(owner="bob", name=name, visibility="private", hardware="cpu")
    promote_version(bob, "bob", "sort-1", echo["id"])  # sort-1 has the newest version

    def listed(**params: str) -> list[str]:
        found = []
        with _raw(server, BOB) as http:
            page = http.get("/v1/models", params=params).json()
            found += [m["name"] for m in page["results"]]
            while page["next"]:  # two per page here: the order carries over the cursor
                page = http.get(page["next"]).json()
                found += [m["name"] for m in page["results"]]
        return [n for n in found if n in names]

    assert listed() == ["sort-1", "sort-3", "sort-2"]  # latest_version_created_at, desc
    assert listed(sort_direction="asc") == ["sort-2", "sort-3", "sort-1"]
    assert listed(sort_by="model_created_at") == ["sort-3", "sort-2", "sort-1"]
    assert listed(sort_by="model_created_at", sort_direction="asc") == names
    assert [m.name for m in bob.models.list().results if m.name in names][:1] == ["sort-1"]
    with _raw(server, BOB) as http:
        body = _problem(http.get("/v1/models", params={"sort_by": "name"}), 422)
        assert body["invalid_fields"][0]["field"] == "sort_by"
        _problem(http.get("/v1/models", params={"sort_direction": "up"}), 422)


def test_stream_url_needs_no_token(server: LocalServer, alice: replicate.Client) -> None:
    alice.models.create(owner="alice", name="tokens", visibility="private", hardware="cpu")
    version = push_build(alice, "alice", "tokens", FIXTURES / "tokens")
    pred = alice.predictions.create(version=version["id"], input={"text": "one two"}, stream=True)
    url = pred.urls["stream"]
    with httpx.Client(timeout=60) as plain:  # no Authorization, as a browser EventSource
        origin = {"Accept": "text/event-stream", "Origin": "http://localhost:3000"}
        with plain.stream("GET", url, headers=origin) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            # A web app's page (another origin) may read it.
            assert resp.headers["access-control-allow-origin"] == "*"
            text = "".join(resp.iter_text())
        assert "data: one " in text and "event: done" in text
        _problem(plain.get(url[:-3] + "xyz"), 404)
        _problem(plain.get(f"{server.base_url}/v1/streams/{pred.id}"), 404)


def test_embedded_push_server_writes_only_under_the_configs_owners(tmp_path: Path) -> None:
    from cogfleet._config import SafePushConfig
    from cogfleet._run import Job, _owners
    from cogfleet._target import open_target

    config = SafePushConfig.model_validate(
        {
            "model": "acme/flux",
            "test_model": "acme-ci/flux-test",
            "official_model": "acme-official/flux",
            "deployment": {"owner": "acme-deploy"},
        }
    )
    owners, official = _owners([Job(name="flux", build_dir=tmp_path, config=config)])
    assert owners == ["acme-deploy", "acme", "acme-ci", "acme-official"]
    assert official == ["acme-official/flux"]
    with open_target(
        "local", repo_root=tmp_path, local_url=None, owners=owners, official=official
    ) as target:
        client = target.client
        assert client.accounts.current().username == "acme-deploy"
        for owner in owners:
            client.models.create(owner=owner, name="m", visibility="private", hardware="cpu")
        with pytest.raises(ReplicateError) as info:
            client.models.create(owner="elsewhere", name="m", visibility="private", hardware="cpu")
        assert info.value.status == 403


# --- the client's async methods --------------------------------------------------------


def test_the_clients_async_methods_answer_as_its_sync_ones(
    alice: replicate.Client, echo: dict[str, Any], tmp_path: Path
) -> None:
    vid = str(echo["id"])
    note = tmp_path / "async.txt"
    note.write_text("async note")

    async def main() -> None:
        assert (await alice.accounts.async_current()).username == "alice"
        assert [h.sku for h in await alice.hardware.async_list()][0] == "cpu"
        assert (await alice.webhooks.default.async_secret()).key.startswith("whsec_")
        featured = await alice.collections.async_get("featured")
        assert "acme/echo" in [f"{m.owner}/{m.name}" for m in featured.models or []]
        assert [c.slug for c in (await alice.collections.async_list()).results] == ["featured"]
        # Models and versions, and every page of the list (two a page here).
        made = await alice.models.async_create(
            owner="alice", name="async-dest", visibility="private", hardware="cpu"
        )
        assert (made.owner, made.latest_version) == ("alice", None)
        await alice.models.async_create(
            owner="alice", name="async-other", visibility="private", hardware="cpu"
        )
        model = await alice.models.async_get("acme/echo")
        assert model.latest_version is not None and model.latest_version.id == vid
        assert [v.id for v in await model.versions.async_list()] == [vid]
        assert (await model.versions.async_get(vid)).cog_version
        found = await alice.models.async_search("echo")
        assert "acme/echo" in [f"{m.owner}/{m.name}" for m in found]
        pages = [page async for page in replicate.async_paginate(alice.models.async_list)]
        names = [f"{m.owner}/{m.name}" for page in pages for m in page.results]
        assert len(pages) > 1 and {"acme/echo", "alice/async-dest", "alice/async-other"} <= set(
            names
        )
        assert await alice.models.async_delete("alice/async-other")
        # Predictions: synchronous, polled, listed, canceled; run.
        waited = await alice.predictions.async_create(version=vid, input={"prompt": "a"}, wait=True)
        assert (waited.status, waited.output) == ("succeeded", "hello a")
        polled = await alice.predictions.async_create(version=vid, input={"prompt": "b"})
        await polled.async_wait()
        assert (polled.status, polled.output) == ("succeeded", "hello b")
        assert (await alice.predictions.async_get(polled.id)).output == "hello b"
        listed = await alice.predictions.async_list()
        assert polled.id in [p.id for p in listed.results]
        slow = await alice.predictions.async_create(version=vid, input={"prompt": "c", "delay": 60})
        await alice.predictions.async_cancel(slow.id)
        await slow.async_wait()  # the cancel's answer may come before the predictor stopped
        assert slow.status == "canceled"
        assert await alice.async_run(f"acme/echo:{vid}", input={"prompt": "r"}) == "hello r"
        # Files.
        uploaded = await alice.files.async_create(note, metadata={"k": 1})
        assert (await alice.files.async_get(uploaded.id)).metadata == {"k": 1}
        assert uploaded.id in [f.id for f in await alice.files.async_list()]
        assert await alice.files.async_delete(uploaded.id)
        # Deployments and their predictions.
        deployment = await alice.deployments.async_create(
            name="async-app", model="acme/echo", version=vid, hardware="cpu",
            min_instances=0, max_instances=1,
        )
        assert deployment.current_release is not None
        assert deployment.current_release.number == 1
        updated = await alice.deployments.async_update("alice", "async-app", max_instances=2)
        assert updated.current_release is not None and updated.current_release.number == 2
        assert (await alice.deployments.async_get("alice/async-app")).name == "async-app"
        assert "async-app" in [d.name for d in (await alice.deployments.async_list()).results]
        ran = await deployment.predictions.async_create(input={"prompt": "d"}, wait=True)
        assert ran.output == "hello d"
        assert await alice.deployments.async_delete("alice", "async-app")
        # Trainings.
        training = await alice.trainings.async_create(
            model="acme/echo", version=vid, input={"greeting": "yo", "delay": 60},
            destination="alice/async-dest",
        )
        assert (await alice.trainings.async_get(training.id)).destination == "alice/async-dest"
        assert training.id in [t.id for t in (await alice.trainings.async_list()).results]
        await alice.trainings.async_cancel(training.id)
        give_up = time.monotonic() + 120  # the answer may come before the trainer stopped
        while training.status not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < give_up, training.status
            await asyncio.sleep(0.1)
            await training.async_reload()
        assert training.status == "canceled"
        await alice.models.async_delete("alice/async-dest")

    asyncio.run(main())
