"""Running the local server: in-process (:class:`LocalServer`) or as ``cogfleet serve``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import re
import socket
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cogfleet._errors import ExitCode, UsageError

if TYPE_CHECKING:
    from cogfleet.server._app import LocalApi
    from cogfleet.server._core import ServerConfig
    from cogfleet.server._threaded import ThreadedServer

# The server stack (uvicorn, starlette, the app) is imported where it is used: every
# cogfleet command builds the CLI parser, which imports this module for `serve`'s flags.

DEFAULT_STATE_DIR = Path(".cogfleet") / "local"
DEFAULT_PORT = 8765
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class LocalServer:
    """The local Replicate-compatible server on a free 127.0.0.1 port, in a background thread.

    ``with LocalServer(state_dir=path) as srv:`` then use ``srv.base_url`` and
    ``srv.token`` with ``replicate.Client(api_token=srv.token, base_url=srv.base_url)``.
    Leaving the block stops the server and every coglet process it started.
    Without a ``token`` any non-empty token is accepted and ``srv.token`` is ``"local"``;
    a ``token`` alone is required but may write under any owner. With ``owners``
    the token (``"cogfleet-local"`` unless given) acts as the first owner and may
    write under all of them, and only under them. ``tokens``: more tokens, each
    mapped to ``"ACCOUNT[,ORG...]"`` (``cogfleet serve --token``'s syntax).
    ``official``: ``owner/name`` of the models that answer ``owner/name``
    predictions; ``collections``: ``{slug, name, description, models}`` items.
    """

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        token: str | None = None,
        *,
        owners: Iterable[str] | None = None,
        tokens: dict[str, str] | None = None,
        official: Iterable[str] = (),
        collections: list[dict[str, Any]] | None = None,
        latency: float = 0.0,
        request_latency: float = 0.0,
        fail_rate: float = 0.0,
        fail_seed: int | None = None,
        rate_limit: float | None = None,
        idle_timeout: float = 300.0,
        page_size: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        from cogfleet.server._core import Account, ServerConfig, parse_token_spec

        accounts: dict[str, Account] = {}
        names = list(dict.fromkeys(owners or ()))
        if names:
            # The token may write under every owner given (the first is its account).
            token = token or "cogfleet-local"
            accounts[token] = Account(names[0], tuple(names[1:]))
        for key, who in (tokens or {}).items():
            accounts[key] = parse_token_spec(f"{key}={who}")[1]
        self.config = ServerConfig(
            state_dir=Path(state_dir),
            token=None if accounts else token,
            tokens=accounts,
            official=frozenset(official),
            collections=list(collections or []),
            latency=latency,
            request_latency=request_latency,
            fail_rate=fail_rate,
            fail_seed=fail_seed,
            rate_limit=rate_limit,
            idle_timeout=idle_timeout,
            page_size=page_size,
        )
        self.token = token or "local"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.api: LocalApi | None = None
        self._http: ThreadedServer | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (what ``REPLICATE_BASE_URL`` should be set to)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        """Bind a free port and start serving; returns once requests are accepted."""
        from cogfleet.server._app import create_app
        from cogfleet.server._threaded import ProblemHttpProtocol, ThreadedServer

        api, app = create_app(self.config)
        self.api = api
        self._http = ThreadedServer(
            app,
            name="cogfleet-local-server",
            lifespan="on",
            startup_timeout=self.startup_timeout,
            http=ProblemHttpProtocol,
        )
        self._http.start()
        self.port = self._http.port
        return self

    def stop(self) -> None:
        """Stop serving, cancel in-flight work and stop all coglet processes."""
        if self._http is not None:
            self._http.stop()
        self._http = None

    def runner_processes(self) -> list[int]:
        """Pids of the coglet processes currently running for this server."""
        if self.api is None or self.api.pool is None:
            return []
        return list(self.api.pool.processes())

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; a ``UsageError`` when it cannot be had.

    ``cogfleet serve`` binds once before anything else happens, so a port in use or an
    unknown host is one line and no state folder is created.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: not a port number (0-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {host}: cannot be resolved ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UsageError(f"--port {port}: cannot listen on {host}:{port}: {reason}") from None
    return sock


def serve_forever(host: str, port: int, config: ServerConfig) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (``cogfleet serve``)."""
    import uvicorn

    from cogfleet.server._app import create_app
    from cogfleet.server._threaded import KEEP_ALIVE_S, ForegroundServer, ProblemHttpProtocol

    # Bound once, first: a port in use or a bad host is one line and nothing is created,
    # and --port 0 announces the port it really got.
    sock = bind(host, port)
    try:
        _api, app = create_app(config)
    except (OSError, sqlite3.Error) as exc:  # the state folder cannot be made or written
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--state {config.state_dir}: cannot keep the server's state there: "
                         f"{reason}") from None
    # the server's own messages (and the --request-latency request log) go to stderr
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    server_log = logging.getLogger("cogfleet.server")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    if config.permissive:
        sys.stderr.write(
            "cogfleet serve: permissive mode (no --token): any token is accepted and may "
            "create, change and delete models under any owner\n"
        )
    else:
        accounts = sorted({a.username for a in config.accounts().values()})
        sys.stderr.write(f"cogfleet serve: tokens for {', '.join(accounts)}\n")
    sys.stderr.flush()
    server = ForegroundServer(
        uvicorn.Config(
            app,
            host=host,
            port=sock.getsockname()[1],
            log_level="info",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_S,
            http=ProblemHttpProtocol,
        )
    )
    with sock, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:  # the app's start-up failed (uvicorn has said why)
        raise SystemExit(3)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``cogfleet serve`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (8765)")
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE_DIR, help="state directory (.cogfleet/local)"
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=ACCOUNT[,ORG...]",
        help="an accepted token, its account and the organizations it may write to "
        "(repeatable; env COGFLEET_SERVE_TOKEN, space-separated); without any, every "
        "token is accepted and may write everywhere",
    )
    parser.add_argument(
        "--official",
        action="append",
        default=[],
        metavar="OWNER/NAME",
        help="a model that answers owner/name predictions (repeatable)",
    )
    parser.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="SLUG=OWNER/NAME[,OWNER/NAME...]",
        help="a collection and its models (repeatable)",
    )
    parser.add_argument(
        "--collections",
        type=Path,
        default=None,
        metavar="FILE",
        help="collections from a YAML or JSON file: "
        "{slug: {name, description, full_description, models}}",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="extra seconds per prediction")
    parser.add_argument(
        "--request-latency", type=float, default=0.0, metavar="S",
        help="extra seconds per API request, as if the API were S away (logs each request)",
    )
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="share of API calls answered 503 (0..1)"
    )
    parser.add_argument("--fail-seed", type=int, default=None, help="seed for --fail-rate")
    parser.add_argument(
        "--rate-limit", type=float, default=None, help="requests per second before 429"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=300.0, help="stop idle predictors after S seconds"
    )
    parser.add_argument("--page-size", type=int, default=None, help="items per list page")
    parser.add_argument(
        "--prune-envs", nargs="?", const="unused", choices=["unused", "all"], default=None,
        help="remove the isolated environments no version of the state uses (or 'all'), "
        "print what was freed, and exit",
    )  # fmt: skip


def run_serve(ns: argparse.Namespace) -> int:
    """Run ``cogfleet serve`` from parsed arguments; returns the exit code."""
    if not 0.0 <= ns.fail_rate <= 1.0:
        raise UsageError(f"--fail-rate must be between 0 and 1, not {ns.fail_rate}")
    if ns.rate_limit is not None:
        _seconds("--rate-limit", ns.rate_limit, positive=True, most=1e6)
    _seconds("--latency", ns.latency)
    _seconds("--request-latency", ns.request_latency)
    _seconds("--idle-timeout", ns.idle_timeout, positive=True, most=_WEEK)
    if ns.page_size is not None and not 1 <= ns.page_size <= _PAGE_MAX:
        raise UsageError(f"--page-size must be from 1 to {_PAGE_MAX}, not {ns.page_size}")
    state = Path(ns.state)
    if state.exists() and not state.is_dir():
        raise UsageError(f"--state {ns.state}: not a directory (a file is there)")
    if ns.prune_envs is not None:
        return _prune(state, everything=ns.prune_envs == "all")
    from cogfleet.server._core import ServerConfig, parse_token_spec

    specs = list(ns.token)
    source = "--token"
    if not specs:
        specs = os.environ.get("COGFLEET_SERVE_TOKEN", "").split()
        source = "$COGFLEET_SERVE_TOKEN"
    tokens = {}
    for spec in specs:
        try:
            token, account = parse_token_spec(spec)
        except ValueError as exc:
            raise UsageError(f"{source}: {exc}") from None
        tokens[token] = account
    for ref in ns.official:
        if not _MODEL_RE.match(ref):
            raise UsageError(f"--official: expected OWNER/NAME, got {ref!r}")
    collections = _collections(ns.collection, ns.collections)
    config = ServerConfig(
        state_dir=state,
        tokens=tokens,
        official=frozenset(ns.official),
        collections=collections,
        latency=ns.latency,
        request_latency=ns.request_latency,
        fail_rate=ns.fail_rate,
        fail_seed=ns.fail_seed,
        rate_limit=ns.rate_limit,
        idle_timeout=ns.idle_timeout,
        page_size=ns.page_size,
    )
    serve_forever(ns.host, ns.port, config)
    return int(ExitCode.OK)


_DAY, _WEEK = 86400.0, 7 * 86400.0
_PAGE_MAX = 10000


def _seconds(flag: str, value: float, *, positive: bool = False, most: float = _DAY) -> None:
    """A number of seconds (or a rate) a flag gives: finite, not negative (or positive),
    and at most ``most`` (a day of seconds unless said otherwise)."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        rule = "a positive number" if positive else "a number not below 0"
        raise UsageError(f"{flag} must be {rule}, not {value}")
    if value > most:
        raise UsageError(f"{flag} must be at most {most:g}, not {value:g}")


def _prune(state_dir: Path, *, everything: bool) -> int:
    from cogfleet.server._runtimes import prune_environments

    removed = prune_environments(state_dir, everything=everything)
    for info in removed:
        meta = info.meta
        sys.stdout.write(
            f"removed {info.key} (Cog {meta.get('cog_version')}, Python {meta.get('python')}, "
            f"{info.size / 1e6:.1f} MB)\n"
        )
    freed = sum(info.size for info in removed) / 1e6
    sys.stdout.write(f"{len(removed)} environment(s) removed, {freed:.1f} MB freed\n")
    return int(ExitCode.OK)


_COLLECTION_KEYS = {"name", "description", "full_description", "models"}


def _collections(specs: list[str], path: Path | None) -> list[dict[str, Any]]:
    """Collections from ``--collection`` flags and a ``--collections`` file."""
    found: dict[str, dict[str, Any]] = {}
    if path is not None:
        from cogfleet._errors import ConfigError
        from cogfleet._yaml import load_yaml_file

        if not path.is_file():
            raise UsageError(f"--collections {path}: no such file")
        data = load_yaml_file(path)
        if not isinstance(data, dict):
            raise ConfigError(path, "collections must be a mapping of slug to a collection")
        for slug, spec in data.items():
            if not isinstance(spec, dict):
                spec = {"models": spec}
            unknown = sorted(str(k) for k in set(spec) - _COLLECTION_KEYS)
            if unknown:
                raise ConfigError(path, f"collection {slug!r}: unknown keys {unknown}")
            models = spec.get("models") or []
            if not isinstance(models, list):
                raise ConfigError(path, f"collection {slug!r}: models must be a list")
            found[str(slug)] = _collection(
                str(slug), spec.get("name"), spec.get("description"), models, str(path)
            )
            if spec.get("full_description") is not None:
                found[str(slug)]["full_description"] = str(spec["full_description"])
    for spec in specs:
        slug, sep, refs = spec.partition("=")
        models = [r.strip() for r in refs.split(",") if r.strip()]
        if not sep or not slug.strip():
            raise UsageError(f"--collection: expected SLUG=OWNER/NAME[,...], got {spec!r}")
        found[slug.strip()] = _collection(slug.strip(), None, None, models, "--collection")
    return list(found.values())


def _collection(
    slug: str, name: Any, description: Any, models: list[Any], where: str
) -> dict[str, Any]:
    if not _SLUG_RE.match(slug):
        raise UsageError(f"{where}: collection slug {slug!r} must be lowercase letters, digits, -")
    for ref in models:
        if not isinstance(ref, str) or not _MODEL_RE.match(ref):
            raise UsageError(f"{where}: collection {slug!r}: expected OWNER/NAME, got {ref!r}")
    return {
        "slug": slug,
        "name": str(name) if name is not None else slug,
        "description": str(description) if description is not None else "",
        "models": list(dict.fromkeys(models)),
    }


__all__ = [
    "LocalServer",
    "add_serve_arguments",
    "run_serve",
    "serve_forever",
]
