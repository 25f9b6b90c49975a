"""The server-sent events of a streamable prediction, in the order they happened.

A run's output list and logs only grow, so a point of its history is a pair
(outputs so far, log characters so far). The model server reports such points as
it runs (cumulative updates, which can arrive out of order); :func:`record` keeps,
for a streamable prediction only, the ones that fit one history (a chain in both
counts) in ``doc["_marks"]``, stored with the prediction. :func:`chunks` walks
those points from a reader's position to the run's current state, so a stream read
live, read after the run ended, or resumed with ``Last-Event-ID`` has its
``output`` and ``logs`` events in the order they happened, not every output first.

Between two points where both counts grew, the log lines go first: the model
server sends an update when an output is yielded, carrying the logs printed
before it.

coglet sends one update per output and sends them concurrently, so a live reader
can see the update of a second output before the first one's. The latest point
jumping by more than one output is such a gap: a live stream stops before it until
the missing point arrives (:func:`record` says so, and the reader is woken), a later
update shows the gap was real (the Python server throttles its updates and can
merge two outputs into one), or the run ends. A live stream then sends the same
events in the same order as a stream read after the end.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

__all__ = ["chunks", "encode", "record", "stream_position"]

Chunk = tuple[str, str, str]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def record(doc: dict[str, Any], update: dict[str, Any]) -> bool:
    """Keep the point of ``doc``'s history that the runner's ``update`` shows;
    whether it is new (a late one changes what a live stream may send)."""
    output, logs = update.get("output"), update.get("logs")
    point = [
        len(output) if isinstance(output, list) else 0,
        len(logs) if isinstance(logs, str) else 0,
    ]
    if point == [0, 0]:
        return False
    marks: list[list[int]] = doc.setdefault("_marks", [])
    at = bisect.bisect_left(marks, point)
    if at < len(marks) and (marks[at] == point or marks[at][1] < point[1]):
        return False
    if at > 0 and marks[at - 1][1] > point[1]:
        return False  # not a point of the same history as those kept (a partial update)
    marks.insert(at, point)
    return True


def chunks(
    pid: str,
    doc: dict[str, Any],
    output: Any,
    position: tuple[int, int],
) -> tuple[list[Chunk], tuple[int, int]]:
    """The events of ``doc`` after ``position`` (outputs and log characters sent):
    ``(event, data, id)`` each, with the position after them.

    ``output`` is the run's output as the stream shows it (file outputs as URLs).
    While the run goes on, a log line still being written waits until it is whole;
    once it has ended, ``error`` and ``done`` close the stream.
    """
    sent_items, sent_logs = position
    items = output if isinstance(output, list) else []
    logs = doc.get("logs") or ""
    terminal = doc["status"] in ("succeeded", "failed", "canceled")
    found: list[Chunk] = []
    marks = list(doc.get("_marks") or ())
    end = [len(items), len(logs)]
    if not terminal and marks and marks[-1][0] > (marks[-2][0] if len(marks) > 1 else 0) + 1:
        # An output's update may still be on its way: stop before the gap.
        marks.pop()
        end = marks[-1] if marks else [0, 0]
    steps = [m for m in marks if sent_items <= m[0] <= end[0] and sent_logs <= m[1] <= end[1]]
    for to_items, to_logs in [*steps, end]:
        pending = logs[sent_logs : max(sent_logs, to_logs)]
        if not (terminal and to_logs == len(logs)):
            # A line still being written goes out once it is whole.
            pending = pending[: pending.rfind("\n") + 1]
        for line in pending.splitlines(keepends=True):
            sent_logs += len(line)
            found.append(("logs", line.rstrip("\r\n"), f"{pid}:{sent_items}:{sent_logs}"))
        for item in items[sent_items:to_items]:
            sent_items += 1
            found.append(("output", _sse_text(item), f"{pid}:{sent_items}:{sent_logs}"))
    if terminal:
        at = f"{pid}:{sent_items}:{sent_logs}"
        if doc["status"] == "failed":
            detail = json.dumps({"detail": doc.get("error") or "failed"})
            found.append(("error", detail, f"{at}:error"))
        reason = {"succeeded": {}, "failed": {"reason": "error"}}.get(
            doc["status"], {"reason": "canceled"}
        )
        found.append(("done", json.dumps(reason), f"{at}:done"))
    return found, (sent_items, sent_logs)


def encode(name: str, data: str, event_id: str) -> bytes:
    """One event as ``text/event-stream`` bytes (a ``data:`` line per line of data).

    A bare CR ends a line in an event stream as LF does: it starts a new ``data:``
    line too, or a reader would drop what follows it.
    """
    lines = "".join(f"data: {part}\n" for part in _LINE_BREAK.split(data))
    return f"event: {name}\nid: {event_id}\n{lines}\n".encode()


def stream_position(pid: str, event_id: str | None) -> tuple[int, int, bool]:
    """Where a stream of ``pid`` resumes after ``event_id`` (a ``Last-Event-ID``):
    outputs and log characters already sent, and whether its ``done`` was sent.
    An id of no event of this stream starts it from the beginning."""
    parts = (event_id or "").strip().split(":")
    if len(parts) < 3 or parts[0] != pid or not (parts[1].isdigit() and parts[2].isdigit()):
        return 0, 0, False
    return int(parts[1]), int(parts[2]), parts[3:] == ["done"]


def _sse_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)
