"""Validation of a rendered ``cog.yaml``.

Two layers, as Cog itself does it: the file is checked against Cog's own JSON
Schema (``data/cog-config-schema-v1.0.json``, draft-07), then against the semantic
rules the schema cannot express (run/predict refs, python and CUDA versions, the
environment deny-list, concurrency, image/model). Both layers look at the *raw*
YAML, so this is stricter than cog >= 0.17, which silently drops unknown keys:
a misspelt key is an error here instead of a setting that never takes effect.

Version fields (``build.python_version``, ``build.cuda``, ``build.cudnn``) are read
as the scalar text written in the file, because YAML reads ``python_version: 3.10``
as the float 3.1 while Cog (Go) reads the string "3.10".

The public entry point is :func:`validate_cog_yaml`.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cogfleet._cogyaml_build import build_problems
from cogfleet._errors import ConfigError
from cogfleet._names import image_problem
from cogfleet._pyparse import parse
from cogfleet._requirements import requirements_file_problems
from cogfleet._yaml import MAX_DEPTH, check_shape

__all__ = ["validate_cog_yaml"]

# Keys that existed in older cog.yaml formats and were removed in cog 0.17.
_REMOVED_KEYS: dict[tuple[str | int, ...], str] = {
    ("tests",): "removed in cog 0.17 (it only served the old --x-fast push), delete it",
    ("build", "fast"): "removed in cog 0.17 (fast push no longer exists), delete it",
    ("build", "cog_runtime"): "removed in cog 0.17 (coglet is the only server now), delete it",
    ("build", "python_overrides"): "removed in cog 0.17, delete it",
}

_DEPRECATED: dict[tuple[str, ...], str] = {
    ("predict",): "predict: deprecated since cog 0.20; use run",
    ("concurrency", "max"): (
        "concurrency.max: deprecated; prefer @cog.concurrent(max=N) on an async run()"
    ),
    ("build", "python_packages"): (
        "build.python_packages: deprecated; list the packages in a requirements file "
        "and set build.python_requirements"
    ),
    ("build", "pre_install"): "build.pre_install: deprecated; use build.run",
}

# Environment names Cog refuses to let cog.yaml set (pkg/config/env.go).
_DENIED_ENV_NAMES = frozenset(
    {
        "PATH",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONUNBUFFERED",
        "LIBRARY_PATH",
        "HF_ENDPOINT",
        "HF_HUB_ENABLE_HF_TRANSFER",
    }
)
_DENIED_ENV_PREFIXES = ("R8_", "REPLICATE_", "CUDA_", "NVIDIA_", "NV_", "PGET_", "KUBERNETES_")

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_ENV_ENTRY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Scalars whose source text matters more than YAML's reading of it.
_RAW_SCALARS = (("build", "python_version"), ("build", "cuda"), ("build", "cudnn"))

_Key = tuple[str | int, ...]


def _dotted(key: _Key) -> str:
    """``("environment", 2)`` -> ``environment[2]``; ``("build", "gpu")`` -> ``build.gpu``."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


@dataclass
class _Document:
    """The parsed file plus, per key path, its line and its raw scalar text."""

    data: Any
    lines: dict[_Key, int] = field(default_factory=dict)
    raw: dict[_Key, str] = field(default_factory=dict)

    def line(self, key: _Key) -> int | None:
        """Line of ``key``, or of its nearest ancestor that has one."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.lines:
                return self.lines[key[:end]]
        return None


@dataclass
class _Problems:
    doc: _Document
    errors: list[tuple[int | None, str]] = field(default_factory=list)

    def add(self, key: _Key, problem: str) -> None:
        self.errors.append((self.doc.line(key), f"{_dotted(key)}: {problem}"))


def _load(path: Path, text: str) -> _Document:
    """Parse YAML keeping line numbers and raw scalar text; errors carry the line."""
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters right here
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            check_shape(node, path)
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:  # composing is recursive in PyYAML's own parser
        raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            path, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    doc = _Document(data=data)
    if node is not None:
        _index(path, node, (), doc)
    return doc


def _index(
    path: Path, node: yaml.Node, key: _Key, doc: _Document, open_nodes: frozenset[int] = frozenset()
) -> None:
    """Record lines and raw scalars under ``key``; reject duplicate mapping keys."""
    if id(node) in open_nodes:
        return  # a recursive alias (&a ... *a): already being indexed further up
    open_nodes = open_nodes | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = str(key_node.value)
            child = (*key, name)
            if name in seen:
                raise ConfigError(
                    path, f"{_dotted(child)}: duplicate key", line=key_node.start_mark.line + 1
                )
            seen.add(name)
            doc.lines[child] = key_node.start_mark.line + 1
            _index(path, value_node, child, doc, open_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*key, index)
            doc.lines[child] = item.start_mark.line + 1
            _index(path, item, child, doc, open_nodes)
    elif isinstance(node, yaml.ScalarNode):
        doc.raw[key] = str(node.value)


@functools.cache
def _schema() -> dict[str, Any]:
    source = resources.files("cogfleet").joinpath("data/cog-config-schema-v1.0.json")
    schema: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return schema


def _check_schema(doc: _Document, out: _Problems, cog: tuple[int, ...] | None = None) -> None:
    """Cog's JSON Schema, with messages rewritten to name the offending key.

    ``cog``: the pinned Cog version; before 0.17 the keys 0.17 removed were valid.
    """
    import jsonschema  # 60 ms with its dependencies: only when a text is checked

    validator = jsonschema.Draft7Validator(_schema())
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.path))):
        where: _Key = tuple(error.path)
        if error.validator == "not" and not where:
            continue  # run + predict: reported by _check_refs with a clearer message
        if where[:1] == ("environment",) and error.validator == "pattern":
            continue  # reported by _check_environment with the reason
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for name in sorted({str(k) for k in error.instance} - allowed):
                child = (*where, name)
                if child in _REMOVED_KEYS and cog is not None and cog < (0, 17):
                    continue  # still part of the pinned Cog's format
                if child in _REMOVED_KEYS:
                    out.add(child, _REMOVED_KEYS[child])
                else:
                    out.add(child, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        elif error.validator == "required" and isinstance(error.validator_value, list):
            missing = [n for n in error.validator_value if n not in (error.instance or {})]
            for name in missing:
                out.add((*where, name), "required")
        else:
            out.add(where, error.message)


def _version(text: str) -> tuple[int, int] | None:
    match = _VERSION.match(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _python_version(doc: _Document) -> tuple[int, int] | None:
    """The configured Python (major, minor); Cog's default 3.13 without ``build``."""
    build = doc.data.get("build")
    if not isinstance(build, dict):
        return (3, 13)
    raw = doc.raw.get(("build", "python_version"))
    return _version(raw) if raw is not None else None


def _check_versions(doc: _Document, out: _Problems, cog_version: str | None) -> None:
    build = doc.data.get("build")
    if not isinstance(build, dict):
        return
    for key, problem in build_problems(build, doc.raw, cog_version):
        out.add(key, problem)


def _split_ref(ref: str) -> tuple[str, str] | None:
    parts = ref.split(".py:")
    if len(parts) != 2 or not parts[0] or not _IDENTIFIER.match(parts[1]):
        return None
    return parts[0] + ".py", parts[1]


def _shown(folder: Path) -> str:
    """``folder`` as messages show it: relative to the current folder when inside it."""
    with contextlib.suppress(ValueError):
        return str(folder.resolve().relative_to(Path.cwd().resolve())) or "."
    return str(folder)


def _inside(build_dir: Path, rel: str) -> bool:
    """True when ``rel`` names a place inside ``build_dir`` (Cog reads nothing outside it)."""
    if Path(rel).is_absolute():
        return False
    root = build_dir.resolve()
    target = (build_dir / rel).resolve()
    return target == root or root in target.parents


def _check_refs(doc: _Document, out: _Problems, build_dir: Path | None) -> None:
    data = doc.data
    if "run" in data and "predict" in data:
        out.add(("predict",), "set either run or predict, not both (predict is the old name)")
    for key in ("run", "predict", "train"):
        ref = data.get(key)
        if not isinstance(ref, str):
            continue
        split = _split_ref(ref)
        if split is None:
            out.add((key,), f'expected FILE.py:NAME such as "predict.py:Predictor", got {ref!r}')
        elif build_dir is not None and not _inside(build_dir, split[0]):
            out.add((key,), f"{split[0]} is outside the model folder; Cog builds only what is "
                    "inside it")
        elif build_dir is not None and not (build_dir / split[0]).is_file():
            out.add((key,), f"{split[0]} does not exist in {_shown(build_dir)}")
        elif build_dir is not None:
            problem = _missing_name(build_dir / split[0], split[1])
            if problem:
                out.add((key,), problem)
    build = data.get("build")
    requirements = build.get("python_requirements") if isinstance(build, dict) else None
    if isinstance(requirements, str) and build_dir is not None:
        where = ("build", "python_requirements")
        if not _inside(build_dir, requirements):
            out.add(where, f"{requirements} is outside the model folder; Cog builds only what "
                    "is inside it")
        elif not (build_dir / requirements).is_file():
            out.add(where, f"{requirements} does not exist in {_shown(build_dir)}")


def _check_requirements_file(build: Any, build_dir: Path) -> None:
    """Every line of ``build.python_requirements`` is one pip can read; the error names
    that file and line (cog.yaml itself is valid by now)."""
    rel = build.get("python_requirements") if isinstance(build, dict) else None
    if not isinstance(rel, str) or not (build_dir / rel).is_file():
        return
    path = build_dir / rel
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
                          line=line) from None
    problems = requirements_file_problems(text)
    if problems:
        line, problem = problems[0]
        raise ConfigError(path, problem, line=line)


def _check_run_commands(doc: _Document, out: _Problems) -> None:
    # Cog writes each command (build.run, then the old build.pre_install) into one RUN
    # line of its Dockerfile, stripped, and refuses one that spans lines ("One of the
    # commands in 'run' contains a new line").
    build = doc.data.get("build")
    if not isinstance(build, dict):
        return
    for key in ("run", "pre_install"):
        commands = build.get(key)
        if not isinstance(commands, list):
            continue
        for index, item in enumerate(commands):
            command = item.get("command") if isinstance(item, dict) else item
            if isinstance(command, str) and "\n" in command.strip():
                out.add(("build", key, index), "contains a new line: Cog's build takes one "
                        "line a command (one list item each, or join them with &&)")


def _check_environment(doc: _Document, out: _Problems) -> None:
    entries = doc.data.get("environment")
    if not isinstance(entries, list):
        return
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = ("environment", index)
        if not isinstance(entry, str):
            continue  # the schema already reports the wrong type
        match = _ENV_ENTRY.match(entry)
        if match is None:
            out.add(key, f"expected NAME=VALUE, got {entry!r}")
            continue
        name = match.group(1)
        if name in _DENIED_ENV_NAMES or name.startswith(_DENIED_ENV_PREFIXES):
            out.add(key, f"{name} is reserved by Cog/Replicate and cannot be set in cog.yaml")
        if name in seen:
            out.add(key, f"{name} is already set by environment[{seen[name]}]")
        else:
            seen[name] = index


def _missing_name(module: Path, name: str) -> str | None:
    """Why ``module`` does not define ``name`` at its top level (``None`` when it may).

    Read statically, never imported: a class, function, assignment or import binding
    the name counts, and so does a star import or a binding inside a top-level
    ``if``/``try``/``with``. A module that does not parse is the lint step's to report.
    """
    try:
        tree = parse(module.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                bound.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            bound.update(
                n.name if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                else n.id if isinstance(n, ast.Name) else (n.asname or n.name)
                for n in ast.walk(node)
                if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.alias)
                or (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
            )
    if name in bound:
        return None
    classes = sorted(b for b in bound if b[:1].isupper())
    known = f" (classes there: {', '.join(classes)})" if classes else ""
    return f"{module.name} defines no {name!r}{known}"


def _run_is_async(build_dir: Path, ref: str) -> bool | None:
    """Whether the referenced class's run()/predict() (or function) is async; None if unknown."""
    split = _split_ref(ref)
    if split is None or not (build_dir / split[0]).is_file():
        return None
    try:
        tree = parse((build_dir / split[0]).read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == split[1]:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in (
                    "run",
                    "predict",
                ):
                    return isinstance(item, ast.AsyncFunctionDef)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == split[1]:
            return isinstance(node, ast.AsyncFunctionDef)
    return None


def _check_concurrency(doc: _Document, out: _Problems, build_dir: Path | None) -> None:
    concurrency = doc.data.get("concurrency")
    if not isinstance(concurrency, dict):
        return
    maximum = concurrency.get("max")
    if not isinstance(maximum, int) or isinstance(maximum, bool):
        return  # the schema reports a missing or non-integer max
    if maximum < 1:
        out.add(("concurrency", "max"), f"must be at least 1, got {maximum}")
        return
    if maximum > 1:
        python = _python_version(doc)
        if python is not None and python < (3, 11):
            out.add(("concurrency", "max"), f"{maximum} needs build.python_version 3.11 or newer")
        ref = doc.data.get("run", doc.data.get("predict"))
        if (
            build_dir is not None
            and isinstance(ref, str)
            and _run_is_async(build_dir, ref) is False
        ):
            out.add(("concurrency", "max"),
                    f"{maximum} needs an async run() or predict() in {ref}; it is sync")


def _check_image_model(doc: _Document, out: _Problems) -> None:
    data = doc.data
    if "image" in data and "model" in data:
        out.add(("model",), "set either image or model, not both")
    for key, bare in (("image", False), ("model", True)):
        value = data.get(key)
        problem = image_problem(value, bare=bare) if isinstance(value, str) else None
        if problem:
            out.add((key,), problem)
    if data.get("weights") and "model" not in data:
        out.add(("weights",), "needs a top-level model: to push weights to")
    _check_weights(data.get("weights"), out)


def _check_weights(weights: Any, out: _Problems) -> None:
    """Weight names and targets must be unique, and no target may sit inside another."""
    if not isinstance(weights, list):
        return
    names: dict[str, int] = {}
    targets: dict[str, int] = {}
    for index, item in enumerate(weights):
        if not isinstance(item, dict):
            continue
        name, target = item.get("name"), item.get("target")
        if isinstance(name, str):
            if name in names:
                out.add(
                    ("weights", index, "name"),
                    f"{name!r} is already used by weights[{names[name]}]",
                )
            else:
                names[name] = index
        if isinstance(target, str):
            clean = target.rstrip("/") or "/"
            for other, other_index in targets.items():
                if (
                    clean == other
                    or clean.startswith(other.rstrip("/") + "/")
                    or other.startswith(clean.rstrip("/") + "/")
                ):
                    out.add(
                        ("weights", index, "target"),
                        f"{target!r} overlaps weights[{other_index}].target {other!r}",
                    )
                    break
            else:
                targets[clean] = index


def validate_cog_yaml(
    path: Path,
    build_dir: Path | None = None,
    *,
    cog_version: str | None = None,
    schema_checked: bool = False,
) -> list[str]:
    """Validate the ``cog.yaml`` at ``path`` and return its deprecation warnings.

    ``build_dir`` is the folder ``cog build`` would run in; when given, the files the
    config points at (``run``/``predict``/``train`` modules, ``python_requirements``)
    must exist there, and ``concurrency.max > 1`` needs an ``async def run``.
    ``cog_version`` is the Cog the variant is pinned to: before 0.20 a top-level
    ``run:`` is an error and ``predict:`` is no deprecation; before 0.17 the keys
    0.17 removed (``tests``, ``build.fast``…) are still valid.
    ``schema_checked``: this very text already passed Cog's JSON Schema under this
    ``cog_version`` (a re-render that left cog.yaml as it was), so that check, a pure
    function of the two, is not run again; every other check still is.

    Raises :class:`~cogfleet._errors.ConfigError` naming the file, the line of the
    first problem and every problem found, each as ``<dotted.key>: <problem>``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "not UTF-8 text") from None
    doc = _load(path, text)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ConfigError(path, "expected a mapping of cog.yaml keys at the top level", line=1)
    if build_dir is not None and not any(k in doc.data for k in ("run", "predict", "train")):
        # a build folder is pushed: Replicate needs something to run in it
        raise ConfigError(path, "nothing to run: set run: (a predictor such as "
                          '"predict.py:Predictor") or train:', line=1)
    # Version fields are checked as written (see the module docstring), so the schema
    # sees the same string Cog's Go decoder would.
    build = doc.data.get("build")
    if isinstance(build, dict):
        for key in _RAW_SCALARS:
            value = build.get(key[1])
            if isinstance(value, int | float) and not isinstance(value, bool):
                build[key[1]] = doc.raw[key]
    problems = _Problems(doc)
    cog = _cog_release(cog_version)
    if not schema_checked:
        _check_schema(doc, problems, cog)
    if cog is not None and cog < (0, 20) and "run" in doc.data:
        problems.add(("run",), f"Cog {cog_version} has no top-level run: (added in 0.20); use "
                     "predict:")
    _check_versions(doc, problems, cog_version)
    _check_refs(doc, problems, build_dir)
    _check_environment(doc, problems)
    _check_run_commands(doc, problems)
    _check_concurrency(doc, problems, build_dir)
    _check_image_model(doc, problems)
    if problems.errors:
        # Report in file order; the error's line is the first problem's.
        ordered = sorted(problems.errors, key=lambda e: (e[0] is None, e[0] or 0))
        raise ConfigError(path, "; ".join(message for _, message in ordered), line=ordered[0][0])
    if build_dir is not None:
        _check_requirements_file(doc.data.get("build"), build_dir)
    deprecated = dict(_DEPRECATED)
    if cog is not None and cog < (0, 20):
        del deprecated[("predict",)]  # the pinned Cog knows nothing else
    return [
        message for key, message in deprecated.items() if _get(doc.data, key) not in (None, [], {})
    ]


def _cog_release(version: str | None) -> tuple[int, ...] | None:
    if version is None:
        return None
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _get(data: dict[str, Any], key: tuple[str, ...]) -> Any:
    """The value at ``key``, or None when any part of the path is missing."""
    node: Any = data
    for part in key:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
