"""File outputs delivered the way Replicate delivers them.

coglet returns file outputs as ``data:`` URIs. The server keeps each one as a
file under ``<state>/outputs/<key>/out-<n>.<ext>`` (``key``: the run's id and a
secret) and stores the run's output with ``/delivery/<key>/<name>`` in its place.
Polled predictions, lists, webhooks and streams show absolute URLs to those files
(served without a token, like Replicate's delivery host, for as long as the
state folder keeps the run, with their ``Content-Type``, ``HEAD``, byte ranges and
``Access-Control-Allow-Origin: *``;
no ``Content-Disposition``: the name is the URL's last part); the synchronous
answer to ``Prefer: wait`` inlines them again as ``data:`` URIs, as Replicate's does.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.routing import Route

from cogfleet.server._core import NOT_FOUND, ApiError

# Public URLs (the secret in the path is the credential) may be read by a page of any
# origin: a web app shows outputs and streams events from another origin than this.
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}
_KEY_RE = re.compile(r"^[0-9a-z]{26}-[A-Za-z0-9_-]{16,64}$")
_NAME_RE = re.compile(r"^out-\d+(\.[A-Za-z0-9]+)?$")
PREFIX = "/delivery/"


class RangedFile(FileResponse):
    """A file download whose bad ``Range`` header is answered as problem JSON (400, or
    416 with ``Content-Range``) like every other error, not as Starlette's plain text."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader as exc:
            raise HTTPException(400, f"Bad Range header: {exc.content}") from None
        except RangeNotSatisfiable as exc:
            raise HTTPException(
                416,
                f"The range is not satisfiable: the file has {exc.max_size} bytes",
                headers={"Content-Range": f"bytes */{exc.max_size}"},
            ) from None


def _map_strings(value: Any, leaf: Callable[[str], str]) -> Any:
    """``value`` (JSON: lists, objects, scalars) with ``leaf`` applied to every string."""
    if isinstance(value, str):
        return leaf(value)
    if isinstance(value, list):
        return [_map_strings(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, leaf) for k, v in value.items()}
    return value


class Outputs:
    """Delivery files of runs: written from ``data:`` URIs, rendered as URLs or inline."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "outputs"
        self.dir.mkdir(parents=True, exist_ok=True)

    def routes(self) -> list[Route]:
        """The delivery route (no token needed: the key is the credential)."""
        return [Route(PREFIX + "{key}/{name}", self.download, methods=["GET", "HEAD"])]

    def keep(self, key: str, output: Any, paths: list[str]) -> Any:
        """``output`` with every ``data:`` URI written out and replaced by its path.

        Files are numbered in the order they appear; a cumulative output (an
        iterator's growing list) rewrites nothing it wrote before. ``paths`` gets the
        delivery paths in use.
        """
        counter = 0

        def leaf(value: str) -> str:
            nonlocal counter
            if value.startswith("data:"):
                decoded = _decode(value)
                if decoded is None:
                    return value
                mime, data = decoded
                name = f"out-{counter}{_extension(mime)}"
                counter += 1
                folder = self.dir / key
                target = folder / name
                if not target.is_file() or target.stat().st_size != len(data):
                    folder.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                path = f"{PREFIX}{key}/{name}"
                if path not in paths:
                    paths.append(path)
                return path
            return value

        return _map_strings(output, leaf)

    def render(self, output: Any, paths: list[str], base: str, *, inline: bool) -> Any:
        """``output`` with its delivery paths as absolute URLs, or as ``data:`` URIs."""
        if not paths:
            return output
        known = set(paths)

        def leaf(value: str) -> str:
            if value in known:
                return self._data_uri(value) if inline else base + value
            return value

        return _map_strings(output, leaf)

    def _data_uri(self, path: str) -> str:
        key, _, name = path.removeprefix(PREFIX).partition("/")
        file = self.dir / key / name
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(file.read_bytes()).decode()}"

    async def download(self, request: Request) -> Response:
        """GET /delivery/{key}/{name}: an output file."""
        key, name = request.path_params["key"], request.path_params["name"]
        path = self.dir / key / name
        if not _KEY_RE.match(key) or not _NAME_RE.match(name) or not path.is_file():
            raise ApiError(404, NOT_FOUND)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return RangedFile(path, media_type=mime, headers=ANY_ORIGIN)


def _decode(uri: str) -> tuple[str, bytes] | None:
    header, sep, payload = uri.partition(",")
    if not sep:
        return None
    params = header.removeprefix("data:").split(";")
    mime = params[0] or "text/plain"
    try:
        if "base64" in params[1:]:
            return mime, base64.b64decode(payload, validate=False)
        return mime, unquote_to_bytes(payload)
    except (ValueError, binascii.Error):
        return None


def _extension(mime: str) -> str:
    known = {"image/webp": ".webp", "image/jpeg": ".jpg", "text/plain": ".txt"}
    return known.get(mime) or mimetypes.guess_extension(mime) or ""
