"""The loopback receiver of the model servers' webhooks and uploaded output files."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import mimetypes
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

import h11


class WebhookReceiver:
    """A loopback HTTP/1.1 server for the model servers' webhook POSTs and file PUTs.

    ``POST /<token>/<prediction id>`` is a webhook. ``PUT /<token>/upload/<name>``
    is an output file from the Python server's ``--upload-url``: it is kept in
    memory and answered with ``Location: <its own URL>``, which
    :meth:`inline_files` later turns into a ``data:`` URI.
    """

    def __init__(self, dispatch: Callable[[str, bytes], None]) -> None:
        self._dispatch = dispatch
        self._token = secrets.token_urlsafe(16)
        self._server: asyncio.Server | None = None
        self._files: dict[str, tuple[str, bytes]] = {}
        self.port = 0

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self._token}/upload/"

    @property
    def _files_prefix(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self._token}/files/"

    def inline_files(self, value: Any, *, keep: bool = False) -> Any:
        """``value`` with every uploaded-file URL replaced by its ``data:`` URI.

        ``keep``: leave the files stored (an intermediate output); otherwise each
        one is dropped once inlined.
        """
        if isinstance(value, str) and value.startswith(self._files_prefix):
            file_id = value[len(self._files_prefix) :].split("/", 1)[0]
            found = self._files.get(file_id) if keep else self._files.pop(file_id, None)
            if found is None:
                return value
            mime, data = found
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        if isinstance(value, list):
            return [self.inline_files(item, keep=keep) for item in value]
        if isinstance(value, dict):
            return {k: self.inline_files(v, keep=keep) for k, v in value.items()}
        return value

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, prediction_id: str) -> str:
        quoted = urllib.parse.quote(prediction_id, safe="")
        return f"http://127.0.0.1:{self.port}/{self._token}/{quoted}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        target = b""
        method = b""
        content_type = ""
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    target, method, body = event.target, event.method, bytearray()
                    content_type = next(
                        (v.decode("latin-1") for k, v in event.headers if k == b"content-type"),
                        "",
                    )
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    status, location = self._route(method, target, content_type, bytes(body))
                    headers = [("content-length", "0")]
                    if location:
                        headers.append(("location", location))
                    response = h11.Response(status_code=status, headers=headers)
                    writer.write(conn.send(response) or b"")
                    writer.write(conn.send(h11.EndOfMessage()) or b"")
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                else:  # ConnectionClosed or PAUSED
                    return
        except (h11.ProtocolError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(
        self, method: bytes, target: bytes, content_type: str, body: bytes
    ) -> tuple[int, str | None]:
        parts = target.decode("latin-1").split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or not secrets.compare_digest(parts[0], self._token):
            return 404, None
        if method == b"PUT" and len(parts) == 3 and parts[1] == "upload":
            name = urllib.parse.unquote(parts[2])
            mime = content_type.split(";")[0].strip() or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            file_id = secrets.token_hex(8)
            self._files[file_id] = (mime, body)
            return 201, f"{self._files_prefix}{file_id}/{urllib.parse.quote(name)}"
        if len(parts) != 2:
            return 404, None
        self._dispatch(urllib.parse.unquote(parts[1]), body)
        return 200, None
