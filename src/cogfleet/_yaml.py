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


MAX_DEPTH = 64
"""Mappings and lists nested deeper than this are refused (no config needs a tenth of it)."""

MAX_VALUES = 200_000
"""A document whose aliases expand to more values than this is refused (an alias bomb)."""


def check_shape(node: yaml.Node, source: str | Path) -> None:
    """Refuse a composed document that is nested too deeply, holds itself through an
    alias, or expands through aliases to more than :data:`MAX_VALUES` values.

    Every later step walks the loaded data recursively (validation, rendering, JSON), so
    such a document would otherwise end in a RecursionError or a long wait far from the
    file. Shared nodes are measured once, so the check itself stays linear.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 1, False)]
    while stack:
        current, depth, done = stack.pop()
        key = id(current)
        children: list[yaml.Node] = []
        if isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        elif isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = 1 + max((heights[id(child)] for child in children), default=0)
            if sizes[key] > MAX_VALUES:
                raise ConfigError(source, f"aliases expand to more than {MAX_VALUES:,} values",
                                  line=current.start_mark.line + 1)
            continue
        if key in sizes:  # measured already; only its depth here is new
            if depth + heights[key] - 1 > MAX_DEPTH:
                raise ConfigError(source, f"nested more than {MAX_DEPTH} levels deep",
                                  line=current.start_mark.line + 1)
            continue
        if key in on_path:
            raise ConfigError(source, "an alias refers to a mapping or list that contains it",
                              line=current.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise ConfigError(source, f"nested more than {MAX_DEPTH} levels deep",
                              line=current.start_mark.line + 1)
        on_path.add(key)
        stack.append((current, depth, True))
        stack.extend((child, depth + 1, False) for child in reversed(children))


def load_yaml_text(text: str, source: str | Path) -> Any:
    """Parse YAML ``text``; a syntax error becomes a ``ConfigError`` naming ``source`` and line."""
    try:
        # libyaml's parser when present: the same safe loading, several times faster
        loader = _UniqueKeyLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            check_shape(node, source)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc).splitlines()[0]
        raise ConfigError(source, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:  # the reader's (a control character): no mark
        raise ConfigError(source, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # the pure-Python parser (no libyaml) composes recursively
        raise ConfigError(source, f"nested more than {MAX_DEPTH} levels deep") from None


def load_yaml_file(
    path: Path, display: str | Path | None = None, root: Path | None = None
) -> Any:
    """Read and parse a YAML file (see :func:`load_yaml_text`); with ``root``, the file
    must be inside it (see :func:`~cogfleet._files.check_readable`)."""
    from cogfleet._files import check_readable

    check_readable(path, display or path, root)
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
