"""A config's inputs checked against the variant's schema before anything is pushed.

Test cases, ``fuzz.fixed_inputs`` and ``fuzz.disabled_inputs`` (of ``predict`` and
``train``) name inputs of the version the push will make. Its schema is known before
the push: :func:`cogfleet.schema.generate_schema` reads it from the rendered source
without importing it. Each test case is checked with the rule the API applies to an
input (:func:`cogfleet._api_rules.input_problems`: types, choices, bounds, required
inputs), so a case the server would refuse after the push is a config error now.

A push (``at_push``) refuses a source the pinned Cog's build refuses (``cog build``
cannot write its schema: ``choices`` no static reading resolves under Cog >= 0.20, say)
before anything is created or pushed. Where that Cog let its SDK write the document
(<= 0.16, and 0.17-0.19 for a type the static parser cannot follow), the push asks the
SDK in the version's environment first (:func:`check_with_sdk`): the environment the
local server then runs the version in, so it is built once.

What is left to the run, never refused here:

- an input name the schema does not know in a test case: Replicate accepts it and Cog
  drops it, so it is a warning (most likely a misspelling);
- anything, when the schema cannot be derived here (outside a push, or where the SDK's
  document comes from the target's own build): a warning says so, and a push checks
  the inputs against the pushed test version's schema (:func:`deferred_check`) before
  any prediction, with the same errors (exit 2 at the config's line).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet._config import SafePushConfig, _dotted, _line_of, inside_repo
from cogfleet._errors import ConfigError, UsageError

if TYPE_CHECKING:
    from cogfleet._render import Rendered
    from cogfleet.runtime import EnvStore, RuntimeOptions
    from cogfleet.schema import ModelCodeNeeded

Loc = tuple[str | int, ...]

_SECTIONS = (("predict", "Input"), ("train", "TrainingInput"))
_MAX_SOURCE_BYTES = 1 << 20  # the schema reads source and cog.yaml, never large files


@dataclass(frozen=True)
class InputProblem:
    """One problem of the config's inputs: where (config keys) and what."""

    loc: Loc
    message: str
    warning: bool = False


@contextlib.contextmanager
def _folder_of(files: Mapping[str, bytes]) -> Iterator[Path]:
    """A build folder held in memory (``rel -> bytes``) written to a temporary folder
    (its sources and cog.yaml: large data files are left out)."""
    with tempfile.TemporaryDirectory(prefix="cogfleet-schema-") as tmp:
        folder = Path(tmp)
        for rel, data in files.items():
            if len(data) > _MAX_SOURCE_BYTES and not rel.endswith((".py", ".pyi")):
                continue
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        yield folder


def schema_of_files(files: Mapping[str, bytes], cog_version: str | None) -> dict[str, Any]:
    """The OpenAPI document of a build folder held in memory (``rel -> bytes``).

    Raises:
        ConfigError: the schema cannot be derived statically (as from
            :func:`~cogfleet.schema.generate_schema`).
    """
    from cogfleet.schema import generate_schema

    with _folder_of(files) as folder:
        return generate_schema(folder, cog_version)


def _cog_yaml_refused(folder: Path, cog_version: str | None) -> bool:
    """Whether ``folder``'s cog.yaml is invalid (its validation then names the problem,
    where it was written, before the schema's consequence of it)."""
    from cogfleet._cogyaml import validate_cog_yaml

    try:
        validate_cog_yaml(folder / "cog.yaml", folder, cog_version=cog_version)
    except ConfigError:
        return True
    return False


def _properties(schema: Mapping[str, Any], component: str) -> dict[str, Any] | None:
    found = schema.get("components", {}).get("schemas", {}).get(component)
    if not isinstance(found, dict):
        return None
    props = found.get("properties")
    return props if isinstance(props, dict) else {}


def _is_file(prop: Any) -> bool:
    return isinstance(prop, dict) and prop.get("format") == "uri"


def _api_problems(
    schema: Mapping[str, Any], component: str, inputs: dict[str, Any], loc: Loc,
    *, with_required: bool = True,
) -> Iterator[InputProblem]:
    from cogfleet._api_rules import input_problems

    for kind, field, text in input_problems(schema, component, inputs):
        if kind == "required" and not with_required:
            continue
        parts = field.split(".")[1:]  # "input.seed" -> ["seed"]
        where: Loc = (*loc, *(int(p) if p.isdigit() else p for p in parts))
        text = text.removeprefix(f"{field} ")  # "input.x must be one of" -> "must be one of"
        yield InputProblem(where, text)


def _file_problems(
    props: Mapping[str, Any], inputs: Mapping[str, Any], loc: Loc, root: Path | None
) -> Iterator[InputProblem]:
    """A file input given as a repo path must be a file of the repo (it is uploaded)."""
    if root is None:
        return
    for name, value in inputs.items():
        if not _is_file(props.get(name)) or not isinstance(value, str):
            continue
        if value.startswith(("data:", "http://", "https://")):
            continue
        path = inside_repo(root, value)
        if path is None:
            yield InputProblem((*loc, name), f"file {value!r} is outside the repo")
        elif not path.is_file():
            yield InputProblem((*loc, name), f"file {value!r} not found in the repo")


def input_problems(
    config: SafePushConfig, schema: Mapping[str, Any], root: Path | None = None
) -> list[InputProblem]:
    """Every problem of ``config``'s inputs against ``schema`` (errors and warnings)."""
    problems: list[InputProblem] = []
    for section_name, component in _SECTIONS:
        section = getattr(config, section_name)
        props = _properties(schema, component)
        if section is None:
            continue
        if props is None:
            what = "trainer (cog.yaml sets no train:)" if section_name == "train" else "predictor"
            problems.append(InputProblem((section_name,), f"the model has no {what}"))
            continue
        known = ", ".join(props) or "none"
        for index, case in enumerate(section.test_cases):
            loc: Loc = (section_name, "test_cases", index, "inputs")
            for name in case.inputs:
                if name not in props:
                    problems.append(InputProblem(
                        (*loc, name),
                        f"unknown input {name!r}, which Replicate ignores (inputs: {known})",
                        warning=True,
                    ))
            problems += _api_problems(schema, component, dict(case.inputs), loc)
            problems += _file_problems(props, case.inputs, loc, root)
        fuzz = section.fuzz
        if fuzz is None or fuzz.iterations == 0:  # no fuzz input is ever made
            continue
        loc = (section_name, "fuzz", "fixed_inputs")
        for name, value in fuzz.fixed_inputs.items():
            if name not in props:
                problems.append(InputProblem((*loc, name), f"unknown input (inputs: {known})"))
            elif value is None:
                problems.append(InputProblem((*loc, name), "null is not allowed (omit it)"))
        fixed = {k: v for k, v in fuzz.fixed_inputs.items() if k in props and v is not None}
        problems += _api_problems(schema, component, fixed, loc, with_required=False)
        problems += _file_problems(props, fixed, loc, root)
        required = _required(schema, component)
        for index, name in enumerate(fuzz.disabled_inputs):
            where = (section_name, "fuzz", "disabled_inputs", index)
            if name not in props:
                problems.append(InputProblem(where, f"unknown input {name!r} (inputs: {known})"))
            elif name in required:
                problems.append(InputProblem(where, f"{name!r} is required; it cannot be left out"))
    return problems


def _required(schema: Mapping[str, Any], component: str) -> set[str]:
    found = schema.get("components", {}).get("schemas", {}).get(component, {})
    required = found.get("required") if isinstance(found, dict) else None
    return set(required) if isinstance(required, list) else set()


@dataclass
class ConfigText:
    """Where a config came from: its (rendered) text, its name, and a way back from a
    line of the text to the file and line the user wrote."""

    text: str
    source: str
    position: Any = None  # (line) -> (file, line); None: the text is the file

    def at(self, loc: Loc) -> tuple[str, int | None]:
        line = _line_of(self.text, loc)
        if self.position is None:
            return self.source, line
        where, at_line = self.position(line)
        return str(where), at_line


def check_inputs(
    config: SafePushConfig, schema: Mapping[str, Any], text: ConfigText,
    *, root: Path | None = None, flags: Mapping[Loc, str] | None = None,
) -> list[str]:
    """Raise for the first problem of ``config``'s inputs; return the warnings.

    ``flags`` maps a config location that a command-line flag set (``("predict",
    "test_cases")`` -> ``--test-case``) to the flag: a problem there is a
    :class:`UsageError` naming the flag, anywhere else a :class:`ConfigError` at the
    config's file and line.
    """
    warnings = []
    for problem in input_problems(config, schema, root):
        flag = next(((prefix, name) for prefix, name in (flags or {}).items()
                     if problem.loc[: len(prefix)] == prefix), None)
        if flag is not None:
            rest = problem.loc[len(flag[0]):]
            what = f"{flag[1]} {_dotted(rest)}" if rest else flag[1]
            if not problem.warning:
                raise UsageError(f"{what}: {problem.message}")
            warnings.append(f"{what}: {problem.message}")
            continue
        where, line = text.at(problem.loc)
        if not problem.warning:
            raise ConfigError(where, f"{_dotted(problem.loc)}: {problem.message}", line=line)
        shown = f"{where}:{line}" if line else where
        warnings.append(f"{shown}: {_dotted(problem.loc)}: {problem.message}")
    return warnings


class Unchecked(str):
    """A warning that the config's inputs could not be checked before the push: a push
    then checks them against the schema of the version it made (:func:`deferred_check`)."""

    __slots__ = ()


def _unchecked(exc: ConfigError) -> str:
    return Unchecked(
        "the config's inputs are checked by the push only, against the schema of the "
        f"test version before any prediction: the schema cannot be derived from the "
        f"source ({exc})"
    )


def deferred_check(
    config: SafePushConfig, text: ConfigText,
    *, root: Path | None = None, flags: Mapping[Loc, str] | None = None,
) -> Callable[[Mapping[str, Any]], list[str]]:  # fmt: skip
    """:func:`check_inputs` of ``config`` for a schema known only once the version is
    pushed (the target built it, running the model's code where the pinned Cog did):
    the same errors, at the same file and line, as a check before the push."""
    return lambda schema: check_inputs(config, schema, text, root=root, flags=flags)


def _refused(exc: ConfigError, cog_version: str | None, needs_code: list[ModelCodeNeeded] | None,
             where: Callable[[ConfigError], ConfigError]) -> list[str]:  # fmt: skip
    """What a push does when the schema cannot be derived: ``exc`` (at the file the user
    wrote) when the pinned Cog refuses the build itself, the SDK's turn (``needs_code``
    given) when that Cog ran the model's code for it; otherwise a warning."""
    from cogfleet.schema import ModelCodeNeeded, UnknownCogVersion, rules_for

    if isinstance(exc, ModelCodeNeeded):
        if needs_code is None:
            return [_unchecked(exc)]
        moved = where(exc)
        needs_code.append(moved if isinstance(moved, ModelCodeNeeded) else exc)
        return []
    try:
        rules_for(cog_version)
    except UnknownCogVersion:  # whatever that Cog does, cogfleet cannot say
        return [_unchecked(exc)]
    raise where(exc) from None


def check_rendered(
    rendered: Rendered, config: SafePushConfig | None, cog_version: str | None,
    *, root: Path | None = None, flags: Mapping[Loc, str] | None = None,
    needs_code: list[ModelCodeNeeded] | None = None, strict: bool = False,
) -> list[str]:
    """:func:`check_inputs` of a rendered variant (its build files, in memory or not),
    errors at the line of the template the user wrote; the warnings.

    ``needs_code`` given (a push): a source the pinned Cog refuses is a
    :class:`ConfigError` at the line the user wrote, and a document only the SDK can
    write is appended there for :func:`check_with_sdk` once the build folder exists.
    ``strict`` (lint, build): such a source is an error too, and a document only the SDK
    can write is a warning. ``config`` ``None``: the source alone is checked.
    """

    def at_source(exc: ConfigError) -> ConfigError:
        if exc.path is None or Path(exc.path).is_absolute():
            return exc
        where, line = rendered.source_position(Path(exc.path).as_posix(), exc.line)
        return type(exc)(where, exc.message, line)

    from cogfleet.schema import generate_schema

    with _folder_of(rendered.files) as folder:
        try:
            schema = generate_schema(folder, cog_version)
        except ConfigError as exc:
            if (needs_code is None and not strict) or _cog_yaml_refused(folder, cog_version):
                return [_unchecked(exc)]
            return _refused(exc, cog_version, needs_code, at_source)
    if config is None:
        return []
    return check_inputs(config, schema, rendered_text(rendered), root=root, flags=flags)


def rendered_text(rendered: Rendered) -> ConfigText:
    """A rendered variant's config, lines mapped back to the template the user wrote."""
    from cogfleet._render import CONFIG_NAME

    return ConfigText(
        rendered.files[CONFIG_NAME].decode("utf-8"), CONFIG_NAME,
        lambda line: rendered.source_position(CONFIG_NAME, line),
    )


def check_folder(
    folder: Path, config: SafePushConfig, cog_version: str | None, text: ConfigText,
    *, flags: Mapping[Loc, str] | None = None, needs_code: list[ModelCodeNeeded] | None = None,
) -> list[str]:
    """:func:`check_inputs` of a config for one Cog folder (``cogfleet safe-push``);
    ``needs_code`` as for :func:`check_rendered`."""
    from cogfleet.schema import generate_schema

    try:
        schema = generate_schema(folder, cog_version)
    except ConfigError as exc:
        if needs_code is None or _cog_yaml_refused(folder, cog_version):
            return [_unchecked(exc)]
        return _refused(exc, cog_version, needs_code, lambda e: e)
    return check_inputs(config, schema, text, root=folder, flags=flags)


def check_with_sdk(
    build_dir: Path, reason: ModelCodeNeeded, options: RuntimeOptions, store: EnvStore | None,
    config: SafePushConfig, text: ConfigText,
    *, root: Path | None = None, flags: Mapping[Loc, str] | None = None,
) -> list[str]:  # fmt: skip
    """:func:`check_inputs` against the document the pinned SDK writes for ``build_dir``
    in the version's environment of ``store`` (built if missing, as the local server
    would build it). ``store`` None: the target builds the version itself (its own
    environments, or an image), so the inputs are left to the push (a warning).

    Raises :class:`ConfigError` at ``reason``'s ``file:line`` when the SDK cannot write
    the document, its environment cannot be built, or the run has no environment to
    run the SDK in (``--env current``).
    """
    from cogfleet.schema import sdk_document_in_store

    if store is None:
        return [_unchecked(reason)]
    if options.environment == "current":
        raise ConfigError(
            reason.path,
            f"{reason.message} (Cog {options.cog_version} wrote the schema by running the "
            "model's code, which needs the version's isolated environment, not --env current)",
            reason.line,
        )
    schema = sdk_document_in_store(
        build_dir, options.cog_version, store, reason, python_fallback=options.python,
        run_build_commands=options.run_build_commands,
    )  # fmt: skip
    return check_inputs(config, schema, text, root=root, flags=flags)
