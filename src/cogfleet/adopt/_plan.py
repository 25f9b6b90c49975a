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

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cogfleet._render import CONFIG_NAME, shell_variables
from cogfleet._repo import VARIANTS_FILE
from cogfleet._settings import DEFAULT_CONFIGS_DIR, PYPROJECT, read_table
from cogfleet.adopt._derive import read_back
from cogfleet.adopt._read import (
    ASSIGNED_RE,
    BASE_NAMES,
    CONFIG_DIRS,
    NAME_RE,
    OVERLAY_DIRS,
    LayoutError,
    Select,
    cog_pin,
    config_pattern,
    official_pushes,
    one_of,
    per_variant_files,
    read_select,
    read_workflows,
    stems,
)
from cogfleet.adopt._scriptrun import run_per_variant
from cogfleet.runtime import is_known


@dataclass
class Plan:
    """What ``init`` would write: new files, text appended to files, and what it found."""

    kind: str  # "adopt" or "scaffold"
    files: dict[str, str] = field(default_factory=dict)
    appends: dict[str, str] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- adopting --------------------------------------------------------------------------


def _family_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._")
    return name if name and NAME_RE.match(name) else "models"


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
        return None
    own_folder = re.fullmatch(r"((?:[^{}]+/)?\{variant\})/cog-safe-push\.yaml", config or "")
    if select is None and own_folder and base is None and overlay is None:
        return _plan_folders(root, own_folder.group(1), config or "")
    if select is None and base is None and overlay is None and config and (
        (root / "cog.yaml").is_file()
    ):
        return _plan_shared(root, config)
    if select is not None and ((select.envsubst and select.base) or select.runs):
        return _plan_by_running(root, select, config)
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
        missing.append(f"one cog-safe-push config per variant ({_CONFIGS_WANTED})")
    overlays = stems(root / overlay_folder) if overlay_folder else set()
    configs = set(per_variant_files(root, config)) if config else set()
    if overlay_folder:
        found.append(f"{len(overlays)} overlays in {overlay_folder}/")
    if config:
        found.append(f"{len(configs)} configs {_where(config)}")
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
            f"cannot adopt this repo: {_file(config, config_only[0])} has no overlay "
            f"{overlay.replace('{variant}', config_only[0])} (found {len(overlays)} overlays, "
            f"{len(configs)} configs)"
        )
    names = sorted(overlays & configs)
    _check_names(names, config)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(overlays - configs):
        plan.notes.append(
            f"skipped {name}: {overlay.replace('{variant}', name)} has no config "
            f"{_file(config, name)}"
        )
    how = (f"appended to it (as {select.script} concatenates them)"
           if select and select.concatenates else "merged onto it (as yq's *+ merges them)")
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {base} with the variant's overlay {how},",
        f"# and its publishing config is {_file(config, '<variant>')}.",
    ]
    defaults = [f"  template: {_scalar(base)}", f"  overlay: {_scalar(overlay)}"]
    if select and select.concatenates:
        defaults.append("  merge: concatenate")
    return _finish(root, plan, header, defaults, {name: [] for name in names}, config,
                   select.files if select else {})


_CONFIGS_WANTED = f"{' or '.join(CONFIG_DIRS)}/<variant>.yaml, or as the select script copies"


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: as written when YAML reads it back so, else quoted
    (``{variant}/cog.yaml`` would start a mapping)."""
    plain = re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./{}-]*", text) and ":" not in text
    return text if plain else json.dumps(text)


def _file(config: str, name: str) -> str:
    """The config file of variant ``name``."""
    return config.replace("{variant}", name)


def _where(config: str) -> str:
    """``in safe-push-configs/``, or the pattern (``(models/<variant>/cog-safe-push.yaml)``)."""
    folder = _configs_folder(config)
    return f"in {folder}/" if folder else f"({_file(config, '<variant>')})"


def _configs_folder(config: str) -> str | None:
    """The folder of a ``FOLDER/{variant}.yaml`` pattern (``configs-dir``), else None."""
    path = PurePosixPath(config)
    parent = path.parent.as_posix()
    ok = path.name == "{variant}.yaml" and "{variant}" not in parent and parent != "."
    return parent if ok else None


def _check_names(names: list[str], config: str) -> None:
    """Variant names come from config file names: refuse one cogfleet cannot use."""
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        raise LayoutError(
            f"cannot adopt this repo: variant name {bad[0]!r} (from {_file(config, bad[0])}) "
            "must be "
            "lower-case letters, digits, . _ -"
        )


def _plan_shared(root: Path, config: str) -> Plan:
    """A Cog folder at the root with a cog-safe-push config per variant and no select
    script (each config pushes the same model code elsewhere): every variant's template
    is the root cog.yaml."""
    names = sorted(per_variant_files(root, config))
    _check_names(names, config)
    plan = Plan(kind="adopt", found=[f"cog.yaml at the top, {len(names)} configs "
                                     f"{_where(config)}"])
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# the repo's cog.yaml, and its publishing config is {_file(config, '<variant>')}.",
    ]
    return _finish(root, plan, header, ["  template: cog.yaml"], {n: [] for n in names},
                   config, {})


def _plan_folders(root: Path, folder: str, config: str) -> Plan:
    """A repo of one Cog folder per variant (``models/<name>/`` with its cog.yaml, model
    code and cog-safe-push.yaml; built with ``cd models/<name> && cog push``): each
    variant's source is its folder, and its cog.yaml there is its template."""
    cogs = per_variant_files(root, f"{folder}/cog.yaml")
    configs = set(per_variant_files(root, config))
    shown = _file(folder, "<variant>")
    found = [f"{len(configs)} model folders ({shown}/ with cog.yaml and cog-safe-push.yaml)"]
    names, plan = _paired(cogs, configs, config, found, lambda name: (
        f"cannot adopt this repo: {_file(config, name)} has no "
        f"{_file(folder, name)}/cog.yaml beside it"
    ))
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant is the Cog folder",
        f"# {shown}/ (built there, as `cog build` in it would): its cog.yaml",
        "# and its cog-safe-push.yaml are there.",
    ]
    defaults = [f"  source: {_scalar(folder)}", f"  template: {_scalar(folder + '/cog.yaml')}"]
    return _finish(root, plan, header, defaults, {name: [] for name in names}, config, {})


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
    _check_names(names, config)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(set(cogs) - configs):
        plan.notes.append(f"skipped {name}: {cogs[name]} has no config {_file(config, name)}")
    return names, plan


def _plan_copies(root: Path, select: Select, pattern: str, config: str | None) -> Plan:
    """A repo whose select script copies a whole cog.yaml per variant into the root
    (``cp configs/$1/cog.yaml cog.yaml``): that file is the variant's template."""
    found = [f"select script {select.script} (copies {pattern} to cog.yaml)"]
    if config is None:
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({_CONFIGS_WANTED})"
        )
    cogs = per_variant_files(root, pattern)
    configs = set(per_variant_files(root, config))
    found += [f"{len(cogs)} cog.yaml files ({pattern})", f"{len(configs)} configs "
              f"{_where(config)}"]
    names, plan = _paired(cogs, configs, config, found, lambda name: (
        f"cannot adopt this repo: {_file(config, name)} has no "
        f"{pattern.replace('{variant}', name)} for {select.script} to copy "
        f"(found {len(cogs)} cog.yaml files, {len(configs)} configs)"
    ))
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {pattern} (which {select.script} copied to the root),",
        f"# and its publishing config is {_file(config, '<variant>')}.",
    ]
    defaults = [f"  template: {_scalar(pattern)}"]
    return _finish(root, plan, header, defaults, {name: [] for name in names}, config,
                   select.files if select else {})


def _plan_by_running(root: Path, select: Select, config: str | None) -> Plan:
    """A repo whose select script says what it writes only when it runs.

    ``envsubst < BASE > cog.yaml`` with variables the script sets per variant, or a
    ``case`` that copies each variant's files by name: the script runs once per config
    in a scratch copy (see :mod:`cogfleet.adopt._scriptrun`). Each variant gets the values
    handed to its ``envsubst``, or as its template the file its cog.yaml is a copy of (or,
    for a cog.yaml the script generated, the template it reads back as, with
    ``replace:``), and as ``files:`` the other files the script copied for it.
    """
    base = select.base if select.envsubst else None
    found = [f"select script {select.script} "
             + (f"(envsubst < {base})" if base else "(run once per config to see what it copies)")]
    if base is not None and not (root / base).is_file():
        raise LayoutError(f"cannot adopt this repo: {select.script} substitutes {base}, "
                          "which does not exist")
    if config is None:
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({_CONFIGS_WANTED})"
        )
    names = sorted(per_variant_files(root, config))
    found.append(f"{len(names)} configs {_where(config)}")
    _check_names(names, config)
    wanted: list[str] = []
    script_text = (root / select.script).read_text(encoding="utf-8", errors="replace")
    if base is not None:
        referenced = shell_variables((root / base).read_text(encoding="utf-8", errors="replace"))
        # only what the script sets: a $HOME in a run: line stays as written
        wanted = sorted(referenced & set(ASSIGNED_RE.findall(script_text)))
    runs = run_per_variant(root, select.script, names, wanted)
    plan = Plan(kind="adopt", found=found)
    problems: list[str] = []
    settings: dict[str, list[str]] = {}
    templates: dict[str, str] = {}
    generated: dict[str, bytes] = {}
    for name in names:
        run = runs[name]
        if run.error is not None:
            problems.append(f"{select.script} {name} did not finish ({run.error})")
            continue
        own = settings[name] = []
        if base is not None:
            if run.envsubst is None:
                problems.append(f"{select.script} {name} did not run envsubst "
                                f"(exit {run.exit_code})")
                continue
            pairs = ", ".join(f"{k}: {json.dumps(v)}" for k, v in sorted(run.envsubst.items()))
            own += [f"envsubst: {{{pairs}}}"] if pairs else []
        elif "cog.yaml" in run.copies:
            templates[name] = run.copies["cog.yaml"]
        elif run.generated is not None:
            generated[name] = run.generated  # read back below: a template, text replaced
        else:
            problems.append(f"{select.script} {name} did not write cog.yaml "
                            f"(exit {run.exit_code})")
            continue
        copied = {d: s for d, s in sorted(run.copies.items()) if d not in ("cog.yaml", CONFIG_NAME)}
        if copied:
            own.append("files: {" + ", ".join(
                f"{json.dumps(d)}: {json.dumps(s)}" for d, s in copied.items()) + "}")
        for dest in run.other:
            if dest not in ("cog.yaml", CONFIG_NAME):
                plan.notes.append(f"{name}: {select.script} writes {dest}, which is a copy of "
                                  "no file in the repo; cogfleet leaves it out")
    if problems:  # every config must be a variant's
        raise LayoutError(
            f"cannot adopt this repo: {problems[0]}; a config {_where(config)} is a "
            "variant only if the script selects it (remove the config or teach the script)"
        )
    replaced = _read_back(root, select, plan, generated, script_text, templates)
    if base is not None:
        header_what = [f"# {base} with the values {select.script} sets for it substituted (as its",
                       "# envsubst did), and its publishing config is "
                       f"{_file(config, '<variant>')}."]
        defaults = [f"  template: {_scalar(base)}"]
    else:
        pattern = _common_pattern(templates)
        header_what = [f"# the file {select.script} copies to the root for it, and its publishing",
                       f"# config is {_file(config, '<variant>')}."]
        if any(replaced):
            header_what[0] = (f"# the file {select.script} writes it from, with the text it "
                              "replaces (replace:); its publishing")
        defaults = [f"  template: {_scalar(pattern)}"] if pattern else []
        if not pattern:
            for name, template in templates.items():
                settings[name].insert(0, f"template: {json.dumps(template)}")
        defaults += _replace_lines(replaced, settings)
    header = ["# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
              *header_what]
    return _finish(root, plan, header, defaults, settings, config, {})


def _read_back(
    root: Path, select: Select, plan: Plan, generated: dict[str, bytes], script_text: str,
    templates: dict[str, str],
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """The cog.yaml files the script generated, as a template and text replaced in it
    (:mod:`cogfleet.adopt._derive`); ``templates`` receives each variant's template.
    Returns each variant's ``envsubst:`` and ``replace:`` values."""
    if not generated:
        return {}, {}
    new_name = next(n for n in (*BASE_NAMES, "cog.yaml.cogfleet") if not (root / n).exists())
    read = read_back(root, select.script, generated, set(ASSIGNED_RE.findall(script_text)),
                     new_name)
    if isinstance(read, str):
        raise LayoutError(f"cannot adopt this repo: {read}; write {VARIANTS_FILE} by hand "
                          "(a template and its replace: or envsubst: values)")
    templates.update(read.templates)
    if read.new_template is not None:
        plan.files[new_name] = read.new_template
        plan.found.append(f"its heredoc, written to {new_name} as the template")
    keys = sorted({k for mapping in read.replace.values() for k in mapping}
                  | {f"${k}" for mapping in read.envsubst.values() for k in mapping})
    plan.found.append(f"text it replaces: {', '.join(keys) or 'none'}")
    return read.envsubst, read.replace


def _replace_lines(
    read: tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]],
    settings: dict[str, list[str]],
) -> list[str]:
    """Each variant's ``envsubst:`` and ``replace:`` values (``read``: both, per variant);
    one every variant sets to its own name goes in ``defaults`` as ``{variant}`` (the
    lines returned)."""
    lines = []
    for key, values in zip(("envsubst", "replace"), read, strict=True):
        common = [k for k in sorted({k for m in values.values() for k in m}) if all(
            m.get(k) == name for name, m in values.items())]
        for name, mapping in values.items():
            own = {k: v for k, v in sorted(mapping.items()) if k not in common}
            if own:
                settings[name].append(f"{key}: {{" + ", ".join(
                    f"{json.dumps(k)}: {json.dumps(v)}" for k, v in own.items()) + "}")
        if common:
            lines.append(f"  {key}: {{" + ", ".join(
                f'{json.dumps(k)}: "{{variant}}"' for k in common) + "}")
    return lines


def _common_pattern(templates: dict[str, str]) -> str | None:
    """``configs/{variant}/cog.yaml`` when every variant's template is named that way
    (or the one file when it is every variant's)."""
    if not templates:
        return None
    if len(set(templates.values())) == 1:
        return next(iter(templates.values()))
    name, first = next(iter(templates.items()))
    if first.count(name) != 1:
        return None
    pattern = first.replace(name, "{variant}")
    ok = all(pattern.replace("{variant}", n) == t for n, t in templates.items())
    return pattern if ok else None


def _finish(
    root: Path, plan: Plan, header: list[str], defaults: list[str],
    settings_of: dict[str, list[str]], config: str, copied: dict[str, str],
) -> Plan:
    """variants.yaml (with the official models the workflows push) and the settings.

    ``settings_of``: each variant's own settings, as ``key: value`` flow-style text;
    ``copied``: the other files the select script copies (path -> ``{variant}`` source),
    declared as ``files:`` for each variant whose source exists.
    """
    pairs: dict[str, list[str]] = {name: [] for name in settings_of}
    for dest, pattern in sorted(copied.items()):
        having = [n for n in settings_of if (root / pattern.replace("{variant}", n)).is_file()]
        plan.found.append(f"copies {pattern} to {dest} ({len(having)} variants)")
        for name in having:
            pairs[name].append(
                f"{json.dumps(dest)}: {json.dumps(pattern.replace('{variant}', name))}"
            )
    settings_of = {
        name: [*own, f"files: {{{', '.join(pairs[name])}}}"] if pairs[name] else own
        for name, own in settings_of.items()
    }
    workflows = read_workflows(root)
    pin = cog_pin(workflows)
    official = official_pushes(workflows)
    if pin and not is_known(pin[0]):
        plan.notes.append(
            f"{pin[1]} installs Cog {pin[0]}, which this cogfleet does not know; set "
            "[tool.cogfleet] cog-version yourself once it does (the installed Cog is used)"
        )
        pin = None
    if pin:
        plan.found.append(f"Cog {pin[0]} installed by {pin[1]}")
    if _configs_folder(config) is None:  # not <folder>/<variant>.yaml: each names its own
        defaults = [*defaults, f"  config: {_scalar(config)}"]
    lines = [*header, f"family: {_family_name(root)}", "source: .", "defaults:", *defaults]
    excluded: set[str] = set()
    if official:
        pattern, excluded, rel = official
        lines.append(f"  official_model: {pattern}  # pushed after the safe push in {rel}")
        plan.found.append(f"official models {pattern} pushed by {rel}")
    lines.append("variants:")
    for name, own in settings_of.items():
        spec = "{" + ", ".join(["official_model: null", *own] if name in excluded else own) + "}"
        if name in excluded:
            spec += f"  # {official[2] if official else ''} does not push it"
        lines.append(f"  {name}: {spec}")
    plan.files[VARIANTS_FILE] = "\n".join(lines) + "\n"
    settings = []
    config_folder = _configs_folder(config)
    if config_folder is not None and config_folder != DEFAULT_CONFIGS_DIR:
        settings.append(f'configs-dir = "{config_folder}"')
    if pin:
        settings.append(f'cog-version = "{pin[0]}"  # the Cog {pin[1]} installs')
    if settings:
        table = read_table(root)
        if table is not None:
            raise LayoutError(
                f"{PYPROJECT} already has [tool.cogfleet]; add {'; '.join(settings)} there "
                "yourself, then run init again"
            )
        text = "[tool.cogfleet]\n" + "\n".join(settings) + "\n"
        if (root / PYPROJECT).is_file():
            plan.appends[PYPROJECT] = "\n" + text
        else:
            plan.files[PYPROJECT] = text
    return plan
