"""The local Replicate-compatible server: HTTP API, state, and coglet runners."""

from cogfleet.server._embedded import (
    LocalServer,
    add_serve_arguments,
    run_serve,
    serve_forever,
)
from cogfleet.server._push import build_id_for, promote_version, push_build, version_id_for

__all__ = [
    "LocalServer",
    "add_serve_arguments",
    "build_id_for",
    "promote_version",
    "push_build",
    "run_serve",
    "serve_forever",
    "version_id_for",
]
