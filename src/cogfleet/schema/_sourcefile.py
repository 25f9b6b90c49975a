"""One Python source file as Cog's static parser reads it: text, imports, constants, literals.

Cog (>= 0.17) reads the predictor with tree-sitter (``pkg/schema/python`` in Cog's Go
source); :class:`SourceFile` gives the same view with Python's own :mod:`ast`,
without executing anything:

- module-level imports (``import x``, ``from x import y as z``);
- module-level constants whose value is a literal (``STEPS = 28``);
- literal values as the Go parser reads their text, quirks included: a string is
  the text between its quotes (escape sequences are not interpreted), integers
  follow ``strconv.ParseInt`` (a leading ``0`` is octal), parentheses hide a value.

Everything Cog refuses is a :class:`SourceError` carrying the file and line.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogfleet._pyparse import parse

__all__ = [
    "NONE",
    "Literal",
    "SourceError",
    "SourceFile",
    "go_parse_float",
    "go_parse_int",
    "go_string_literal",
]


class SourceError(Exception):
    """Something in the user's source that Cog's parser refuses (file relative to the build).

    ``needs_code`` marks what only running the model's code can decide (a value
    computed by a package the version installs, a type it defines): the SDK that
    imported the predictor (Cog <= 0.16) may well have built it.
    """

    def __init__(
        self, file: str, message: str, line: int | None = None, *, needs_code: bool = False
    ) -> None:
        super().__init__(message)
        self.file = file
        self.message = message
        self.line = line
        self.needs_code = needs_code


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Literal:
    """A statically parsed Python literal (Go ``DefaultValue``).

    ``kind`` is one of none, bool, int, float, str, list, dict, set; ``value``
    holds the Python value (lists/tuples/sets as lists of :class:`Literal`,
    dicts as a list of ``(key, value)`` pairs of :class:`Literal`).
    """

    kind: str
    value: Any = None

    def to_json(self) -> Any:
        """The value as Go's ``DefaultValue.ToJSON`` would give it."""
        if self.kind in ("list", "set"):
            return [item.to_json() for item in self.value]
        if self.kind == "dict":
            result: dict[str, Any] = {}
            for key, val in self.value:
                result[key.json_key()] = val.to_json()
            return result
        return self.value

    def json_key(self) -> str:
        # Go formats a non-string dict key with %v.
        if self.kind == "str":
            return str(self.value)
        if self.kind == "none":
            return "<nil>"
        if self.kind == "bool":
            return "true" if self.value else "false"
        if self.kind == "float":
            from cogfleet.schema._document import _go_float

            return _go_float(self.value)
        if self.kind in ("list", "set"):
            return "[" + " ".join(item.json_key() for item in self.value) + "]"
        if self.kind == "dict":
            pairs = sorted((k.json_key(), v.json_key()) for k, v in self.value)
            return "map[" + " ".join(f"{k}:{v}" for k, v in pairs) + "]"
        return str(self.value)

    def python_value(self) -> Any:
        """The value as Python sees it (for the import-based generators of Cog <= 0.16)."""
        if self.kind == "list":
            return [item.python_value() for item in self.value]
        if self.kind == "set":
            return [item.python_value() for item in self.value]
        if self.kind == "dict":
            return {k.python_value(): v.python_value() for k, v in self.value}
        return self.value


NONE = Literal("none", None)


# ---------------------------------------------------------------------------
# Source-text readers that follow the Go parser
# ---------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)")


def go_parse_int(text: str) -> int | None:
    # strconv.ParseInt(text, 0, 64): sign, base prefixes, underscores between digits.
    if not _INT_RE.fullmatch(text):
        return None
    body = text.lstrip("+-")
    if body.startswith("_") or body.endswith("_") or "__" in body:
        return None
    if len(body) > 1 and body[0] == "0" and body[1].isdigit():
        # Go treats a leading 0 as octal.
        try:
            value = int(body.replace("_", ""), 8)
        except ValueError:
            return None
    else:
        try:
            value = int(body.replace("_", ""), 0)
        except ValueError:
            return None
    if text.startswith("-"):
        value = -value
    if not -(2**63) <= value < 2**63:
        return None
    return value


def go_parse_float(text: str) -> float | None:
    # strconv.ParseFloat(text, 64) for the forms Python source can hold.
    if not text or "_" in text or text != text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value) and text.lower().lstrip("+-") not in ("inf", "infinity"):
        return None  # out of range: ParseFloat reports an error
    return value


def go_string_literal(text: str) -> str | None:
    # parseStringLiteral: the raw text between the quotes; only "", '', triple quotes
    # and an r prefix are understood.
    if text.startswith('"""') or text.startswith("'''"):
        return text[3:-3] if len(text) >= 6 else None
    if text.startswith('"') or text.startswith("'"):
        return text[1:-1] if len(text) >= 2 else None
    if text.startswith('r"') or text.startswith("r'"):
        return text[2:-1] if len(text) >= 3 else None
    return None


class SourceFile:
    """One parsed source file: its tree, text, imports, constants and models."""

    def __init__(self, build_dir: Path, rel: str, text: str) -> None:
        self.build_dir = build_dir
        self.rel = rel
        self.text = text
        try:
            self.tree = parse(text, filename=rel)
        except SyntaxError as exc:
            line = exc.lineno
            if line is None and "\0" in text:  # Python names no line for a NUL byte
                line = text.count("\n", 0, text.index("\0")) + 1
            raise SourceError(rel, f"failed to parse Python source: {exc.msg}", line) from None
        self.lines = text.splitlines(keepends=True)
        # Byte offsets of line starts for source segments (ast offsets are UTF-8 bytes).
        self._encoded = [line.encode("utf-8") for line in self.lines]
        self.imports = self._collect_imports()
        self.scope = self._collect_scope()

    # -- text --------------------------------------------------------------

    def segment(self, node: ast.AST) -> str:
        lineno = getattr(node, "lineno", None)
        end_lineno = getattr(node, "end_lineno", None)
        col = getattr(node, "col_offset", None)
        end_col = getattr(node, "end_col_offset", None)
        if lineno is None or end_lineno is None or col is None or end_col is None:
            return ""
        if lineno == end_lineno:
            raw = self._encoded[lineno - 1][col:end_col]
        else:
            parts = [self._encoded[lineno - 1][col:]]
            parts.extend(self._encoded[lineno : end_lineno - 1])
            parts.append(self._encoded[end_lineno - 1][:end_col])
            raw = b"".join(parts)
        return str(raw.decode("utf-8", errors="replace"))

    def go_node_text(self, node: ast.expr, outer: ast.AST | None = None) -> str:
        """The text tree-sitter would see for ``node``: with enclosing parentheses kept.

        Python's ast drops parentheses; ``outer`` (a keyword or assignment) lets
        us recover them by looking at the text after ``=``.
        """
        text = self.segment(node)
        if outer is not None:
            whole = self.segment(outer)
            if "=" in whole:
                tail = whole.split("=", 1)[1].strip() if isinstance(outer, ast.keyword) else ""
                if tail and tail != text and tail.startswith("("):
                    return tail
        return text

    # -- imports and scope --------------------------------------------------

    def _collect_imports(self) -> dict[str, tuple[str, str]]:
        names: dict[str, tuple[str, str]] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.ImportFrom):
                module = "." * stmt.level + (stmt.module or "")
                for alias in stmt.names:
                    if alias.name == "*":
                        continue
                    names[alias.asname or alias.name] = (module, alias.name)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    local = alias.asname or alias.name
                    names[local] = (alias.name, alias.name)
        for builtin in ("str", "int", "float", "bool", "list", "dict", "set", "None"):
            names.setdefault(builtin, ("builtins", builtin))
        return names

    def _collect_scope(self) -> dict[str, Literal]:
        scope: dict[str, Literal] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign):
                if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                    continue
                target, value = stmt.targets[0].id, stmt.value
            elif isinstance(stmt, ast.AnnAssign):
                if not isinstance(stmt.target, ast.Name) or stmt.value is None:
                    continue
                target, value = stmt.target.id, stmt.value
            else:
                continue
            literal = self.literal(value)
            if literal is not None:
                scope[target] = literal
        return scope

    # -- literals (parseDefaultValue) ---------------------------------------

    def literal(self, node: ast.expr, text: str | None = None) -> Literal | None:
        """Go's ``parseDefaultValue``: a literal, or None when the parser cannot read it."""
        if text is None:
            text = self.segment(node)
        if text.startswith("(") and not isinstance(node, ast.Tuple):
            return None  # parenthesized_expression
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None:
                return NONE
            if value is True or value is False:
                return Literal("bool", value)
            if isinstance(value, int):
                parsed = go_parse_int(text.strip())
                return None if parsed is None else Literal("int", parsed)
            if isinstance(value, float):
                parsed_f = go_parse_float(text.strip())
                return None if parsed_f is None else Literal("float", parsed_f)
            if isinstance(value, str):
                literal_text = go_string_literal(text)
                return None if literal_text is None else Literal("str", literal_text)
            return None
        if isinstance(node, ast.JoinedStr):
            return None
        if isinstance(node, ast.List):
            items = [self.literal(elt) for elt in node.elts]
            if any(item is None for item in items):
                return None
            return Literal("list", items)
        if isinstance(node, ast.Set):
            items = [self.literal(elt) for elt in node.elts]
            if any(item is None for item in items):
                return None
            return Literal("set", items)
        if isinstance(node, ast.Tuple):
            kept = [lit for lit in (self.literal(elt) for elt in node.elts) if lit is not None]
            return Literal("list", kept)
        if isinstance(node, ast.Dict):
            pairs = []
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                if key_node is None:
                    continue
                k, v = self.literal(key_node), self.literal(value_node)
                if k is not None and v is not None:
                    pairs.append((k, v))
            return Literal("dict", pairs)
        if isinstance(node, ast.UnaryOp):
            stripped = text.strip()
            as_int = go_parse_int(stripped)
            if as_int is not None:
                return Literal("int", as_int)
            as_float = go_parse_float(stripped)
            if as_float is not None:
                return Literal("float", as_float)
            return None
        return None

    def resolve(self, node: ast.expr, text: str | None = None) -> Literal | None:
        """``resolveDefaultExpr``: a literal, or a module constant named by an identifier."""
        literal = self.literal(node, text)
        if literal is not None:
            return literal
        if isinstance(node, ast.Name) and (text is None or not text.startswith("(")):
            return self.scope.get(node.id)
        return None

    def resolve_string(self, node: ast.expr, text: str) -> str | None:
        """``resolveStringExpr``: a string literal or a module string constant."""
        if not text.startswith("("):
            literal_text = go_string_literal(text)
            if literal_text is not None:
                return literal_text
            if isinstance(node, ast.Name):
                value = self.scope.get(node.id)
                if value is not None and value.kind == "str":
                    return str(value.value)
        return None

    def resolve_choices(self, node: ast.expr, text: str) -> list[Literal] | None:
        """``resolveChoicesExpr``: list literals, list constants, ``list(D.keys())``, ``a + b``."""
        if text.startswith("("):
            return None
        if isinstance(node, ast.List):
            literal = self.literal(node, text)
            return None if literal is None else list(literal.value)
        if isinstance(node, ast.Name):
            value = self.scope.get(node.id)
            return list(value.value) if value is not None and value.kind == "list" else None
        if isinstance(node, ast.Call):
            if self.segment(node.func) != "list" or not node.args:
                return None
            inner = node.args[0]
            if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)):
                return None
            owner = inner.func.value
            if not isinstance(owner, ast.Name):
                return None
            value = self.scope.get(owner.id)
            if value is None or value.kind != "dict":
                return None
            if inner.func.attr == "keys":
                return [k for k, _ in value.value]
            if inner.func.attr == "values":
                return [v for _, v in value.value]
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.resolve_choices(node.left, self.segment(node.left))
            right = self.resolve_choices(node.right, self.segment(node.right))
            if left is None or right is None:
                return None
            return left + right
        return None
