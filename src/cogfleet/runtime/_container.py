"""The file system a model's process sees in its container, made on this machine.

Cog's image copies the model to ``/src``, its working folder (``WORKDIR /src`` at every
Cog version), and each container has a ``/tmp`` of its own. :func:`container_view`,
called in a child process between fork and exec (a ``preexec_fn``), gives the child
both in a mount namespace of its own, leaving the host untouched. Model servers and
the SDK's schema run of Cog <= 0.16 start through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Any

__all__ = ["LIBC", "container_view"]


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded before any fork so the child does not call dlopen between fork and exec.
LIBC = _load_libc()


_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MS_BIND = 0x1000


def container_view(scratch: str, src: str | None) -> None:
    """In the child before exec: see the file system as its container would.

    A mount namespace of the child's own (as root; otherwise inside a user namespace
    that maps the user to itself), where:

    * ``/tmp`` is an overlay: the host's ``/tmp`` below, read as it is, and a tmpfs
      mounted on ``scratch`` (this runner's folder) above, taking every write. Two
      versions writing ``out.png`` into /tmp at once then each read their own file.
    * given ``src`` (the build folder), the child's root is a tmpfs in ``scratch``
      holding every entry of the host's ``/`` (folders and files bound, symlinks copied)
      and ``src`` bound on ``/src``, its working folder, as Cog's ``WORKDIR /src``: code
      that opens ``/src/weights.txt`` works, and the host gets no ``/src``.

    Where the system allows none of this the child keeps the host's view (and the
    working folder it was started in); each step that fails leaves the ones before.
    """
    libc = LIBC
    if libc is None:
        return
    if libc.unshare(_CLONE_NEWNS) != 0:
        uid, gid = os.getuid(), os.getgid()
        if uid == 0 or libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
            return
        try:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
                fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        except OSError:
            return
    # Nothing mounted here may reach the host's mount table.
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return
    if libc.mount(b"tmpfs", scratch.encode(), b"tmpfs", 0, b"mode=0700") != 0:
        return
    upper, work, root = f"{scratch}/upper", f"{scratch}/work", f"{scratch}/root"
    try:
        os.mkdir(upper, 0o700)
        os.mkdir(work, 0o700)
        # The overlay's top folder is ``upper``: it looks like the host's /tmp (1777).
        os.chmod(upper, os.stat("/tmp").st_mode & 0o7777)
        os.mkdir(root, 0o755)
        # ``scratch`` may lie in /tmp, hidden once the overlay is there: keep a handle.
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return
    new_root = src is not None and _bind(libc, src, f"/proc/self/fd/{root_fd}/src", root_fd)
    options = f"lowerdir=/tmp,upperdir={upper},workdir={work}".encode()
    libc.mount(b"overlay", b"/tmp", b"overlay", 0, options)
    if new_root and _fill_root(libc, root_fd):
        with contextlib.suppress(OSError):
            os.fchdir(root_fd)
            os.chroot(".")
            os.chdir("/src")


def _bind(libc: Any, source: str, target: str, root_fd: int, name: str = "src") -> bool:
    """Bind ``source`` (a folder, with what is mounted below it, or a file) on a new
    entry ``name`` of the root being made."""
    try:
        if os.path.isdir(source):
            os.mkdir(name, 0o755, dir_fd=root_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=root_fd))
    except OSError:
        return False
    return bool(libc.mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None) == 0)


def _fill_root(libc: Any, root_fd: int) -> bool:
    """Every entry of the host's ``/`` but ``src`` in the new root, at the same path."""
    try:
        entries = os.listdir("/")
        for name in entries:
            if name == "src":
                continue
            path = f"/{name}"
            if os.path.islink(path):
                os.symlink(os.readlink(path), name, dir_fd=root_fd)
            elif not _bind(libc, path, f"/proc/self/fd/{root_fd}/{name}", root_fd, name):
                return False
    except OSError:
        return False
    return True
