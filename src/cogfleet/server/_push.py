"""Pushing a build folder to the local server as a model version.

The local server has no image registry, so a "push" uploads the build folder
itself (``cog.yaml`` + source, as ``cogfleet render`` writes it) as a tar.gz to
the cogfleet extension endpoint ``POST /v1/models/{owner}/{name}/versions``.
The build is stored under a content hash of that folder (:func:`build_id_for`);
the version id hashes the model with it (:func:`version_id_for`), so the same
folder pushed to the same model always gets the same id and pushing it twice
gives back the existing version, while each model has its own version of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
from replicate.client import Client

from cogfleet._dockerignore import DockerIgnore, walk
from cogfleet._errors import ConfigError, RemoteError
from cogfleet.runtime import RuntimeOptions

# Never part of a build: coglet's generated files, bytecode caches, cogfleet's own state,
# the rendered publishing config (it describes how to push, not what is pushed) and the
# .dockerignore (it says what is pushed). Beyond these, the folder's .dockerignore
# leaves out what `cog build` of the folder would leave out.
_EXCLUDED_DIRS = frozenset({".cog", "__pycache__", ".git"})
_EXCLUDED_TOP = frozenset({"cog-safe-push.yaml", ".dockerignore", ".cogfleet"})

# A push waits for the version's environment to be built (a first build of heavy
# requirements downloads gigabytes); the server bounds each build by the same hour.
PUSH_TIMEOUT = 3600.0


def build_files(build_dir: Path) -> list[tuple[str, Path]]:
    """The files that make up a build: (relative posix path, absolute path), sorted."""
    if not (build_dir / "cog.yaml").is_file():
        raise ConfigError(str(build_dir), "not a build folder: cog.yaml is missing")
    found: list[tuple[str, Path]] = []
    for rel in walk(build_dir, DockerIgnore.read(build_dir), _EXCLUDED_DIRS):
        if rel.split("/", 1)[0] in _EXCLUDED_TOP or rel.endswith(".pyc"):
            continue
        full = build_dir / rel
        if full.is_file():
            found.append((rel, full))
    return sorted(found)


def version_id(model: str, content: str) -> str:
    """The version id of build ``content`` (a build id) as a version of ``model``."""
    return hashlib.sha256(f"{model}\n{content}".encode()).hexdigest()


def version_id_for(build_dir: Path, model: str, options: RuntimeOptions | None = None) -> str:
    """The version id the build folder gets when pushed to ``model`` (``owner/name``)
    with ``options`` (default: the defaults)."""
    return version_id(model, build_id_for(build_dir, options))


def build_id_for(build_dir: Path, options: RuntimeOptions | None = None) -> str:
    """The build's id: sha256 hex over the sorted paths and file bytes and the runtime
    options (the same folder under another Cog version or environment is another build).
    """
    digest = hashlib.sha256()
    for rel, full in build_files(Path(build_dir)):
        data = full.read_bytes()
        # Length-prefix each part so that no two different folders hash alike.
        digest.update(f"{len(rel)}:{rel}:{len(data)}:".encode())
        digest.update(data)
    digest.update(b"\0runtime:" + (options or RuntimeOptions()).identity().encode())
    return digest.hexdigest()


def pack_build(build_dir: Path) -> bytes:
    """A deterministic tar.gz of the build's files (the push upload body)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel, full in build_files(Path(build_dir)):
            info = tarfile.TarInfo(rel)
            data = full.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or not path.parts:
        raise ValueError(f"absolute or empty path in the archive: {name!r}")
    if ".." in path.parts or "\\" in name or any(ord(c) < 32 for c in name):
        raise ValueError(f"unsafe path in the archive: {name!r}")
    return path


def _check_layout(members: list[tuple[str, bool]]) -> list[PurePosixPath]:
    """The regular files of an archive, refusing any layout a build folder cannot have.

    ``members``: (name, is a directory). Refused: absolute paths, ``..``, the same
    path twice, and a path that is a file and also the parent of another entry.
    """
    files: dict[PurePosixPath, str] = {}
    dirs: set[PurePosixPath] = set()
    listed: set[PurePosixPath] = set()
    for name, is_dir in members:
        path = _safe_member(name.rstrip("/") if is_dir else name)
        if path in listed:
            raise ValueError(f"the archive holds {name!r} twice")
        listed.add(path)
        if is_dir:
            dirs.add(path)
        else:
            files[path] = name
        dirs.update(path.parents)
    for path, name in files.items():
        if path in dirs:
            raise ValueError(f"the archive holds {name!r} both as a file and as a folder")
    return sorted(files)


def unpack_build(body: bytes, dest: Path) -> None:
    """Extract an uploaded tar.gz / tar / zip build into ``dest``.

    Only regular files and folders are accepted, each path once, inside the folder:
    links, devices, absolute paths, ``..``, duplicates and a file that is also a
    folder raise ``ValueError`` before anything is written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if body[:4] == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(io.BytesIO(body))
        except (zipfile.BadZipFile, ValueError) as exc:
            raise ValueError(f"the zip archive is damaged: {exc}") from exc
        with zf:
            infos = zf.infolist()
            for zinfo in infos:
                kind = (zinfo.external_attr >> 16) & 0o170000
                if kind not in (0, 0o100000, 0o040000) and not zinfo.is_dir():
                    raise ValueError(
                        f"only regular files are allowed in a build: {zinfo.filename!r}"
                    )
            _check_layout([(z.filename, z.is_dir()) for z in infos])
            try:
                for zinfo in infos:
                    if zinfo.is_dir():
                        continue
                    target = dest / _safe_member(zinfo.filename)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(zinfo))
            except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
                raise ValueError(f"the zip archive is damaged: {exc}") from exc
        return
    try:
        tar = tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"body is not a tar.gz, tar or zip archive: {exc}") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"the tar archive is damaged: {exc}") from exc
        for member in members:
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"only regular files are allowed in a build: {member.name!r}")
        _check_layout([(m.name, m.isdir()) for m in members])
        try:
            for member in members:
                if member.isdir():
                    continue
                target = dest / _safe_member(member.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                assert extracted is not None  # regular files always have content
                target.write_bytes(extracted.read())
                if member.mode & 0o111:
                    target.chmod(0o755)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"the tar archive is damaged: {exc}") from exc


def _raise_for(resp: httpx.Response, owner: str, name: str) -> dict[str, Any]:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            detail = body.get("detail") or body.get("title") or resp.text
        except ValueError:
            detail = resp.text
        raise RemoteError(
            f"push to {owner}/{name} failed ({resp.status_code}): {detail}",
            status=resp.status_code,
        )
    result: dict[str, Any] = resp.json()
    return result


def _http(target: Client | str, token: str | None) -> tuple[httpx.Client, bool]:
    if isinstance(target, str):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=target, headers=headers, timeout=PUSH_TIMEOUT), True
    # The official client owns the base URL and the token; reuse its httpx client.
    return target._client, False  # noqa: SLF001 - the client exposes no public raw-request API


def _post_versions(
    target: Client | str, token: str | None, owner: str, name: str, **kwargs: Any
) -> dict[str, Any]:
    http, owned = _http(target, token)
    try:
        resp = http.post(f"/v1/models/{owner}/{name}/versions", timeout=PUSH_TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise RemoteError(f"push to {owner}/{name} failed: {exc}") from exc
    finally:
        if owned:
            http.close()
    return _raise_for(resp, owner, name)


async def _async_post_versions(
    base_url: str, token: str | None, owner: str, name: str, **kwargs: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=PUSH_TIMEOUT) as http:
        try:
            resp = await http.post(f"/v1/models/{owner}/{name}/versions", **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"push to {owner}/{name} failed: {exc}") from exc
    return _raise_for(resp, owner, name)


def push_build(
    target: Client | str,
    owner: str,
    name: str,
    build_dir: Path,
    *,
    token: str | None = None,
    options: RuntimeOptions | None = None,
) -> dict[str, Any]:
    """Upload ``build_dir`` to the local server as a version of ``owner/name``.

    ``target`` is a ``Client`` pointed at the local server, or its base URL
    (then ``token`` is sent as the Bearer token); ``options``: the Cog version and
    environment it runs with (default: the installed SDK, isolated). Returns the
    version object (``id``, ``created_at``, ``cog_version``, ``openapi_schema``)
    plus ``cogfleet``: how it runs (environment, Python, notes). Pushing the same
    content again returns the existing version. Raises ``RemoteError`` on an HTTP
    error (e.g. an invalid predictor gives the schema generator's message, a
    requirement that does not resolve the resolver's).
    """
    body = pack_build(Path(build_dir))
    return _post_versions(
        target, token, owner, name, content=body, headers={"Content-Type": "application/gzip"},
        params=(options or RuntimeOptions()).query(),
    )  # fmt: skip


def promote_version(
    target: Client | str,
    owner: str,
    name: str,
    version_id: str,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """Copy an existing version (same id, same build) onto model ``owner/name``."""
    return _post_versions(target, token, owner, name, json={"from_version": version_id})


async def async_push_build(
    base_url: str, token: str | None, owner: str, name: str, build_dir: Path,
    options: RuntimeOptions | None = None,
) -> dict[str, Any]:  # fmt: skip
    """:func:`push_build` for asyncio callers (packing runs in a worker thread)."""
    body = await asyncio.to_thread(pack_build, Path(build_dir))
    return await _async_post_versions(
        base_url, token, owner, name, content=body, headers={"Content-Type": "application/gzip"},
        params=(options or RuntimeOptions()).query(),
    )  # fmt: skip


async def async_promote_version(
    base_url: str, token: str | None, owner: str, name: str, version_id: str
) -> dict[str, Any]:
    """:func:`promote_version` for asyncio callers."""
    return await _async_post_versions(
        base_url, token, owner, name, json={"from_version": version_id}
    )
