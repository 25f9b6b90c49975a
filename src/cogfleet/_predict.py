"""Running predictions and trainings on a target, with bounded concurrency.

Every call waits through the API (``Prefer: wait``) instead of polling at a fixed
interval; only a prediction that outlives the wait window is followed up with GETs
(backing off). A timeout cancels the prediction on the server, and
:meth:`Predictions.cancel_all` cancels everything in flight (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import mimetypes
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError

from cogfleet._checks import OutputFile, decode_data_uri, encode_data_uri
from cogfleet._config import inside_repo
from cogfleet._errors import ConfigError, NetworkError, RemoteError
from cogfleet._http import ResilientTransport

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
MAX_WAIT = 60  # Replicate accepts Prefer: wait=1..60
CLOCK_SKEW = timedelta(seconds=5)  # between this machine and the API's created_at
EMBED_LIMIT = 50_000_000  # larger output files keep their URL in reports


@dataclass
class Outcome:
    """The end state of one prediction or training."""

    id: str | None
    status: str
    output: Any
    error: str | None
    logs: str
    prediction: dict[str, Any]
    duration_s: float
    timed_out: bool = False
    started: float = 0.0  # time.monotonic() when it was created

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def url(self) -> str | None:
        """Where a person sees this prediction on the target (its web page, else its API URL)."""
        urls = self.prediction.get("urls") or {}
        found = urls.get("web") or urls.get("get")
        return str(found) if found else None


def _as_dict(resource: Any) -> dict[str, Any]:
    for attr in ("model_dump", "dict"):
        fn = getattr(resource, attr, None)
        if fn is not None:
            data = fn()
            return {k: v for k, v in data.items() if not k.startswith("_")}
    return dict(vars(resource))


_DNS_FAILURE = re.compile(
    r"name or service not known|nodename nor servname|temporary failure in name resolution|"
    r"no address associated|getaddrinfo failed|name resolution",
    re.IGNORECASE,
)
FETCH_TIMEOUT = 60.0


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def network_reason(exc: httpx.HTTPError, timeout: float = FETCH_TIMEOUT) -> str:
    """Why a fetch failed, in a few words: DNS, connect, timeout or the HTTP status."""
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if isinstance(exc, httpx.TimeoutException):
        what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for data"
        return f"timed out after {timeout:g}s {what}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        dns = any(isinstance(c, socket.gaierror) for c in _causes(exc))
        if dns or _DNS_FAILURE.search(text):
            return f"DNS lookup failed ({text})"
        return f"connection failed ({text})"
    return f"{type(exc).__name__}: {text}"


def is_local_url(url: str) -> bool:
    """True for URLs on this machine (loopback), which ``--offline`` still fetches."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_remote_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


@dataclass
class FileCache:
    """Reads URLs, data URIs and repo-relative paths once each (thread-safe).

    Two threads asking for the same reference at once share one read: the second
    waits for the first instead of fetching again.
    """

    repo_root: Path | None
    headers: dict[str, str] = field(default_factory=dict)
    offline: bool = False  # URLs off this machine fail at once (NetworkError)
    timeout: float = FETCH_TIMEOUT
    _cache: dict[str, OutputFile] = field(default_factory=dict)
    _probed: dict[str, NetworkError | None] = field(default_factory=dict)
    _pending: dict[str, Future[OutputFile]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fetches: int = 0

    def __call__(self, ref: str) -> OutputFile:
        with self._lock:
            hit = self._cache.get(ref)
            if hit is not None:
                return hit
            pending = self._pending.get(ref)
            if pending is None:
                pending = self._pending[ref] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result()
        try:
            result = self._read(ref)
        except BaseException as exc:
            with self._lock:
                del self._pending[ref]  # a failed read may be tried again
            pending.set_exception(exc)
            raise
        with self._lock:
            self._cache[ref] = result
            del self._pending[ref]
            self.fetches += 1
        pending.set_result(result)
        return result

    def embed(self, output: Any, *, max_bytes: int = EMBED_LIMIT) -> Any:
        """``output`` with every file URL replaced by a ``data:`` URI of its bytes.

        For reports that must show outputs after the target is gone. Files already
        read (by a checker) are not fetched again; a file that cannot be fetched or is
        larger than ``max_bytes`` keeps its URL.
        """
        if isinstance(output, str):
            if not output.startswith(("http://", "https://")):
                return output
            try:
                found = self(output)
            except (NetworkError, httpx.HTTPError, ValueError, OSError):
                return output
            if len(found.data) > max_bytes:
                return output
            return encode_data_uri(found)
        if isinstance(output, list):
            return [self.embed(item, max_bytes=max_bytes) for item in output]
        if isinstance(output, dict):
            return {k: self.embed(v, max_bytes=max_bytes) for k, v in output.items()}
        return output

    def _refuse_offline(self, url: str) -> None:
        if self.offline and not is_local_url(url):
            raise NetworkError(url, "not fetched: --offline")

    def probe(self, url: str) -> None:
        """Check that ``url`` answers (status only, no body read), once per URL."""
        with self._lock:
            if url in self._cache:
                return
            if url in self._probed:
                known = self._probed[url]
                if known is not None:
                    raise known
                return
        error: NetworkError | None = None
        try:
            self._refuse_offline(url)
            with httpx.stream(
                "GET", url, headers=self.headers, follow_redirects=True, timeout=self.timeout
            ) as response:
                response.raise_for_status()
        except NetworkError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = NetworkError(url, network_reason(exc, self.timeout))
        with self._lock:
            self._probed[url] = error
        if error is not None:
            raise error

    def _read(self, ref: str) -> OutputFile:
        if ref.startswith("data:"):
            return decode_data_uri(ref)
        if ref.startswith(("http://", "https://")):
            self._refuse_offline(ref)
            try:
                # through the retrying transport: a 5xx or 429 on a download is not a verdict
                with httpx.Client(transport=ResilientTransport(), follow_redirects=True,
                                  timeout=self.timeout) as http:
                    response = http.get(ref, headers=self.headers)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise NetworkError(ref, network_reason(exc, self.timeout)) from None
            name = Path(httpx.URL(ref).path).name or "output"
            ctype = response.headers.get("content-type", "").split(";")[0] or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            return OutputFile(name=name, data=response.content, content_type=ctype)
        if self.repo_root is None:
            raise ValueError(f"cannot resolve file reference {ref!r}")
        path = inside_repo(self.repo_root, ref)
        if path is None:
            raise ValueError(f"file {ref!r} is outside the repo")
        if not path.is_file():
            raise ValueError(f"file {ref!r} not found in the repo")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return OutputFile(name=path.name, data=path.read_bytes(), content_type=ctype)


def input_urls(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """``(input name, URL)`` of every http(s) URL among ``inputs`` (lists included)."""
    found: list[tuple[str, str]] = []
    for name, value in inputs.items():
        values = value if isinstance(value, list) else [value]
        found.extend((name, v) for v in values if is_remote_url(v))
    return found


class Predictions:
    """Predictions on one target, at most ``parallel`` at once."""

    def __init__(
        self,
        client: Client,
        *,
        parallel: int,
        repo_root: Path | None,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.semaphore = asyncio.Semaphore(parallel)
        self.repo_root = repo_root
        self.inflight: dict[str, Literal["prediction", "training"]] = {}
        self._uploads: dict[Path, asyncio.Task[str]] = {}
        self.on_request = on_request
        # for the interrupt sweep: a create call waiting on the API has no id yet
        self.started_at = datetime.now(UTC) - CLOCK_SKEW
        self.versions: set[str] = set()

    # -- inputs ------------------------------------------------------------------------

    async def prepare_inputs(self, inputs: dict[str, Any], file_inputs: set[str]) -> dict[str, Any]:
        """Replace repo-relative file paths of file inputs by uploaded file URLs (once each)."""
        prepared = dict(inputs)
        for name in file_inputs & set(inputs):
            value = inputs[name]
            if not isinstance(value, str) or value.startswith(("data:", "http://", "https://")):
                continue
            if self.repo_root is None:
                continue
            path = inside_repo(self.repo_root, value)
            if path is None:  # never read, let alone uploaded
                raise ConfigError(None, f"input {name!r}: file {value!r} is outside the repo")
            if not path.is_file():
                raise ConfigError(None, f"input {name!r}: file {value!r} not found in the repo")
            task = self._uploads.get(path)
            if task is None:
                task = asyncio.ensure_future(self._upload(path))
                self._uploads[path] = task
            prepared[name] = await task
        return prepared

    async def _upload(self, path: Path) -> str:
        uploaded = await self.client.files.async_create(path)
        url = uploaded.urls.get("get")
        if not url:
            raise RemoteError(f"file upload of {path.name} returned no URL")
        return str(url)

    # -- running -----------------------------------------------------------------------

    async def predict(self, version: str, inputs: dict[str, Any], *, timeout: float) -> Outcome:
        """Run one prediction on ``version`` (a version id) and wait for its end."""

        self.versions.add(version)

        async def create(wait: int) -> Any:
            return await self.client.predictions.async_create(
                version=version, input=inputs, wait=wait
            )

        return await self._run(create, self.client.predictions, "prediction", timeout)

    async def train(
        self, model: str, version: str, destination: str, inputs: dict[str, Any], *, timeout: float
    ) -> Outcome:
        """Train ``model:version`` into ``destination`` and wait for its end."""

        self.versions.add(version)

        async def create(wait: int) -> Any:
            del wait  # trainings have no synchronous mode
            return await self.client.trainings.async_create(
                model=model, version=version, destination=destination, input=inputs
            )

        return await self._run(create, self.client.trainings, "training", timeout)

    async def _run(
        self,
        create: Callable[[int], Awaitable[Any]],
        namespace: Any,
        kind: Literal["prediction", "training"],
        timeout: float,
    ) -> Outcome:
        async with self.semaphore:
            start = time.monotonic()
            deadline = start + timeout
            pid: str | None = None
            try:
                wait = max(1, min(MAX_WAIT, int(timeout)))
                resource = await create(wait)
                pid = resource.id
                self.inflight[pid] = kind
                delay = 0.1
                while resource.status not in TERMINAL:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        await self._cancel(pid, kind)
                        data = _as_dict(await namespace.async_get(pid))
                        return Outcome(
                            id=pid, status="canceled", output=data.get("output"),
                            error=f"timed out after {timeout:g}s (canceled on the server)",
                            logs=data.get("logs") or "", prediction=data,
                            duration_s=time.monotonic() - start, timed_out=True, started=start,
                        )
                    await asyncio.sleep(min(delay, remaining))
                    delay = min(delay * 1.6, 5.0)
                    resource = await namespace.async_get(pid)
                data = _as_dict(resource)
                return Outcome(
                    id=pid, status=resource.status, output=data.get("output"),
                    error=data.get("error"), logs=data.get("logs") or "", prediction=data,
                    duration_s=time.monotonic() - start, started=start,
                )
            except asyncio.CancelledError:
                if pid is not None:
                    await asyncio.shield(self._cancel(pid, kind))
                raise
            except ReplicateError as exc:
                if exc.status == 422:
                    return Outcome(
                        id=pid, status="failed", output=None,
                        error=f"invalid input: {exc.detail or exc}", logs="", prediction={},
                        duration_s=time.monotonic() - start, started=start,
                    )
                raise RemoteError(
                    f"{kind} failed: {exc.status} {exc.detail or exc}", status=exc.status
                ) from None
            except httpx.HTTPError as exc:
                raise RemoteError(f"{kind} failed: {type(exc).__name__}: {exc}") from None
            finally:
                if pid is not None:
                    self.inflight.pop(pid, None)

    async def _cancel(self, pid: str, kind: Literal["prediction", "training"]) -> None:
        namespace = self.client.predictions if kind == "prediction" else self.client.trainings
        # failing means it already finished, or the server is gone: nothing left to stop
        with contextlib.suppress(ReplicateError, httpx.HTTPError):
            await namespace.async_cancel(pid)

    def cancel_all_sync(self) -> list[str]:
        """Cancel everything this run started that is still running (blocking calls).

        Besides the predictions whose ids are known, a create call that was still
        waiting (``Prefer: wait``) when interrupted left a prediction whose id never
        came back; those are found by listing the newest predictions and trainings
        on this run's versions created since it started.
        """
        targets = dict(self.inflight)
        for kind, namespace in (
            ("prediction", self.client.predictions), ("training", self.client.trainings)
        ):
            # the sweep is best effort; known ids are still cancelled below
            with contextlib.suppress(ReplicateError, httpx.HTTPError):
                for item in _recent(namespace, self.started_at):
                    if item.status not in TERMINAL and item.version in self.versions:
                        targets.setdefault(item.id, kind)  # type: ignore[arg-type]
        cancelled = []
        for pid, kind in targets.items():
            namespace = self.client.predictions if kind == "prediction" else self.client.trainings
            with contextlib.suppress(ReplicateError, httpx.HTTPError):  # finished meanwhile
                namespace.cancel(pid)
                cancelled.append(pid)
        self.inflight.clear()
        return cancelled


def _recent(namespace: Any, since: datetime) -> Iterator[Any]:
    """Items of a newest-first listing created at or after ``since``."""
    page = namespace.list()
    while True:
        for item in page.results:
            created = datetime.fromisoformat(str(item.created_at).replace("Z", "+00:00"))
            if created < since:
                return
            yield item
        if not page.next:
            return
        page = namespace.list(cursor=page.next)
