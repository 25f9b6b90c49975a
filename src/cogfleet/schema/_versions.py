"""Which schema rules a Cog version follows.

Cog changed how it derives a model's OpenAPI document several times; a repo that
pins a Cog version gets that version's document. :func:`rules_for` maps a version
string to a :class:`Rules` value, every field of which is one documented
difference (see ``docs/schema-versions.md``).

- Cog <= 0.16 built the image, imported the predictor in it and wrote the document
  with pydantic and FastAPI (``python -m cog.command.openapi_schema``); the CLI then
  re-marshalled it through Go maps (every key sorted). Which pydantic ran decides
  parts of the shape: the Cog CLI installed ``pydantic<2`` with the SDK up to 0.14.7
  and ``pydantic>=1.9,<3`` from 0.14.8 on (so today's pydantic 2).
- Cog 0.17 to 0.22 derive it statically from the source (Go, tree-sitter), with the
  changes listed on :class:`Rules`.

Versions are plain strings (``"0.15.8"``); :func:`parse_version` gives the tuple.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "NEWEST_KNOWN",
    "OLDEST_SUPPORTED",
    "Rules",
    "UnknownCogVersion",
    "installed_cog_version",
    "parse_version",
    "rules_for",
]

OLDEST_SUPPORTED = (0, 9, 9)
"""The oldest Cog whose schema rules cogfleet reproduces."""

NEWEST_KNOWN = (0, 23, 1)
"""The newest Cog release whose rules are known (its CLI's generator is 0.22.0's)."""

_STATIC_CLI = "0.22.0"
"""The newest Cog CLI whose Go generator the static rules follow (``info.version``)."""

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class UnknownCogVersion(ValueError):
    """A version string that is malformed or outside the versions whose rules are known."""


def parse_version(version: str) -> tuple[int, int, int]:
    """``"0.15.8"`` -> ``(0, 15, 8)``; raises :class:`UnknownCogVersion` if malformed."""
    match = _VERSION_RE.fullmatch(version.strip())
    if match is None:
        raise UnknownCogVersion(f"not a Cog version: {version!r} (expected X.Y.Z)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@functools.cache
def installed_cog_version() -> str:
    """The Cog SDK version installed with cogfleet (the default when nothing is pinned)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cog")
    except PackageNotFoundError:  # pragma: no cover - cog is a dependency
        return ".".join(str(p) for p in NEWEST_KNOWN)


@dataclass(frozen=True)
class Rules:
    """One Cog version's schema rules. Field docs say which versions do what."""

    version: str
    """The Cog version these rules are for."""

    generator: str
    """``"runtime"`` (<= 0.16: pydantic/FastAPI in the image) or ``"static"`` (>= 0.17: Go)."""

    pydantic: int = 2
    """Runtime generator only: the pydantic major the Cog CLI's image gets (1 up to 0.14.7)."""

    info_version: str = "0.1.0"
    """``info.version``: "0.1.0" up to 0.21; the CLI version from 0.22."""

    enum_title_single: bool = False
    """0.17-0.18: an enum component is named after the input with its first letter upper-cased."""

    none_default_is_no_default: bool = True
    """0.19+: ``default=None`` on a non-Optional type is no default (the input is required);
    ``Secret = Input(default=None)`` is the exception (optional, nullable)."""

    sorted_property_keys: bool = True
    """0.19+: the keys of each Input property are sorted (0.17-0.18 keep insertion order)."""

    nullable_optional_list: bool = True
    """0.18+: ``Optional[list[X]]`` is marked ``nullable``."""

    ordered_object_properties: bool = True
    """0.17.2+: BaseModel output properties keep declaration order (sorted before)."""

    cancel_title_case: bool = True
    """0.18+: the cancel path parameter's title is "Prediction Id" ("Prediction_id" before)."""

    description_constants: bool = True
    """0.19+: ``description=`` may name a module-level string constant."""

    typed_dicts: bool = True
    """0.19.3+: TypedDict classes are understood (inputs: objects; outputs: properties)."""

    opaque: bool = True
    """0.20+: ``Annotated[X, ...]`` is read as ``X`` and ``Annotated[X, cog.Opaque]`` as an
    opaque JSON value (object, or array of objects for a list); before, ``Annotated`` is an
    unsupported type. The error for an external type says ``cannot resolve type`` and
    suggests ``Opaque`` (before: ``cannot resolve output type ... —``), and an input
    type imported by name (``from torch import Tensor``) is reported as external (before:
    ``unsupported type: Tensor``)."""

    run_method: bool = True
    """0.20+: a class's ``run()`` is preferred over ``predict()``, inherited methods count."""

    list_by_import: bool = True
    """0.20+: an output ``List[X]`` counts as a list only if ``List`` is imported from
    ``typing`` in the predictor's own file (also for fields of models imported from
    sibling modules); before, the name ``List``/``list`` was enough."""

    union_inputs: bool = True
    """0.21+: ``Union[A, B]`` inputs become ``anyOf`` (before: only ``X | None``)."""

    streaming: bool = True
    """0.21+: ``@cog.streaming`` adds ``x-cog-streaming: true`` to ``POST /predictions``."""

    accept: bool = True
    """0.22+: ``Input(accept=...)`` on Path/File gives ``x-cog-accept``."""

    sdk_fallback: bool = False
    """Up to 0.19 the SDK may write the document: always up to 0.16 (so a value only the
    model's code computes is the SDK's), and in 0.17-0.19 when the static parser cannot
    resolve a type (``ErrUnresolvableType``: ``cog build``/``push`` fell back to the
    SDK's ``openapi_schema``). 0.20 removed that fallback."""

    @property
    def static(self) -> bool:
        return self.generator == "static"


def _static_info_version(v: tuple[int, int, int], canonical: str) -> str:
    # The CLI writes its own version from 0.22 on; newer SDKs ship with the 0.22 generator.
    if v < (0, 22, 0):
        return "0.1.0"
    return canonical if v == (0, 22, 0) else _STATIC_CLI


def rules_for(version: str | None = None) -> Rules:
    """The :class:`Rules` of Cog ``version`` (``None``: the installed Cog SDK).

    Raises :class:`UnknownCogVersion` for a malformed version or one outside
    ``OLDEST_SUPPORTED`` .. ``NEWEST_KNOWN``.
    """
    text = installed_cog_version() if version is None else version
    v = parse_version(text)
    if v < OLDEST_SUPPORTED or v > NEWEST_KNOWN:
        low = ".".join(map(str, OLDEST_SUPPORTED))
        high = ".".join(map(str, NEWEST_KNOWN))
        raise UnknownCogVersion(f"Cog {text}: schema rules are known for Cog {low} to {high}")
    canonical = ".".join(map(str, v))
    if v < (0, 17, 0):
        return Rules(
            version=canonical,
            generator="runtime",
            pydantic=1 if v < (0, 14, 8) else 2,
            info_version="0.1.0",
            sdk_fallback=True,
        )
    return Rules(
        version=canonical,
        generator="static",
        info_version=(canonical if v <= (0, 22, 0) else _STATIC_CLI)
        if v >= (0, 22, 0)
        else "0.1.0",
        enum_title_single=v < (0, 19, 0),
        none_default_is_no_default=v >= (0, 19, 0),
        sorted_property_keys=v >= (0, 19, 0),
        nullable_optional_list=v >= (0, 18, 0),
        ordered_object_properties=v >= (0, 17, 2),
        cancel_title_case=v >= (0, 18, 0),
        description_constants=v >= (0, 19, 0),
        typed_dicts=v >= (0, 19, 3),
        opaque=v >= (0, 20, 0),
        run_method=v >= (0, 20, 0),
        list_by_import=v >= (0, 20, 0),
        union_inputs=v >= (0, 21, 0),
        streaming=v >= (0, 21, 0),
        accept=v >= (0, 22, 0),
        sdk_fallback=v < (0, 20, 0),
    )
