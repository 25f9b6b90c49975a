"""What ``cogfleet init`` writes for every shape it adopts: the plan, and variants.yaml.

:func:`finish` writes ``variants.yaml`` (the family at the root, its defaults, one line
per variant, the official models the workflows push) and the ``[tool.cogfleet]``
settings (the configs folder, the Cog version a workflow pins); the helpers name files
and write YAML scalars the way every shape's plan needs them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cogfleet._repo import VARIANTS_FILE
from cogfleet._settings import DEFAULT_CONFIGS_DIR, PYPROJECT, read_table
from cogfleet.adopt._read import (
    CONFIG_DIRS,
    NAME_RE,
    LayoutError,
    cog_pin,
    official_pushes,
    read_workflows,
)
from cogfleet.runtime import is_known


@dataclass
class Plan:
    """What ``init`` would write: new files, text appended to files, and what it found."""

    kind: str  # "adopt" or "scaffold"
    files: dict[str, str] = field(default_factory=dict)
    appends: dict[str, str] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # variant -> build file -> the bytes the select script wrote: rendering must give them
    expected: dict[str, dict[str, bytes]] = field(default_factory=dict)



def family_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._")
    return name if name and NAME_RE.match(name) else "models"


CONFIGS_WANTED = f"{' or '.join(CONFIG_DIRS)}/<variant>.yaml, or as the select script copies"


def scalar(text: str) -> str:
    """``text`` as a YAML scalar: as written when YAML reads it back so, else quoted
    (``{variant}/cog.yaml`` would start a mapping)."""
    plain = re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./{}-]*", text) and ":" not in text
    return text if plain else json.dumps(text)


def config_file(config: str, name: str) -> str:
    """The config file of variant ``name``."""
    return config.replace("{variant}", name)


def where(config: str) -> str:
    """``in safe-push-configs/``, or the pattern (``(models/<variant>/cog-safe-push.yaml)``)."""
    folder = configs_folder(config)
    return f"in {folder}/" if folder else f"({config_file(config, '<variant>')})"


def configs_folder(config: str) -> str | None:
    """The folder of a ``FOLDER/{variant}.yaml`` pattern (``configs-dir``), else None."""
    path = PurePosixPath(config)
    parent = path.parent.as_posix()
    ok = path.name == "{variant}.yaml" and "{variant}" not in parent and parent != "."
    return parent if ok else None


def check_names(names: list[str], config: str) -> None:
    """Variant names come from config file names: refuse one cogfleet cannot use."""
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        raise LayoutError(
            f"cannot adopt this repo: variant name {bad[0]!r} (from {config_file(config, bad[0])}) "
            "must be "
            "lower-case letters, digits, . _ -"
        )


def finish(
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
    if configs_folder(config) is None:  # not <folder>/<variant>.yaml: each names its own
        defaults = [*defaults, f"  config: {scalar(config)}"]
    lines = [*header, f"family: {family_name(root)}", "source: .", "defaults:", *defaults]
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
    written = sorted(set(plan.files) - {VARIANTS_FILE})  # templates of what the script generates
    if written:  # not the model's: its build folder leaves them out
        lines.append(f"own_files: [{', '.join(json.dumps(rel) for rel in written)}]")
    plan.files[VARIANTS_FILE] = "\n".join(lines) + "\n"
    settings = []
    config_folder = configs_folder(config)
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
