"""Checks of command-line input made before anything is rendered, pushed or started.

Flag values are checked by argparse types (so the message names the flag); the report
destinations, the local server URL and ``--secret`` specs are checked here, once the
command line is parsed and before any work. Each failure is a :class:`UsageError`:
one line, exit 2.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cogfleet._errors import UsageError


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


def owner_name(text: str) -> str:
    """An argparse type: a model name, ``owner/name``."""
    if text.count("/") != 1 or not all(text.split("/")):
        raise argparse.ArgumentTypeError(f"expected 'owner/name', got {text!r}")
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
                break


def check_secret(spec: str) -> None:
    """``--secret id=NAME,src=PATH`` (cog push's format) naming a readable file."""
    fields = dict(part.partition("=")[::2] for part in spec.split(","))
    if not fields.get("id") or not fields.get("src") or set(fields) - {"id", "src", "type"}:
        raise UsageError(f"--secret {spec}: expected id=NAME,src=PATH")
    if not Path(fields["src"]).is_file():
        raise UsageError(f"--secret {spec}: {fields['src']} is not a file")


def check_local_url(url: str, token: str, *, timeout: float = 10.0) -> str:
    """``url`` without its trailing slash, once it answers like a cogfleet server.

    A malformed URL, a server that cannot be reached, one that rejects the token or one
    that does not speak Replicate's API is a one-line ``UsageError`` now, not a
    traceback after rendering.
    """
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UsageError(f"--local-url {url}: not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"--local-url {url}: expected http://HOST:PORT")
    base = url.rstrip("/")
    from cogfleet._http import RETRY_STATUSES, retry_after_seconds

    headers = {"Authorization": f"Token {token}"}
    try:
        with httpx.Client(timeout=timeout) as http:
            # nothing listening is told at once; 429s and 5xx are ridden out as elsewhere
            for attempt in range(8):
                response = http.get(f"{base}/v1/account", headers=headers)
                if response.status_code not in RETRY_STATUSES:
                    break
                hinted = retry_after_seconds(response.headers.get("retry-after"))
                time.sleep(min(hinted if hinted is not None else 0.2 * 2**attempt, 5.0))
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise UsageError(
            f"--local-url {url}: cannot reach it ({reason}); is `cogfleet serve` running there?"
        ) from None
    if response.status_code == 401:
        raise UsageError(f"--local-url {url}: the server rejected the token "
                         "(set COGFLEET_LOCAL_TOKEN to the one it was started with)")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "username" not in body:
        raise UsageError(
            f"--local-url {url}: not a Replicate-compatible API "
            f"(GET /v1/account answered {response.status_code})"
        )
    return base
