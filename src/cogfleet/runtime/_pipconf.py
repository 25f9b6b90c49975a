"""The package index configuration of pip on this machine, as uv flags.

Environments are built with uv, but from wherever ``pip install`` on this machine
would download: pip's own view of its configuration files and ``PIP_*`` variables
(``pip config list``) decides. Nothing here names an index.

pip's precedence: the ``:env:`` values (``PIP_INDEX_URL`` …) over the ``[install]``
section over ``[global]``; pip has already merged the files (global < user < site).
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

_SECTIONS = (":env:", "install", "global")  # highest precedence first
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class IndexConfig:
    """Where packages come from (pip's settings), and what they became as uv flags."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    constraints: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None
    source: str = "pip config"
    env: dict[str, str] = field(default_factory=dict, compare=False)

    def uv_args(self) -> list[str]:
        """Flags for ``uv pip install`` that reproduce pip's choice of indexes."""
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for path in self.constraints:
            if os.path.isfile(path):
                args += ["--constraint", path]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        if self.extra_index_urls or self.find_links:
            # pip takes the best version across every index; uv's default stops at the
            # first index that has the project.
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def uv_env(self) -> dict[str, str]:
        """Variables uv needs for pip's TLS settings."""
        return {"SSL_CERT_FILE": self.cert} if self.cert and os.path.isfile(self.cert) else {}

    def describe(self) -> str:
        """One line for logs: which indexes an environment was built from."""
        parts = []
        if self.no_index:
            parts.append("no index")
        parts.append(f"index {self.index_url or 'https://pypi.org/simple (pip default)'}")
        parts += [f"extra index {u}" for u in self.extra_index_urls]
        parts += [f"find-links {u}" for u in self.find_links]
        parts += [f"constraint {c}" for c in self.constraints]
        return f"{self.source}: " + ", ".join(parts)


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _from_values(values: dict[str, str], source: str) -> IndexConfig:
    def get(name: str) -> str | None:
        for section in _SECTIONS:
            if f"{section}.{name}" in values:
                return values[f"{section}.{name}"]
        return None

    return IndexConfig(
        index_url=get("index-url"),
        extra_index_urls=_split(get("extra-index-url") or ""),
        find_links=_split(get("find-links") or ""),
        no_index=(get("no-index") or "").lower() in _TRUE,
        constraints=_split(get("constraint") or ""),
        trusted_hosts=_split(get("trusted-host") or ""),
        cert=get("cert"),
        source=source,
    )


def _pip_command() -> list[str] | None:
    """pip of cogfleet's interpreter, else the ``pip`` on PATH."""
    try:
        import pip  # noqa: F401 - only whether it is there

        return [sys.executable, "-m", "pip"]
    except ImportError:
        found = shutil.which("pip3") or shutil.which("pip")
        return [found] if found else None


def _parse_config_list(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        values[key.strip()] = str(value)
    return values


def _from_environment() -> IndexConfig:
    """pip's ``PIP_*`` variables alone (when no pip is installed to ask)."""
    names = {
        "index-url": "PIP_INDEX_URL",
        "extra-index-url": "PIP_EXTRA_INDEX_URL",
        "find-links": "PIP_FIND_LINKS",
        "no-index": "PIP_NO_INDEX",
        "constraint": "PIP_CONSTRAINT",
        "trusted-host": "PIP_TRUSTED_HOST",
        "cert": "PIP_CERT",
    }
    values = {f":env:.{k}": os.environ[v] for k, v in names.items() if v in os.environ}
    return _from_values(values, "PIP_* environment variables")


@functools.cache
def pip_index_config() -> IndexConfig:
    """pip's index settings on this machine (asked once per process)."""
    command = _pip_command()
    if command is None:
        return _from_environment()
    try:
        proc = subprocess.run(
            [*command, "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return _from_environment()
    if proc.returncode != 0:
        return _from_environment()
    return _from_values(_parse_config_list(proc.stdout), "pip config")
