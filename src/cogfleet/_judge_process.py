"""The AI judge's Anthropic client in a process of its own, for the length of a command.

Importing ``anthropic`` costs 1.5-2 s of CPU (hundreds of typed models). Inside the
push's process that import held the interpreter lock while the push loaded its
plugins, rendered, linted, pushed and sent its first predictions, and the fuzz
proposal waited for it. ``push``, ``test`` and ``safe-push`` therefore start this
worker first thing when a key is set (:func:`judge_process`): the import runs on
another core while the push starts, and the judge's requests are sent from there.
The push's own process never imports the client.

Protocol, one JSON object per line each way: the command writes
``{"id": n, "client": {...}, "request": {...}}`` (the client's settings, with the
key, and one Messages API request); the worker answers ``{"id": n, "text": ...}`` or
``{"id": n, "error": ...}`` (the one-line message of a
:class:`~cogfleet._errors.RemoteError`), in whatever order the requests finish, or
``{"fatal": ...}`` once if it cannot load the client. Requests run concurrently. The
worker ignores Ctrl-C (the command handles it) and ends when its stdin closes: when
the command closes it, or when the command's process is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from cogfleet._errors import RemoteError

#: Requests the worker sends at once (a push judges ``parallel`` cases at a time).
MAX_CONCURRENT = 16
#: Seconds a request may take beyond the client's own timeouts and retries.
ANSWER_MARGIN = 60.0

_running: JudgeProcess | None = None


class JudgeProcess:
    """A worker process that sends Messages API requests; see the module docstring."""

    def __init__(self) -> None:
        # -P: the working directory (a user's repo) is not put first on the worker's path
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._lock = threading.Lock()  # the pending answers
        self._write_lock = threading.Lock()  # the worker's stdin
        self._ids = itertools.count()
        self._pending: dict[int, Future[str]] = {}
        self._ended: str | None = None
        self._reader = threading.Thread(
            target=self._read, name="cogfleet-judge-answers", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def messages(self, client: Mapping[str, Any]) -> RemoteMessages:
        """A :class:`~cogfleet._judge.Messages` that sends through this process."""
        return RemoteMessages(self, dict(client))

    def call(self, client: dict[str, Any], request: dict[str, Any]) -> str:
        """Send one request and wait for its answer's text (RemoteError if it failed)."""
        number = next(self._ids)
        line = json.dumps({"id": number, "client": client, "request": request}).encode()
        future: Future[str] = Future()
        stdin = self._proc.stdin
        assert stdin is not None
        with self._lock:
            if self._ended is not None:
                raise RemoteError(self._ended)
            self._pending[number] = future
        # A request with images can be megabytes: answers are read meanwhile.
        with self._write_lock:
            try:
                stdin.write(line + b"\n")
                stdin.flush()
            except (OSError, ValueError):  # the worker ended, or close() closed stdin
                with self._lock:
                    self._pending.pop(number, None)
                    ended = self._ended
                raise RemoteError(ended or "AI judge: the judge process has ended") from None
        # The client times out and retries on its own; this bounds a worker that hangs.
        limit = float(client.get("timeout") or 600) * (int(client.get("max_retries") or 0) + 1)
        try:
            return future.result(timeout=limit + ANSWER_MARGIN)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(number, None)
            raise RemoteError(
                f"AI judge: no answer from the judge process in {limit + ANSWER_MARGIN:.0f} s"
            ) from None

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        ended = None
        for line in stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # not an answer (the worker keeps its stdout for answers only)
            if not isinstance(answer, dict):
                continue
            if "fatal" in answer:
                ended = str(answer["fatal"])
                break
            with self._lock:
                future = self._pending.pop(answer.get("id", -1), None)
            if future is None or future.done():
                continue
            if "error" in answer:
                future.set_exception(RemoteError(str(answer["error"])))
            else:
                future.set_result(str(answer.get("text", "")))
        code = self._proc.wait()
        with self._lock:
            self._ended = ended or f"AI judge: the judge process ended (exit code {code})"
            pending = list(self._pending.values())
            self._pending.clear()
        for future in pending:
            future.set_exception(RemoteError(self._ended))

    def close(self) -> None:
        """End the worker and wait for it.

        Whatever it was doing is moot once its command ends; a worker still importing
        the client (a command that failed early) would otherwise hold the exit for the
        rest of that import.
        """
        stdin = self._proc.stdin
        assert stdin is not None
        with self._write_lock, contextlib.suppress(OSError):
            stdin.close()
        with contextlib.suppress(OSError):
            self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=10)


class RemoteMessages:
    """:class:`~cogfleet._judge.Messages` through a :class:`JudgeProcess`."""

    def __init__(self, process: JudgeProcess, client: dict[str, Any]) -> None:
        self._process = process
        self._client = client

    def create(
        self, *, model: str, max_tokens: int, content: str | list[dict[str, Any]],
        system: str | None,
    ) -> str:
        request = {"model": model, "max_tokens": max_tokens, "content": content,
                   "system": system}
        return self._process.call(self._client, request)

    def close(self) -> None:
        """Nothing to close here: the process outlives the judges that use it."""


def running() -> JudgeProcess | None:
    """The judge process of the running command, if it started one."""
    return _running


@contextlib.contextmanager
def judge_process(environ: Mapping[str, str] | None = None) -> Iterator[JudgeProcess | None]:
    """Run a judge process for the block when ``ANTHROPIC_API_KEY`` is set.

    Without a key no judge of :mod:`cogfleet._judge` will be made and nothing starts.
    The built-in AI plugin's judges use it (:func:`running`) while the block runs.
    """
    global _running
    env = os.environ if environ is None else environ
    # a frozen program (sys.executable is the program itself) cannot run ``-m``
    if (_running is not None or not env.get("ANTHROPIC_API_KEY", "").strip()
            or getattr(sys, "frozen", False)):
        yield _running
        return
    try:
        process = JudgeProcess()
    except OSError:  # no worker: a judge made meanwhile imports the client here
        yield None
        return
    _running = process
    try:
        yield process
    finally:
        _running = None
        process.close()


# --- the worker --------------------------------------------------------------------------


def _serve() -> None:
    # Ctrl-C reaches the whole process group; the command decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers get a descriptor of their own; whatever else writes to stdout (a library's
    # print) goes to stderr, so it cannot break a line of the protocol.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    out_lock = threading.Lock()

    def send(answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode() + b"\n"
        with out_lock, contextlib.suppress(OSError):  # the command is gone: nobody reads
            out.write(data)
            out.flush()

    try:
        from cogfleet._extras import skip_unused_extras
        from cogfleet._judge import AnthropicMessages

        skip_unused_extras()
        import anthropic  # noqa: F401 - loaded before the first request arrives
    except Exception as exc:  # reported to the command, which fails its judged checks
        send({"fatal": f"AI judge: cannot load the anthropic client: {exc}"})
        return

    clients: dict[str, AnthropicMessages] = {}
    clients_lock = threading.Lock()

    def handle(message: dict[str, Any]) -> None:
        number = message["id"]
        try:
            settings = message["client"]
            key = json.dumps(settings, sort_keys=True)
            with clients_lock:
                client = clients.get(key)
                if client is None:
                    client = clients[key] = AnthropicMessages(**settings)
            send({"id": number, "text": client.create(**message["request"])})
        except RemoteError as exc:
            send({"id": number, "error": str(exc)})
        except Exception as exc:  # any other failure still answers its request
            send({"id": number, "error": f"AI judge: {type(exc).__name__}: {exc}"})

    pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT, thread_name_prefix="judge")
    for line in sys.stdin.buffer:
        pool.submit(handle, json.loads(line))
    # stdin closed: the command ended or is gone; requests still running are moot
    os._exit(0)


if __name__ == "__main__":
    _serve()
