"""``cogfleet serve``: the local Replicate-compatible server (its flags come from the server)."""

from __future__ import annotations

import argparse

from cogfleet.cli._common import Command


def cmd_serve(ns: argparse.Namespace) -> int:
    """Run the local Replicate-compatible server."""
    from cogfleet.server import run_serve

    return run_serve(ns)


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    from cogfleet.server import add_serve_arguments

    add_serve_arguments(p)


COMMANDS = [
    Command("serve", "run the local Replicate-compatible server", cmd_serve, _serve_arguments),
]
