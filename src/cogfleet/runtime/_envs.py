"""Isolated Python environments, one per (Python, requirements, Cog version).

An :class:`EnvStore` is a folder (``<local state>/envs`` by default;
``$COGFLEET_ENV_DIR`` moves it, e.g. to share one store between checkouts)::

    envs/<key>/              a relocatable virtualenv (bin/python, lib/...)
        cogfleet-env.json    what it was made from; present = complete
        requirements.txt     what was installed (the SDK first)
        freeze.txt           what got installed (uv pip freeze)
    envs/logs/<key>.log      the last build's output (kept after a failure)
    envs/.locks/<key>.lock   held while <key> is being built
    envs/.tmp/               half-built environments (removed on failure; a killed
                             build's by the next prune)

``key`` is a hash of the interpreter's version, the requirement lines (local files
by content), the Cog SDK version and, when they are run, the ``build.run``
commands, so every version and variant with the same set shares one environment.
A build happens under an exclusive file lock in a temporary folder that is renamed
into place at the end: two pushes that need the same environment at once build it
once, and a reader never sees half of one. uv installs from the indexes pip on this
machine is configured with (:mod:`cogfleet.runtime._pipconf`), linking files from
uv's cache, so environments cost little disk. A local package folder is installed
from a copy made for the build: whatever its build backend writes stays out of the
build folder (and the user's repo), and the folder's key stays what it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cogfleet._credentials import without_credentials
from cogfleet._errors import CogfleetError
from cogfleet.runtime._pipconf import pip_index_config
from cogfleet.runtime._python import Interpreter, find_python, uv_bin
from cogfleet.runtime._spec import BuildSpec
from cogfleet.runtime._versions import sdk_requirements, server_kind

ENV_DIR_VARIABLE = "COGFLEET_ENV_DIR"
MARKER = "cogfleet-env.json"
_KEY_VERSION = 1  # bump when the layout or the recipe changes
_BUILD_TIMEOUT = 3600.0
_SOURCES = ".sources"  # copies of local package folders, while they are installed


class EnvBuildError(CogfleetError):
    """An environment could not be built; the message names why and the log."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        super().__init__(f"{message} (log: {log_path})" if log_path else message)


def scrubbed_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without credentials (and without ``COG_*`` settings).

    Every process that builds an environment (uv, ``build.run`` commands) starts from
    this: a requirement's build backend or a run command is user code too.
    """
    env = without_credentials(os.environ, drop_prefixes=("COG_",))
    env.update(extra or {})
    return env


def cuda_available() -> bool:
    """Whether this host has an NVIDIA driver (so ``gpu: true`` gets CUDA)."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def build_notes(spec: BuildSpec, *, run_build_commands: bool) -> list[str]:
    """What of the cog.yaml the local environment does not reproduce (or reproduces only
    when asked: ``build.run``), one note each."""
    notes = []
    if spec.run_commands and not run_build_commands:
        shown = "; ".join(spec.run_commands)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        notes.append(
            f"skipped {len(spec.run_commands)} build.run command(s) (--run-build-commands "
            f"runs them): {shown}"
        )
    elif spec.run_commands:
        notes.append(
            f"ran {len(spec.run_commands)} build.run command(s) in the environment's folder "
            "(--run-build-commands)"
        )
    if spec.gpu:
        notes.append(
            "gpu: true runs with CUDA (this host has an NVIDIA driver)"
            if cuda_available()
            else "gpu: true runs on the CPU (no CUDA on this host)"
        )
    if spec.system_packages:
        notes.append(
            "build.system_packages are not installed locally: " + ", ".join(spec.system_packages)
        )
    return notes


@dataclass(frozen=True)
class Environment:
    """A ready environment."""

    key: str
    path: Path
    cog_version: str
    python_version: str
    built: bool
    """True when this call built it (False: it was already there)."""
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def server(self) -> str:
        """``coglet`` or ``legacy``: the prediction server its SDK ships."""
        return server_kind(self.cog_version)


@dataclass(frozen=True)
class EnvInfo:
    """An environment as listed by :meth:`EnvStore.environments`."""

    key: str
    path: Path
    meta: dict[str, object]
    size: int


class EnvStore:
    """The environments under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    @classmethod
    def for_state(cls, state_dir: Path) -> EnvStore:
        """The store of a local server's state (or ``$COGFLEET_ENV_DIR``)."""
        override = os.environ.get(ENV_DIR_VARIABLE)
        return cls(Path(override) if override else Path(state_dir) / "envs")

    # -- identity --------------------------------------------------------------------

    def key_for(self, spec: BuildSpec, cog_version: str, interpreter: Interpreter,
                *, run_build_commands: bool) -> str:  # fmt: skip
        """The content address of the environment ``spec`` needs."""
        recipe = {
            "v": _KEY_VERSION,
            "python": interpreter.version,
            "interpreter": interpreter.path,
            "cog": cog_version,
            "requirements": list(spec.identity),
            "run": list(spec.run_commands) if run_build_commands else [],
        }
        blob = json.dumps(recipe, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    def path(self, key: str) -> Path:
        return self.root / key

    def log_path(self, key: str) -> Path:
        return self.root / "logs" / f"{key}.log"

    def is_ready(self, key: str) -> bool:
        return (self.root / key / MARKER).is_file()

    # -- building --------------------------------------------------------------------

    def ensure(
        self,
        spec: BuildSpec,
        cog_version: str,
        *,
        python_fallback: str | None = None,
        run_build_commands: bool = False,
    ) -> Environment:
        """The environment for ``spec`` + Cog ``cog_version``, built if missing.

        Raises :class:`PythonNotFound` (python_version not here),
        :class:`EnvBuildError` (resolution, install or a run command failed) and
        ``ConfigError`` for an SDK cogfleet cannot serve.
        """
        start = time.monotonic()
        if server_kind(cog_version) == "unsupported":
            raise EnvBuildError(
                f"Cog {cog_version}'s prediction server has no health check, cancel or "
                "webhooks; isolated environments need Cog 0.7.0 or newer (or use --env current)"
            )
        interpreter, warning = find_python(spec.python, fallback=python_fallback)
        notes = build_notes(spec, run_build_commands=run_build_commands)
        if warning:
            notes.insert(0, warning)
        key = self.key_for(spec, cog_version, interpreter, run_build_commands=run_build_commands)
        built = False
        if not self.is_ready(key):
            with self._lock(key):
                if not self.is_ready(key):  # built by someone else while we waited
                    self._build(key, spec, cog_version, interpreter, run_build_commands)
                    built = True
        return Environment(
            key=key, path=self.path(key), cog_version=cog_version,
            python_version=interpreter.version, built=built,
            seconds=time.monotonic() - start, notes=tuple(notes),
        )  # fmt: skip

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield

    def _build(
        self, key: str, spec: BuildSpec, cog_version: str, interpreter: Interpreter,
        run_build_commands: bool,
    ) -> None:  # fmt: skip
        tmp_root = self.root / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_root / f"{key}-{os.getpid()}-{secrets.token_hex(4)}"
        log_path = self.log_path(key)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        index = pip_index_config()
        started = time.monotonic()
        try:
            with log_path.open("w", encoding="utf-8") as log:
                log.write(
                    f"# cogfleet environment {key}: Python {interpreter.version} "
                    f"({interpreter.path}), Cog {cog_version}\n# {index.describe()}\n"
                )
                log.flush()
                env = scrubbed_environ(
                    {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", **index.uv_env()}
                )
                env.pop("VIRTUAL_ENV", None)
                self._run(
                    [uv_bin(), "venv", "--relocatable", "--no-python-downloads", "--quiet",
                     "--python", interpreter.path, str(tmp)],
                    log, env, log_path, "creating the virtualenv failed",
                )  # fmt: skip
                requirements = [*sdk_requirements(cog_version), *spec.requirements]
                (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
                sources = tmp / _SOURCES
                install = sources / "requirements.txt"
                sources.mkdir()
                install.write_text("\n".join(_from_copies(requirements, sources)) + "\n")
                args = [uv_bin(), "pip", "install", "--color", "never",
                        "--python", str(tmp / "bin" / "python"),
                        "--compile-bytecode", "-r", str(install),
                        *index.uv_args()]  # fmt: skip
                if spec.constraints:
                    (tmp / "constraints.txt").write_text("\n".join(spec.constraints) + "\n")
                    constraints = sources / "constraints.txt"
                    constraints.write_text(
                        "\n".join(_from_copies(list(spec.constraints), sources)) + "\n"
                    )
                    args += ["--constraint", str(constraints)]
                try:
                    output = self._run(args, log, env, log_path, None)
                finally:
                    shutil.rmtree(sources, ignore_errors=True)
                if output is not None:
                    raise EnvBuildError(_install_failure(output, spec), log_path)
                if run_build_commands:
                    self._run_commands(tmp, spec, log, env, log_path)
                freeze = subprocess.run(
                    [uv_bin(), "pip", "freeze", "--python", str(tmp / "bin" / "python")],
                    capture_output=True, text=True, env=env, check=False, timeout=300,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                (tmp / "freeze.txt").write_text(freeze.stdout)
                meta = {
                    "key": key,
                    "python": interpreter.version,
                    "interpreter": interpreter.path,
                    "cog_version": cog_version,
                    "requirements": list(spec.identity),
                    "run_commands": list(spec.run_commands) if run_build_commands else [],
                    "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "build_seconds": round(time.monotonic() - started, 3),
                    "index": index.describe(),
                }
                (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
                log.write(f"# built in {meta['build_seconds']} s\n")
            os.rename(tmp, self.path(key))
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _run(
        args: list[str], log: TextIO, env: dict[str, str], log_path: Path, failure: str | None,
        cwd: Path | None = None,
    ) -> str | None:  # fmt: skip
        """Run ``args`` with output into the log; on failure raise (``failure`` given)
        or return the output."""
        log.write("$ " + " ".join(args) + "\n")
        log.flush()
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, env=env, cwd=cwd, check=False,
                timeout=_BUILD_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            what = f"{args[1]} timed out after {_BUILD_TIMEOUT:g} s"
            raise EnvBuildError(what, log_path) from None
        except OSError as exc:
            raise EnvBuildError(f"cannot run {args[0]}: {exc.strerror}", log_path) from None
        output = proc.stdout + proc.stderr
        log.write(output)
        log.flush()
        if proc.returncode == 0:
            return None
        if failure is None:
            return output
        last = " ".join(output.strip().splitlines()[-2:])
        raise EnvBuildError(f"{failure}: {last}", log_path)

    def _run_commands(
        self, tmp: Path, spec: BuildSpec, log: TextIO, env: dict[str, str], log_path: Path
    ) -> None:
        run_env = {
            **env,
            "VIRTUAL_ENV": str(tmp),
            "PATH": f"{tmp / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}",
        }
        for index, command in enumerate(spec.run_commands):
            output = self._run(["/bin/sh", "-c", command], log, run_env, log_path, None, cwd=tmp)
            if output is not None:
                raise EnvBuildError(
                    f"build.run[{index}] failed: {command!r}: "
                    + " ".join(output.strip().splitlines()[-1:]),
                    log_path,
                )

    # -- listing and pruning -----------------------------------------------------------

    def environments(self) -> list[EnvInfo]:
        """Every complete environment, oldest first."""
        found: list[EnvInfo] = []
        if not self.root.is_dir():
            return found
        for child in sorted(self.root.iterdir()):
            marker = child / MARKER
            if child.name.startswith(".") or not marker.is_file():
                continue
            try:
                meta = json.loads(marker.read_text())
            except (OSError, ValueError):
                meta = {}
            found.append(EnvInfo(child.name, child, meta, disk_usage(child)))
        return sorted(found, key=lambda e: str(e.meta.get("created_at", "")))

    def prune(self, keep: set[str]) -> list[EnvInfo]:
        """Remove every environment whose key is not in ``keep``; return what went.

        Leftovers of builds that died (a killed process cannot clean up) go too.
        """
        self._remove_leftovers()
        removed = []
        for info in self.environments():
            if info.key in keep:
                continue
            with self._lock(info.key):
                trash = self.root / ".tmp" / f"{info.key}-pruned-{secrets.token_hex(4)}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(info.path, trash)  # gone for readers at once, then deleted
            shutil.rmtree(trash, ignore_errors=True)
            self.log_path(info.key).unlink(missing_ok=True)
            removed.append(info)
        return removed

    def _remove_leftovers(self) -> None:
        """Half-built environments nobody is building any more, and pruned ones not yet
        deleted. A build holds its key's lock throughout, so a temporary folder whose
        lock can be taken is a dead build's."""
        tmp_root = self.root / ".tmp"
        if not tmp_root.is_dir():
            return
        for child in tmp_root.iterdir():
            if "-pruned-" in child.name:
                shutil.rmtree(child, ignore_errors=True)
                continue
            locks = self.root / ".locks"
            locks.mkdir(parents=True, exist_ok=True)
            key = child.name.split("-", 1)[0]
            with open(locks / f"{key}.lock", "a+b") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being built right now
                shutil.rmtree(child, ignore_errors=True)


def _from_copies(requirements: list[str], sources: Path) -> list[str]:
    """``requirements`` with each local folder replaced by a copy under ``sources``.

    A build backend writes into the folder it builds (setuptools leaves ``build/`` and
    ``*.egg-info`` there): building from a copy keeps the build folder, and so the
    environment's key (which hashes the folder's content), as it was.
    """
    lines = []
    for index, line in enumerate(requirements):
        if os.path.isabs(line) and os.path.isdir(line):
            copy = sources / f"{index}-{os.path.basename(line)}"
            shutil.copytree(line, copy, ignore=shutil.ignore_patterns("__pycache__"),
                            ignore_dangling_symlinks=True)  # fmt: skip
            line = str(copy)
        lines.append(line)
    return lines


def disk_usage(path: Path) -> int:
    """Bytes of files under ``path`` that are not shared with uv's cache (hard links)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_nlink == 1:
                total += st.st_blocks * 512
    return total


def _uv_error(output: str) -> tuple[str, str]:
    """(headline, reason) of uv's error report, each on one line."""
    lines = [line.strip() for line in output.splitlines()]
    for index, line in enumerate(lines):
        if line.startswith(("error:", "×")):
            headline = line.removeprefix("error:").removeprefix("×").strip().rstrip(":")
            parts = []
            for follow in lines[index + 1 :]:
                if not follow or follow.startswith(("hint:", "help:")):
                    break
                parts.append(follow.removeprefix("cause:").removeprefix("╰─▶").strip())
            return headline, " ".join(p for p in parts if p)
    tail = " ".join(lines[-2:]).strip()
    return tail or "uv pip install failed", ""


def _install_failure(output: str, spec: BuildSpec) -> str:
    """``requirement 'x' does not resolve: <resolver's reason>`` from uv's output."""
    headline, reason = _uv_error(output)
    named = _named_requirement(f"{headline} {reason}", spec)
    detail = reason or headline
    if "no solution found" in headline.lower():
        what = f"requirement {named!r} does not resolve" if named else "requirements do not resolve"
    else:
        what = f"installing {named!r} failed" if named else "installing the requirements failed"
        if reason:
            detail = f"{headline}: {reason}"
    return f"{spec.cog_yaml.name}: {what}: {detail}"


def _named_requirement(reason: str, spec: BuildSpec) -> str | None:
    """The first user requirement the resolver's reason mentions."""
    best: tuple[int, str] | None = None
    lowered = reason.lower()
    for name, line in spec.requirement_names.items():
        for variant in {name, name.replace("-", "_")}:
            match = re.search(rf"(?<![\w.-]){re.escape(variant)}(?![\w-])", lowered)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), line)
    return best[1] if best else None
