"""Where in a ``variants.yaml`` a setting is written: the line an error names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["key_line", "line_of_problem", "node_line"]


def line_of_problem(vfile: Path, message: str) -> int | None:
    """The line of the setting (else the variant or key) a message names."""
    paths: list[tuple[str, ...]] = []
    named = re.match(r"variant '([^']*)': (?:unknown key '([^']*)'|(\w+))", message)
    if named:
        variant, key = named.group(1), named.group(2) or named.group(3)
        paths = [(variant, key), ("variants", variant, key), ("defaults", key),
                 (variant,), ("variants", variant)]
    elif (variant_only := re.match(r"variant '([^']*)'", message)) is not None:
        paths = [(variant_only.group(1),), ("variants", variant_only.group(1))]
    elif (top := re.match(r"(?:unknown key '([^']*)'|(\w+):)", message)) is not None:
        key = top.group(1) or top.group(2)
        if key == "defaults" and (sub := re.match(r"defaults: (?:unknown key '([^']*)'|(\w+))",
                                                  message)):
            paths.append(("defaults", sub.group(1) or sub.group(2)))
        paths.append((key,))
    return node_line(vfile, paths)


def key_line(vfile: Path, name: str, key: str) -> int | None:
    """The 1-based line of a variant's ``key`` (or of the defaults' one) in ``vfile``."""
    return node_line(vfile, [(name, key), ("variants", name, key), ("defaults", key)])


def node_line(vfile: Path, paths: list[tuple[str, ...]]) -> int | None:
    """The 1-based line of the key at the first of ``paths`` that ``vfile`` has."""
    try:  # (not a FIFO: that read would never end)
        if not vfile.is_file():
            return None
        top = yaml.compose(vfile.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None

    def find(node: yaml.Node | None, path: tuple[str, ...]) -> int | None:
        for index, part in enumerate(path):
            if not isinstance(node, yaml.MappingNode):
                return None
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return None
            if index == len(path) - 1:
                return int(pair[0].start_mark.line) + 1
            node = pair[1]
        return None

    for path in paths:
        line = find(top, path)
        if line is not None:
            return line
    return None
