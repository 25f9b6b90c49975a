"""CI commands: ``matrix``, ``affected``, ``canary`` and ``cog-version``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cogfleet._errors import CogfleetError, ExitCode, UsageError
from cogfleet.cli._common import Command, add_target_flags, load_plugins, load_repo, out
from cogfleet.cli._preflight import check_environment, check_local_url, positive_seconds


def _variant_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--variants: give a comma-separated list of variants, or 'all'")
    return names


def cmd_matrix(ns: argparse.Namespace) -> int:
    """Print the GitHub Actions matrix of the variants to build, as one line of JSON."""
    from cogfleet._affected import affected_variants, matrix, model_of

    repo = load_repo(ns)
    plugins = load_plugins(repo.root)
    wanted = (  # an empty --variants is an error, never "every variant"
        {v.name for v in repo.select(_variant_names(ns.variants))}
        if ns.variants is not None else None
    )
    if ns.changed_since is not None:
        pairs = [(a.variant, a.model) for a in affected_variants(repo, ns.changed_since, plugins)]
    else:
        pairs = [(v.name, model_of(repo, v, plugins)) for v in repo.variants.values()]
    if wanted is not None:
        pairs = [e for e in pairs if e[0] in wanted]
    entries = [(name, model, repo.pin_for(repo.variants[name]).version) for name, model in pairs]
    out(json.dumps(matrix(entries), separators=(",", ":")))
    return ExitCode.OK


def cmd_cog_version(ns: argparse.Namespace) -> int:
    """Print the Cog version a variant (or, without one, the repository) is pinned to."""
    from cogfleet.runtime import installed_pin

    repo = load_repo(ns)
    if ns.variant is not None:  # "" (an unset $VARIANT) is an unknown variant, not none
        pin = repo.pin_for(repo.select([ns.variant])[0])
    else:
        pin = repo.settings.cog_pin or installed_pin()
    out(pin.describe() if ns.verbose else pin.version)
    return ExitCode.OK


def _cog_version_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant", nargs="?", metavar="VARIANT")


def cmd_affected(ns: argparse.Namespace) -> int:
    """Print the variants the changes since REF affect (``--explain``: and why)."""
    from cogfleet._affected import affected_variants

    repo = load_repo(ns)
    found = affected_variants(repo, ns.since)
    if ns.json:
        out(json.dumps([{"variant": a.variant, "model": a.model, "changed": a.reasons}
                         for a in found]))
        return ExitCode.OK
    for entry in found:
        if ns.explain:
            for reason in entry.reasons:
                out(f"{entry.variant}: {reason}")
        else:
            out(entry.variant)
    if not found:
        sys.stderr.write(f"no variant is affected by the changes since {ns.since}\n")
    return ExitCode.OK


def _canary_root(ns: argparse.Namespace) -> Path | None:
    """Where the embedded server keeps its state: the monorepo when there is one."""
    from cogfleet._repo import Repo

    if ns.repo:
        return Path(ns.repo).resolve()
    try:
        return Repo.find_root()
    except UsageError:
        return None  # a canary needs no monorepo; state goes under the current folder


def _summary(line: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def cmd_canary(ns: argparse.Namespace) -> int:
    """Push a tiny fresh model and check a prediction on exactly that version."""
    import asyncio

    import httpx
    from replicate.exceptions import ReplicateError

    from cogfleet._canary import CanaryResult, account_owner, canary_model, run_canary
    from cogfleet._target import open_target

    # what fails a canary run besides cogfleet's own errors: the transport and the client
    # (and answers of the wrong shape, which the client's models refuse as values)
    canary_errors = (CogfleetError, ReplicateError, httpx.HTTPError, OSError, RuntimeError,
                     ValueError, TypeError, KeyError)

    check_environment(ns.target)
    model = canary_model(ns.model)  # a malformed name is a usage error (exit 2), not a failure
    if ns.local_url is not None and ns.target == "local":
        ns.local_url = check_local_url(ns.local_url)
    start = time.monotonic()
    state: dict[str, Any] = {"model": model}

    async def go(target: Any) -> CanaryResult:
        name = model or canary_model(None, await account_owner(target))
        assert name is not None
        state["model"] = name
        return await run_canary(target, name, timeout=ns.timeout)

    try:
        with open_target(ns.target, repo_root=_canary_root(ns), local_url=ns.local_url) as target:
            result = asyncio.run(go(target))
    except canary_errors as exc:
        message = str(exc) or type(exc).__name__
        where = f"{ns.target} ({state['model'] or 'model not resolved'})"
        sys.stderr.write(
            "\n" + "!" * 72 + f"\nCANARY FAILED on {where}: {message}\n" + "!" * 72 + "\n"
        )
        _summary(f"### :x: canary failed on {where}\n\n{message}")
        return ExitCode.CHECKS_FAILED
    total = time.monotonic() - start
    for step in result.steps:
        out(f"canary: {step}")
    out(f"canary: ok on {ns.target}: {result.model}:{result.version} in {total:.1f}s "
         f"(push {result.push_s:.1f}s, prediction {result.predict_s:.1f}s)")
    _summary(f"### :white_check_mark: canary ok on {ns.target}\n\n"
             f"`{result.model}:{result.version}`: push {result.push_s:.1f}s, "
             f"prediction {result.predict_s:.1f}s, total {total:.1f}s")
    return ExitCode.OK


def _matrix_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--changed-since", metavar="REF",
                   help="only variants affected by changes since REF (default: all variants)")
    p.add_argument("--variants", metavar="A,B|all",
                   help="only these variants (comma list, or 'all')")


def _affected_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", required=True, metavar="REF", help="base ref, e.g. origin/main")
    p.add_argument("--explain", action="store_true",
                   help="print 'variant: changed-file' for each reason")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _canary_arguments(p: argparse.ArgumentParser) -> None:
    add_target_flags(p)
    p.add_argument("--model", metavar="OWNER[/NAME]",
                   help="canary model, or its owner (name cogfleet-canary); default: "
                   "$COGFLEET_CANARY_MODEL, else <account>/cogfleet-canary")
    p.add_argument("--timeout", type=positive_seconds, default=600.0,
                   help="seconds the prediction may take (default: 600)")


COMMANDS = [
    Command(
        "matrix", "CI matrix JSON of the variants to build", cmd_matrix, _matrix_arguments,
        "Print {\"include\": [{\"variant\": ..., \"model\": ..., \"cog_version\": ...}]} on "
        "one line, for GitHub Actions' strategy.matrix: ${{ fromJson(...) }}.",
    ),
    Command(
        "cog-version", "the Cog version a variant is pinned to", cmd_cog_version,
        _cog_version_arguments,
        "Print the Cog version VARIANT (default: the repository) builds and runs with: its "
        "cog_version in variants.yaml, else [tool.cogfleet] cog-version, else the installed "
        "Cog SDK. -v also says where the pin is written.",
    ),
    Command(
        "affected", "variants affected by changes since a ref", cmd_affected,
        _affected_arguments,
        "List the variants that changes since REF affect (merge base of REF and "
        "HEAD to the working tree).",
    ),
    Command(
        "canary", "push a tiny model and check a prediction on it", cmd_canary,
        _canary_arguments,
        "Push a freshly generated model with a unique marker to the canary model, "
        "predict on exactly that version and check the marker comes back. Exit 1 on any "
        "failure.",
    ),
]
