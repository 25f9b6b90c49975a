"""One model server process (coglet, or the Python server of Cog <= 0.16) for one key.

:class:`Runner` starts its server in the build folder (seen at ``/src``, see below),
waits for ``/health-check`` to report ``READY`` and stops the whole process group;
:mod:`._runner` shares runners out to predictions.

* **Interpreter.** coglet starts its worker as plain ``python`` looked up on
  ``PATH`` (not ``sys.executable``); without the venv first on ``PATH`` the worker
  dies with ``No module named 'coglet'`` and ``/health-check`` stays ``STARTING``
  forever. The runner puts the folder of ``python`` first on ``PATH`` (or a small
  shim when that folder has no ``python``) and bounds start-up by ``setup_timeout``.
* **Processes.** Each server runs in its own session / process group together
  with its worker; :meth:`Runner.stop` sends SIGTERM to the group, then SIGKILL
  after a grace period. On Linux the child also gets ``PR_SET_PDEATHSIG(SIGKILL)``,
  so it dies if the thread that started it (the event loop's thread) dies;
  coglet's worker exits on its own when coglet dies. Where the system allows it, the
  group has a mount namespace whose ``/tmp`` is its own and where the build folder is
  ``/src``, its working folder, as in its container (:func:`cogfleet.runtime.container_view`).
* **Runtimes.** Each runner runs a :class:`Runtime`: the interpreter (an isolated
  environment's ``bin/python``, or cogfleet's own) and which server its Cog SDK
  ships. Everything above is coglet (SDK >= 0.17). SDKs 0.7 - 0.16 ship the Python
  server (FastAPI + a worker process), driven the way Replicate drives it:
  ``POST /predictions`` with ``Prefer: respond-async`` (202 at once; a sync request
  re-validates its response and fails with 500 for ``int = Input(default=None)``
  under pydantic 2), the final state from the ``completed`` webhook, and
  ``--upload-url`` pointing at the receiver, which keeps each uploaded file and
  answers with its own URL; those URLs are turned back into ``data:`` URIs in the
  output, as coglet gives them. That server validates input with pydantic from the
  predictor's signature (422 with pydantic's ``detail``), reads ``COG_*_TYPE_STUB``
  (SDK >= 0.13; older ones read ``predict:``/``train:`` of cog.yaml), and exits
  when ``setup()`` fails or the worker dies (its setup logs are in the log file).
  Before 0.9.10 it has no ``--host`` and listens on every address.
* **Environment.** The child environment has no credentials (see
  :mod:`cogfleet._credentials`) and no ``COG_*`` settings of the parent;
  ``environment:`` from cog.yaml is added after. A runtime's environment is
  isolated: ``PYTHONPATH``, ``PYTHONHOME`` and the user site are not inherited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp

from cogfleet._credentials import without_credentials
from cogfleet._errors import ConfigError
from cogfleet._yaml import load_yaml_file
from cogfleet.runtime import LIBC, container_view

Mode = Literal["predict", "train"]
OnUpdate = Callable[[dict[str, Any]], Awaitable[None] | None]
ServerKind = Literal["coglet", "legacy"]


@dataclass(frozen=True)
class Runtime:
    """What runs a version: an interpreter and the server its Cog SDK ships."""

    python: str = sys.executable
    server: ServerKind = "coglet"
    isolated: bool = False
    """True for an environment of its own (nothing of cogfleet's is inherited)."""
    host_flag: bool = True
    """The server takes ``--host`` (Cog < 0.9.10 has none and binds every address)."""

    @property
    def server_name(self) -> str:
        return "coglet" if self.server == "coglet" else "cog.server.http"


# Seconds between SIGTERM and SIGKILL when stopping a coglet process group.
STOP_GRACE = 5.0
# Health-check polling during start-up only: coglet has no readiness push.
POLL_FIRST = 0.02
POLL_MAX = 0.25
# Limit on one health-check request.
_HEALTH_TIMEOUT = aiohttp.ClientTimeout(total=5.0)
_PR_SET_PDEATHSIG = 1


class InvalidInput(Exception):
    """coglet rejected the input (HTTP 422). ``detail`` is coglet's ``detail`` list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        self.detail = detail
        parts = []
        for item in detail:
            loc = item.get("loc") or []
            name = str(loc[-1]) if loc else "input"
            parts.append(f"{name}: {item.get('msg', 'invalid')}")
        super().__init__("; ".join(parts) or "invalid input")


class SetupFailed(Exception):
    """The predictor's ``setup()`` failed or coglet exited before it was ready."""

    def __init__(self, message: str, logs: str) -> None:
        self.logs = logs
        super().__init__(message)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_preexec(
    parent_pid: int, scratch: str | None = None, src: str | None = None
) -> Callable[[], None]:
    """Make the child die with its parent (Linux ``PR_SET_PDEATHSIG``) and, given a
    scratch folder, let it see its container's file system
    (:func:`cogfleet.runtime.container_view`)."""

    def preexec() -> None:
        if LIBC is not None:
            LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; the signal would never come.
        if os.getppid() != parent_pid:
            os._exit(1)
        if scratch is not None:
            container_view(scratch, src)

    return preexec


@dataclass(frozen=True)
class CogConfig:
    predict_ref: str | None
    train_ref: str | None
    max_concurrency: int
    environment: dict[str, str]


def read_cog_yaml(build_dir: Path) -> CogConfig:
    path = build_dir / "cog.yaml"
    if not path.is_file():
        raise ConfigError(path, "missing cog.yaml in the build folder")
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "cog.yaml must be a mapping")
    predict_ref = data.get("run") or data.get("predict")
    train_ref = data.get("train")
    for name, value in (("run/predict", predict_ref), ("train", train_ref)):
        if value is not None and (not isinstance(value, str) or ".py:" not in value):
            raise ConfigError(path, f"{name}: expected 'file.py:Name', got {value!r}")
    concurrency = data.get("concurrency") or {}
    if not isinstance(concurrency, dict):
        raise ConfigError(path, "concurrency: must be a mapping")
    max_c = concurrency.get("max", 1)
    if not isinstance(max_c, int) or isinstance(max_c, bool) or max_c < 1:
        raise ConfigError(path, f"concurrency.max: must be an integer >= 1, got {max_c!r}")
    environment: dict[str, str] = {}
    for entry in data.get("environment") or []:
        if not isinstance(entry, str) or "=" not in entry:
            raise ConfigError(path, f"environment: expected 'NAME=value', got {entry!r}")
        name, _, value = entry.partition("=")
        environment[name] = value
    return CogConfig(predict_ref, train_ref, max_c, environment)


def tail_text(path: Path, limit: int = 20_000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


@dataclass(frozen=True)
class StartWith:
    """What a runner needs from its pool to start: the pool's HTTP client, the
    receiver's upload URL (the Python server's ``--upload-url``), the limit on
    reaching READY, and a scratch folder for interpreter shims."""

    client: aiohttp.ClientSession
    upload_url: str | None
    setup_timeout: float
    scratch: Callable[[], Path]


class Runner:
    """One model server process (coglet or the SDK's Python server) for one key."""

    def __init__(
        self,
        key: str,
        build_dir: Path,
        mode: Mode,
        config: CogConfig,
        log_path: Path,
        runtime: Runtime,
    ) -> None:
        self.key = key
        self.runtime = runtime
        self.build_dir = build_dir
        self.mode = mode
        self.config = config
        self.log_path = log_path
        self.slots = 1 if mode == "train" else config.max_concurrency
        self.in_flight = 0
        # run() calls holding this runner (waiting for start-up, a slot, or running).
        self.users = 0
        self.cond = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_used = time.monotonic()
        self.stopping = False
        self.start_task: asyncio.Task[None] | None = None
        # The process's temporary folder (TMPDIR), removed when it stops.
        self.tmp_dir: Path | None = None

    @property
    def route(self) -> str:
        return "trainings" if self.mode == "train" else "predictions"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def health(self, client: aiohttp.ClientSession) -> dict[str, Any]:
        """The server's ``/health-check`` answer; empty when there is none to read."""
        try:
            async with client.get(
                f"{self.base_url}/health-check", timeout=_HEALTH_TIMEOUT
            ) as resp:
                health = json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        return health if isinstance(health, dict) else {}

    async def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after ``STOP_GRACE`` seconds; then
        remove the process's temporary folder."""
        self.stopping = True
        proc = self.proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(TimeoutError):  # then it is killed below
                    await asyncio.wait_for(proc.wait(), STOP_GRACE)
            # Whatever is left in the group (the worker, or a hung leader) is killed outright.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        if self.tmp_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.tmp_dir, True)

    async def start(self, env: dict[str, str] | None, how: StartWith) -> None:
        """Start the server and wait until it is ready; the outcome settles :attr:`ready`."""
        try:
            await self._spawn_until_ready(env, how)
        except BaseException as exc:
            if self.proc is not None:
                await self.stop()
            if isinstance(exc, SetupFailed):
                self.ready.set_exception(exc)
            elif isinstance(exc, Exception):
                self.ready.set_exception(
                    SetupFailed(
                        f"could not start {self.runtime.server_name}: {exc}",
                        tail_text(self.log_path),
                    )
                )
            else:
                self.ready.set_exception(SetupFailed("start-up interrupted", ""))
                raise
        else:
            self.ready.set_result(None)
        finally:
            # Nobody may be awaiting the future any more (e.g. pool closing).
            if self.ready.done() and not self.ready.cancelled():
                self.ready.exception()

    async def _spawn_until_ready(self, env: dict[str, str] | None, how: StartWith) -> None:
        if self.tmp_dir is None:
            self.tmp_dir = Path(tempfile.mkdtemp(prefix="tmp-", dir=how.scratch()))
        for _attempt in range(3):
            self.port = free_port()
            args = [self.runtime.python, "-m", "cog.server.http"]
            if self.runtime.host_flag:
                args += ["--host", "127.0.0.1"]
            if self.mode == "train":
                args += ["--x-mode", "train"]
            if self.runtime.server == "legacy":
                assert how.upload_url is not None
                args += ["--upload-url", how.upload_url]
            with self.log_path.open("ab") as log_file:
                self.proc = await asyncio.create_subprocess_exec(
                    *args,
                    cwd=self.build_dir,
                    env=self._child_env(env, how),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                    preexec_fn=_child_preexec(
                        os.getpid(), str(self.tmp_dir), str(self.build_dir.resolve())
                    ),
                )
            if self.stopping:
                raise SetupFailed("the runner pool is closing", "")
            try:
                await self._wait_ready(how)
                return
            except _PortTaken:
                continue
        raise SetupFailed(
            f"{self.runtime.server_name} could not bind a free port", tail_text(self.log_path)
        )

    async def _wait_ready(self, how: StartWith) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + how.setup_timeout
        delay = POLL_FIRST
        while True:
            if self.proc.returncode is not None:
                logs = tail_text(self.log_path)
                if "Address already in use" in logs or f"Port {self.port} is already" in logs:
                    raise _PortTaken
                raise SetupFailed(
                    f"{self.runtime.server_name} exited with code {self.proc.returncode}", logs
                )
            health = await self.health(how.client)
            status = health.get("status")
            if status in ("READY", "BUSY"):
                return
            if status in ("SETUP_FAILED", "DEFUNCT", "UNHEALTHY"):
                setup = health.get("setup") or {}
                logs = setup.get("logs") or tail_text(self.log_path)
                raise SetupFailed(f"setup failed ({status})", logs)
            if time.monotonic() > deadline:
                raise SetupFailed(
                    f"{self.runtime.server_name} not ready after {how.setup_timeout:g}s",
                    tail_text(self.log_path),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def _child_env(self, env: dict[str, str] | None, how: StartWith) -> dict[str, str]:
        child = without_credentials(os.environ, drop_prefixes=("COG_",))
        if self.runtime.isolated:
            # Nothing of cogfleet's own environment may leak into the model's imports.
            for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
                child.pop(name, None)
            child["PYTHONNOUSERSITE"] = "1"
            child["VIRTUAL_ENV"] = str(Path(self.runtime.python).parent.parent)
        if self.tmp_dir is not None:
            # The model's temporary files (outputs it writes with tempfile, inputs coglet
            # downloads) go to this runner's folder, removed when it stops: in a container
            # they would go with the container; here they would pile up in /tmp.
            # cog.yaml's environment may still name another folder.
            for name in ("TMPDIR", "TEMP", "TMP"):
                child[name] = str(self.tmp_dir)
        child.update(self.config.environment)
        child.update(env or {})
        child["PORT"] = str(self.port)
        child["COG_MAX_CONCURRENCY"] = str(self.slots)
        child["PYTHONUNBUFFERED"] = "1"
        if self.mode == "train":
            child["COG_TRAIN_TYPE_STUB"] = str(self.config.train_ref)
            child.pop("COG_PREDICT_TYPE_STUB", None)
            if self.runtime.server == "legacy" and self.config.predict_ref:
                # The Python server loads the predictor's types even in train mode.
                child["COG_PREDICT_TYPE_STUB"] = self.config.predict_ref
        else:
            child["COG_PREDICT_TYPE_STUB"] = str(self.config.predict_ref)
            child.pop("COG_TRAIN_TYPE_STUB", None)
        python_dir = python_on_path(self.runtime.python, how.scratch)
        child["PATH"] = python_dir + os.pathsep + child.get("PATH", os.defpath)
        return child


def python_on_path(python: str, scratch: Callable[[], Path]) -> str:
    """A folder whose ``python`` is ``python`` (coglet runs ``python`` from PATH)."""
    folder = Path(python).parent
    candidate = folder / "python"
    if candidate.exists() and os.path.samefile(candidate, python):
        return str(folder)
    shim_dir = scratch() / "bin" / hashlib.sha256(python.encode()).hexdigest()[:12]
    shim = shim_dir / "python"
    if not shim.exists():
        shim_dir.mkdir(parents=True, exist_ok=True)
        # A script (not a symlink) keeps the interpreter's own path, so venvs still work.
        shim.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    return str(shim_dir)


class _PortTaken(Exception):
    """coglet lost the race for the port we picked; try another."""


def group_members(pgids: set[int]) -> set[int]:
    """Live (non-zombie) processes whose process group is one of ``pgids`` (Linux)."""
    found: set[int] = set()
    if not pgids or not os.path.isdir("/proc"):
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) in pgids:
            found.add(int(entry))
    return found


def logged_lines(path: Path, offset: int, prediction_id: str) -> str:
    """What prediction ``prediction_id`` printed, from coglet's JSON log lines after ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    lines = []
    for raw in data.splitlines():
        if prediction_id.encode() not in raw:
            continue
        try:
            fields = json.loads(raw).get("fields") or {}
        except (ValueError, AttributeError):
            continue
        if fields.get("prediction_id") == prediction_id and fields.get("source"):
            lines.append(f"{fields.get('message', '')}\n")
    return "".join(lines)
