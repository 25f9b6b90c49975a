"""The local server's paths and cursors answer as Replicate's do.

Routes with a trailing slash, trainings reached as predictions, ``Cancel-After``
only where Replicate reads it, and list cursors that are positions. Through the
official ``replicate`` client over real HTTP where it has a method, raw httpx
otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build
from tests.conftest import ALICE, BOB

FIXTURES = Path(__file__).parent / "fixtures" / "server"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(
        state_dir=tmp_path_factory.mktemp("state"),
        tokens={ALICE: "alice", BOB: "bob"},
        page_size=2,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def echo(alice: replicate.Client) -> dict[str, Any]:
    alice.models.create(owner="alice", name="echo", visibility="public", hardware="cpu")
    return push_build(alice, "alice", "echo", FIXTURES / "echo")


def _raw(server: LocalServer, token: str = ALICE) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=60)


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"]
    return body


# --- trailing slashes -------------------------------------------------------------------


def test_no_path_with_a_trailing_slash_redirects(server: LocalServer) -> None:
    assert server.api is not None
    routes = server.api.routes()
    assert any(r.path == "/v1/predictions" for r in routes)
    with _raw(server) as http:
        for route in routes:
            path = re.sub(r"\{[^}]+\}", "x", route.path) + "/"
            for method in sorted((route.methods or set()) - {"HEAD"}):
                resp = http.request(method, path)
                body = _problem(resp, 404)
                assert "location" not in resp.headers
                assert body["detail"] == "The requested resource could not be found."
        # The documented form of the same path answers as before.
        assert http.get("/v1/predictions").status_code == 200


# --- a training is a prediction ---------------------------------------------------------


def test_a_training_is_also_a_prediction(
    server: LocalServer, alice: replicate.Client, echo: dict[str, Any]
) -> None:
    alice.models.create(owner="alice", name="trained", visibility="private", hardware="cpu")
    training = alice.trainings.create(
        version=f"alice/echo:{echo['id']}",
        input={"greeting": "howdy", "delay": 60},
        destination="alice/trained",
    )
    # The answer to its creation names the predictions paths, as Replicate's does.
    base = server.base_url
    assert training.urls is not None
    assert training.urls["get"] == f"{base}/v1/predictions/{training.id}"
    assert training.urls["cancel"] == f"{base}/v1/predictions/{training.id}/cancel"
    as_prediction = alice.predictions.get(training.id)
    assert as_prediction.id == training.id and as_prediction.model == "alice/echo"
    assert as_prediction.input == {"greeting": "howdy", "delay": 60}
    assert as_prediction.urls is not None
    assert as_prediction.urls["get"] == f"{base}/v1/predictions/{training.id}"
    # Canceled by the predictions path, it is canceled as a training.
    assert alice.predictions.cancel(training.id).status == "canceled"
    again = alice.trainings.get(training.id)
    assert again.status == "canceled"
    assert again.urls is not None and again.urls["get"] == f"{base}/v1/trainings/{training.id}"
    with _raw(server) as http:
        stored = http.get(f"/v1/predictions/{training.id}").json()
        assert stored["status"] == "canceled" and stored["destination"] == "alice/trained"
        # The lists stay apart; a prediction is no training; others see neither.
        assert training.id not in [p["id"] for p in http.get("/v1/predictions").json()["results"]]
        prediction = alice.predictions.create(version=echo["id"], input={"prompt": "p"})
        _problem(http.get(f"/v1/trainings/{prediction.id}"), 404)
        alice.predictions.cancel(prediction.id)
    with _raw(server, BOB) as http:
        _problem(http.get(f"/v1/predictions/{training.id}"), 404)
        _problem(http.post(f"/v1/predictions/{training.id}/cancel"), 404)


def test_cancel_after_is_read_on_predictions_only(
    server: LocalServer, alice: replicate.Client, echo: dict[str, Any]
) -> None:
    # Replicate's trainings.create takes no Cancel-After header: it is not read there
    # (not even checked), while predictions.create checks and applies it.
    alice.models.create(owner="alice", name="no-deadline", visibility="private", hardware="cpu")
    path = f"/v1/models/alice/echo/versions/{echo['id']}/trainings"
    body = {"input": {"greeting": "hi"}, "destination": "alice/no-deadline"}
    with _raw(server) as http:
        for value in ("5s", "soon"):
            resp = http.post(path, json=body, headers={"Cancel-After": value})
            assert resp.status_code == 201, resp.text
            assert "deadline" not in resp.json()
        prediction = {"version": echo["id"], "input": {"prompt": "x"}}
        _problem(
            http.post("/v1/predictions", json=prediction, headers={"Cancel-After": "soon"}), 400
        )
        resp = http.post("/v1/predictions", json=prediction, headers={"Cancel-After": "5m"})
        assert resp.status_code == 201 and resp.json()["deadline"]


# --- cursors are positions --------------------------------------------------------------


def _ids(list_method: Any, cursor: Any = ...) -> list[str]:
    """The ids on every page of a client's ``list`` method, from ``cursor`` on."""
    ids = []
    while cursor is not None:
        page = list_method(cursor)
        ids += [item.id for item in page.results]
        cursor = page.next
    return ids


def _page_ids(http: httpx.Client, url: str) -> tuple[list[str], dict[str, Any]]:
    page = http.get(url).json()
    return [f"{i['owner']}/{i['name']}" for i in page["results"]], page


def test_models_list_cursors_are_positions(server: LocalServer, bob: replicate.Client) -> None:
    for index in range(4):
        bob.models.create(owner="bob", name=f"paged-{index}", visibility="private", hardware="cpu")
    everything = _ids(bob.models.list)
    assert everything[:4] == [f"bob/paged-{i}" for i in (3, 2, 1, 0)]
    # A model created while a client pages pushes nothing it has seen onto the next page.
    first = bob.models.list()
    assert [m.id for m in first.results] == everything[:2] and first.next
    bob.models.create(owner="bob", name="paged-new", visibility="private", hardware="cpu")
    seen = [m.id for m in first.results] + _ids(bob.models.list, first.next)
    assert seen == everything
    # Nor does one deleted while it pages make it skip one.
    now = _ids(bob.models.list)
    assert now == ["bob/paged-new", *everything]
    first = bob.models.list()
    assert bob.models.delete(first.results[0].id) is True
    seen = [m.id for m in first.results] + _ids(bob.models.list, first.next)
    assert seen == now
    # ``previous`` reads back from a later page; the order carries over the cursors.
    with _raw(server, BOB) as http:
        ids, page = _page_ids(http, "/v1/models?sort_by=model_created_at&sort_direction=asc")
        assert page["previous"] is None
        later, second = _page_ids(http, page["next"])
        assert "sort_direction=asc" in second["previous"]
        back, again = _page_ids(http, second["previous"])
        assert back == ids and again["previous"] is None and again["next"]
        assert _page_ids(http, again["next"])[0] == later


def test_deployments_list_cursors_are_positions(
    server: LocalServer, bob: replicate.Client, echo: dict[str, Any]
) -> None:
    def create(name: str) -> None:
        bob.deployments.create(
            name=name,
            model="alice/echo",
            version=echo["id"],
            hardware="cpu",
            min_instances=0,
            max_instances=1,
        )

    for index in range(3):
        create(f"dep-{index}")
    everything = _ids(bob.deployments.list)
    assert everything == [f"bob/dep-{i}" for i in (2, 1, 0)]
    first = bob.deployments.list()
    create("dep-new")
    seen = [d.id for d in first.results] + _ids(bob.deployments.list, first.next)
    assert seen == everything
    first = bob.deployments.list()
    assert [d.id for d in first.results] == ["bob/dep-new", "bob/dep-2"]
    assert bob.deployments.delete("bob", "dep-new") is True
    rest = _ids(bob.deployments.list, first.next)
    assert rest == ["bob/dep-1", "bob/dep-0"]
    # An update is a new release, not a new deployment: its place stays.
    bob.deployments.update("bob", "dep-0", max_instances=2)
    assert _ids(bob.deployments.list) == everything


def test_cursors_that_name_no_position_are_400(server: LocalServer) -> None:
    import base64

    def cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    with _raw(server) as http:
        for bad in ("!!!", cursor("o=2"), cursor("p=-1"), cursor("p=x"), cursor("r=2&p=1")):
            _problem(http.get("/v1/models", params={"cursor": bad}), 400)
            _problem(http.get("/v1/deployments", params={"cursor": bad}), 400)
