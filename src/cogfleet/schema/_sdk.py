"""The document the pinned SDK writes, for what the source alone cannot say (Cog <= 0.16).

Up to 0.16, ``cog build`` imported the predictor in the image and let the SDK write
the document (``python -m cog.command.openapi_schema``), so a model may compute its
inputs with the packages it installs: ``choices=sorted(LANGUAGES)`` with
``LANGUAGES`` from a pip package, an input typed by an alias a package defines.
cogfleet reads the source instead (:mod:`._runtime`); when that reading meets such a
value it raises :class:`ModelCodeNeeded`, and whoever holds the version's
environment (the one its predictions run in: cog.yaml's packages and that SDK) asks
:func:`sdk_document` for the SDK's own answer, as ``cog build`` got it.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet._errors import CogfleetError, ConfigError

if TYPE_CHECKING:
    from cogfleet.runtime import EnvStore

__all__ = [
    "SDK_TIMEOUT",
    "ModelCodeNeeded",
    "SdkDocument",
    "sdk_document",
    "sdk_document_in_store",
]

SDK_TIMEOUT = 600.0
"""Seconds the SDK may take to import the model (a predictor importing torch is slow)."""


class SdkDocument(dict[str, Any]):
    """A document the SDK wrote. The Cog CLI stored it re-marshalled through Go maps
    (compact, every key sorted), whichever generator the version has otherwise, so
    :func:`~cogfleet.schema.dumps_schema` writes it so."""


class ModelCodeNeeded(ConfigError):
    """The document depends on what the model's code computes (Cog <= 0.16 ran it).

    The message is the source reading's, naming ``file:line``; :func:`sdk_document`
    in the version's environment can give the document.
    """


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:?.*$")


def _reason(text: str) -> str:
    """The exception that stopped the SDK, as one line.

    The SDK wraps a failed import in ``CogError([...])`` whose text is a list's
    ``repr`` holding the whole traceback, so escapes are undone before looking for
    the innermost exception line.
    """
    text = text.replace("\\n", "\n").replace("\\'", "'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line[:-2].strip() if line.endswith(("']", '"]')) else line
    return lines[-1] if lines else "no output"


def _parse(stdout: str) -> dict[str, Any] | None:
    # The SDK prints the document last, indented: it starts at a line that is "{"
    # (whatever the model printed when imported comes before it).
    lines = stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip() != "{":
            continue
        try:
            doc = json.loads("".join(lines[i:]))
        except ValueError:
            continue
        return doc if isinstance(doc, dict) else None
    return None


def sdk_document(
    build_dir: Path, python: str, cog_version: str, reason: ModelCodeNeeded
) -> SdkDocument:
    """The document Cog ``cog_version``'s SDK writes for ``build_dir`` with ``python``.

    ``python`` is the interpreter of the version's environment (cog.yaml's packages
    and that SDK); the SDK imports the predictor with the build folder at ``/src``, its
    working directory, as ``cog build`` did in the image (where the system allows a
    mount namespace, :func:`cogfleet.runtime.container_view`; elsewhere in the build
    folder itself), without running ``setup()``. The process gets no credentials.
    Raises :class:`ConfigError` at ``reason``'s ``file:line`` with the SDK's last
    error line when the SDK cannot build it either.
    """
    from cogfleet.runtime import container_view, scrubbed_environ

    def failed(why: str) -> ConfigError:
        return ConfigError(
            reason.path,
            f"{reason.message}; the Cog {cog_version} SDK could not build the schema "
            f"either: {why}",
            reason.line,
        )

    command = [python, "-m", "cog.command.openapi_schema"]
    env = scrubbed_environ({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
    src = str(build_dir.resolve())
    try:
        with tempfile.TemporaryDirectory(prefix="cogfleet-schema-") as scratch:
            proc = subprocess.run(
                command, cwd=build_dir, env=env, capture_output=True, text=True,
                errors="replace", timeout=SDK_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
                preexec_fn=functools.partial(container_view, scratch, src),
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise failed(f"it did not answer in {SDK_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise failed(f"{python}: {exc.strerror or exc}") from None
    doc = _parse(proc.stdout) if proc.returncode == 0 else None
    if doc is None:
        raise failed(_reason(proc.stderr or proc.stdout))
    return SdkDocument(doc)


def sdk_document_in_store(
    build_dir: Path, cog_version: str, store: EnvStore, reason: ModelCodeNeeded,
    *, python_fallback: str | None = None, run_build_commands: bool = False,
) -> SdkDocument:  # fmt: skip
    """:func:`sdk_document` in the version's environment of ``store``, built if missing
    (the push then finds it built: give it the push's ``--python`` and
    ``--run-build-commands``). ``ConfigError`` at ``reason``'s line if it cannot be."""
    from cogfleet.runtime import read_build_spec

    try:
        env = store.ensure(
            read_build_spec(build_dir, cog_version), cog_version,
            python_fallback=python_fallback, run_build_commands=run_build_commands,
        )  # fmt: skip
    except CogfleetError as exc:
        raise ConfigError(
            reason.path,
            f"{reason.message}; the environment to run the Cog {cog_version} SDK in "
            f"could not be built: {exc}",
            reason.line,
        ) from None
    return sdk_document(build_dir, env.python, cog_version, reason)
