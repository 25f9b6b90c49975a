"""What ``cogfleet init`` writes for a repo it adopts in place.

A repo of model-ci-template's shape keeps a base ``cog.yaml`` (usually
``cog.yaml.template``), one overlay per variant merged onto it by its select script
(``yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)' BASE OVERLAY``, or
``cat`` of both), one cog-safe-push config per variant and a push workflow. ``init``
reads the select script (:mod:`cogfleet.adopt._read`) and the workflows (the Cog version
they install, the official models they push), and writes:

- ``variants.yaml``: the family at the repository root, its base and overlays, one entry
  per variant that has both an overlay and a config, where its config is (``config:``,
  unless a plain configs folder), and the official models;
- ``[tool.cogfleet]``, appended to ``pyproject.toml`` (created if missing): the configs
  folder when it is not the default, and ``cog-version`` when a workflow pins one.

The other shapes: a script that copies a whole cog.yaml per variant (``cp
configs/$1/cog.yaml cog.yaml``: that file is each variant's template); one that exports
variables for ``envsubst``, names each variant's files in a ``case``, or generates
cog.yaml (``sed``, a heredoc, ``python -c``), which runs once per config in a scratch
copy (:mod:`cogfleet.adopt._scriptrun`), its outputs read as copies of repo files or
read back as a template with text replaced (:mod:`cogfleet.adopt._derive`); a repo of
one Cog folder per variant (``models/<name>/``: ``source:`` per variant); and a Cog
folder at the top with a config per variant (every variant's template is cog.yaml).

No file of the repo is moved or rewritten (a heredoc's body is the one new file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from cogfleet._render import CONFIG_NAME
from cogfleet._settings import DEFAULT_CONFIGS_DIR
from cogfleet.adopt._plancommon import (
    CONFIGS_WANTED,
    Plan,
    check_names,
    config_file,
    family_name,
    finish,
    scalar,
    where,
)
from cogfleet.adopt._planrun import plan_by_running
from cogfleet.adopt._read import (
    BASE_NAMES,
    NAME_RE,
    OVERLAY_DIRS,
    LayoutError,
    Select,
    config_pattern,
    one_of,
    per_variant_files,
    read_select,
    stems,
)

__all__ = ["Plan", "plan_adopt"]


# --- adopting --------------------------------------------------------------------------


def plan_adopt(root: Path) -> Plan | None:
    """The plan for a model-ci-template repo at ``root``; ``None`` when nothing of it is there."""
    select = read_select(root)
    base = select.base if select and select.base else one_of(
        root, BASE_NAMES, "base cog.yaml", folder=False
    )
    overlay = select.overlay if select and select.overlay else None
    if overlay is None:
        overlay_dir = one_of(root, OVERLAY_DIRS, "overlay folder", folder=True)
        overlay = f"{overlay_dir}/{{variant}}.yaml" if overlay_dir else None
    config = config_pattern(root, select)
    if not any((select, base, overlay, config)):
        return _plan_single(root)
    own_folder = re.fullmatch(r"((?:[^{}]+/)?\{variant\})/cog-safe-push\.yaml", config or "")
    if select is None and own_folder and base is None and overlay is None:
        return _plan_folders(root, own_folder.group(1), config or "")
    if select is None and base is None and overlay is None and config and (
        (root / "cog.yaml").is_file()
    ):
        return _plan_shared(root, config)
    if select is not None and ((select.envsubst and select.base) or select.runs):
        return plan_by_running(root, select, config)
    if select is not None and select.copies and select.base:
        return _plan_copies(root, select, select.base, config)
    found = [f"select script {select.script}"] if select else []
    found += [f"base {base}"] if base else []
    missing = []
    if base is None or not (root / base).is_file():
        missing.append(f"the base cog.yaml ({base or ' or '.join(BASE_NAMES)})")
    overlay_folder = PurePosixPath(overlay).parent.as_posix() if overlay else None
    if overlay is None or PurePosixPath(overlay).name != "{variant}.yaml":
        missing.append("one overlay per variant (model-cog-configs/<variant>.yaml)")
    if config is None:
        missing.append(f"one cog-safe-push config per variant ({CONFIGS_WANTED})")
    overlays = stems(root / overlay_folder) if overlay_folder else set()
    configs = set(per_variant_files(root, config)) if config else set()
    if overlay_folder:
        found.append(f"{len(overlays)} overlays in {overlay_folder}/")
    if config:
        found.append(f"{len(configs)} configs {where(config)}")
    if not missing and not overlays:
        missing.append(f"overlay files in {overlay_folder}/")
    if missing:
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found) or 'nothing usable'}; "
            f"missing {'; '.join(missing)}"
        )
    assert base and overlay and config
    config_only = sorted(configs - overlays)
    if config_only:
        raise LayoutError(
            f"cannot adopt this repo: {config_file(config, config_only[0])} has no overlay "
            f"{overlay.replace('{variant}', config_only[0])} (found {len(overlays)} overlays, "
            f"{len(configs)} configs)"
        )
    names = sorted(overlays & configs)
    check_names(names, config)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(overlays - configs):
        plan.notes.append(
            f"skipped {name}: {overlay.replace('{variant}', name)} has no config "
            f"{config_file(config, name)}"
        )
    how = (f"appended to it (as {select.script} concatenates them)"
           if select and select.concatenates else
           "merged onto it (as yq's * merges them: lists replaced)"
           if select and select.replaces_lists else "merged onto it (as yq's *+ merges them)")
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {base} with the variant's overlay {how},",
        f"# and its publishing config is {config_file(config, '<variant>')}.",
    ]
    defaults = [f"  template: {scalar(base)}", f"  overlay: {scalar(overlay)}"]
    if select and select.concatenates:
        defaults.append("  merge: concatenate")
    elif select and select.replaces_lists:
        defaults.append("  merge: replace-lists")
    return finish(root, plan, header, defaults, {name: [] for name in names}, config,
                   select.files if select else {})


_IMAGE_RE = re.compile(r"^image:\s*['\"]?r8\.im/([\w.-]+/[\w.-]+?)['\"]?\s*(?:#.*)?$", re.M)


def _plan_single(root: Path) -> Plan | None:
    """A plain Cog folder (a root ``cog.yaml``, no select script, no configs folder): one
    variant, whose cog.yaml is the root's and whose config is the root
    ``cog-safe-push.yaml``, or a new one naming the model of cog.yaml's ``image:``.
    ``None`` when there is no root ``cog.yaml``."""
    import yaml

    if not (root / "cog.yaml").is_file():
        return None
    plan = Plan(kind="adopt", found=["one Cog folder (cog.yaml at the top)"])
    model: object = None
    if (root / CONFIG_NAME).is_file():
        config = CONFIG_NAME
        try:
            data = yaml.safe_load((root / CONFIG_NAME).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            raise LayoutError(f"cannot adopt this repo: {CONFIG_NAME} is not readable "
                              f"YAML ({str(exc).splitlines()[0]})") from None
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, str) or "/" not in model:
            raise LayoutError(f"cannot adopt this repo: {CONFIG_NAME} has no `model: "
                              "<owner>/<name>`; add it, then run init again")
        plan.found.append(f"its config {CONFIG_NAME} (model {model})")
    else:
        image = _IMAGE_RE.search((root / "cog.yaml").read_text(encoding="utf-8", errors="replace"))
        if image is None:
            raise LayoutError(
                "cannot adopt this repo: it is one Cog folder (cog.yaml at the top) with no "
                f"{CONFIG_NAME} and no `image: r8.im/<owner>/<name>` in cog.yaml, so the "
                f"model it pushes is unknown; write {CONFIG_NAME} with `model: "
                "<owner>/<name>`, then run init again"
            )
        model = image.group(1)
        config = f"{DEFAULT_CONFIGS_DIR}/{{variant}}.yaml"
        plan.found.append(f"image r8.im/{model} in cog.yaml")
    assert isinstance(model, str)
    name = model.rsplit("/", 1)[-1].lower()
    if not NAME_RE.match(name):
        name = family_name(root)
    if config != CONFIG_NAME:
        plan.files[config_file(config, name)] = (
            f"# Written by `cogfleet init`: the model cog.yaml's image pushes.\nmodel: {model}\n"
        )
    header = [
        "# Written by `cogfleet init`: this repo is one Cog folder, one variant. Its cog.yaml",
        f"# is the repo's cog.yaml, and its publishing config is {config_file(config, name)}.",
    ]
    return finish(root, plan, header, ["  template: cog.yaml"], {name: []}, config, {})


def _plan_shared(root: Path, config: str) -> Plan:
    """A Cog folder at the root with a cog-safe-push config per variant and no select
    script (each config pushes the same model code elsewhere): every variant's template
    is the root cog.yaml."""
    names = sorted(per_variant_files(root, config))
    check_names(names, config)
    plan = Plan(kind="adopt", found=[f"cog.yaml at the top, {len(names)} configs "
                                     f"{where(config)}"])
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# the repo's cog.yaml, and its publishing config is {config_file(config, '<variant>')}.",
    ]
    return finish(root, plan, header, ["  template: cog.yaml"], {n: [] for n in names},
                   config, {})


def _plan_folders(root: Path, folder: str, config: str) -> Plan:
    """A repo of one Cog folder per variant (``models/<name>/`` with its cog.yaml, model
    code and cog-safe-push.yaml; built with ``cd models/<name> && cog push``): each
    variant's source is its folder, and its cog.yaml there is its template."""
    cogs = per_variant_files(root, f"{folder}/cog.yaml")
    configs = set(per_variant_files(root, config))
    shown = config_file(folder, "<variant>")
    found = [f"{len(configs)} model folders ({shown}/ with cog.yaml and cog-safe-push.yaml)"]
    names, plan = _paired(cogs, configs, config, found, lambda name: (
        f"cannot adopt this repo: {config_file(config, name)} has no "
        f"{config_file(folder, name)}/cog.yaml beside it"
    ))
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant is the Cog folder",
        f"# {shown}/ (built there, as `cog build` in it would): its cog.yaml",
        "# and its cog-safe-push.yaml are there.",
    ]
    defaults = [f"  source: {scalar(folder)}", f"  template: {scalar(folder + '/cog.yaml')}"]
    return finish(root, plan, header, defaults, {name: [] for name in names}, config, {})


def _paired(
    cogs: dict[str, str], configs: set[str], config: str, found: list[str],
    no_cog_yaml: Callable[[str], str],
) -> tuple[list[str], Plan]:
    """The variants that have both a cog.yaml and a config, and the plan they start.

    A config without its cog.yaml is refused (``no_cog_yaml(name)`` says why); a
    cog.yaml without a config is skipped with a note.
    """
    config_only = sorted(configs - set(cogs))
    if config_only:
        raise LayoutError(no_cog_yaml(config_only[0]))
    names = sorted(configs)
    check_names(names, config)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(set(cogs) - configs):
        plan.notes.append(f"skipped {name}: {cogs[name]} has no config {config_file(config, name)}")
    return names, plan


def _plan_copies(root: Path, select: Select, pattern: str, config: str | None) -> Plan:
    """A repo whose select script copies a whole cog.yaml per variant into the root
    (``cp configs/$1/cog.yaml cog.yaml``): that file is the variant's template."""
    found = [f"select script {select.script} (copies {pattern} to cog.yaml)"]
    if config is None:
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({CONFIGS_WANTED})"
        )
    cogs = per_variant_files(root, pattern)
    configs = set(per_variant_files(root, config))
    found += [f"{len(cogs)} cog.yaml files ({pattern})", f"{len(configs)} configs "
              f"{where(config)}"]
    names, plan = _paired(cogs, configs, config, found, lambda name: (
        f"cannot adopt this repo: {config_file(config, name)} has no "
        f"{pattern.replace('{variant}', name)} for {select.script} to copy "
        f"(found {len(cogs)} cog.yaml files, {len(configs)} configs)"
    ))
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {pattern} (which {select.script} copied to the root),",
        f"# and its publishing config is {config_file(config, '<variant>')}.",
    ]
    defaults = [f"  template: {scalar(pattern)}"]
    return finish(root, plan, header, defaults, {name: [] for name in names}, config,
                   select.files if select else {})


