"""Writing files so that a reader never sees half of one, and reading only plain files."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from cogfleet._errors import ConfigError

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def check_readable(path: Path, display: str | Path, root: Path | None = None) -> None:
    """Raise a :class:`ConfigError` naming ``display`` unless ``path`` is a regular file
    (after links) and, with ``root``, one inside ``root``.

    Reading a FIFO would wait forever and ``/dev/zero`` never ends; a link out of the
    repository would read (and copy into build folders) a file no build context holds.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigError(display, f"is a link to {os.readlink(path)}, which does not "
                              "exist") from None
        raise ConfigError(display, "does not exist") from None
    except OSError as exc:  # a link loop, a path through a file
        raise ConfigError(display, f"cannot read: {exc.strerror or exc}") from None
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        raise ConfigError(display, f"is {_KINDS.get(kind, 'not a regular file')}, not a file")
    if root is not None:
        target = path.resolve()
        base = root.resolve()
        if target != base and base not in target.parents:
            raise ConfigError(display, f"is a link to {target}, outside the repository")


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
