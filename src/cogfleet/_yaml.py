"""YAML loading with one-line errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cogfleet._errors import ConfigError

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that holds one key twice.

    YAML requires the keys of a mapping to be unique, and Cog's own (Go) reader
    refuses duplicates; PyYAML would keep the last one silently, so a second
    ``schnell:`` or ``model:`` would quietly replace the first.
    """


def _unique_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: the keys written next to it override, as YAML says
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # an unhashable key: the constructor below says so
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml_text(text: str, source: str | Path) -> Any:
    """Parse YAML ``text``; a syntax error becomes a ``ConfigError`` naming ``source`` and line."""
    try:
        # libyaml's parser when present: the same safe loading, several times faster
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc).splitlines()[0]
        raise ConfigError(source, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:  # the reader's (a control character): no mark
        raise ConfigError(source, f"invalid YAML: {str(exc).splitlines()[0]}") from None


def load_yaml_file(path: Path, display: str | Path | None = None) -> Any:
    """Read and parse a YAML file (see :func:`load_yaml_text`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(display or path, f"cannot read: {exc.strerror}") from None
    return load_yaml_text(decode_text(raw, display or path), display or path)


def decode_text(raw: bytes, source: str | Path) -> str:
    """``raw`` as UTF-8 text (newlines as Python reads them); a ``ConfigError`` naming the
    file, the line and the offending byte otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            source, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            line=line,
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
