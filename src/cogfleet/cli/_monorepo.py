"""Commands on the monorepo itself: ``list``, ``render``, ``lint``, ``plugins``, ``select``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cogfleet._errors import ExitCode, PluginError, UsageError
from cogfleet.cli._common import Command, load_plugins, load_repo, out, variants_argument

if TYPE_CHECKING:
    from cogfleet._render import Rendered


def cmd_list(ns: argparse.Namespace) -> int:
    """List the variants of the monorepo."""
    repo = load_repo(ns)
    models = {v.name: v.model for v in repo.variants.values()}
    if any(model is None for model in models.values()):
        # an adopted repo names each model in its config, not in variants.yaml
        from cogfleet._render import config_model

        # listing does not need plugins: without them the configs' own model names
        # show (render and lint name a broken plugin)
        with contextlib.suppress(PluginError):
            plugins = load_plugins(repo.root)
            models = {v.name: config_model(repo, v, plugins) for v in repo.variants.values()}
    if ns.json:
        listed = [
            {**v.to_json(repo.root), "model": models[v.name]} for v in repo.variants.values()
        ]
        out(json.dumps(listed, indent=2))
        return ExitCode.OK
    width = max((len(n) for n in repo.variants), default=0)
    for v in repo.variants.values():
        out(f"{v.name:<{width}}  {v.family:<12}  {models[v.name] or '-'}")
    return ExitCode.OK


def cmd_render(ns: argparse.Namespace) -> int:
    """Render build folders."""
    from cogfleet._render_folder import render_variants

    repo = load_repo(ns)
    variants = repo.select(ns.variants)
    for rendered in render_variants(repo, variants, load_plugins(repo.root)):
        changed = len(rendered.written) + len(rendered.removed)
        out(
            f"{rendered.variant.name}: {repo.rel(rendered.build_dir)} "
            f"({len(rendered.files)} files, {changed} changed)"
        )
        for warning in rendered.warnings:
            sys.stderr.write(f"warning: {rendered.variant.name}: {warning}\n")
    return ExitCode.OK


def cmd_lint(ns: argparse.Namespace) -> int:
    """Render, then lint each variant (ruff, cog.yaml, config, lint plugins).

    Warnings (``cog.yaml`` deprecations, :class:`~cogfleet.LintWarning` answers) go to
    stderr with the variant's name and fail nothing.
    """
    from cogfleet import LintWarning
    from cogfleet._render_folder import render_variants

    repo = load_repo(ns)
    variants = repo.select(ns.variants)
    plugins = load_plugins(repo.root)
    failed = False
    input_warnings: dict[str, list[str]] = {}

    def inputs_checked(r: Rendered) -> None:  # before any build folder is written
        from cogfleet._config_inputs import check_rendered

        input_warnings[r.variant.name] = check_rendered(  # a source Cog refuses: exit 2
            r, r.config, repo.pin_for(r.variant).version, root=repo.root, strict=True
        )

    for rendered in render_variants(repo, variants, plugins, check=inputs_checked):
        variant = rendered.variant
        for warning in input_warnings.get(variant.name, []):
            sys.stderr.write(f"warning: {variant.name}: {warning}\n")
        answers = plugins.lint(variant, rendered.build_dir, repo.pin_for(variant))
        warnings = [*rendered.warnings, *(a for a in answers if isinstance(a, LintWarning))]
        problems = [a for a in answers if not isinstance(a, LintWarning)]
        for warning in warnings:
            sys.stderr.write(f"warning: {variant.name}: {warning}\n")
        if problems:
            failed = True
            for problem in problems:
                out(problem)
        else:
            out(f"{rendered.variant.name}: ok")
    return ExitCode.CHECKS_FAILED if failed else ExitCode.OK


def cmd_plugins(ns: argparse.Namespace) -> int:
    """List loaded plugins, where each came from, and its hooks."""
    try:
        root = load_repo(ns).root
    except UsageError:
        root = None  # outside a monorepo: built-ins and entry points only
    plugins = load_plugins(root)
    infos = plugins.describe()
    if ns.json:
        out(json.dumps([info.__dict__ | {"hooks": list(info.hooks)} for info in infos]))
        return ExitCode.OK
    for info in infos:
        out(f"{info.name}  [{info.source}]")
        for hook in info.hooks:
            out(f"    {hook}")
    checkers = plugins.checkers()
    out("checkers: " + ", ".join(checkers))
    return ExitCode.OK


def cmd_select(ns: argparse.Namespace) -> int:
    """Make the repo root the Cog folder of one variant (as a select script does)."""
    from cogfleet._select import clear_selection, select

    chosen = [what for what, given in (("VARIANT", ns.variant), ("--list", ns.list),
                                        ("--clear", ns.clear)) if given]
    if len(chosen) > 1:
        raise UsageError(
            f"select: give one of VARIANT, --list or --clear, not {' and '.join(chosen)}"
        )
    repo = load_repo(ns)
    if ns.list:
        for name in repo.variants:
            out(name)
        return ExitCode.OK
    if ns.clear:
        selection = clear_selection(repo)
    elif not ns.variant:
        raise UsageError("select: give a VARIANT, --list or --clear")
    else:
        selection = select(repo, repo.select([ns.variant])[0], load_plugins(repo.root))
    for rel in selection.removed:
        out(f"removed {rel}")
    for rel in selection.written:
        out(f"wrote {rel}")
    for rel in selection.restored:
        out(f"restored {rel} (as it was before the first select)")
    return ExitCode.OK


def cmd_init(ns: argparse.Namespace) -> int:
    """Adopt a model-ci-template repo in place, or scaffold a monorepo in an empty folder."""
    from cogfleet.adopt import run_init

    root = Path(ns.repo).resolve() if ns.repo else Path.cwd()
    if not root.is_dir():
        raise UsageError(f"--repo {ns.repo}: not a folder")
    run_init(root, dry_run=ns.dry_run, out=out)
    return ExitCode.OK


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _select_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant", nargs="?", metavar="VARIANT")
    p.add_argument("--list", action="store_true", help="list variant names")
    p.add_argument("--clear", action="store_true",
                   help="remove the root files the last select wrote")


def _init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show what would be written")


COMMANDS = [
    Command("init", "adopt a select-script repo in place, or scaffold one", cmd_init,
            _init_arguments,
            description="In a model-ci-template repo (base cog.yaml, overlays, cog-safe-push "
            "configs, select script), write variants.yaml and [tool.cogfleet] without moving "
            "or rewriting any file; in an empty folder, scaffold a minimal monorepo."),
    Command("adopt", "the same as init (adopt a select-script repo in place)", cmd_init,
            _init_arguments,
            description="The same as `cogfleet init`: in a select-script repo, write "
            "variants.yaml and [tool.cogfleet] without moving or rewriting any file."),
    Command("list", "list the variants", cmd_list, _json_flag),
    Command("render", "render build folders (.cogfleet/build/<variant>/)", cmd_render,
            variants_argument),
    Command("lint", "render and lint variants", cmd_lint, variants_argument),
    Command("plugins", "list loaded plugins and their hooks", cmd_plugins, _json_flag),
    Command("select", "write cog.yaml + cog-safe-push.yaml for a variant to the root",
            cmd_select, _select_arguments),
]
