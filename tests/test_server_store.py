"""The server's SQLite store: its write-ahead log is copied back by a thread of its own."""

from __future__ import annotations

import sqlite3
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
        for i in range(2 * _state._CHECKPOINT_EVERY):
            store.put("predictions", f"p{i}", doc, parent="v")
        assert store.wait_checkpoints(2, timeout=30)
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
    assert not store._checkpointer.is_alive()
    again = Store(path)
    try:
        assert again.get("predictions", f"p{2 * _state._CHECKPOINT_EVERY - 1}") == doc
        assert again.count("predictions") == 2 * _state._CHECKPOINT_EVERY
    finally:
        again.close()
    assert not (tmp_path / "state.sqlite3-wal").exists()
