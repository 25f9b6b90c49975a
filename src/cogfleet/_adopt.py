"""``cogfleet init``: adopt a model-ci-template repo in place, or scaffold a new monorepo.

**Adopting.** A repo of model-ci-template's shape keeps a base ``cog.yaml`` (usually
``cog.yaml.template``), one overlay per variant merged onto it by its select script
(``yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)' BASE OVERLAY``), one
cog-safe-push config per variant (``safe-push-configs/`` or ``cog-safe-push-configs/``)
and a push workflow. ``init`` reads the select script when there is one (else the
usual names), the workflows (the Cog version they install, the official models they
push), and writes:

- ``variants.yaml``: the family at the repository root, its base and overlays, one entry
  per variant that has both an overlay and a config, and the official models;
- ``[tool.cogfleet]``, appended to ``pyproject.toml`` (created if missing): the configs
  folder when it is not the default, and ``cog-version`` when a workflow pins one.

A select script that instead exports variables per model and runs ``envsubst < BASE >
cog.yaml`` is adopted with the values it sets: it runs once per config in a scratch copy
of the repo, with a recording ``envsubst`` first on ``PATH``, and each variant gets an
``envsubst:`` mapping (see :func:`cogfleet._render.envsubst`); a script that copies
each variant's files by name in a ``case`` runs the same way, and each variant gets as
its template and ``files:`` the repo files its outputs are copies of
(:mod:`cogfleet._scriptrun`). A script that copies a
whole cog.yaml per variant (``cp configs/$1/cog.yaml cog.yaml``) is adopted with that
file as each variant's template.

No file of the repo is moved or rewritten. Before anything is written the plan is
checked: every variant must load and render; otherwise nothing is written.

**Scaffolding.** In an empty folder, ``init`` writes a minimal monorepo (one family with
one variant, the shared template, its config, a noxfile and the workflows) whose
``cogfleet push`` passes as it is.

A layout that is neither is an error naming what was found and what is missing.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cogfleet._errors import CogfleetError, ConfigError, UsageError
from cogfleet._files import write_atomic
from cogfleet._render import CONFIG_NAME, shell_variables
from cogfleet._repo import MODELS_DIR, VARIANTS_FILE, Repo
from cogfleet._scaffold import FILES as SCAFFOLD_FILES
from cogfleet._scriptrun import run_per_variant
from cogfleet._settings import DEFAULT_CONFIGS_DIR, PYPROJECT, read_table
from cogfleet.runtime import is_known

CONFIG_DIRS = ("safe-push-configs", "cog-safe-push-configs")
BASE_NAMES = (
    "cog.yaml.template", "cog.template.yaml", "cog.yaml.tmpl", "cog.yaml.tpl", "cog.yaml.j2",
)
OVERLAY_DIRS = ("model-cog-configs", "cog-configs", "model-configs", "overlays")
SELECT_SCRIPTS = (
    "script/select.sh", "script/select-model", "script/select", "scripts/select.sh",
    "scripts/select-model", "select.sh",
)
_VARIANT_ARG = re.compile(r"\$\{?(?:1|[A-Za-z_][A-Za-z0-9_]*)\}?")
MAKEFILES = ("Makefile", "makefile", "GNUmakefile")
_SELECT_NAME_RE = re.compile(r"^select(?:[-_](?:model|variant)s?)?(?:\.(?:sh|bash))?$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_PIN_RES = (
    re.compile(r"cog/releases/download/v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)/cog"),
    re.compile(r"\bcog==(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)"),
    re.compile(r"\bcog-version:\s*['\"]?v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)"),
)
_OFFICIAL_RE = re.compile(
    r"cog push\s+['\"]?r8\.im/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]*)"
    r"\$\{\{\s*matrix\.\w+\s*\}\}([A-Za-z0-9_.-]*)"
)
_ENVSUBST_RE = re.compile(
    r"\benvsubst\b(?:\s+(?:'[^']*'|\"[^\"]*\"))?\s*<\s*(\S+)\s*>\s*(?:\./)?cog\.yaml\b"
)
_ASSIGNED_RE = re.compile(r"(?:^|[\s;])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
_COPY_COG_RE = re.compile(
    r"\b(?:cp|ln)\s+(?:-[A-Za-z]+\s+)*(\S+)\s+(?:\./)?['\"]?cog\.yaml['\"]?(?![\w.])"
)
_WRITES_COG_RE = re.compile(
    r"(?:>\s*|\b(?:cp|ln|mv|install|tee)\b[^\n;|&]*\s)['\"]?(?:\./)?cog\.yaml['\"]?(?![\w.-])"
)
_COPY_RE = re.compile(r"\bcp\s+(?:-[A-Za-z]+\s+)*(\S+)\s+(\S+)")
_EXCLUDED_RE = re.compile(r"\"\$\{\{\s*matrix\.\w+\s*\}\}\"\s*!=\s*\"([A-Za-z0-9_.-]+)\"")


class LayoutError(UsageError):
    """The folder is neither empty nor a repo ``init`` can adopt (exit 2)."""


@dataclass
class Plan:
    """What ``init`` would write: new files, text appended to files, and what it found."""

    kind: str  # "adopt" or "scaffold"
    files: dict[str, str] = field(default_factory=dict)
    appends: dict[str, str] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- adopting --------------------------------------------------------------------------


@dataclass
class _Select:
    script: str
    base: str | None = None
    overlay: str | None = None  # with {variant}
    config: str | None = None  # with {variant}
    concatenates: bool = False
    envsubst: bool = False  # cog.yaml is ``envsubst < base``, with variables the script sets
    copies: bool = False  # cog.yaml is a whole file per variant (``base`` has {variant})
    files: dict[str, str] = field(default_factory=dict)  # other copies: dest -> {variant} src
    runs: bool = False  # writes cog.yaml some other way: init runs it to see what it writes


def _pattern(word: str) -> str | None:
    """``model-cog-configs/$1.yaml`` -> ``model-cog-configs/{variant}.yaml``."""
    try:
        parts = shlex.split(word)
    except ValueError:
        return None
    if len(parts) != 1:
        return None
    text, count = _VARIANT_ARG.subn("{variant}", parts[0])
    return text if count == 1 else None


def _select_scripts(root: Path) -> list[str]:
    """The repo's select scripts: the usual names first, then any ``select*`` script at
    the top or in ``script/``, ``scripts/``, ``bin/`` (``select_model.sh``, ``select-model.sh``)."""
    found = [rel for rel in SELECT_SCRIPTS if (root / rel).is_file()]
    for folder in (".", "script", "scripts", "bin"):
        for path in sorted((root / folder).glob("select*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and _SELECT_NAME_RE.match(path.name) and rel not in found:
                found.append(rel)
    found += [name for name in MAKEFILES if (root / name).is_file()]
    return found


def _read_select(root: Path) -> _Select | None:
    """What the repo's select script merges and copies, when it is one of the known shapes."""
    for rel in _select_scripts(root):
        path = root / rel
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"\\\n", " ", text)  # shell line continuations
        makefile = rel in MAKEFILES
        if makefile:  # a recipe's $(MODEL) is the shell's ${MODEL}; $$ is a $
            text = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", r"${\1}", text).replace("$$", "$")
        found = _Select(script=rel)
        merge = re.search(r"\byq\s+(?:eval-all|ea)\s+(['\"])(.*?)\1\s+(\S+)\s+(\S+)", text)
        if merge:
            if "*+" not in merge.group(2).replace(" ", ""):
                raise LayoutError(
                    f"{rel}: merges with {merge.group(2)!r}; cogfleet overlays merge as "
                    "yq's *+ (maps deeply, lists appended); change the script or write "
                    f"{VARIANTS_FILE} by hand"
                )
            found.base = _pattern(merge.group(3)) or merge.group(3).strip("'\"")
            found.overlay = _pattern(merge.group(4))
        else:
            cat_base = re.search(r"\bcat\s+(\S+)\s*>\s*cog\.yaml\b", text)
            cat_overlay = re.search(r"\bcat\s+(\S+)\s*>>\s*cog\.yaml\b", text)
            substituted = _ENVSUBST_RE.search(text)
            if cat_base and cat_overlay:
                found.base = cat_base.group(1).strip("'\"")
                found.overlay = _pattern(cat_overlay.group(1))
                found.concatenates = True
            elif substituted:
                found.base = substituted.group(1).strip("'\"")
                found.envsubst = True
            else:
                copied = _COPY_COG_RE.search(text) or cat_base
                whole = _pattern(copied.group(1)) if copied else None
                if whole is not None and "{variant}" in whole:
                    found.base = whole
                    found.copies = True
                elif _WRITES_COG_RE.search(text):  # e.g. a `case` that copies literal names
                    found.runs = True
        copy = re.search(r"\bcp\s+(\S+)\s+\.?/?cog-safe-push\.yaml\b", text)
        if copy:
            found.config = _pattern(copy.group(1))
        for source, dest in _COPY_RE.findall(text):
            source, dest = _pattern(source), dest.strip("'\"").removeprefix("./")
            if (
                source and "{variant}" in source and dest not in ("cog.yaml", CONFIG_NAME)
                and re.fullmatch(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*", dest)
                and ".." not in dest.split("/") and dest != "."
            ):
                found.files[dest] = source
        if makefile and (found.envsubst or found.runs):
            continue  # a make target is not run per variant: only its text is read
        if found.base or found.config or found.runs:
            return found
    return None


def _workflows(root: Path) -> list[tuple[str, str]]:
    folder = root / ".github" / "workflows"
    if not folder.is_dir():
        return []
    return [
        (p.relative_to(root).as_posix(), p.read_text(encoding="utf-8", errors="replace"))
        for p in sorted(folder.iterdir())
        if p.suffix in (".yaml", ".yml") and p.is_file()
    ]


def _cog_pin(workflows: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(version, workflow)`` of the Cog the workflows install, when they pin one."""
    pins: dict[str, list[str]] = {}
    for rel, text in workflows:
        for regex in _PIN_RES:
            for match in regex.finditer(text):
                pins.setdefault(match.group(1), []).append(rel)
    if not pins:
        return None
    if len(pins) > 1:
        # the workflow that pushes decides; several pushing workflows that disagree do not
        pushing = {
            v: rels for v, rels in pins.items()
            if any("cog push" in t or "cog-safe-push" in t for r, t in workflows if r in rels)
        }
        if len(pushing) != 1:
            listed = ", ".join(f"{v} ({', '.join(sorted(set(r)))})" for v, r in pins.items())
            raise LayoutError(
                f"the workflows pin different Cog versions: {listed}; "
                "set [tool.cogfleet] cog-version yourself"
            )
        pins = pushing
    version, rels = next(iter(pins.items()))
    return version, sorted(set(rels))[0]


def _official(workflows: list[tuple[str, str]]) -> tuple[str, set[str], str] | None:
    """``(owner/prefix{variant}suffix, excluded variants, workflow)`` of official pushes."""
    found: dict[str, tuple[set[str], str]] = {}
    for rel, text in workflows:
        for match in _OFFICIAL_RE.finditer(text):
            pattern = f"{match.group(1)}/{match.group(2)}{{variant}}{match.group(3)}"
            excluded = set(_EXCLUDED_RE.findall(text))
            found.setdefault(pattern, (excluded, rel))
    if len(found) != 1:
        return None
    pattern, (excluded, rel) = next(iter(found.items()))
    return pattern, excluded, rel


def _family_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._")
    return name if name and _NAME_RE.match(name) else "models"


def _one_of(root: Path, names: tuple[str, ...], what: str, *, folder: bool) -> str | None:
    present = [n for n in names if ((root / n).is_dir() if folder else (root / n).is_file())]
    if len(present) > 1:
        raise LayoutError(
            f"ambiguous {what}: found {' and '.join(present)}; keep one (or write "
            f"{VARIANTS_FILE} by hand)"
        )
    return present[0] if present else None


def _stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.yaml") if p.is_file()} if folder.is_dir() else set()


def plan_adopt(root: Path) -> Plan | None:
    """The plan for a model-ci-template repo at ``root``; ``None`` when nothing of it is there."""
    select = _read_select(root)
    base = select.base if select and select.base else _one_of(
        root, BASE_NAMES, "base cog.yaml", folder=False
    )
    overlay = select.overlay if select and select.overlay else None
    if overlay is None:
        overlay_dir = _one_of(root, OVERLAY_DIRS, "overlay folder", folder=True)
        overlay = f"{overlay_dir}/{{variant}}.yaml" if overlay_dir else None
    config = select.config if select and select.config else None
    if config is None:
        config_dir = _one_of(root, CONFIG_DIRS, "config folder", folder=True)
        config = f"{config_dir}/{{variant}}.yaml" if config_dir else None
    if not any((select, base, overlay, config)):
        return None
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
    config_folder = PurePosixPath(config).parent.as_posix() if config else None
    if config is None or PurePosixPath(config).name != "{variant}.yaml":
        missing.append(
            f"one cog-safe-push config per variant ({' or '.join(CONFIG_DIRS)}/<variant>.yaml)"
        )
    overlays = _stems(root / overlay_folder) if overlay_folder else set()
    configs = _stems(root / config_folder) if config_folder else set()
    if overlay_folder:
        found.append(f"{len(overlays)} overlays in {overlay_folder}/")
    if config_folder:
        found.append(f"{len(configs)} configs in {config_folder}/")
    if not missing and not overlays:
        missing.append(f"overlay files in {overlay_folder}/")
    if missing:
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found) or 'nothing usable'}; "
            f"missing {'; '.join(missing)}"
        )
    assert base and overlay and config and config_folder is not None
    config_only = sorted(configs - overlays)
    if config_only:
        raise LayoutError(
            f"cannot adopt this repo: {config_folder}/{config_only[0]}.yaml has no overlay "
            f"{overlay.replace('{variant}', config_only[0])} (found {len(overlays)} overlays, "
            f"{len(configs)} configs)"
        )
    names = sorted(overlays & configs)
    _check_names(names, config_folder)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(overlays - configs):
        plan.notes.append(
            f"skipped {name}: {overlay.replace('{variant}', name)} has no config "
            f"{config_folder}/{name}.yaml"
        )
    how = (f"appended to it (as {select.script} concatenates them)"
           if select and select.concatenates else "merged onto it (as yq's *+ merges them)")
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {base} with the variant's overlay {how},",
        f"# and its publishing config is {config_folder}/<variant>.yaml.",
    ]
    defaults = [f"  template: {base}", f"  overlay: {overlay}"]
    if select and select.concatenates:
        defaults.append("  merge: concatenate")
    return _finish(root, plan, header, defaults, {name: [] for name in names}, config_folder,
                   select.files if select else {})


def _check_names(names: list[str], config_folder: str) -> None:
    """Variant names come from config file names: refuse one cogfleet cannot use."""
    bad = [n for n in names if not _NAME_RE.match(n)]
    if bad:
        raise LayoutError(
            f"cannot adopt this repo: variant name {bad[0]!r} (from {config_folder}/) must be "
            "lower-case letters, digits, . _ -"
        )


def _per_variant_files(root: Path, pattern: str) -> dict[str, str]:
    """Variant name -> file, for the files matching ``pattern`` (``{variant}`` in it)."""
    head, tail = pattern.split("{variant}", 1)
    if "{variant}" in tail:
        return {}
    found: dict[str, str] = {}
    for path in sorted(root.glob(head + "*" + tail)):
        rel = path.relative_to(root).as_posix()
        name = rel[len(head) : len(rel) - len(tail)]
        if path.is_file() and rel != CONFIG_NAME and "/" not in name:
            found[name] = rel
    return found


def _plan_copies(root: Path, select: _Select, pattern: str, config: str | None) -> Plan:
    """A repo whose select script copies a whole cog.yaml per variant into the root
    (``cp configs/$1/cog.yaml cog.yaml``): that file is the variant's template."""
    found = [f"select script {select.script} (copies {pattern} to cog.yaml)"]
    if config is None or PurePosixPath(config).name != "{variant}.yaml":
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({' or '.join(CONFIG_DIRS)}/<variant>.yaml)"
        )
    config_folder = PurePosixPath(config).parent.as_posix()
    cogs = _per_variant_files(root, pattern)
    configs = _stems(root / config_folder)
    found += [f"{len(cogs)} cog.yaml files ({pattern})", f"{len(configs)} configs in "
              f"{config_folder}/"]
    config_only = sorted(configs - set(cogs))
    if config_only:
        raise LayoutError(
            f"cannot adopt this repo: {config_folder}/{config_only[0]}.yaml has no "
            f"{pattern.replace('{variant}', config_only[0])} for {select.script} to copy "
            f"(found {len(cogs)} cog.yaml files, {len(configs)} configs)"
        )
    names = sorted(configs & set(cogs))
    _check_names(names, config_folder)
    plan = Plan(kind="adopt", found=found)
    for name in sorted(set(cogs) - configs):
        plan.notes.append(f"skipped {name}: {cogs[name]} has no config "
                          f"{config_folder}/{name}.yaml")
    header = [
        "# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
        f"# {pattern} (which {select.script} copied to the root),",
        f"# and its publishing config is {config_folder}/<variant>.yaml.",
    ]
    defaults = [f"  template: {pattern}"]
    return _finish(root, plan, header, defaults, {name: [] for name in names}, config_folder,
                   select.files if select else {})


def _plan_by_running(root: Path, select: _Select, config: str | None) -> Plan:
    """A repo whose select script says what it writes only when it runs.

    ``envsubst < BASE > cog.yaml`` with variables the script sets per variant, or a
    ``case`` that copies each variant's files by name: the script runs once per config
    in a scratch copy (see :mod:`cogfleet._scriptrun`). Each variant gets the values
    handed to its ``envsubst``, or as its template the file its cog.yaml is a copy of,
    and as ``files:`` the other files the script copied for it.
    """
    base = select.base if select.envsubst else None
    found = [f"select script {select.script} "
             + (f"(envsubst < {base})" if base else "(run once per config to see what it copies)")]
    if base is not None and not (root / base).is_file():
        raise LayoutError(f"cannot adopt this repo: {select.script} substitutes {base}, "
                          "which does not exist")
    if config is None or PurePosixPath(config).name != "{variant}.yaml":
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({' or '.join(CONFIG_DIRS)}/<variant>.yaml)"
        )
    config_folder = PurePosixPath(config).parent.as_posix()
    names = sorted(_stems(root / config_folder))
    found.append(f"{len(names)} configs in {config_folder}/")
    _check_names(names, config_folder)
    wanted: list[str] = []
    if base is not None:
        script_text = (root / select.script).read_text(encoding="utf-8", errors="replace")
        referenced = shell_variables((root / base).read_text(encoding="utf-8", errors="replace"))
        # only what the script sets: a $HOME in a run: line stays as written
        wanted = sorted(referenced & set(_ASSIGNED_RE.findall(script_text)))
    runs = run_per_variant(root, select.script, names, wanted)
    plan = Plan(kind="adopt", found=found)
    problems: list[str] = []
    settings: dict[str, list[str]] = {}
    templates: dict[str, str] = {}
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
        else:
            problems.append(
                f"{select.script} {name} wrote a cog.yaml that is a copy of no file in the repo"
                if "cog.yaml" in run.other else
                f"{select.script} {name} did not write cog.yaml (exit {run.exit_code})"
            )
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
            f"cannot adopt this repo: {problems[0]}; a config in {config_folder}/ is a "
            "variant only if the script selects it (remove the config or teach the script)"
        )
    if base is not None:
        header_what = [f"# {base} with the values {select.script} sets for it substituted (as its",
                       "# envsubst did), and its publishing config is "
                       f"{config_folder}/<variant>.yaml."]
        defaults = [f"  template: {base}"]
    else:
        pattern = _common_pattern(templates)
        header_what = [f"# the file {select.script} copies to the root for it, and its publishing",
                       f"# config is {config_folder}/<variant>.yaml."]
        defaults = [f"  template: {pattern}"] if pattern else []
        if not pattern:
            for name, template in templates.items():
                settings[name].insert(0, f"template: {json.dumps(template)}")
    header = ["# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
              *header_what]
    return _finish(root, plan, header, defaults, settings, config_folder, {})


def _common_pattern(templates: dict[str, str]) -> str | None:
    """``configs/{variant}/cog.yaml`` when every variant's template is named that way."""
    if not templates:
        return None
    name, first = next(iter(templates.items()))
    if first.count(name) != 1:
        return None
    pattern = first.replace(name, "{variant}")
    ok = all(pattern.replace("{variant}", n) == t for n, t in templates.items())
    return pattern if ok else None


def _finish(
    root: Path, plan: Plan, header: list[str], defaults: list[str],
    settings_of: dict[str, list[str]], config_folder: str, copied: dict[str, str],
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
    workflows = _workflows(root)
    pin = _cog_pin(workflows)
    official = _official(workflows)
    if pin and not is_known(pin[0]):
        plan.notes.append(
            f"{pin[1]} installs Cog {pin[0]}, which this cogfleet does not know; set "
            "[tool.cogfleet] cog-version yourself once it does (the installed Cog is used)"
        )
        pin = None
    if pin:
        plan.found.append(f"Cog {pin[0]} installed by {pin[1]}")
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
    if config_folder != DEFAULT_CONFIGS_DIR:
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


# --- scaffolding -------------------------------------------------------------------------


def plan_scaffold() -> Plan:
    return Plan(
        kind="scaffold",
        files=dict(SCAFFOLD_FILES),
        notes=["next: cogfleet push hello (a full safe push on the local server)"],
    )


# --- the command -------------------------------------------------------------------------


def _is_empty(root: Path) -> bool:
    return not any(p.name != ".git" for p in root.iterdir())


def plan_init(root: Path) -> Plan:
    """What ``cogfleet init`` would do in ``root`` (raises for a layout it cannot use)."""
    if Repo.is_root(root):
        what = VARIANTS_FILE if (root / VARIANTS_FILE).is_file() else (
            f"{MODELS_DIR}/<family>/{VARIANTS_FILE}"
        )
        raise LayoutError(f"{root} is already a cogfleet monorepo ({what} exists)")
    if _is_empty(root):
        return plan_scaffold()
    plan = plan_adopt(root)
    if plan is None:
        present = sorted(p.name for p in root.iterdir() if p.name != ".git")[:8]
        raise LayoutError(
            f"cannot init here: the folder is not empty (found {', '.join(present)}) and has "
            "no select-script layout (missing a select script that writes cog.yaml, such "
            "as script/select.sh, or a base such as cog.yaml.template with overlays in "
            f"model-cog-configs/; and configs in {' or '.join(CONFIG_DIRS)}/)"
        )
    return plan


def apply_plan(root: Path, plan: Plan, verify: bool = True) -> list[str]:
    """Write ``plan``; for an adoption, check the repo loads and renders, else undo it all."""
    for rel in plan.files:
        if (root / rel).exists():
            raise LayoutError(f"{rel} already exists; init never overwrites a file")
    originals: dict[str, bytes] = {}
    written: list[str] = []
    try:
        for rel, text in plan.appends.items():
            originals[rel] = (root / rel).read_bytes()
            write_atomic(root / rel, originals[rel] + text.encode("utf-8"))
            written.append(rel)
        for rel, text in plan.files.items():
            write_atomic(root / rel, text.encode("utf-8"))
            written.append(rel)
        if verify and plan.kind == "adopt":
            _verify(root)
    except (CogfleetError, OSError) as exc:
        for rel in written:
            if rel in originals:
                write_atomic(root / rel, originals[rel])
            else:
                (root / rel).unlink(missing_ok=True)
        if isinstance(exc, CogfleetError):
            raise ConfigError(None, f"init wrote nothing: {exc}") from None
        raise
    return written


def _verify(root: Path) -> None:
    from cogfleet._plugins import Plugins
    from cogfleet._render import render_in_memory

    repo = Repo.load(root)
    plugins = Plugins(repo.root)
    for variant in repo.variants.values():
        render_in_memory(repo, variant, plugins)


def run_init(root: Path, *, dry_run: bool, out: Callable[[str], None]) -> None:
    """``cogfleet init``: plan, show, and (unless ``dry_run``) write."""
    plan = plan_init(root)
    what = "adopting a select-script repo" if plan.kind == "adopt" else (
        "scaffolding a new monorepo"
    )
    out(f"{what}{' (dry run: nothing is written)' if dry_run else ''}")
    if plan.found:
        out("found: " + "; ".join(plan.found))
    for note in plan.notes:
        out(f"note: {note}")
    if dry_run:
        for rel, text in plan.files.items():
            out(f"would write {rel}:")
            out("".join(f"    {line}\n" for line in text.splitlines()))
        for rel, text in plan.appends.items():
            out(f"would append to {rel}:")
            out("".join(f"    {line}\n" for line in text.strip("\n").splitlines()))
        return
    written = apply_plan(root, plan)
    for rel in written:
        out(f"{'appended [tool.cogfleet] to' if rel in plan.appends else 'wrote'} {rel}")
    if plan.kind == "adopt":
        out("next: cogfleet list; cogfleet render; cogfleet lint (see the README, "
            "'Adopting an existing repo')")
