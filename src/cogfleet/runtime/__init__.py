"""Cog versions (pins, known releases) and the isolated environments versions run in.

``_versions``  which Cog releases exist and which prediction server each ships
``_pin``       where a variant's Cog version comes from (CLI, variants.yaml, pyproject)
``_spec``      what an environment is made of, read from a build folder's cog.yaml
``_python``    finding the interpreter ``python_version`` asks for
``_pipconf``   the package indexes pip on this machine is configured with
``_envs``      the content-addressed store of uv-built environments
``_container`` the file system a model's process sees in its container (/src, /tmp)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Pins are read by every command; environments only when something is built or run.
from cogfleet.runtime._options import ENVIRONMENTS, EnvironmentKind, RuntimeOptions
from cogfleet.runtime._pin import (
    CogPin,
    check_version,
    cli_pin,
    installed_pin,
)
from cogfleet.runtime._versions import (
    KNOWN_VERSIONS,
    cog_cli_version,
    installed_version,
    is_known,
    sdk_requirements,
    server_kind,
    takes_host_flag,
)

_LAZY = {
    "LIBC": "_container",
    "container_view": "_container",
    "ENV_DIR_VARIABLE": "_envs",
    "EnvBuildError": "_envs",
    "EnvInfo": "_envs",
    "EnvStore": "_envs",
    "Environment": "_envs",
    "build_notes": "_envs",
    "cuda_available": "_envs",
    "disk_usage": "_envs",
    "scrubbed_environ": "_envs",
    "IndexConfig": "_pipconf",
    "pip_index_config": "_pipconf",
    "Interpreter": "_python",
    "PythonNotFound": "_python",
    "find_python": "_python",
    "uv_bin": "_python",
    "BuildSpec": "_spec",
    "read_build_spec": "_spec",
}

if TYPE_CHECKING:
    from cogfleet.runtime._container import LIBC, container_view
    from cogfleet.runtime._envs import (
        ENV_DIR_VARIABLE,
        EnvBuildError,
        EnvInfo,
        Environment,
        EnvStore,
        build_notes,
        cuda_available,
        disk_usage,
        scrubbed_environ,
    )
    from cogfleet.runtime._pipconf import IndexConfig, pip_index_config
    from cogfleet.runtime._python import Interpreter, PythonNotFound, find_python, uv_bin
    from cogfleet.runtime._spec import BuildSpec, read_build_spec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

__all__ = [
    "ENVIRONMENTS",
    "ENV_DIR_VARIABLE",
    "KNOWN_VERSIONS",
    "LIBC",
    "BuildSpec",
    "CogPin",
    "EnvBuildError",
    "EnvInfo",
    "EnvStore",
    "Environment",
    "EnvironmentKind",
    "IndexConfig",
    "Interpreter",
    "PythonNotFound",
    "RuntimeOptions",
    "build_notes",
    "check_version",
    "cli_pin",
    "cog_cli_version",
    "container_view",
    "cuda_available",
    "disk_usage",
    "find_python",
    "installed_pin",
    "installed_version",
    "is_known",
    "pip_index_config",
    "read_build_spec",
    "scrubbed_environ",
    "sdk_requirements",
    "server_kind",
    "takes_host_flag",
    "uv_bin",
]
