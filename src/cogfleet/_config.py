"""The ``cog-safe-push.yaml`` model: every key cog-safe-push accepts, plus open checkers.

Files from existing cog-safe-push repos load unchanged. A test case holds ``inputs``
and at most one checker key; which keys are checkers is decided by the plugins
(:func:`cogfleet.hookspecs.cogfleet_register_checkers`), so teams can add their own.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cogfleet._checks import Checker
from cogfleet._errors import ConfigError
from cogfleet._limits import (
    MAX_FUZZ_ITERATIONS,
    MAX_PARALLEL,
    MAX_PREDICT_TIMEOUT,
    MAX_TRAIN_TIMEOUT,
)
from cogfleet._names import SAME_AS_MODEL, account_problem, model_problem, name_problem
from cogfleet._yaml import load_yaml_text

DEFAULT_TIMEOUT = 300


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true is not the number 1 here
        raise ValueError(f"expected an integer, got {str(value).lower()}")
    return value


#: An integer setting: pydantic would read ``true`` as 1 (a one-second timeout).
Int = Annotated[int, BeforeValidator(_not_bool)]



def _json_inputs(value: dict[str, Any]) -> dict[str, Any]:
    """Inputs travel as JSON: YAML's ``.nan`` and ``.inf``, its dates (``2024-01-01``
    unquoted) and ``!!binary`` have no JSON form (cog-safe-push refuses them too)."""

    def walk(item: Any, where: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{where}: {item} is not a number JSON can carry")
        if isinstance(item, datetime.date):
            raise ValueError(
                f"{where}: YAML reads {item.isoformat()} as a date, which JSON cannot "
                f'carry; write it quoted ("{item.isoformat()}") for a string'
            )
        if not isinstance(item, str | int | float | list | dict) and item is not None:
            raise ValueError(f"{where}: a YAML {type(item).__name__} is not a JSON value")
        if isinstance(item, dict):
            for key, inner in item.items():
                walk(inner, f"{where}.{key}" if where else str(key))
        elif isinstance(item, list):
            for index, inner in enumerate(item):
                walk(inner, f"{where}[{index}]")

    walk(value, "")
    return value


#: Inputs of a test case or of fuzzing: names to JSON values.
Inputs = Annotated[dict[str, Any], AfterValidator(_json_inputs)]
#: A hardware SKU (``cpu``, ``gpu-t4``): never empty.
Hardware = Annotated[str, Field(min_length=1)]


def _named_by(problem_of: Callable[[str], str | None]) -> AfterValidator:
    """A validator of a name that ``problem_of`` explains the problem with (or passes)."""

    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


#: Replicate's names: ``owner/name`` of a model, an account, a model or deployment name.
ModelRef = Annotated[str, _named_by(model_problem)]
Account = Annotated[str, _named_by(account_problem)]
Name = Annotated[str, _named_by(name_problem)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TestCase(BaseModel):
    """One test case: ``inputs`` (required, as in cog-safe-push; ``{}`` for none) plus zero
    or one checker key (validated by the loader).

    A checker key whose value is ``null`` is not set, as in cog-safe-push (where each
    checker is an optional field): ``exact_string: null`` beside ``match_prompt: ...``
    is the ``match_prompt`` case, and alone it is a case that must only succeed.
    """

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="allow")

    inputs: Inputs  # required, as in cog-safe-push (``inputs: {}`` for none)

    @property
    def checker(self) -> tuple[str, Any] | None:
        """``(key, expected)`` of the case's checker, or ``None`` (the prediction must succeed)."""
        extra = self.model_extra or {}
        return next(((k, v) for k, v in extra.items() if v is not None), None)


class FuzzConfig(_Strict):
    fixed_inputs: Inputs = Field(default_factory=dict)
    disabled_inputs: list[str] = Field(default_factory=list)
    iterations: Int = Field(default=10, ge=0, le=MAX_FUZZ_ITERATIONS)
    prompt: str | None = None
    duration: Int | None = None  # deprecated in cog-safe-push; accepted and ignored


class PredictConfig(_Strict):
    compare_outputs: bool = True
    predict_timeout: Int = Field(default=DEFAULT_TIMEOUT, gt=0, le=MAX_PREDICT_TIMEOUT)
    test_cases: list[TestCase] = Field(default_factory=list)
    fuzz: FuzzConfig | None = None


class TrainConfig(_Strict):
    destination: ModelRef | None = None
    destination_hardware: Hardware = "cpu"
    train_timeout: Int = Field(default=DEFAULT_TIMEOUT, gt=0, le=MAX_TRAIN_TIMEOUT)
    test_cases: list[TestCase] = Field(default_factory=list)
    fuzz: FuzzConfig | None = None


class DeploymentConfig(_Strict):
    owner: Account | None = None
    name: Name | None = None
    hardware: Hardware | None = None
    # cogfleet extension: scaling bounds (cog-safe-push: cpu 1-20, gpu 0-2), within
    # what Replicate's API accepts (min 0-5, max 0-20)
    min_instances: Int | None = Field(default=None, ge=0, le=5)
    max_instances: Int | None = Field(default=None, ge=1, le=20)

    @model_validator(mode="after")
    def _bounds(self) -> DeploymentConfig:
        low, high = self.min_instances, self.max_instances
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_instances ({low}) is above max_instances ({high})")
        return self


class SafePushConfig(_Strict):
    """A whole ``cog-safe-push.yaml``."""

    model: ModelRef
    test_model: ModelRef | None = None
    test_hardware: Hardware = "cpu"
    predict: PredictConfig | None = None
    train: TrainConfig | None = None
    deployment: DeploymentConfig | None = None
    dockerfile: str | None = None
    parallel: Int = Field(default=4, ge=1, le=MAX_PARALLEL)
    fast_push: bool = False
    use_cog_base_image: bool = True
    ignore_schema_compatibility: bool = False
    official_model: ModelRef | None = None

    @property
    def effective_test_model(self) -> str:
        return self.test_model or f"{self.model}-test"


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based YAML line of the node at ``loc`` (best effort)."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = (key or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def inside_repo(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names under ``root``; ``None`` when it points outside (absolute,
    ``..``, a link out): a config reads and uploads files of its own repository only."""
    if Path(rel).is_absolute():
        return None
    base = root.resolve()
    try:
        path = (base / rel).resolve()
    except (OSError, RuntimeError):  # a symlink loop: nothing to read there, inside or out
        return None if ".." in Path(rel).parts else base / rel
    return path if base in path.parents else None


def _reference_problem(expected: str, root: Path | None) -> str | None:
    """Why a ``match_url`` value cannot be read (``None`` when it can, or is left to the run)."""
    if expected.startswith(("http://", "https://")):
        try:
            parts = urlsplit(expected)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            return f"{expected!r} is not a URL ({exc})"
        return None if parts.hostname else f"{expected!r} is not a URL (no host)"
    if expected.startswith("data:") or root is None:
        return None
    path = inside_repo(root, expected)
    if path is None:
        return f"file {expected!r} is outside the repo"
    if not path.is_file():
        return f"file {expected!r} not found in the repo"
    return None


def case_problem(
    case: TestCase, checkers: Mapping[str, Checker], root: Path | None
) -> tuple[str | None, str] | None:
    """``(key, problem)`` of a test case a run cannot use (``None`` when it can).

    ``key`` is the checker key at fault (``None``: the case as a whole): a key no plugin
    claims, two checker keys, a ``match_url`` that cannot be read, or a value the
    checker's own validation rejects.
    """
    extra = case.model_extra or {}
    unknown = [k for k in extra if k not in checkers]
    if unknown:
        return unknown[0], (f"unknown checker {unknown[0]!r} "
                            f"(known: {', '.join(sorted(checkers))})")
    keys = [k for k, v in extra.items() if v is not None]  # null: not set
    if len(keys) > 1:
        return None, f"at most one checker per test case, got {', '.join(keys)}"
    if not keys:
        return None
    value = (case.model_extra or {})[keys[0]]
    if keys[0] == "match_url" and isinstance(value, str):
        problem = _reference_problem(value, root)
        if problem:
            return "match_url", problem
    validate = checkers[keys[0]].validate
    if validate is not None:
        try:
            validate(value)
        except Exception as exc:  # noqa: BLE001 - plugin code: any error is the value's
            why = (str(exc) if isinstance(exc, ValueError | TypeError)
                   else f"checker {keys[0]!r} raised {type(exc).__name__}: {exc}")
            return keys[0], why
    return None


def parse_config(
    text: str,
    source: str | Path,
    checkers: Mapping[str, Checker],
    root: Path | None = None,
) -> SafePushConfig:
    """Parse and validate a rendered ``cog-safe-push.yaml``.

    ``checkers`` maps the known checker keys to their :class:`Checker`; a key no
    plugin claims, two checker keys in one case, or a value the checker rejects is a
    ``ConfigError`` naming the file, the case index and the field. With ``root`` (the
    folder repo-relative paths are read from), a ``match_url`` naming a file that is
    not there is one too: found now, not after a push.
    """
    data = load_yaml_text(text, source)
    if not isinstance(data, dict):
        raise ConfigError(source, "expected a mapping at the top level")
    try:
        config = SafePushConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = tuple(p for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(source, f"{_dotted(where)}: {msg}", line=_line_of(text, where)) from None
    for section_name in ("predict", "train"):
        section = getattr(config, section_name)
        if section is None:
            continue
        for index, case in enumerate(section.test_cases):
            loc: tuple[Any, ...] = (section_name, "test_cases", index)
            found = case_problem(case, checkers, root)
            if found is not None:
                key, problem = found
                where = loc if key is None else (*loc, key)
                named = loc if problem.startswith("unknown checker") else where
                raise ConfigError(source, f"{_dotted(named)}: {problem}",
                                  line=_line_of(text, where))
        fuzz = section.fuzz
        if fuzz is not None:
            overlap = set(fuzz.fixed_inputs) & set(fuzz.disabled_inputs)
            if overlap:
                raise ConfigError(
                    source,
                    f"{section_name}.fuzz: {sorted(overlap)[0]!r} is both fixed and disabled",
                    line=_line_of(text, (section_name, "fuzz")),
                )
    clash = model_clash(config)
    if clash is not None:
        key, problem = clash
        raise ConfigError(source, f"{key}: {problem}", line=_line_of(text, tuple(key.split("."))))
    return config


def model_clash(config: SafePushConfig) -> tuple[str, str] | None:
    """``(key, problem)`` when two roles of a safe push name one model (``None`` when not).

    The model, the test model, the official model and the training destination are
    four models: the test push must never land on the model or the official model, the
    second pass never on the model it was tested as, and a test training never writes
    versions to the model, the test model or the official model.
    """
    test_model = config.effective_test_model
    if config.test_model is not None and test_model == config.model:
        return "test_model", "must differ from model"
    official = config.official_model
    if official is not None:
        if official == config.model:
            return "official_model", f"{official!r} {SAME_AS_MODEL}"
        if official == test_model:
            return "official_model", f"{official!r} is also the test model"
    destination = config.train.destination if config.train is not None else None
    if destination is not None:
        for role, other in (("the model", config.model), ("the test model", test_model),
                            ("the official model", official)):
            if destination == other:
                return "train.destination", (
                    f"{destination!r} is also {role}; test trainings need a model of their own")
    return None
