"""Files: ``/v1/files`` (upload, get, list, delete, download).

Uploaded bytes live under ``<state>/files/<id>``; predictions that reference a
file's URL get its bytes as a ``data:`` URI (coglet offline reads only those).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._core import (
    FILE_TOO_LARGE,
    NOT_FOUND,
    Account,
    ApiError,
    account_of,
    base_url,
    new_id,
    paginate,
    parse_json,
    public,
)
from cogfleet.server._outputs import RangedFile
from cogfleet.server._state import Store
from cogfleet.server._validation import invalid

MAX_FILE_SIZE = 100 * 1024 * 1024
MAX_FILENAME_BYTES = 255
_FILE_URL_RE = re.compile(r"/v1/files/([A-Za-z0-9_-]+)(?:/download)?(?:\?.*)?$")


def local_file_as_data_uri(store: Store, files_dir: Path, text: str, account: Account) -> str:
    """``text`` as a ``data:`` URI when it is the URL of a file on this server that
    ``account`` uploaded (as the file endpoints, only its own), else as is."""
    if text.startswith(("http://", "https://")):
        match = _FILE_URL_RE.search(text)
        if match:
            meta = store.get("files", match.group(1))
            path = files_dir / match.group(1)
            if meta is not None and _owns(account, meta) and path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                return f"data:{meta['content_type']};base64,{data}"
    return text


def _owns(account: Account, doc: dict[str, Any]) -> bool:
    return account.permissive or doc.get("_account") == account.username


async def _text(form: FormData, name: str) -> str | None:
    """The text of form part ``name``; a part sent as a file (``curl -F name=@file``)
    is read as UTF-8 text."""
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    try:
        return (await value.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid([("invalid_type", name, "must be UTF-8 text")]) from None


class Files:
    """The files resource."""

    def __init__(self, store: Store, state_dir: Path, page_size: int | None) -> None:
        self.store = store
        self.dir = state_dir / "files"
        self.page_size = page_size or 100

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        return [
            Route("/v1/files", self.index, methods=["GET"]),
            Route("/v1/files", self.create, methods=["POST"]),
            Route("/v1/files/{fid}", self.get, methods=["GET"]),
            Route("/v1/files/{fid}", self.delete, methods=["DELETE"]),
            Route("/v1/files/{fid}/download", self.download, methods=["GET"]),
        ]

    @staticmethod
    def _render(doc: dict[str, Any], base: str) -> dict[str, Any]:
        out = public(doc)
        out["urls"] = {"get": f"{base}/v1/files/{doc['id']}"}
        return out

    def _file(self, fid: str, account: Account) -> dict[str, Any]:
        doc = self.store.get("files", fid)
        if doc is None or not _owns(account, doc):
            raise ApiError(404, NOT_FOUND)
        return doc

    async def create(self, request: Request) -> Response:
        """POST /v1/files (multipart ``content``, optional ``metadata``/``filename``/``type``)."""
        ctype_header = request.headers.get("content-type", "")
        if not ctype_header.lower().startswith("multipart/form-data"):
            raise ApiError(
                400,
                "files.create takes a multipart/form-data body with a content part",
                "Bad request",
            )
        try:
            form_cm = request.form(max_part_size=MAX_FILE_SIZE)
            async with form_cm as form:
                content = form.get("content")
                if content is None or isinstance(content, str):
                    raise invalid([("required", "", "content is required")])
                data = await content.read()
                filename = await _text(form, "filename") or content.filename or "file"
                ctype = (
                    await _text(form, "type")
                    or content.content_type
                    or mimetypes.guess_type(filename)[0]
                    or "application/octet-stream"
                )
                raw_meta = await _text(form, "metadata")
        except (MultiPartException, MultipartParseError, ValueError, KeyError) as exc:
            raise ApiError(400, f"The multipart body is malformed: {exc}", "Bad request") from exc
        except HTTPException as exc:
            if exc.status_code == 413:
                raise ApiError(413, FILE_TOO_LARGE) from exc
            raise ApiError(
                400, f"The multipart body is malformed: {exc.detail}", "Bad request"
            ) from exc
        if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
            raise invalid(
                [
                    (
                        "string_lte",
                        "filename",
                        f"String length must be less than or equal to {MAX_FILENAME_BYTES}",
                    )
                ]
            )
        metadata: Any = {}
        if isinstance(raw_meta, str) and raw_meta.strip():
            metadata = parse_json(raw_meta, "metadata")
            if not isinstance(metadata, dict):
                raise invalid([("invalid_type", "metadata", "must be a JSON object")])
        if len(data) > MAX_FILE_SIZE:
            raise ApiError(413, FILE_TOO_LARGE)
        fid = new_id()
        (self.dir / fid).write_bytes(data)
        created = datetime.now(UTC)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        doc = {
            "id": fid,
            "name": filename,
            "content_type": ctype,
            "size": len(data),
            "etag": md5,
            "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": md5},
            "metadata": metadata,
            "_account": account_of(request).username,
            "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "expires_at": (created + timedelta(days=1))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        self.store.put("files", fid, doc)
        return JSONResponse(self._render(doc, base_url(request)), status_code=201)

    async def get(self, request: Request) -> Response:
        """GET /v1/files/{id}."""
        doc = self._file(request.path_params["fid"], account_of(request))
        return JSONResponse(self._render(doc, base_url(request)))

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/files/{id}: 204."""
        fid = request.path_params["fid"]
        self._file(fid, account_of(request))
        self.store.delete("files", fid)
        (self.dir / fid).unlink(missing_ok=True)
        return Response(status_code=204)

    async def index(self, request: Request) -> Response:
        """GET /v1/files (newest first)."""
        base = base_url(request)
        account = account_of(request)
        where = [] if account.permissive else [[("_account", "=", account.username)]]
        return paginate(
            request,
            self.store,
            "files",
            lambda d: self._render(d, base),
            size=self.page_size,
            where=where,
        )

    async def download(self, request: Request) -> Response:
        """GET /v1/files/{id}/download: the bytes."""
        fid = request.path_params["fid"]
        doc = self._file(fid, account_of(request))
        # Its ETag is the file's etag (the MD5 of its bytes), not one of the disk file.
        etag = {"ETag": f'"{doc["etag"]}"'}
        return RangedFile(self.dir / fid, media_type=doc["content_type"], headers=etag)
