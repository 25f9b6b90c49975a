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
from collections.abc import Callable, Iterable
from pathlib import Path

from cogfleet._errors import UsageError
from cogfleet._names import model_problem


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer not below ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
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
    """Every report path can be written: not a folder, and no file where a folder must be."""
    for flag, value in flags:
        if not value:
            continue
        path = Path(value)
        if path.is_dir():
            raise UsageError(f"{flag} {value}: is a folder; give a file path")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"{flag} {value}: {parent} is a file, not a folder")
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise UsageError(f"{flag} {value}: {parent} is not writable")
                break


def check_secret(spec: str) -> None:
    """``--secret id=NAME,src=PATH`` (cog push's format; the file is read by cog's build)."""
    fields = dict(part.partition("=")[::2] for part in spec.split(","))
    if not fields.get("id") or not fields.get("src") or set(fields) - {"id", "src", "type"}:
        raise UsageError(f"--secret {spec}: expected id=NAME,src=PATH")


def check_local_url(url: str, *, timeout: float = 10.0) -> str:
    """``url`` without its trailing slash, once something listens there.

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
