"""What ``cogfleet init`` reads in a repo it adopts: its select script and workflows.

The select script (``script/select.sh`` and the like, or a ``Makefile`` target) says
how each variant's cog.yaml is made (a yq merge of base and overlay, a ``cat`` of both,
a whole file copied per variant, ``envsubst``, or something only a run shows) and which
other files it copies per variant. The workflows say which Cog version is installed and
which official models are pushed after the safe push. Nothing here writes a file.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from cogfleet._errors import UsageError
from cogfleet._render import CONFIG_NAME
from cogfleet._repo import VARIANTS_FILE
from cogfleet.adopt._pyselect import PythonSelect, is_python, read_python

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
_SELECT_NAME_RE = re.compile(r"^select(?:[-_](?:model|variant)s?)?(?:\.(?:sh|bash|py))?$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
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
ASSIGNED_RE = re.compile(r"(?:^|[\s;])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
_COPY_COG_RE = re.compile(
    r"\b(?:cp|ln)\s+(?:-[A-Za-z]+\s+)*(\S+)\s+(?:\./)?['\"]?cog\.yaml['\"]?(?![\w.])"
)
_WRITES_COG_RE = re.compile(
    r"(?:>\s*|\b(?:cp|ln|mv|install|tee)\b[^\n;|&]*\s)['\"]?(?:\./)?cog\.yaml['\"]?(?![\w.-])"
)
#: An edit of cog.yaml in place: ``sed -i ... cog.yaml``, ``yq -i``, ``perl -pi``.
_EDITS_COG_RE = re.compile(
    r"\b(?:sed|yq|perl)\b[^\n;|&]*\s-[A-Za-z]*i[A-Za-z]*\b[^\n;|&]*?[\s'\"](?:\./)?cog\.yaml(?![\w.-])"
)
_APPENDS_COG_RE = re.compile(r"[^\n;|&]*>>\s*['\"]?(?:\./)?cog\.yaml['\"]?(?![\w.-])")
_PYTHON_RE = re.compile(r"\bpython[0-9.]*\b")
_NAMES_COG_RE = re.compile(r"['\"](?:\./)?cog\.yaml['\"]")
_COPY_CONFIG_RE = re.compile(
    r"\b(?:cp|ln)\s+(?:-[A-Za-z]+\s+)*(\S+)\s+(?:\./)?['\"]?cog-safe-push\.yaml['\"]?(?![\w.-])"
)
#: cog-safe-push's ``--config`` in a workflow step, with the matrix value in the path.
_CONFIG_OPTION_RE = re.compile(
    r"--config[= ]['\"]?([A-Za-z0-9_./-]*\$\{\{\s*matrix\.\w+\s*\}\}[A-Za-z0-9_./-]*)"
)
_MATRIX_RE = re.compile(r"\$\{\{\s*matrix\.\w+\s*\}\}")
#: Where repos keep one cog-safe-push config per variant when no script or workflow says.
CONFIG_PATTERNS = (
    *(f"{folder}/{{variant}}.yaml" for folder in ("safe-push-configs", "cog-safe-push-configs")),
    *(f"{folder}/cog-safe-push-{{variant}}.yaml"
      for folder in ("safe-push-configs", "cog-safe-push-configs")),
    "cog-safe-push-{variant}.yaml",
    "models/{variant}/cog-safe-push.yaml",
    "{variant}/cog-safe-push.yaml",
)
_COPY_RE = re.compile(r"\bcp\s+(?:-[A-Za-z]+\s+)*(\S+)\s+(\S+)")
_EXCLUDED_RE = re.compile(r"\"\$\{\{\s*matrix\.\w+\s*\}\}\"\s*!=\s*\"([A-Za-z0-9_.-]+)\"")


class LayoutError(UsageError):
    """The folder is neither empty nor a repo ``init`` can adopt (exit 2)."""


#: The yq expressions (blanks removed) of a two-file merge: ``*+`` appends lists, ``*``
#: replaces them (``ireduce`` merges the files in order, from an empty mapping).
_APPENDING_MERGES = {"select(fileIndex==0)*+select(fileIndex==1)",
                     ".as$itemireduce({};.*+$item)"}
_REPLACING_MERGES = {"select(fileIndex==0)*select(fileIndex==1)",
                     ".as$itemireduce({};.*$item)"}


@dataclass
class Select:
    script: str
    base: str | None = None
    overlay: str | None = None  # with {variant}
    config: str | None = None  # with {variant}
    concatenates: bool = False
    replaces_lists: bool = False  # yq's `*`, not `*+`: an overlay's list replaces the base's
    envsubst: bool = False  # cog.yaml is ``envsubst < base``, with variables the script sets
    copies: bool = False  # cog.yaml is a whole file per variant (``base`` has {variant})
    files: dict[str, str] = field(default_factory=dict)  # other copies: dest -> {variant} src
    runs: bool = False  # writes cog.yaml some other way: init runs it to see what it writes
    python: PythonSelect | None = None  # a Python script (run with cogfleet's Python)
    make: tuple[str, str | None] | None = None  # a Makefile's (target, variable): make runs it
    keeps_cog: bool = False  # writes other files; every variant's cog.yaml is the root's


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
    # a Python script by another name that renders cog.yaml with jinja2 (render_template.py)
    for folder in (".", "script", "scripts", "bin"):
        for path in sorted((root / folder).glob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in found and path.is_file() and path.stat().st_size < 200_000:
                text = path.read_bytes()
                if b"jinja2" in text and re.search(rb"['\"](?:\./)?cog\.yaml['\"]", text):
                    found.append(rel)
    return found


def read_select(root: Path) -> Select | None:
    """What the repo's select script merges and copies, when it is one of the known shapes."""
    for rel in _select_scripts(root):
        path = root / rel
        makefile = rel in MAKEFILES
        if not makefile and is_python(path):
            python = read_python(root, rel)
            if python.writes_cog_yaml:
                return Select(script=rel, runs=True, python=python)
            if (root / "cog.yaml").is_file() and _SELECT_NAME_RE.match(path.name):
                # it writes the model's other files; cog.yaml is the repo's own
                return Select(script=rel, runs=True, python=python, keeps_cog=True)
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"\\\n", " ", text)  # shell line continuations
        if makefile:  # a recipe's $(MODEL) is the shell's ${MODEL}; $$ is a $
            text = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", r"${\1}", text).replace("$$", "$")
        found = Select(script=rel)
        merge = re.search(r"\byq\s+(?:eval-all|ea)\s+(['\"])(.*?)\1\s+(\S+)\s+(\S+)", text)
        if merge:
            expression = re.sub(r"\s+", "", merge.group(2))
            if expression in _REPLACING_MERGES:  # yq's `*`: lists replaced
                found.replaces_lists = True
            elif expression not in _APPENDING_MERGES:
                raise LayoutError(
                    f"{rel}: merges with {merge.group(2)!r}; cogfleet overlays merge as "
                    "yq's *+ (maps deeply, lists appended) or * (lists replaced) of the "
                    f"two files; change the script or write {VARIANTS_FILE} by hand"
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
                elif _WRITES_COG_RE.search(text) or (  # a `case` of literal names, sed,
                    _PYTHON_RE.search(text) and _NAMES_COG_RE.search(text)  # python -c
                ):
                    found.runs = True
        edit = _edit_after(text, found)
        if edit is not None:  # what the text says is not the whole of what it writes
            if merge or makefile:
                raise LayoutError(
                    f"{rel}: edits cog.yaml after writing it ({edit}); cogfleet cannot "
                    f"render that from the {'yq merge' if merge else 'make target'}; change "
                    f"the script or write {VARIANTS_FILE} by hand"
                )
            found = Select(script=rel, runs=True)  # run it: its output is read back
        copy = _COPY_CONFIG_RE.search(text)
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
        if makefile and (found.envsubst or found.runs or not (found.base or found.config)):
            # what the text does not say, `make select MODEL=<name>` shows when it runs
            target = make_target(path.read_text(encoding="utf-8", errors="replace"))
            if target is None:
                continue
            return Select(script=rel, runs=True, make=target,
                          keeps_cog=(root / "cog.yaml").is_file() and not found.runs)
        if found.base or found.config or found.runs:
            return found
    return None


_MAKE_TARGET_RE = re.compile(r"^(select[\w-]*)\s*:(?!=)[^\n]*\n((?:\t[^\n]*\n?|[ \t]*\n)+)",
                             re.MULTILINE)
_MAKE_NAMES = ("model", "MODEL", "variant", "VARIANT", "name", "NAME")
_MAKE_WRITES_RE = re.compile(r"\b(?:cp|ln|rsync|envsubst|sed|find|python3?)\b|>")


_MAKE_ANY_TARGET_RE = re.compile(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)[^\n]*\n((?:\t[^\n]*\n?)+)",
                                 re.MULTILINE)


def make_target(text: str) -> tuple[str, str | None] | None:
    """How a Makefile selects a model: ``(target, variable)`` for a select target that
    takes the model's name in a variable (``make select model=<name>``), or
    ``(prefix{variant}, None)`` for one target per model that writes cog.yaml
    (``make cog-yaml-basic``, ``make cog-yaml-advanced``)."""
    text = re.sub(r"\\\n", " ", text)
    for match in _MAKE_TARGET_RE.finditer(text):
        recipe = match.group(2)
        if not _MAKE_WRITES_RE.search(recipe):
            continue
        for name in _MAKE_NAMES:
            if re.search(rf"\$[({{]{name}[)}}]", text):
                return match.group(1), name
    writers = [m.group(1) for m in _MAKE_ANY_TARGET_RE.finditer(text)
               if re.search(r"[>\s]\s*(?:\./)?cog\.yaml\b", m.group(2))]
    if len(writers) >= 2:
        prefix = os.path.commonprefix(writers)
        prefix = prefix[: max(prefix.rfind("-"), prefix.rfind("_")) + 1]
        if prefix and all(len(w) > len(prefix) for w in writers):
            return prefix + "{variant}", None
    return None


def _edit_after(text: str, found: Select) -> str | None:
    """How the script changes cog.yaml after the shape ``found`` wrote it (``sed -i``,
    ``yq -i``, another ``>> cog.yaml``), when it does and ``found`` is a shape read from
    the text (a run sees the end result anyway)."""
    if found.runs or not (found.base or found.overlay):
        return None
    edit = _EDITS_COG_RE.search(text)
    if edit is not None:
        return edit.group(0).strip()
    appends: list[str] = _APPENDS_COG_RE.findall(text)
    if len(appends) > (1 if found.concatenates else 0):
        return appends[-1].strip()
    return None


def read_workflows(root: Path) -> list[tuple[str, str]]:
    folder = root / ".github" / "workflows"
    if not folder.is_dir():
        return []
    return [
        (p.relative_to(root).as_posix(), p.read_text(encoding="utf-8", errors="replace"))
        for p in sorted(folder.iterdir())
        if p.suffix in (".yaml", ".yml") and p.is_file()
    ]


def cog_pin(workflows: list[tuple[str, str]]) -> tuple[str, str] | None:
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


def official_pushes(workflows: list[tuple[str, str]]) -> tuple[str, set[str], str] | None:
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


def one_of(root: Path, names: tuple[str, ...], what: str, *, folder: bool) -> str | None:
    present = [n for n in names if ((root / n).is_dir() if folder else (root / n).is_file())]
    if len(present) > 1:
        raise LayoutError(
            f"ambiguous {what}: found {' and '.join(present)}; keep one (or write "
            f"{VARIANTS_FILE} by hand)"
        )
    return present[0] if present else None


def config_pattern(root: Path, select: Select | None) -> str | None:
    """Where each variant's cog-safe-push config is, with ``{variant}`` for its name.

    What the select script copies to ``cog-safe-push.yaml`` decides, then a workflow's
    ``cog-safe-push --config=...${{ matrix.model }}...``, then the usual places
    (:data:`CONFIG_PATTERNS`: a configs folder, ``cog-safe-push-<variant>.yaml``,
    ``models/<variant>/cog-safe-push.yaml``, ``<variant>/cog-safe-push.yaml``).
    """
    if select is not None and select.config:
        return select.config
    from_workflows = {
        _MATRIX_RE.sub("{variant}", match.group(1)).removeprefix("./")
        for _, text in read_workflows(root) for match in _CONFIG_OPTION_RE.finditer(text)
    }
    usable = sorted(p for p in from_workflows if per_variant_files(root, p))
    if len(usable) == 1:
        return usable[0]
    found = [p for p in CONFIG_PATTERNS if per_variant_files(root, p)]
    prefixed = {p for p in found if "/cog-safe-push-{variant}" in p}
    # a configs folder of cog-safe-push-<variant>.yaml files matches both of its patterns
    found = [p for p in found if p.replace("{variant}", "cog-safe-push-{variant}")
             not in prefixed or not _all_prefixed(root, p)]
    if len(found) > 1:
        listed = " and ".join(p.replace("{variant}", "<variant>") for p in found)
        raise LayoutError(
            f"ambiguous cog-safe-push configs: found {listed}; keep one (or write "
            f"{VARIANTS_FILE} by hand)"
        )
    return found[0] if found else None


def _all_prefixed(root: Path, pattern: str) -> bool:
    """Every file ``pattern`` matches is named ``cog-safe-push-<variant>.yaml``."""
    return all(name.startswith("cog-safe-push-") for name in per_variant_files(root, pattern))


def stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.yaml") if p.is_file()} if folder.is_dir() else set()


def per_variant_files(root: Path, pattern: str) -> dict[str, str]:
    """Variant name -> file, for the files matching ``pattern`` (``{variant}`` in it)."""
    head, tail = pattern.split("{variant}", 1)
    if "{variant}" in tail:
        return {}
    found: dict[str, str] = {}
    for path in sorted(root.glob(head + "*" + tail)):
        rel = path.relative_to(root).as_posix()
        name = rel[len(head) : len(rel) - len(tail)]
        if path.is_file() and rel != CONFIG_NAME and name and "/" not in name and (
            not name.startswith(".")
        ):
            found[name] = rel
    return found
