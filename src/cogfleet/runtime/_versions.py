"""Cog versions: which ones exist, which one is installed, and which server each ships.

A *Cog version* names a release of Cog (the CLI and the Python SDK are released
together under one number). cogfleet knows the SDK releases on PyPI from 0.4.3 on;
a pin to anything else is a configuration error, because neither a schema rule set
nor an environment could be built for it.

What each SDK serves predictions with (read from Cog's source at its tags):

======================  =============================================================
SDK                     ``python -m cog.server.http`` is
======================  =============================================================
0.4 – 0.6               a FastAPI app without ``/health-check``, cancel or webhooks
                        (0.4 binds port 5000 only); cogfleet cannot drive it
0.7 – 0.16              the Python server: FastAPI + a worker process; validates input
                        with pydantic from the predictor's signature (no schema
                        file); a sync request re-validates its response, so Replicate
                        (and cogfleet) use ``Prefer: respond-async`` + webhooks +
                        ``--upload-url``; one prediction at a time unless
                        ``concurrency.max``; exits when ``setup()`` fails;
                        ``--host`` only from 0.9.10 (before: every address)
>= 0.17                 coglet (Rust, the ``coglet`` wheel of the same version);
                        validates against ``.cog/openapi_schema.json``; slots from
                        ``COG_MAX_CONCURRENCY``; stays up with ``SETUP_FAILED``
======================  =============================================================
"""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Literal

ServerKind = Literal["coglet", "legacy", "unsupported"]

KNOWN_VERSIONS: tuple[str, ...] = (
    "0.4.3", "0.4.4", "0.5.0", "0.5.1", "0.6.0", "0.6.1", "0.7.0", "0.7.1", "0.7.2",
    "0.8.0", "0.8.1", "0.8.2", "0.8.3", "0.8.4", "0.8.5", "0.8.6",
    "0.9.0", "0.9.2", "0.9.3", "0.9.4", "0.9.5", "0.9.6", "0.9.7", "0.9.8", "0.9.9",
    "0.9.12", "0.9.13", "0.9.16", "0.9.19", "0.9.20", "0.9.21", "0.9.22", "0.9.23",
    "0.9.24", "0.9.25", "0.9.26",
    "0.11.0", "0.11.1", "0.11.2", "0.11.3", "0.11.4", "0.11.5", "0.11.6",
    "0.12.0", "0.12.1", "0.13.0", "0.13.2", "0.13.3", "0.13.6", "0.13.7",
    "0.14.0", "0.14.1", "0.14.2", "0.14.3", "0.14.4", "0.14.5", "0.14.6", "0.14.7",
    "0.14.8", "0.14.9", "0.14.10", "0.14.11", "0.14.12",
    "0.15.0", "0.15.1", "0.15.2", "0.15.3", "0.15.4", "0.15.5", "0.15.6", "0.15.7",
    "0.15.8", "0.15.9", "0.15.10", "0.15.11",
    "0.16.0", "0.16.1", "0.16.2", "0.16.3", "0.16.4", "0.16.5", "0.16.6", "0.16.7",
    "0.16.8", "0.16.10", "0.16.11", "0.16.12",
    "0.17.0", "0.17.1", "0.17.2", "0.18.0", "0.19.0", "0.19.1", "0.19.2", "0.19.3",
    "0.20.0", "0.21.0", "0.22.0", "0.23.0", "0.23.1",
)  # fmt: skip
"""Every Cog SDK release on PyPI (``cog``), oldest first."""

COGLET_SINCE = (0, 17, 0)
"""The first SDK whose ``cog.server.http`` is coglet (and which needs the ``coglet`` wheel)."""

LEGACY_SINCE = (0, 7, 0)
"""The first SDK whose Python server has ``/health-check``, cancel, webhooks and ``PORT``."""

FALLBACK_VERSION = KNOWN_VERSIONS[-1]


def normalize(text: str) -> str:
    """``"v0.15.8"`` -> ``"0.15.8"`` (CI files often carry the tag's ``v``)."""
    text = text.strip()
    return text[1:] if text[:1] in ("v", "V") else text


def is_known(version: str) -> bool:
    """Whether ``version`` is a released SDK (or the one installed here)."""
    return version in KNOWN_VERSIONS or version == installed_version()


def parse(version: str) -> tuple[int, ...]:
    """``"0.15.8"`` -> ``(0, 15, 8)`` (a pre-release suffix is ignored)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


def server_kind(version: str) -> ServerKind:
    """Which prediction server SDK ``version`` ships (see the module table)."""
    v = parse(version)
    if v >= COGLET_SINCE:
        return "coglet"
    if v >= LEGACY_SINCE:
        return "legacy"
    return "unsupported"


def takes_host_flag(version: str) -> bool:
    """Whether SDK ``version``'s server takes ``--host`` (0.9.10 on; before: every address)."""
    return parse(version) >= (0, 9, 10)


def sdk_requirements(version: str) -> list[str]:
    """The packages that make SDK ``version`` in an environment.

    From 0.17 on the SDK depends on ``coglet`` without an upper pin, while ``cog
    build`` installs the coglet release of the same number; pin it the same way.
    """
    reqs = [f"cog=={version}"]
    if server_kind(version) == "coglet":
        reqs.append(f"coglet=={version}")
    return reqs


@functools.cache
def installed_version() -> str:
    """The Cog SDK installed next to cogfleet (the default pin)."""
    import importlib.metadata  # only here: it is slow to import

    try:
        return importlib.metadata.version("cog")
    except importlib.metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def unknown_message(version: object) -> str:
    """Why ``version`` is not usable, with the nearest releases as a hint."""
    shown = repr(version) if not isinstance(version, str) else f'"{version}"'
    hint = f"known: {KNOWN_VERSIONS[0]} … {KNOWN_VERSIONS[-1]}"
    if isinstance(version, str):
        wanted = parse(normalize(version)) if re.match(r"^v?\d+\.\d+", version.strip()) else ()
        if len(wanted) >= 2:
            same_minor = [v for v in KNOWN_VERSIONS if parse(v)[:2] == wanted[:2]]
            if same_minor:
                hint = f"{wanted[0]}.{wanted[1]} releases: " + ", ".join(same_minor)
    elif isinstance(version, float):
        hint += "; quote the version so YAML keeps it a string"
    return f"cog version {shown} is not a released Cog version ({hint})"


_CLI_VERSION = re.compile(r"\bversion\s+v?(\d+\.\d+\.\d+)")


def cog_cli_version(cog: str) -> str | None:
    """The version ``cog --version`` of the CLI at ``cog`` reports (None: it does not say)."""
    try:
        out = subprocess.run(
            [cog, "--version"], capture_output=True, text=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    match = _CLI_VERSION.search(out.stdout + out.stderr)
    return match.group(1) if match else None
