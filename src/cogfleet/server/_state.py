"""SQLite store behind the local Replicate-compatible server.

Every resource kind (models, versions, predictions, trainings, deployments, files)
lives in one table of the same shape: a text key, an optional parent key (the
model a version belongs to), an insertion sequence used for newest-first
ordering and positional pagination, and the resource itself as a JSON document.
One connection is shared by all requests and guarded by a lock: the server's
work is tiny per call and SQLite serialises writers anyway, so a lock is the
simplest way to make concurrent requests safe.

Writes are written behind (:meth:`Store.put`): a request only queues its document.
A thread of the store's own wakes at the first write queued, lets writes gather for
50 ms, and writes them in one transaction, SQLite's own work done outside the
interpreter lock. Under many clients one commit then carries many documents, and a
prediction stored as ``starting`` and then ``succeeded`` within those 50 ms is
written once. Every read sees every queued write: a look-up by key answers from the
queue, any other read first writes the queue itself. A deletion, or a write inside
:meth:`Store.transaction`, is written at once. Closing the store writes what is
queued; a server killed outright loses at most the last 50 ms of writes (as with
``synchronous=NORMAL``, a local server trades that for speed).

Writes commit to the write-ahead log without waiting for the disk
(``synchronous=NORMAL``). Copying the log back into the database (a checkpoint)
is the one step that waits for the disk, for milliseconds at a time: SQLite would
run it inside whichever commit filled the log, holding up every request. So the
request connection never checkpoints; the store's thread does, on a connection of
its own, when enough writes have gathered (``PASSIVE``: it never blocks a writer).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

KINDS = ("models", "versions", "predictions", "trainings", "deployments", "files")

_TERMINAL = ("succeeded", "failed", "canceled")
_OPS = frozenset({"=", "<", ">", "in"})
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

Condition = tuple[str, str, Any]
_CHECKPOINT_EVERY = 200  # writes between two checkpoints by the store's own thread
_GATHER = 0.05  # seconds the store's thread lets writes gather before writing them
_LOG_FRAMES_MAX = 16384  # pages (64 MiB) the write-ahead log may grow to under writes
_SHARED_MAX = 1024  # documents :meth:`Store.shared` keeps per kind
Order = Literal["created", "latest_child"]
# One sequence numbers every document of every kind, so these compare across tables.
_ORDER = {
    "created": "seq",
    "latest_child": "COALESCE((SELECT MAX(c.seq) FROM versions c WHERE c.parent = {kind}.key),"
    " {kind}.seq)",
}
_INDEXED = (
    ("versions", "id"),
    ("predictions", "model"),
    ("trainings", "model"),
    ("predictions", "_account"),
    ("trainings", "_account"),
    ("models", "owner"),
)


class Store:
    """A small JSON document store on SQLite (WAL mode, one locked connection,
    writes queued for the store's thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # check_same_thread=False: the connection is used from the event loop thread,
        # worker threads and the store's thread; the lock above serialises access.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # the store's thread does it
        self._writes = 0
        self._closing = False
        self._closed = threading.Event()  # ends the store's thread's wait at once
        self.checkpoints = 0  # checkpoints the store's thread has run
        self._checkpointed = threading.Condition()
        self._checkpoint_due = False
        # Writes not yet in the database, by (kind, key): [seq, parent, JSON text].
        # Guarded by ``_queue_lock``; taken out for writing only with ``_lock`` held, so
        # whoever holds ``_lock`` sees every write either queued or committed.
        self._queue: dict[tuple[str, str], list[Any]] = {}
        self._queue_lock = threading.Lock()
        self._work = threading.Event()
        self._tx_thread: int | None = None  # the thread inside :meth:`transaction`
        # Documents decoded once for :meth:`shared`, by kind, with the kind's write
        # count when they were read; any write to the kind makes them stale.
        self._shared: dict[str, tuple[int, dict[tuple[str, str], dict[str, Any]]]] = {}
        self._generation = dict.fromkeys(KINDS, 0)
        with self._lock:
            for kind in KINDS:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind} ("
                    " key TEXT PRIMARY KEY, parent TEXT, seq INTEGER NOT NULL,"
                    " data TEXT NOT NULL)"
                )
                self._db.execute(f"CREATE INDEX IF NOT EXISTS {kind}_parent ON {kind}(parent, seq)")
            # The JSON fields lists filter on and look-ups search by (expression indexes).
            for kind, field in _INDEXED:
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS {kind}_{field.strip('_')} "
                    f"ON {kind}(json_extract(data, '$.{field}'))"
                )
            self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INT)")
            # One writer (this object) per state folder: the sequence lives in memory.
            self._seq = max(
                int(self._db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {kind}").fetchone()[0])
                for kind in KINDS
            )
        self._thread = threading.Thread(
            target=self._serve, args=(str(path),), name="store-writer", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, stop the store's thread and close the connection
        (SQLite checkpoints the log as the last connection closes)."""
        self._closing = True
        self._closed.set()
        self._work.set()
        self._thread.join()
        with self._lock:
            self._write_queued()
            self._db.close()

    def _serve(self, path: str) -> None:
        """The store's thread: write what is queued; checkpoint when it is due."""
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            while not self._closing:
                self._work.wait()
                # Let writes gather: one commit then carries many, and a prediction
                # that ends meanwhile is written once, in its final state.
                self._closed.wait(_GATHER)
                self._work.clear()
                # A failed write stays queued; the next read writes it and raises.
                with contextlib.suppress(sqlite3.Error), self._lock:
                    self._write_queued()
                if self._checkpoint_due and not self._closing:
                    self._checkpoint_due = False
                    self._checkpoint(db)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        """Copy the log into the database, on the thread's own connection."""
        # A failed checkpoint leaves the log as it is; the next one copies it.
        with contextlib.suppress(sqlite3.Error):
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # The next write starts the log over once a checkpoint has copied all of
            # it; under writes that never pause, one finishes with the writer held,
            # so the log stays bounded.
            if frames > _LOG_FRAMES_MAX:
                with self._lock:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        with self._checkpointed:
            self.checkpoints += 1
            self._checkpointed.notify_all()

    def wait_checkpoints(self, count: int, timeout: float) -> bool:
        """Wait until the store's thread has run ``count`` checkpoints (False on timeout)."""
        with self._checkpointed:
            return self._checkpointed.wait_for(lambda: self.checkpoints >= count, timeout)

    def _wrote(self, n: int = 1) -> None:
        """Count committed writes; every so many, have the store's thread checkpoint."""
        before, self._writes = self._writes, self._writes + n
        if before // _CHECKPOINT_EVERY != self._writes // _CHECKPOINT_EVERY:
            self._checkpoint_due = True
            self._work.set()

    def _write_queued(self) -> None:
        """Write every queued document in one transaction (``_lock`` held)."""
        with self._queue_lock:
            batch, self._queue = self._queue, {}
        if not batch:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for (kind, key), (seq, parent, text) in batch.items():
                self._upsert(kind, key, seq, parent, text)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            with self._queue_lock:  # back in the queue, under anything queued since
                for item, entry in batch.items():
                    newer = self._queue.get(item)
                    if newer is None:
                        self._queue[item] = entry
                    else:
                        newer[0] = entry[0]
                        newer[1] = newer[1] if newer[1] is not None else entry[1]
            raise
        self._wrote(len(batch))

    def _upsert(self, kind: str, key: str, seq: int, parent: str | None, text: str) -> None:
        self._db.execute(
            f"INSERT INTO {kind}(key, parent, seq, data) VALUES (?, ?, ?, ?)"
            f" ON CONFLICT(key) DO UPDATE SET data=excluded.data,"
            f" parent=COALESCE(excluded.parent, {kind}.parent)",
            (key, parent, seq, text),
        )

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the connection with every queued write in the database."""
        with self._lock:
            self._write_queued()
            yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes atomically (re-entrant with the store lock); writes
        inside are written at once, not queued."""
        with self._lock:
            self._write_queued()
            outer, self._tx_thread = self._tx_thread, threading.get_ident()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._shared.clear()  # a read inside may have cached what was rolled back
                raise
            finally:
                self._tx_thread = outer
            self._db.execute("COMMIT")

    def put(self, kind: str, key: str, data: dict[str, Any], parent: str | None = None) -> None:
        """Insert or replace a document; a replaced one keeps its position (and parent).

        Queued for the store's thread (see the module's docstring); inside
        :meth:`transaction`, written at once."""
        _check_kind(kind)
        text = json.dumps(data, separators=(",", ":"))
        direct = self._tx_thread == threading.get_ident()
        with self._queue_lock:
            self._seq += 1
            seq = self._seq
            self._generation[kind] += 1
            if not direct:
                queued = self._queue.get((kind, key))
                if queued is None:
                    self._queue[(kind, key)] = [seq, parent, text]
                else:  # written once, at the position of the first write
                    queued[1] = parent if parent is not None else queued[1]
                    queued[2] = text
        if direct:
            with self._lock:
                self._upsert(kind, key, seq, parent, text)
                self._wrote()
        elif not self._work.is_set():  # the store's thread wakes once per batch
            self._work.set()

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The document stored under ``key``, or None."""
        _check_kind(kind)
        # Taken out of the queue only with ``_lock`` held: a miss here is then
        # either never queued or already committed once ``_lock`` is ours.
        with self._queue_lock:
            queued = self._queue.get((kind, key))
        if queued is not None:
            found: dict[str, Any] = json.loads(queued[2])
            return found
        with self._lock:
            row = self._db.execute(f"SELECT data FROM {kind} WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def shared(self, kind: str, key: str, field: str = "key") -> dict[str, Any] | None:
        """Like :meth:`get` (or :meth:`find` by ``field``), decoded once and shared by
        every caller until a document of ``kind`` is written: for the look-ups every
        prediction makes (its version and model). The caller must not change it."""
        with self._lock:
            generation = self._generation[kind]
            kept = self._shared.get(kind)
            if kept is None or kept[0] != generation:
                kept = self._shared[kind] = (generation, {})
            cache = kept[1]
            doc = cache.get((field, key))
            if doc is None:
                doc = self.get(kind, key) if field == "key" else self.find(kind, field, key)
                # Misses are not kept (unknown ids are unbounded), nor what a write
                # queued meanwhile may have changed.
                if doc is not None and self._generation[kind] == generation:
                    if len(cache) >= _SHARED_MAX:
                        cache.clear()
                    cache[(field, key)] = doc
            return doc

    def delete(self, kind: str, key: str) -> bool:
        """Delete a document (at once); True if it existed."""
        _check_kind(kind)
        with self._reading():
            with self._queue_lock:
                self._generation[kind] += 1
            cur = self._db.execute(f"DELETE FROM {kind} WHERE key=?", (key,))
            self._wrote()
        return cur.rowcount > 0

    def page(
        self,
        kind: str,
        *,
        limit: int,
        after: int | None = None,
        parent: str | None = None,
        where: Sequence[Sequence[Condition]] = (),
        order: Order = "created",
        ascending: bool = False,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` documents in order (see :meth:`window`) and whether more follow."""
        docs, _, more = self.window(
            kind,
            limit=limit,
            after=after,
            parent=parent,
            where=where,
            order=order,
            ascending=ascending,
        )
        return docs, more

    def window(
        self,
        kind: str,
        *,
        limit: int,
        after: int | None = None,
        backward: bool = False,
        parent: str | None = None,
        where: Sequence[Sequence[Condition]] = (),
        order: Order = "created",
        ascending: bool = False,
    ) -> tuple[list[dict[str, Any]], list[int], bool]:
        """Up to ``limit`` documents newest-first (or oldest-first), each one's
        position, and whether more follow (precede, when ``backward``).

        ``order``: ``created`` (when the document was first stored) or ``latest_child``
        (when its newest child, e.g. a model's latest version, was stored; its own
        creation when it has none). A document's *position* is that value: one
        sequence numbers every document of every kind, so no two documents of a
        listing share one, and a listing can be read on from any position whatever
        was stored or deleted meanwhile.

        ``after``: a position; only documents past it in the listing's order are
        read, or, with ``backward``, the ``limit`` documents just before it (still
        returned in the listing's order).

        ``where``: groups of ``(field, op, value)`` conditions on top-level JSON fields
        (dotted paths; op ``=``, ``<``, ``>`` or ``in``); a group holds when any of its conditions
        does, and every group must hold.
        """
        _check_kind(kind)
        position = _ORDER[order].format(kind=kind)
        clauses, args = _filters(parent, where)
        # Read away from ``after``: towards the listing's end, or back to its start.
        descending = ascending == backward
        if after is not None:
            clauses.append(f"{position} {'<' if descending else '>'} ?")
            args.append(after)
        sql_where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading():
            rows = self._db.execute(
                f"SELECT {position}, data FROM {kind} {sql_where} "
                f"ORDER BY {position} {'DESC' if descending else 'ASC'} LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if backward:
            rows.reverse()
        return [json.loads(r[1]) for r in rows], [int(r[0]) for r in rows], more

    def first(self, kind: str, parent: str) -> dict[str, Any] | None:
        """The newest document under ``parent`` (e.g. a model's latest version)."""
        docs, _ = self.page(kind, limit=1, parent=parent)
        return docs[0] if docs else None

    def find(self, kind: str, field: str, value: str) -> dict[str, Any] | None:
        """The oldest document whose top-level JSON ``field`` equals ``value``."""
        _check_kind(kind)
        if not _FIELD_RE.match(field):
            raise ValueError(f"unsupported field {field!r}")
        with self._reading():
            row = self._db.execute(
                f"SELECT data FROM {kind} WHERE json_extract(data, '$.{field}') = ? "
                "ORDER BY seq ASC",
                (value,),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def count(
        self, kind: str, parent: str | None = None, where: Sequence[Sequence[Condition]] = ()
    ) -> int:
        """Number of documents (under ``parent``, meeting ``where`` as in :meth:`window`)."""
        _check_kind(kind)
        clauses, args = _filters(parent, where)
        sql_where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reading():
            row = self._db.execute(f"SELECT COUNT(*) FROM {kind} {sql_where}", args).fetchone()
        return int(row[0])

    def unfinished(self, kind: str) -> list[dict[str, Any]]:
        """Predictions or trainings that never reached a terminal status."""
        _check_kind(kind)
        with self._reading():
            rows = self._db.execute(
                f"SELECT data FROM {kind} WHERE json_extract(data, '$.status') NOT IN (?, ?, ?)",
                _TERMINAL,
            ).fetchall()
        return [json.loads(r[0]) for r in rows]


def _filters(
    parent: str | None, where: Sequence[Sequence[Condition]]
) -> tuple[list[str], list[Any]]:
    """SQL clauses and their arguments for ``parent`` and ``where`` (see :meth:`Store.window`)."""
    clauses: list[str] = []
    args: list[Any] = []
    if parent is not None:
        clauses.append("parent=?")
        args.append(parent)
    for group in where:
        ors = []
        for field, op, value in group:
            if op not in _OPS or not _FIELD_RE.match(field):
                raise ValueError(f"unsupported condition {field!r} {op!r}")
            if op == "in":
                values = list(value)
                if not values:
                    ors.append("0")
                    continue
                marks = ",".join("?" * len(values))
                ors.append(f"json_extract(data, '$.{field}') IN ({marks})")
                args.extend(values)
            else:
                ors.append(f"json_extract(data, '$.{field}') {op} ?")
                args.append(value)
        clauses.append("(" + " OR ".join(ors) + ")")
    return clauses, args


def _check_kind(kind: str) -> None:
    # Table names cannot be bound as parameters; only the fixed set is ever interpolated.
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}")
