"""The text of a merged ``cog.yaml`` as mikefarah/yq v4 prints it.

:mod:`cogfleet._overlay` decides what the merge means; this module writes it the way
``yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)'`` does, so the file a
render writes is the one the select script wrote. What yq v4 does (its YAML encoder and
decoder, read from its source; and its documented loss of blank lines):

- the comments and blank lines before the base's first node are printed as they are;
- after that, blank lines are dropped; a comment block right above a node is that node's
  head comment (indented as the node); one followed by a blank line is the foot comment of
  what came before, and a blank line follows it; comments at the end of a line stay there,
  one space after the value;
- two spaces a level, and a list under a key indented by two more (``  - x``);
- no line is wrapped; every scalar keeps its quotes or block style, and a value the
  overlay replaces keeps the base's quotes when the overlay wrote it plain and both are
  strings;
- comments of the overlay go with the entries they are attached to.

The YAML work is ruamel.yaml's (a round-trip load and dump keeps comments and styles);
the comment and blank line rules above are applied to its output, outside block scalars.
"""

from __future__ import annotations

import copy
import io
import re
from typing import Any

import yaml

__all__ = ["yq_text"]

_COMMENT_LINE = re.compile(r"^\s*#")


def _yaml() -> Any:
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 1 << 30  # yq never folds a long line
    return rt


def _replacement(old: Any, new: Any) -> Any:
    """``new`` in place of ``old``: a plain string takes the quotes of the string it replaces."""
    from ruamel.yaml.scalarstring import ScalarString

    if isinstance(old, ScalarString) and type(new) is str:
        return type(old)(new)
    return new


def _last(container: Any) -> tuple[Any, Any, int] | None:
    """Where the comments after ``container``'s last scalar are kept by ruamel: the
    comment list of the innermost collection, its key or index, and the token's slot."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(container, CommentedMap) and container:
        key: Any = next(reversed(container))
        slot = 2
    elif isinstance(container, CommentedSeq) and container:
        key, slot = len(container) - 1, 0
    else:
        return None
    value = container[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and value and not value.fa.flow_style():
        return _last(value)
    return container, key, slot  # a scalar, or a [flow] {collection}: after it


def _detach_tail(container: Any) -> str:
    """The comment lines after ``container``'s last line, taken off it (ruamel keeps them
    with the last scalar; yq with the node they are above, which is not in ``container``)."""
    found = _last(container)
    if found is None:
        return ""
    holder, key, slot = found
    tokens = holder.ca.items.get(key)
    return _take_after_first_line(tokens[slot] if tokens and len(tokens) > slot else None)


def _detach_entry(holder: Any, key: Any) -> str:
    """The comment lines after the line of ``holder[key]`` (a scalar or a flow
    collection: ruamel keeps them with the entry), taken off it."""
    tokens = holder.ca.items.get(key) if key in holder else None
    return _take_after_first_line(tokens[2] if tokens and len(tokens) > 2 else None)


def _take_after_first_line(token: Any) -> str:
    """The lines of a comment ``token`` after its first, taken off it ("" if none)."""
    if token is None or "\n" not in token.value:
        return ""
    own, _, rest = token.value.partition("\n")
    token.value = own + "\n"
    return str(rest)


def _attach_tail(container: Any, rest: str) -> None:
    """Put back what :func:`_detach_tail` took, after ``container``'s (new) last line."""
    found = _last(container) if rest else None
    if found is not None:
        _attach_at(*found, rest)


def _attach_at(holder: Any, key: Any, slot: int, rest: str) -> None:
    """Add comment lines ``rest`` after the scalar at ``key`` of ``holder``."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    tokens = holder.ca.items.setdefault(key, [None] * (slot + 2))
    token = tokens[slot]
    if token is None:
        tokens[slot] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + rest


def _merge(base: Any, overlay: Any, append: bool = True) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(overlay, CommentedMap):
        target = base if isinstance(base, CommentedMap) else CommentedMap()
        tail = _detach_tail(target)
        for key, value in overlay.items():
            old = target.get(key) if key in target else None
            merges = isinstance(value, CommentedMap) or (
                append and isinstance(value, CommentedSeq))
            # what follows a value that is replaced (the next entry's comments) stays
            after = "" if merges else _detach_tail(old) + _detach_entry(target, key)
            if isinstance(value, (CommentedMap, CommentedSeq)):
                target[key] = _merge(old, value, append)
            else:
                target[key] = _replacement(old, copy.deepcopy(value))
            if key in overlay.ca.items:  # the overlay's comments on the entry win
                target.ca.items[key] = copy.deepcopy(overlay.ca.items[key])
            if after:  # after the new value's last line
                value_now = target[key]
                block = isinstance(value_now, (CommentedMap, CommentedSeq)) and bool(
                    value_now) and not value_now.fa.flow_style()
                if block:
                    _attach_tail(value_now, after)
                else:
                    _attach_at(target, key, 2, after)
        _attach_tail(target, tail)
        return target
    if isinstance(overlay, CommentedSeq):
        if not isinstance(base, CommentedSeq) or not append:
            return copy.deepcopy(overlay)
        tail = _detach_tail(base)
        start = len(base)
        base.extend(copy.deepcopy(item) for item in overlay)
        for index, comment in overlay.ca.items.items():
            base.ca.items[start + index] = copy.deepcopy(comment)
        _attach_tail(base, tail)
        return base
    return copy.deepcopy(overlay)


def _spans(text: str) -> tuple[set[int], dict[int, int]]:
    """Lines (0-based) inside a token that spans lines (a block scalar: kept as they are),
    and for each line the column where its last token ends."""
    inside: set[int] = set()
    ends: dict[int, int] = {}
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        start, end = token.start_mark, token.end_mark
        if end.line > start.line:
            inside.update(range(start.line + 1, end.line + (1 if end.column else 0)))
        if end.column:
            ends[end.line] = max(ends.get(end.line, 0), end.column)
    return inside, ends


def _layout(text: str) -> str:
    """ruamel's round trip, laid out as yq prints (see the module doc)."""
    lines = text.splitlines()
    inside, ends = _spans(text)

    def is_content(n: int) -> bool:
        return n in inside or (bool(lines[n].strip()) and not _COMMENT_LINE.match(lines[n]))

    first = next((n for n in range(len(lines)) if is_content(n)), len(lines))
    out = lines[:first]  # the leading comments and blank lines, as they are
    pending: list[int] = []  # blank and comment lines since the last content line

    def flush(next_line: int | None) -> None:
        blanks = [i for i, n in enumerate(pending) if not lines[n].strip()]
        cut = blanks[-1] if blanks else -1
        foot = [lines[n] for n in pending[:cut] if lines[n].strip()] if cut >= 0 else []
        head = [lines[n].strip() for n in pending[cut + 1 :]]
        if foot:
            out.extend(foot)
            if next_line is not None:
                out.append("")
        if head:
            indent = ""
            if next_line is not None:
                indent = lines[next_line][: len(lines[next_line]) - len(lines[next_line].lstrip())]
            out.extend(indent + comment for comment in head)
        pending.clear()

    for n in range(first, len(lines)):
        if n in inside:
            out.append(lines[n])
        elif is_content(n):
            flush(n)
            line = lines[n]
            end = ends.get(n)
            if end is not None and line[end:].strip().startswith("#"):
                line = line[:end].rstrip() + " " + line[end:].strip()
            out.append(line)
        else:
            pending.append(n)
    flush(None)
    return "\n".join(out) + "\n" if out else ""


def yq_text(
    base_text: str, overlay_text: str, expected: Any, append_lists: bool = True
) -> str | None:
    """``base *+ overlay`` printed as yq prints it, or ``None`` when that text would not
    read back as ``expected`` (the merge :mod:`cogfleet._overlay` made, as data)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError

    try:
        rt = _yaml()
        base = rt.load(base_text)
        overlay = rt.load(overlay_text)
        if not isinstance(base, (CommentedMap, CommentedSeq)):
            return None
        if isinstance(overlay, CommentedMap) and overlay and overlay.ca.comment:
            # the overlay's leading comments are its first entry's head comment (yq reads
            # only the first file's as the document's)
            first = next(iter(overlay))
            before = [t.value for t in (overlay.ca.comment[1] or []) if t is not None]
            if before and first not in overlay.ca.items:
                comment = "".join(before).strip("\n")
                overlay.yaml_set_comment_before_after_key(
                    first, before="\n".join(c.lstrip("# ").rstrip() for c in
                                            comment.splitlines() if c.strip()))
        merged = _merge(base, overlay, append_lists) if overlay is not None else base
        buffer = io.StringIO()
        rt.dump(merged, buffer)
        text = _layout(buffer.getvalue())
        if yaml.safe_load(text) != expected:
            return None
        return text
    except (YAMLError, yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, RecursionError):
        return None
