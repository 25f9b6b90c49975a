"""The server's SQLite store: writes are queued for a thread of its own, which also
copies the write-ahead log back."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from cogfleet.server import _state
from cogfleet.server._state import Store


def test_the_log_is_copied_back_off_the_request_connection(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    try:
        # The connection requests use never stops a write to copy the log itself.
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        empty = path.stat().st_size
        doc = {"status": "succeeded", "logs": "x" * 2000}
        for round_ in (1, 2):
            for i in range(_state._CHECKPOINT_EVERY):
                store.put("predictions", f"p{round_}-{i}", doc, parent="v")
            assert store.wait_checkpoints(round_, timeout=30)
        # The pages are in the database file itself while the store is open.
        assert path.stat().st_size > empty + 2 * _state._CHECKPOINT_EVERY * 2000
        probe = sqlite3.connect(path)
        try:
            copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            probe.close()
        assert copied[0] == 0  # not busy: the store's thread holds nothing
    finally:
        store.close()
    assert not store._thread.is_alive()
    again = Store(path)
    try:
        assert again.get("predictions", f"p2-{_state._CHECKPOINT_EVERY - 1}") == doc
        assert again.count("predictions") == 2 * _state._CHECKPOINT_EVERY
    finally:
        again.close()
    assert not (tmp_path / "state.sqlite3-wal").exists()


def test_every_read_sees_every_queued_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    try:
        # Hold the connection, as a long read would: nothing queued can be written.
        with store._lock:
            store.put("predictions", "a", {"id": "a", "model": "m/x", "status": "starting"},
                      parent="v1")
            store.put("predictions", "b", {"id": "b", "model": "m/y", "status": "starting"})
            store.put("predictions", "a", {"id": "a", "model": "m/x", "status": "succeeded"})
            assert store._queue, "the writes are queued, not written"
            assert store.get("predictions", "a") == {
                "id": "a", "model": "m/x", "status": "succeeded"
            }
            # Any other read writes the queue first.
            assert store.count("predictions", parent="v1") == 1
            assert not store._queue
        docs, _ = store.page("predictions", limit=10)
        # The second write of "a" kept its first position (and parent).
        assert [d["id"] for d in docs] == ["b", "a"]
        assert store.find("predictions", "model", "m/x") == docs[1]
        assert store.first("predictions", "v1") == docs[1]
    finally:
        store.close()


def test_closing_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    with store._lock:  # the store's thread cannot take the queue
        for i in range(50):
            store.put("files", f"f{i}", {"id": f"f{i}"})
        store._closing = True
    store.close()
    again = Store(path)
    try:
        assert again.count("files") == 50
    finally:
        again.close()


def test_concurrent_writers_and_readers_see_their_latest_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    errors: list[str] = []

    def client(n: int) -> None:
        for i in range(150):
            key = f"p{n}-{i % 10}"
            store.put("predictions", key, {"id": key, "n": i, "model": f"m/{n}"})
            seen = store.get("predictions", key)
            if seen is None or seen["n"] != i:
                errors.append(f"{key}: {seen}")
            if i % 25 == 0:
                listed = store.count("predictions", where=[[("model", "=", f"m/{n}")]])
                if listed != min(i + 1, 10):
                    errors.append(f"m/{n}: {listed} listed after write {i}")

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.count("predictions") == 60
    finally:
        store.close()
