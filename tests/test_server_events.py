"""Webhooks and server-sent events of the local server, as Replicate delivers them.

Webhooks go to a real HTTP receiver and are verified with the official client's
``replicate.webhooks.validate`` and the secret from ``GET /v1/webhooks/default/secret``;
streams are read over real HTTP as the client and a browser's ``EventSource`` read them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

FIXTURES = Path(__file__).parent / "fixtures" / "server"
TOKEN = "r8_events-token"
TERMINAL = ("succeeded", "failed", "canceled")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path_factory.mktemp("state"), tokens={TOKEN: "ann"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> replicate.Client:
    client = replicate.Client(api_token=TOKEN, base_url=server.base_url)
    client.poll_interval = 0.05
    return client


@pytest.fixture(scope="module")
def bursts(client: replicate.Client) -> str:
    client.models.create(owner="ann", name="bursts", visibility="private", hardware="cpu")
    return str(push_build(client, "ann", "bursts", FIXTURES / "bursts")["id"])


class Receiver:
    """A webhook receiver on loopback: keeps every POST; the first ``fail`` POSTs
    of each event status in ``fail`` are answered 500."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], str]] = []
        self.answered: list[int] = []
        self.done = threading.Event()
        self._fail = dict(fail or {})
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                status = json.loads(body)["status"]
                code = 204
                if receiver._fail.get(status, 0) > 0:
                    receiver._fail[status] -= 1
                    code = 500
                receiver.received.append((dict(self.headers.items()), body))
                receiver.answered.append(code)
                self.send_response(code)
                self.end_headers()
                if status in TERMINAL and code < 400:
                    receiver.done.set()

            def log_message(self, *args: object) -> None:
                return

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


# --- webhooks ---------------------------------------------------------------------------


def test_webhooks_without_a_filter_send_every_event_in_order(
    client: replicate.Client, bursts: str, receiver: Receiver
) -> None:
    # Two outputs and two log lines back to back, then a pause: the changes made
    # within the 500 ms after the first output still go out before the end.
    pred = client.predictions.create(
        version=bursts, input={"words": "a b", "pause": 2.0}, webhook=receiver.url
    )
    assert receiver.done.wait(60)
    secret = client.webhooks.default.secret()
    for headers, body in receiver.received:
        replicate.webhooks.validate(headers=headers, body=body, secret=secret)
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert len(set(ids)) == len(ids)  # one message id per event
    events = receiver.events()
    assert all(e["id"] == pred.id for e in events)
    statuses = [e["status"] for e in events]
    assert statuses[0] == "processing" and statuses[-1] == "succeeded"
    assert set(statuses[:-1]) == {"processing"}
    outputs = [e["output"] or [] for e in events]
    assert outputs == sorted(outputs, key=len)  # delivered in order
    intermediate = events[:-1]
    assert any(e["output"] == ["a", "b"] for e in intermediate)
    assert any(e["logs"] == "burst a\nburst b\n" for e in intermediate)
    assert events[-1]["output"] == ["a", "b"] and events[-1]["metrics"]["total_time"] > 0
    assert events[-1]["urls"]["get"].endswith(f"/v1/predictions/{pred.id}")


def test_only_the_terminal_webhook_is_retried_with_its_id(
    client: replicate.Client, bursts: str
) -> None:
    receiver = Receiver(fail={"processing": 1, "succeeded": 2})
    try:
        client.predictions.create(
            version=bursts,
            input={"words": "x"},
            webhook=receiver.url,
            webhook_events_filter=["start", "completed"],
        )
        assert receiver.done.wait(60)
    finally:
        receiver.close()
    statuses = [e["status"] for e in receiver.events()]
    assert statuses == ["processing", "succeeded", "succeeded", "succeeded"]
    assert receiver.answered == [500, 500, 500, 204]
    final = [headers for headers, body in receiver.received[1:]]
    assert len({h["webhook-id"] for h in final}) == 1  # the same message, retried
    assert receiver.received[0][0]["webhook-id"] != final[0]["webhook-id"]
    # Each attempt is signed when it is sent: the last retry (3 s of back-off after
    # the first attempt) carries a later timestamp, so a receiver's tolerance holds.
    assert int(final[-1]["webhook-timestamp"]) > int(final[0]["webhook-timestamp"])
    assert final[-1]["webhook-signature"] != final[0]["webhook-signature"]
    secret = client.webhooks.default.secret()
    for headers, body in receiver.received:
        replicate.webhooks.validate(headers=headers, body=body, secret=secret)


# --- server-sent events -----------------------------------------------------------------


def _read(url: str, last_event_id: str | None = None, limit: int | None = None) -> Any:
    """The events of a stream (``(event, id, data)``), read without a token as a
    browser's EventSource reads them; stops after ``limit`` events."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[tuple[str, str, str]] = []
    with httpx.stream("GET", url, headers=headers, timeout=60) as resp:
        if resp.status_code != 200:
            return resp.status_code
        assert resp.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, list[str]] = {}
        for line in resp.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields.setdefault(name, []).append(value)
                continue
            if fields:
                events.append((fields["event"][0], fields["id"][0], "\n".join(fields["data"])))
                fields = {}
                if limit is not None and len(events) == limit:
                    break
    return events


def test_a_stream_resumes_after_the_last_event_id(client: replicate.Client, bursts: str) -> None:
    pred = client.predictions.create(version=bursts, input={"words": "one two", "pause": 1.0})
    assert pred.urls is not None
    url = pred.urls["stream"]
    first = _read(url, limit=1)
    # The model prints "burst one" before it yields "one".
    assert first[0][:1] == ("logs",) and first[0][2] == "burst one"
    rest = _read(url, last_event_id=first[0][1])
    whole = _read(url)

    def kinds(events: list[tuple[str, str, str]]) -> dict[str, list[str]]:
        return {kind: [e[2] for e in events if e[0] == kind] for kind in ("output", "logs")}

    # Every output and log line once, in order, across the reconnect.
    assert kinds(first + rest) == kinds(whole) and rest[-1] == whole[-1]
    # Read after the run ended, the events come in the order they happened.
    assert [(e[0], e[2]) for e in whole] == [
        ("logs", "burst one"),
        ("output", "one"),
        ("logs", "burst two"),
        ("output", "two"),
        ("done", "{}"),
    ]
    # The official client reads the same events.
    read = [(e.event.value, e.id, e.data) for e in client.predictions.get(pred.id).stream()]
    assert read == whole

    async def read_async() -> list[tuple[str, str, str]]:
        found = await client.predictions.async_get(pred.id)
        return [(e.event.value, e.id, e.data) async for e in found.async_stream()]

    assert asyncio.run(read_async()) == whole
    # After done, a reconnecting EventSource is told to stop (204).
    assert _read(url, last_event_id=whole[-1][1]) == 204
    # An id of no event of this stream reads it from the start.
    assert _read(url, last_event_id="someone-else:1:1") == whole


def test_a_stream_read_after_the_run_replays_it_in_order(
    client: replicate.Client, bursts: str
) -> None:
    # Nobody reads the stream while the model runs; it failed after three outputs.
    pred = client.predictions.create(
        version=bursts, input={"words": "a b c", "pause": 0.5, "fail": True}
    )
    pred.wait()
    assert pred.status == "failed" and pred.urls is not None
    events = _read(pred.urls["stream"])
    assert [(e[0], e[2]) for e in events[:-2]] == [
        ("logs", "burst a"),
        ("output", "a"),
        ("logs", "burst b"),
        ("output", "b"),
        ("logs", "burst c"),
        ("output", "c"),
    ]
    assert [e[0] for e in events[-2:]] == ["error", "done"]
    read = []
    with pytest.raises(RuntimeError, match="the burst went wrong"):
        for event in client.predictions.get(pred.id).stream():
            read.append((event.event.value, event.id, event.data))
    assert read == events[:-2]


def test_a_failed_or_canceled_stream_says_why(client: replicate.Client, bursts: str) -> None:
    failed = client.predictions.create(version=bursts, input={"words": "w", "fail": True})
    assert failed.urls is not None
    events = _read(failed.urls["stream"])
    assert [e[0] for e in events][-2:] == ["error", "done"]
    assert "the burst went wrong" in json.loads(events[-2][2])["detail"]
    assert json.loads(events[-1][2]) == {"reason": "error"}
    long = client.predictions.create(version=bursts, input={"words": "w", "pause": 60})
    assert long.urls is not None
    stream = long.urls["stream"]
    assert ("output", "w") in [(e[0], e[2]) for e in _read(stream, limit=2)]  # it runs
    client.predictions.cancel(long.id)
    assert json.loads(_read(stream)[-1][2]) == {"reason": "canceled"}
    # The official client raises the error event's data.
    with pytest.raises(RuntimeError, match="the burst went wrong"):
        list(client.predictions.get(failed.id).stream())


# --- starting and processing ------------------------------------------------------------


def test_a_run_is_starting_until_its_model_runs(
    client: replicate.Client, bursts: str, receiver: Receiver
) -> None:
    # The model runs one prediction at a time: the second waits for the first.
    first = client.predictions.create(version=bursts, input={"words": "busy", "pause": 60})
    assert first.urls is not None
    running = [(e[0], e[2]) for e in _read(first.urls["stream"], limit=2)]
    assert ("output", "busy") in running  # it holds the slot
    waiting = client.predictions.create(
        version=bursts,
        input={"words": "next"},
        webhook=receiver.url,
        webhook_events_filter=["start", "completed"],
    )
    queued = client.predictions.get(waiting.id)
    assert (queued.status, queued.started_at) == ("starting", None)
    # Canceled while it waited, a run never started: no predict_time.
    dropped = client.predictions.create(version=bursts, input={"words": "never"})
    client.predictions.cancel(dropped.id)
    dropped.wait()  # the cancel's answer may come before the run has ended
    assert (dropped.status, dropped.started_at) == ("canceled", None)
    assert dropped.metrics is not None and set(dropped.metrics) == {"total_time"}
    assert client.predictions.get(first.id).status == "processing"
    assert not receiver.received  # no start event while it waits
    canceling = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert client.predictions.cancel(first.id).status == "canceled"
    assert receiver.done.wait(60)
    start, done = receiver.events()
    assert start["status"] == "processing" and done["status"] == "succeeded"
    # It started once the slot was free (after the cancel), not when it was created.
    assert start["started_at"] > canceling > waiting.created_at
    assert done["started_at"] == start["started_at"]
    assert 0 < done["metrics"]["predict_time"] <= done["metrics"]["total_time"]


def test_a_carriage_return_in_streamed_data_does_not_cut_it() -> None:
    # A bare CR ends a line in an event stream: the client reads what follows it too.
    from replicate.stream import EventSource

    from cogfleet.server._streams import encode

    body = encode("output", "50%\r60%\r\nend", "p:1:0") + encode("done", "{}", "p:1:0:done")
    resp = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    read = EventSource(replicate.Client(api_token="unused"), resp)
    assert [(e.event.value, e.data) for e in read] == [("output", "50%\n60%\nend"), ("done", "{}")]


def test_a_live_stream_waits_for_an_output_update_that_arrives_late() -> None:
    # coglet sends one update per output, concurrently: the second output's update can
    # arrive first. A live stream then sends the same events, in the same order, as
    # one read after the run ended.
    from cogfleet.server._streams import chunks, record

    first = {"output": ["a"], "logs": "one\n"}
    second = {"output": ["a", "b"], "logs": "one\ntwo\n"}
    doc: dict[str, Any] = {"id": "p", "status": "processing", **second}
    assert record(doc, second)
    assert chunks("p", doc, doc["output"], (0, 0)) == ([], (0, 0))  # held before the gap
    assert record(doc, first)  # the late update lets the stream go on
    live, position = chunks("p", doc, doc["output"], (0, 0))
    assert [(event, data) for event, data, _ in live] == [
        ("logs", "one"), ("output", "a"), ("logs", "two"), ("output", "b")
    ]
    doc["status"] = "succeeded"
    replay, _ = chunks("p", doc, doc["output"], (0, 0))
    assert replay[:-1] == live and replay[-1][0] == "done"
    assert chunks("p", doc, doc["output"], position)[0] == replay[-1:]


def test_a_live_stream_sends_merged_outputs_once_a_later_update_shows_them() -> None:
    # The Python server throttles its updates: one can carry two new outputs at once.
    from cogfleet.server._streams import chunks, record

    doc: dict[str, Any] = {"id": "p", "status": "processing", "output": ["a", "b"], "logs": ""}
    record(doc, doc)
    assert chunks("p", doc, doc["output"], (0, 0))[0] == []
    doc.update(output=["a", "b", "c"], logs="x\n")
    record(doc, doc)
    sent, _ = chunks("p", doc, doc["output"], (0, 0))
    assert [(event, data) for event, data, _ in sent] == [
        ("output", "a"), ("output", "b"), ("logs", "x"), ("output", "c")
    ]


def test_a_unicode_line_separator_stays_inside_its_data_line() -> None:
    # Only CR and LF end a line of an event stream: U+2028, U+2029 and U+0085 go out
    # as the model wrote them (a reader that follows the format gets them back).
    from cogfleet.server._streams import encode

    text = "a\u2028b\u2029c\x85d"
    wire = encode("output", text, "p:1:0").decode()
    assert wire == f"event: output\nid: p:1:0\ndata: {text}\n\n"
