"""What an environment is made of, read from a build folder's ``cog.yaml``.

``build.python_version``, ``build.python_packages`` / ``build.python_requirements``
and the pinned Cog SDK make an environment; ``build.run`` commands are part of it
only when they are executed locally (``--run-build-commands``). ``gpu``,
``system_packages`` and the other build keys cannot be reproduced without Docker;
they become notes instead.

Requirement files are read the way pip reads them: comments, line continuations,
``-r``/``-c`` includes (relative to the including file) and option lines
(``--extra-index-url`` …, passed through to the installer). A requirement that
points at a local file or folder is installed from its absolute path and counted
in the environment's identity by its *content*, so two build folders with the same
wheel share one environment.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cogfleet._errors import ConfigError
from cogfleet.runtime._versions import COGLET_SINCE, parse

# Option lines of a requirements file that uv understands and that only steer where
# packages come from; they are passed through unchanged.
_PASS_OPTIONS = (
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index",
    "--pre", "--prefer-binary", "--only-binary", "--no-binary", "--trusted-host",
)  # fmt: skip
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(.+)$")
_EDITABLE = re.compile(r"^(-e|--editable)(?:\s+|=)(.+)$")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_TRUE = frozenset({"true", "yes", "on", "1"})


@dataclass(frozen=True)
class BuildSpec:
    """The parts of a cog.yaml that decide (or annotate) the local environment."""

    cog_yaml: Path
    python: str
    """``build.python_version`` as written (``"3.11"``, ``"3.11.7"``)."""
    requirements: tuple[str, ...]
    """What to install, local paths made absolute (from python_packages or the file)."""
    identity: tuple[str, ...]
    """``requirements`` with local paths replaced by a content hash (the env's key)."""
    constraints: tuple[str, ...] = ()
    run_commands: tuple[str, ...] = ()
    gpu: bool = False
    system_packages: tuple[str, ...] = ()
    requirement_names: dict[str, str] = field(default_factory=dict, compare=False)
    """Canonical project name -> the requirement line that names it (for errors)."""


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_name(line: str) -> str | None:
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if match is None or line.startswith("-"):
        return None
    return canonical_name(match.group(1))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
            for name in sorted(files):
                full = Path(root) / name
                digest.update(str(full.relative_to(path)).encode() + b"\0")
                digest.update(full.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(" ".join(pending.split()))
    return lines


@dataclass
class _Collected:
    install: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)


def _local_target(text: str, base: Path) -> Path | None:
    """The local file/folder a requirement line points at, if it is one."""
    candidate = text[len("file://") :] if text.startswith("file://") else text
    if candidate.startswith(("http://", "https://", "git+")) or "@" in candidate.split("/")[0]:
        return None
    looks_like_path = candidate.startswith((".", "/", "~")) or candidate.endswith(
        (".whl", ".tar.gz", ".zip")
    )
    if not looks_like_path:
        return None
    path = (base / os.path.expanduser(candidate)).resolve()
    return path if path.exists() else None


def _add_line(
    line: str, base: Path, out: _Collected, build_dir: Path, *, constraint: bool
) -> None:
    editable = _EDITABLE.match(line)
    if editable:
        # The environment outlives the build folder: install a copy, not a link to it.
        line = editable.group(2).strip()
    local = _local_target(line, base)
    if local is not None:
        try:
            shown = local.relative_to(build_dir).as_posix()
        except ValueError:
            shown = str(local)
        install, ident = str(local), f"{shown}#sha256={_file_digest(local)}"
    else:
        install = ident = line
    if constraint:
        out.constraints.append(install)
        out.identity.append(f"-c {ident}")
        return
    out.install.append(install)
    out.identity.append(ident)
    name = _project_name(line if local is None else local.name.split("-")[0])
    if name and (local is None or local.is_file()):
        out.names.setdefault(name, line)


def _read_requirements(
    path: Path, build_dir: Path, out: _Collected, seen: set[Path], *, constraint: bool = False
) -> None:
    display = path.relative_to(build_dir) if path.is_relative_to(build_dir) else path
    if path in seen:
        return
    seen.add(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(display, f"cannot read requirements: {exc.strerror}") from None
    for line in _logical_lines(text):
        include = _INCLUDE.match(line)
        if include:
            nested = (path.parent / include.group(2).strip()).resolve()
            is_constraint = constraint or include.group(1) in ("-c", "--constraint")
            if not nested.is_file():
                raise ConfigError(display, f"{line}: no such file")
            _read_requirements(nested, build_dir, out, seen, constraint=is_constraint)
        elif line.startswith("-") and not _EDITABLE.match(line):
            if line.split()[0].split("=")[0] not in _PASS_OPTIONS:
                raise ConfigError(display, f"{line.split()[0]}: option not supported here")
            out.install.append(line)
            out.identity.append(line)
        else:
            _add_line(line, path.parent, out, build_dir, constraint=constraint)


def _strings(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, f"{where}: expected a list of strings")
    return tuple(value)


def _run_commands(value: Any, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(path, "build.run: expected a list")
    commands = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            item = item.get("command")
        if not isinstance(item, str):
            raise ConfigError(path, f"build.run[{index}]: expected a command string")
        commands.append(item)
    return tuple(commands)


def default_python(cog_version: str) -> str:
    """Cog's ``python_version`` when cog.yaml has no ``build`` section."""
    return "3.13" if parse(cog_version) >= COGLET_SINCE else "3.12"


def read_build_spec(build_dir: Path, cog_version: str) -> BuildSpec:
    """The environment-relevant parts of ``build_dir/cog.yaml`` (ConfigError on bad input)."""
    path = build_dir / "cog.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror}") from None
    try:
        # BaseLoader keeps every scalar as written: python_version 3.10 stays "3.10".
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds no objects
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a mapping at the top level")
    build = data.get("build") or {}
    if not isinstance(build, dict):
        raise ConfigError(path, "build: expected a mapping")
    python = build.get("python_version", default_python(cog_version))
    if not isinstance(python, str) or not _VERSION.match(python.strip()):
        raise ConfigError(path, f"build.python_version: expected e.g. \"3.11\", got {python!r}")
    packages = _strings(build.get("python_packages"), "build.python_packages", path)
    requirements_file = build.get("python_requirements")
    out = _Collected()
    if packages and requirements_file:
        raise ConfigError(path, "build: python_packages and python_requirements are exclusive")
    for line in packages:
        _add_line(line.strip(), build_dir, out, build_dir, constraint=False)
    if requirements_file:
        if not isinstance(requirements_file, str):
            raise ConfigError(path, "build.python_requirements: expected a file path")
        req_path = (build_dir / requirements_file).resolve()
        if not req_path.is_file():
            raise ConfigError(
                path, f"build.python_requirements: {requirements_file} does not exist"
            )
        _read_requirements(req_path, build_dir, out, set())
    return BuildSpec(
        cog_yaml=path,
        python=python.strip(),
        requirements=tuple(out.install),
        identity=tuple(out.identity),
        constraints=tuple(out.constraints),
        # Cog runs the old build.pre_install after build.run, as more run commands.
        run_commands=_run_commands(build.get("run"), path)
        + _strings(build.get("pre_install"), "build.pre_install", path),
        gpu=str(build.get("gpu", "false")).lower() in _TRUE,
        system_packages=_strings(build.get("system_packages"), "build.system_packages", path),
        requirement_names=out.names,
    )
