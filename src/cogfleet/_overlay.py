"""A base ``cog.yaml`` plus a per-variant overlay, merged as yq's ``*+`` merges them.

model-ci-template repos write each variant's ``cog.yaml`` with::

    yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)' cog.yaml.template \\
        model-cog-configs/$VARIANT.yaml > cog.yaml

:func:`merge_overlay` gives the same document (mikefarah/yq v4, ``multiply`` with the
append-arrays flag), working on YAML nodes so that every scalar keeps the text and
style it was written with (``python_version: 3.10`` stays ``3.10``, never the float
3.1). The rules, in yq's own order:

- An overlay that is empty or ``null`` leaves the base as it is.
- Otherwise every node of the overlay is visited in document order (a mapping, then
  each key and its value; lists are not entered) and applied at the same path of the
  base:

  - a **mapping** merges into the base's mapping there (a missing or ``null`` base
    value, or one of another type, becomes an empty mapping first);
  - a **list** is appended to the base's list there (a missing or ``null`` base value
    takes the list as it is; a mapping or a non-null scalar there is an error); with
    yq's ``*`` (``merge: replace-lists``) it replaces whatever is there;
  - a **scalar** (``null`` included) replaces whatever the base has there.

- Keys the base already has keep their place; new keys follow in the overlay's order.
- At the top, a mapping merges into a mapping or ``null``, and a list into a list or
  ``null``; any other pairing is an error, as in yq.

The text is yq's, comments included (:mod:`cogfleet._overlay_text`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cogfleet._errors import ConfigError
from cogfleet._overlay_text import yq_text
from cogfleet._yaml import MAX_DEPTH, check_shape

__all__ = ["merge_overlay"]

_NULL_TAG = "tag:yaml.org,2002:null"
_STD_TAG_PREFIX = "tag:yaml.org,2002:"
_Path = tuple[ScalarNode, ...]  # the key nodes leading to a node


def _compose(text: str, source: str | Path) -> Node | None:
    """The single document of ``text`` as a node tree (``None`` when empty)."""
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        for doc in docs:
            check_shape(doc, source)
    except RecursionError:  # PyYAML's own parser composes recursively
        raise ConfigError(source, f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, f"invalid YAML: {exc.problem or exc}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    if len(docs) > 1:
        raise ConfigError(source, f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL_TAG)


def _kind(node: Node | None) -> str:
    if node is None or _is_null(node):
        return "null"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the scalar {node.value!r}"


def _dotted(path: _Path) -> str:
    return ".".join(str(key.value) for key in path) if path else "(top level)"


def _null() -> ScalarNode:
    return ScalarNode(_NULL_TAG, "null")


class _Merge:
    """One ``base *+ overlay`` merge; mutates its own copy of the base."""

    def __init__(self, overlay_source: str | Path, append_lists: bool = True) -> None:
        self.source = overlay_source
        self.append_lists = append_lists

    def error(self, path: _Path, rhs: Node, lhs: Node | None) -> ConfigError:
        return ConfigError(
            self.source,
            f"{_dotted(path)}: cannot merge {_kind(rhs)} into {_kind(lhs)} of the base "
            "(yq *+ fails here too)",
            line=(path[-1] if path else rhs).start_mark.line + 1,  # the key's line
        )

    def run(self, base: Node | None, overlay: Node | None) -> Node | None:
        if _is_null(overlay):
            return base
        assert overlay is not None
        lhs_null = _is_null(base)
        both_maps = isinstance(overlay, MappingNode) and (
            lhs_null or isinstance(base, MappingNode)
        )
        both_lists = isinstance(overlay, SequenceNode) and (
            lhs_null or isinstance(base, SequenceNode)
        )
        if not (both_maps or both_lists):
            raise self.error((), overlay, base)
        # the base hangs under one key of a holder, so the top is replaced like any value
        top = ScalarNode("tag:yaml.org,2002:str", "")
        holder = MappingNode("tag:yaml.org,2002:map", [(top, base or _null())])
        for path, node in self._visit(overlay, ()):
            self._apply(holder, (top, *path), node)
        merged: Node = holder.value[0][1]
        return merged

    def _visit(self, node: Node, path: _Path) -> list[tuple[_Path, Node]]:
        """The overlay's nodes in yq's order: a node, then (for mappings) its entries."""
        out = [(path, node)]
        if isinstance(node, MappingNode):
            for key, value in node.value:
                out.extend(self._visit(value, (*path, key)))
        return out

    def _slot(self, holder: MappingNode, path: _Path, rhs: Node) -> tuple[MappingNode, int]:
        """The mapping and entry index of ``path`` in the base, the entry made if missing."""
        parent = holder
        for depth, key in enumerate(path):
            index = next(
                (i for i, (k, _) in enumerate(parent.value) if k.value == key.value), None
            )
            if index is None:
                parent.value.append((copy.deepcopy(key), _null()))
                index = len(parent.value) - 1
            if depth == len(path) - 1:
                return parent, index
            child = parent.value[index][1]
            if not isinstance(child, MappingNode):  # the overlay's parent came first
                raise self.error(path[1:], rhs, child)
            parent = child
        raise AssertionError("empty path")

    def _apply(self, holder: MappingNode, path: _Path, rhs: Node) -> None:
        parent, index = self._slot(holder, path, rhs)
        key, lhs = parent.value[index]
        if isinstance(rhs, SequenceNode):
            if _is_null(lhs) or not self.append_lists:  # yq's `*` replaces the base's list
                new: Node = copy.deepcopy(rhs)
            elif isinstance(lhs, SequenceNode):
                new = SequenceNode(
                    lhs.tag,
                    [*lhs.value, *copy.deepcopy(rhs.value)],
                    flow_style=lhs.flow_style if lhs.value else rhs.flow_style,
                )
            else:
                raise self.error(path[1:], rhs, lhs)
        elif isinstance(rhs, MappingNode):
            if isinstance(lhs, MappingNode):
                new = lhs
                if lhs.tag.startswith(_STD_TAG_PREFIX):
                    new.tag = rhs.tag
                if not lhs.flow_style:
                    new.flow_style = rhs.flow_style
            else:  # null, missing or another kind: an empty mapping the entries fill
                new = MappingNode(rhs.tag, [], flow_style=rhs.flow_style)
        else:  # a scalar replaces whatever is there
            new = copy.deepcopy(rhs)
        parent.value[index] = (key, new)


def merge_overlay(
    base_text: str, overlay_text: str, base_source: str | Path, overlay_source: str | Path,
    *, append_lists: bool = True,
) -> str:
    """``base *+ overlay`` (see the module docstring) as YAML text; without
    ``append_lists``, ``base * overlay``: a list of the overlay replaces the base's.

    A YAML error names its file and line; a merge yq refuses (a list onto a mapping, a
    mapping at the top onto a list) names the overlay, the key path and the line.
    """
    base = _compose(base_text, base_source)
    overlay = _compose(overlay_text, overlay_source)
    merged = _Merge(overlay_source, append_lists).run(copy.deepcopy(base), overlay)
    if merged is None:
        return ""
    text: str = yaml.serialize(
        merged, Dumper=yaml.SafeDumper, allow_unicode=True, width=1 << 16
    )
    # the same document as yq prints it (comments kept), when that reads back the same
    return yq_text(base_text, overlay_text, yaml.safe_load(text), append_lists) or text


def _key_path_at(
    node: Node | None, line: int, path: tuple[str, ...] = ()
) -> tuple[str, ...] | None:
    """The key path of the mapping entry written on 1-based ``line`` of ``node``'s text."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value))
            if key.start_mark.line + 1 == line:
                return here
            if value.start_mark.line + 1 <= line <= value.end_mark.line + 1:
                found = _key_path_at(value, line, here)
                if found is not None:
                    return found
    return None


def _line_of(node: Node | None, path: tuple[str, ...]) -> int | None:
    line = None
    for part in path:
        if not isinstance(node, MappingNode):
            return None
        entry = next(((k, v) for k, v in node.value if str(k.value) == part), None)
        if entry is None:
            return None
        key, node = entry
        line = int(key.start_mark.line) + 1
    return line


def source_line(
    merged_text: str, line: int, layers: list[tuple[str, str]]
) -> tuple[str, int] | None:
    """Where the entry on ``line`` of a merged document was written.

    ``layers`` are ``(file, text)`` from the base to the overlay; the last layer that
    has the entry's key path wins, as in the merge. ``None`` when it cannot be told.
    """
    try:
        path = _key_path_at(yaml.compose(merged_text, Loader=yaml.SafeLoader), line)
        if not path:
            return None
        for source, text in reversed(layers):
            found = _line_of(yaml.compose(text, Loader=yaml.SafeLoader), path)
            if found is not None:
                return source, found
    except yaml.YAMLError:
        return None
    return None
