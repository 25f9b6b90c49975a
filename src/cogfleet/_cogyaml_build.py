"""The ``build:`` rules of a cog.yaml that depend on the pinned Cog release.

Facts read from Cog's source at its release tags (``pkg/config/config.go``,
``validate.go``, ``compatibility.go`` and the CUDA base-image tables), kept here as
data so that a cog.yaml Cog would refuse at ``cog build`` is refused before anything
is rendered, built or pushed:

- ``python_version``: at least 3.10 from Cog 0.17 (3.8 from 0.9.6, before that what
  the SDK installs on), and a CPython release that exists: Cog builds on the
  ``python:X.Y`` images or ``uv python install X.Y``, which have nothing newer.
- ``cuda`` (with ``gpu: true``): a CUDA release the pinned Cog has a base image for,
  and a ``cudnn`` that image carries. Without ``gpu: true`` Cog ignores both.
- ``sdk_version``: ``prerelease`` or an SDK release from 0.16.0 on (Cog's minimum).
- ``python_packages`` and ``python_requirements`` exclude each other, and each package
  is a requirement pip can read (:mod:`cogfleet._requirements`).

:func:`build_problems` returns every problem as ``(key path, text)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cogfleet._requirements import requirement_problem

__all__ = ["build_problems", "python_range"]

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")

NEWEST_PYTHON = (3, 15)
"""The newest CPython minor release (3.15.0 came out in October 2026)."""

_MIN_CUDA_MAJOR = 11
_MIN_SDK = (0, 16, 0)

# (first Cog release that has the image, CUDA release, cuDNN major it carries)
_CUDA_IMAGES: tuple[tuple[tuple[int, int, int], str, str], ...] = (
    *(((0, 8, 0), cuda, "8") for cuda in (
        "11.0.3", "11.1.1", "11.2.2", "11.3.1", "11.4.3", "11.5.2", "11.6.2", "11.7.1",
        "11.8.0", "12.0.0", "12.0.1", "12.1.0", "12.1.1",
    )),
    ((0, 9, 0), "12.2.2", "8"),
    ((0, 9, 8), "11.6.1", "8"),
    ((0, 9, 8), "12.3.2", "9"),
    ((0, 9, 8), "12.4.1", "9"),
    *(((0, 12, 0), cuda, "9") for cuda in ("12.5.1", "12.6.0", "12.6.1", "12.6.2")),
    *(((0, 15, 10), cuda, "9") for cuda in ("12.6.3", "12.8.0", "12.8.1", "12.9.0", "12.9.1")),
    *(((0, 17, 0), cuda, "9") for cuda in ("13.0.0", "13.0.1", "13.0.2", "13.1.1")),
    *(((0, 20, 0), cuda, "9") for cuda in ("13.0.3", "13.1.2", "13.2.0", "13.2.1")),
)  # fmt: skip

_Key = tuple[str | int, ...]


def _version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _shown(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def python_range(cog: tuple[int, ...] | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """The oldest and newest ``python_version`` (major, minor) Cog ``cog`` builds."""
    if cog is None or cog >= (0, 17):
        oldest = (3, 10)
    elif cog >= (0, 9, 6):
        oldest = (3, 8)  # the Go CLI's minimum until 0.17
    elif cog[:2] == (0, 8) and cog < (0, 8, 1):
        oldest = (3, 8)  # the SDK's requires-python
    elif cog >= (0, 8):
        oldest = (3, 7)
    else:
        oldest = (3, 6)
    return oldest, NEWEST_PYTHON


def _cuda_images(cog: tuple[int, ...] | None) -> list[tuple[str, str]]:
    return [(cuda, cudnn) for since, cuda, cudnn in _CUDA_IMAGES if cog is None or cog >= since]


def _matches(wanted: tuple[int, ...], release: str) -> bool:
    """Cog's rule: the same major.minor, and the same patch when both have one."""
    have = tuple(int(part) for part in release.split("."))
    return wanted[:2] == have[:2] and (len(wanted) < 3 or wanted[2] == have[2])


def _python_problem(raw: str, cog: tuple[int, ...] | None, cog_version: str | None) -> str | None:
    version = _version(raw)
    if version is None or len(version) < 2:
        return f'expected MAJOR.MINOR such as "3.11", got {raw!r}'
    oldest, newest = python_range(cog)
    which = f"Cog {cog_version}" if cog_version else "cog"
    if version[:2] < oldest:
        hint = ' (write it quoted: "3.10")' if raw == "3.1" else ""
        return f"{raw!r} is too old: {which} needs Python {_shown(oldest)} or newer{hint}"
    if version[:2] > newest:
        return (f"{raw!r} is not a released Python: {which} builds Python "
                f"{_shown(oldest)} to {_shown(newest)}")
    return None


def _cuda_problems(
    build: Mapping[str, Any], raw: Mapping[_Key, str], cog: tuple[int, ...] | None,
    cog_version: str | None,
) -> list[tuple[_Key, str]]:
    problems: list[tuple[_Key, str]] = []
    cuda_raw = raw.get(("build", "cuda")) if isinstance(build.get("cuda"), str) else None
    cuda = _version(cuda_raw) if cuda_raw is not None else None
    if cuda_raw is not None and cuda is None:
        problems.append(
            (("build", "cuda"), f'expected MAJOR.MINOR such as "12.4", got {cuda_raw!r}'))
    elif cuda is not None and cuda[0] < _MIN_CUDA_MAJOR:
        problems.append(
            (("build", "cuda"), f"{cuda_raw!r} is too old: cog needs CUDA 11 or newer"))
    elif cuda is not None and build.get("gpu") is True and cog is not None and cog >= (0, 8):
        images = [(rel, cudnn) for rel, cudnn in _cuda_images(cog) if _matches(cuda, rel)]
        which = f"Cog {cog_version}"
        if not images:
            known = sorted({".".join(r.split(".")[:2]) for r, _ in _cuda_images(cog)},
                           key=lambda v: tuple(map(int, v.split("."))))
            problems.append((("build", "cuda"), f"CUDA {cuda_raw} is not supported by {which} "
                             f"(it has images for CUDA {', '.join(known)})"))
        cudnn = raw.get(("build", "cudnn")) if isinstance(build.get("cudnn"), str) else None
        if images and cudnn is not None and cudnn not in {c for _, c in images}:
            choices = ", ".join(sorted({c for _, c in images}))
            problems.append((("build", "cudnn"), f"CuDNN {cudnn!r} does not go with CUDA "
                             f"{cuda_raw} in {which} (compatible: {choices})"))
    return problems


def _sdk_problem(value: str) -> str | None:
    if value == "prerelease":
        return None
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", value)
    if match is None:
        return f'expected a Cog SDK version such as "0.23.1" or "prerelease", got {value!r}'
    if tuple(int(part) for part in match.groups()) < _MIN_SDK:
        return f"{value!r} is below the oldest SDK Cog installs ({_shown(_MIN_SDK)})"
    return None


def build_problems(
    build: Mapping[str, Any], raw: Mapping[_Key, str], cog_version: str | None = None
) -> list[tuple[_Key, str]]:
    """Every problem of the ``build:`` mapping under the pinned ``cog_version``.

    ``raw`` maps key paths to the scalar text written in the file (version fields are
    read as written: ``3.10`` is not the float 3.1). Values of the wrong type are left
    to the JSON Schema check.
    """
    cog = tuple(int(p) for p in re.findall(r"\d+", cog_version)[:3]) if cog_version else None
    problems: list[tuple[_Key, str]] = []
    python = raw.get(("build", "python_version"))
    if isinstance(build.get("python_version"), str) and python is not None:
        problem = _python_problem(python, cog, cog_version)
        if problem:
            problems.append((("build", "python_version"), problem))
    problems += _cuda_problems(build, raw, cog, cog_version)
    sdk = build.get("sdk_version")
    if isinstance(sdk, str):
        problem = _sdk_problem(sdk)
        if problem:
            problems.append((("build", "sdk_version"), problem))
    packages = build.get("python_packages")
    for index, package in enumerate(packages if isinstance(packages, list) else []):
        problem = requirement_problem(package) if isinstance(package, str) else None
        if problem:
            problems.append((("build", "python_packages", index), problem))
    if "python_packages" in build and "python_requirements" in build:
        problems.append((("build", "python_packages"),
                         "set either python_packages or python_requirements, not both"))
    return problems
