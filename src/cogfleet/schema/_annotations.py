"""Type annotations as Cog's parser reads them (Go ``TypeAnnotation``, ``parseTypeAnnotation``).

An annotation is ``simple`` (``str``, ``cog.Path``), ``generic`` (``List[str]``) or a
``union`` (``str | None``); names are kept as written, and what they refer to is
decided later by each version's rules. A string annotation (a forward reference) is
read as ``parseTypeFromString`` reads it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from cogfleet.schema._sourcefile import SourceError, SourceFile

__all__ = ["Annotation", "parse_annotation"]


@dataclass(frozen=True)
class Annotation:
    """A parsed annotation: ``simple`` (``name``), ``generic`` (``name[args]``) or ``union``."""

    kind: str
    name: str = ""
    args: tuple[Annotation, ...] = ()

    def __str__(self) -> str:
        if self.kind == "simple":
            return self.name
        if self.kind == "union":
            return " | ".join(str(a) for a in self.args)
        return f"{self.name}[{', '.join(str(a) for a in self.args)}]"


def parse_annotation(file: SourceFile, node: ast.expr) -> Annotation:
    """``parseTypeAnnotation``: the annotation ``node`` of ``file``."""
    if isinstance(node, ast.Name):
        return Annotation("simple", node.id)
    if isinstance(node, ast.Attribute):
        return Annotation("simple", file.segment(node))
    if isinstance(node, ast.Subscript):
        outer = file.segment(node.value)
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if isinstance(node.slice, ast.Tuple) and file.segment(node.slice).startswith("("):
            elements = [node.slice]
        args = tuple(parse_annotation(file, e) for e in elements)
        if not args:
            return Annotation("simple", outer)
        return Annotation("generic", outer, args)
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, ast.BitOr):
            raise SourceError(
                file.rel,
                "unsupported type: non-union binary operator in type annotation",
                node.lineno,
            )
        members: list[Annotation] = []
        for side in (node.left, node.right):
            parsed = parse_annotation(file, side)
            members.extend(parsed.args if parsed.kind == "union" else (parsed,))
        return Annotation("union", "", tuple(members))
    if isinstance(node, ast.Constant) and node.value is None:
        return Annotation("simple", "None")
    text = file.segment(node)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        inner = text.lstrip("\"'").rstrip("\"'")
        from_string = _type_from_string(inner)
        if from_string is None:
            raise SourceError(
                file.rel, f"unsupported type: string annotation: {text}", node.lineno
            )
        return from_string
    from_text = _type_from_string(text)
    if from_text is None:
        raise SourceError(
            file.rel,
            f"unsupported type: {_tree_sitter_type(node)}: {text}",
            getattr(node, "lineno", None),
        )
    return from_text


def _tree_sitter_type(node: ast.AST) -> str:
    names = {
        ast.Call: "call",
        ast.List: "list",
        ast.Tuple: "tuple",
        ast.Dict: "dictionary",
        ast.Constant: "integer",
        ast.Lambda: "lambda",
        ast.Compare: "comparison_operator",
        ast.BoolOp: "boolean_operator",
        ast.UnaryOp: "unary_operator",
    }
    return names.get(type(node), type(node).__name__.lower())


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _type_from_string(text: str) -> Annotation | None:
    """``parseTypeFromString``: a forward reference or an annotation written as text."""
    text = text.strip()
    if not text:
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return _type_from_string(text[1:-1])
    pipes = _split_top_level(text, "|")
    if len(pipes) > 1:
        members = [_type_from_string(p.strip()) for p in pipes]
        if any(m is None for m in members) or len(members) < 2:
            return None
        return Annotation("union", "", tuple(m for m in members if m is not None))
    bracket = text.find("[")
    if bracket >= 0 and text.endswith("]"):
        outer = text[:bracket].strip()
        args = [_type_from_string(p.strip()) for p in _split_top_level(text[bracket + 1 : -1], ",")]
        if not args or any(a is None for a in args):
            return None
        return Annotation("generic", outer, tuple(a for a in args if a is not None))
    for part in text.split("."):
        if not part or not all(c.isascii() and (c.isalnum() or c == "_") for c in part):
            return None
    return Annotation("simple", text)
