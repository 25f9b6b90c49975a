"""Checks of command-line input made before anything is rendered, pushed or started.

Flag values are checked by argparse types (so the message names the flag); the report
destinations, the local server URL and ``--secret`` specs are checked here, once the
command line is parsed and before any work. Each failure is a :class:`UsageError`:
one line, exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from cogfleet._errors import UsageError
from cogfleet._names import model_problem


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer not below ``minimum`` (nor above ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        if maximum is not None and value > maximum:
            shown = text if len(text) <= 24 else f"{text[:21]}..."
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {shown}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def python_version(text: str) -> str:
    """An argparse type: a Python version, ``X.Y`` (or ``X.Y.Z``)."""
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected a version like 3.11, got {text!r}")
    return text


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def shown_url(url: str) -> str:
    """``url`` for messages: a password in it (``http://user:secret@host``) is masked."""
    head, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{head}://{userinfo.partition(':')[0]}:***@{host}"


def owner_name(text: str) -> str:
    """An argparse type: a model name, ``owner/name``."""
    problem = model_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def check_destinations(flags: Iterable[tuple[str, str | None]]) -> None:
    """Every report path can be written: not a folder, no file where a folder must be,
    and no two reports into one file (the second would overwrite the first)."""
    seen: dict[Path, str] = {}
    for flag, value in flags:
        if not value:
            continue
        path = Path(value)
        same = seen.setdefault(path.resolve(), flag)
        if same != flag:
            raise UsageError(f"{flag} {value}: {same} writes that file too; give another path")
        if path.is_dir():
            raise UsageError(f"{flag} {value}: is a folder; give a file path")
        # a report is written through a rename, which replaces what is there: a device
        # (as root) or the link itself, not the file it points at
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            raise UsageError(f"{flag} {value}: is not a regular file (a device, FIFO, socket "
                             "or link); give a file path")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"{flag} {value}: {parent} is a file, not a folder")
                problem = _cannot_write_in(parent)
                if problem:
                    raise UsageError(f"{flag} {value}: {parent} is not writable ({problem})")
                break
        if path.is_file():
            try:  # opened to append: the file is neither changed nor truncated
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
            except OSError as exc:
                raise UsageError(f"{flag} {value}: cannot be written ({exc.strerror})") from None


def _cannot_write_in(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (tried, not guessed from permission
    bits, which say yes to root everywhere, /proc included), or None."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".cogfleet-probe-")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def check_environment(target: str, *, api: bool = True) -> None:
    """The environment variables a run of ``target`` reads, before anything is rendered.

    ``$COGFLEET_TARGET`` (the ``--target`` default), ``$COGFLEET_JUDGE_VOTES``,
    ``$COGFLEET_ENV_DIR`` and ``$GITHUB_STEP_SUMMARY``; for the replicate target also
    the ``cog`` CLI and, when the command talks to the API (``api``; ``build`` does
    not), ``REPLICATE_API_TOKEN`` (never shown) and ``REPLICATE_BASE_URL``.
    """
    env = os.environ
    if target not in ("local", "replicate"):  # argparse checked an explicit --target
        raise UsageError(f"$COGFLEET_TARGET is {target!r}: expected local or replicate")
    votes = env.get("COGFLEET_JUDGE_VOTES", "").strip()
    if votes and not (votes.isdigit() and int(votes) >= 1):
        raise UsageError(f"$COGFLEET_JUDGE_VOTES must be a positive integer, got {votes!r}")
    env_dir = env.get("COGFLEET_ENV_DIR")
    if env_dir and target == "local":
        _check_folder("$COGFLEET_ENV_DIR", env_dir)
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        check_destinations([("$GITHUB_STEP_SUMMARY", summary)])
    if target == "replicate":
        _check_replicate(env, api=api)


def _check_folder(name: str, value: str) -> None:
    """``value`` is a folder, or one can be made there (tried, and removed again)."""
    import tempfile

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{name} {value}: not a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"{name} {value}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".cogfleet-probe-", dir=existing))
    except OSError as exc:
        raise UsageError(f"{name} {value}: cannot write there ({exc.strerror})") from None


def _check_replicate(env: os._Environ[str], *, api: bool) -> None:
    import shutil

    if api:
        _check_api(env)
    if shutil.which("cog") is None:
        raise UsageError("--target replicate needs the `cog` CLI on PATH")


def _check_api(env: os._Environ[str]) -> None:
    """``REPLICATE_API_TOKEN`` (never shown) and ``REPLICATE_BASE_URL``."""
    from urllib.parse import urlsplit

    token = env.get("REPLICATE_API_TOKEN", "")
    if not token.strip():
        raise UsageError("--target replicate needs REPLICATE_API_TOKEN in the environment")
    _check_token("REPLICATE_API_TOKEN", token)
    base = env.get("REPLICATE_BASE_URL")
    if base is not None:
        try:
            parts = urlsplit(base)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"REPLICATE_BASE_URL {shown_url(base)!r}: expected "
                             "https://HOST[:PORT] (or unset it for api.replicate.com)")


def _check_token(name: str, token: str) -> None:
    """A token goes into an HTTP header: printable ASCII without spaces (never shown)."""
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in token):
        raise UsageError(f"{name} is not a token: it holds spaces, control or non-ASCII "
                         "characters")


def check_secret(spec: str) -> None:
    """``--secret id=NAME,src=PATH`` (cog push's format; the file is read by cog's build)."""
    fields = dict(part.partition("=")[::2] for part in spec.split(","))
    if not fields.get("id") or not fields.get("src") or set(fields) - {"id", "src", "type"}:
        raise UsageError(f"--secret {spec}: expected id=NAME,src=PATH")


def check_local_url(url: str, *, timeout: float = 10.0) -> str:
    """``url`` without its trailing slash, once something listens there (and
    ``$COGFLEET_LOCAL_TOKEN``, sent to it, is a token).

    A malformed URL or one where nothing listens is a one-line ``UsageError`` now, not
    a traceback after rendering. Only a connection is opened (no API request, so the
    push's round trips are not lengthened); what answers is judged by the push itself.
    """
    import httpx

    shown = shown_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UsageError(f"--local-url {shown}: not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"--local-url {shown}: expected http://HOST:PORT")
    token = os.environ.get("COGFLEET_LOCAL_TOKEN")
    if token:  # the token the server is sent
        _check_token("COGFLEET_LOCAL_TOKEN", token)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UsageError(
            f"--local-url {shown}: cannot reach it ({reason}); is `cogfleet serve` running there?"
        ) from None
    return url.rstrip("/")
