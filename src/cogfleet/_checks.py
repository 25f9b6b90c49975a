"""Types shared by cogfleet and checker plugins.

A checker is what a test-case key such as ``exact_string`` or ``jq_query`` names.
Plugins register them from :func:`cogfleet.hookspecs.cogfleet_register_checkers`::

    from cogfleet import hookimpl
    from cogfleet._checks import Checker, CheckResult

    def _check(ctx):
        ...
        return CheckResult(True, "ok")

    @hookimpl
    def cogfleet_register_checkers(register):
        register(Checker(name="image_size", check=_check))
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one checker on one prediction.

    A failed verdict may say what failed (``error_kind``): ``"checker"`` (the default:
    the output is not what the case expects) or ``"judge"`` (the AI judge decided, or
    could not). A URL that cannot be fetched is ``"network"``, which a checker gets by
    letting :class:`cogfleet._errors.NetworkError` propagate.
    """

    passed: bool
    message: str = ""
    error_kind: str | None = None


@dataclass(frozen=True)
class OutputFile:
    """A file the prediction returned, already fetched once."""

    name: str
    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        return Path(self.name).suffix.lower().lstrip(".")


class FileReader(Protocol):
    """Turns a URL, data URI or repo-relative path into bytes (fetching each at most once)."""

    def __call__(self, ref: str) -> OutputFile: ...


class Judge(Protocol):
    """Asks the AI judge whether ``output`` satisfies ``prompt``."""

    def __call__(self, prompt: str, output: Any, files: list[OutputFile]) -> CheckResult: ...


def decode_data_uri(uri: str) -> OutputFile:
    """Decode a ``data:<mime>[;base64],<payload>`` URI into an :class:`OutputFile`."""
    header, _, payload = uri.partition(",")
    meta = header[len("data:") :]
    parts = meta.split(";")
    mime = parts[0] or "text/plain"
    try:
        data = base64.b64decode(payload) if "base64" in parts[1:] else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid data URI: {exc}") from None
    ext = _MEDIA_EXTENSIONS.get(mime.lower()) or mimetypes.guess_extension(mime) or ""
    return OutputFile(name=f"output{ext}", data=data, content_type=mime)


# The extension people give files of these types, where Python's table has none or
# another one (audio/ogg is .oga there, audio/wav unknown) or a system's mime.types
# may differ: a data URI output must compare with the reference file's extension.
_MEDIA_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
    "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a",
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
}


def encode_data_uri(file: OutputFile) -> str:
    """The ``data:<mime>;base64,...`` URI of ``file`` (the inverse of :func:`decode_data_uri`)."""
    mime = file.content_type or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(file.data).decode('ascii')}"


def iter_file_refs(output: Any) -> Iterator[str]:
    """Yield every string in ``output`` that looks like a file (URL or data URI), in order."""
    if isinstance(output, str):
        if output.startswith(("data:", "http://", "https://")):
            yield output
    elif isinstance(output, list):
        for item in output:
            yield from iter_file_refs(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from iter_file_refs(item)


@dataclass
class CheckContext:
    """Everything a checker may look at for one prediction.

    ``expected`` is the value of the checker's key in the test case.
    ``status`` is the prediction's final status (``succeeded``, ``failed``, ``canceled``).
    """

    expected: Any
    inputs: dict[str, Any]
    output: Any
    error: str | None
    status: str
    prediction: dict[str, Any]
    read_file: FileReader
    judge: Judge | None = None
    repo_root: Path | None = None
    _files: list[OutputFile] | None = field(default=None, repr=False)

    def output_files(self) -> list[OutputFile]:
        """The prediction's file outputs, fetched once and cached."""
        if self._files is None:
            self._files = [self.read_file(ref) for ref in iter_file_refs(self.output)]
        return self._files


@dataclass(frozen=True)
class Checker:
    """A test-case checker.

    ``check`` decides the verdict. ``validate`` (optional) is called on the configured
    value when the config is loaded and raises ``ValueError`` with a one-line reason
    when it is unusable (for example a jq query that does not compile), so a bad
    config fails before any prediction is spent. ``expects_failure`` is true for
    checkers that want the prediction to fail (``error_contains``). ``fetches_expected``
    is true for checkers whose value is a file to fetch (``match_url``): a URL there is
    fetched before the prediction is spent, so an unreachable one fails the case at once.
    """

    name: str
    check: Callable[[CheckContext], CheckResult]
    validate: Callable[[Any], None] | None = None
    expects_failure: bool = False
    description: str = ""
    fetches_expected: bool = False
