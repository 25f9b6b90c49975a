"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Parent folders are created. The temporary name is unique per process and thread,
    so concurrent writers of the same file never share one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_SELF_IGNORE = b"# written by cogfleet: build folders, caches and local server state\n*\n"


def ensure_state_dir(state_dir: Path) -> Path:
    """Create cogfleet's state folder (``.cogfleet/``) so that git ignores it by itself.

    A ``.gitignore`` holding ``*`` inside it (as pytest and ruff do for their caches)
    keeps build folders and server state out of ``git status`` and out of the changed
    files ``cogfleet affected`` sees, in any repo, without touching the repo's own
    ``.gitignore``.
    """
    marker = state_dir / ".gitignore"
    if not marker.is_file():
        write_atomic(marker, _SELF_IGNORE)
    return state_dir
