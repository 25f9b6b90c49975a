"""Reading a predictor's source the way Cog's static parser reads it, without importing it.

Cog (>= 0.17) derives the schema from the source text with a tree-sitter parser
(``pkg/schema/python`` in Cog's Go source). This module reproduces what that
parser sees, with Python's own :mod:`ast`:

- module-level imports (``import x``, ``from x import y as z``), never executed;
- module-level constants whose value is a literal (``STEPS = 28``);
- ``BaseModel`` / ``TypedDict`` classes of the module and of sibling modules of the
  build folder that the module imports (``from schema_types import Output``);
- the target callable (a class's ``run``/``predict``/``train``, inherited ones
  included, or a function) and its parameters with their annotations and
  ``Input(...)`` keyword arguments.

Literal values follow the Go parser's reading of the source text, quirks included:
a string is the text between its quotes (escape sequences are not interpreted),
only literals and module constants resolve, and an ``Input(default=...)`` that does
not resolve counts as ``default=None``. Everything that Cog refuses is a
:class:`SourceError` carrying the file and line.

The result is a :class:`Signature`, which the per-version renderers turn into
schema fragments.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Annotation",
    "InputCall",
    "Literal",
    "ModelField",
    "Param",
    "Signature",
    "SourceError",
    "parse_target",
]


class SourceError(Exception):
    """Something in the user's source that Cog's parser refuses (file relative to the build)."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.message = message
        self.line = line


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

_NONE = object()


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
# Annotations (Go TypeAnnotation)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass
class InputCall:
    """Keyword arguments of one ``Input(...)`` call, as Cog's parser reads them."""

    default: Literal | None = None
    description: str | None = None
    description_is_constant: bool = False
    ge: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    regex: str | None = None
    choices: list[Literal] | None = None
    deprecated: bool | None = None
    accept: str | None = None
    # What Python would see at run time (used by the rules of Cog <= 0.16, which
    # imported the predictor): keyword values that resolve statically.
    python_kwargs: dict[str, Any] = field(default_factory=dict)
    # Positional arguments (Python's Input(default, ...) order) resolved statically.
    python_args: list[Any] = field(default_factory=list)


@dataclass
class Param:
    """One parameter of the target callable."""

    name: str
    order: int
    annotation: Annotation
    line: int
    has_default: bool = False
    # The parameter's default: an Input(...) call, or a plain literal.
    input_call: InputCall | None = None
    plain_default: Literal | None = None
    # The default expression's source text (for messages).
    default_text: str = ""


@dataclass
class ModelField:
    """One annotated field of a BaseModel or TypedDict class."""

    name: str
    annotation: Annotation
    default: Literal | None
    key_required: bool | None = None


@dataclass
class Signature:
    """Everything the renderers need about one target callable."""

    file: str
    line: int
    method: str
    params: list[Param]
    returns: Annotation | None
    imports: dict[str, tuple[str, str]]
    models: dict[str, list[ModelField]]
    typed_dicts: set[str]
    model_kinds: dict[str, str]
    streaming: bool
    is_async: bool
    is_method: bool


# ---------------------------------------------------------------------------
# Source-text readers that follow the Go parser
# ---------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)")


def _go_parse_int(text: str) -> int | None:
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


def _go_parse_float(text: str) -> float | None:
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


def _go_string_literal(text: str) -> str | None:
    # parseStringLiteral: the raw text between the quotes; only "", '', triple quotes
    # and an r prefix are understood.
    if text.startswith('"""') or text.startswith("'''"):
        return text[3:-3] if len(text) >= 6 else None
    if text.startswith('"') or text.startswith("'"):
        return text[1:-1] if len(text) >= 2 else None
    if text.startswith('r"') or text.startswith("r'"):
        return text[2:-1] if len(text) >= 3 else None
    return None


class _Module:
    """One parsed source file: its tree, text, imports, constants and models."""

    def __init__(self, build_dir: Path, rel: str, text: str) -> None:
        self.build_dir = build_dir
        self.rel = rel
        self.text = text
        try:
            self.tree = ast.parse(text, filename=rel)
        except SyntaxError as exc:
            raise SourceError(
                rel, f"failed to parse Python source: {exc.msg}", exc.lineno
            ) from None
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
                parsed = _go_parse_int(text.strip())
                return None if parsed is None else Literal("int", parsed)
            if isinstance(value, float):
                parsed_f = _go_parse_float(text.strip())
                return None if parsed_f is None else Literal("float", parsed_f)
            if isinstance(value, str):
                literal_text = _go_string_literal(text)
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
            as_int = _go_parse_int(stripped)
            if as_int is not None:
                return Literal("int", as_int)
            as_float = _go_parse_float(stripped)
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
            literal_text = _go_string_literal(text)
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

    # -- annotations (parseTypeAnnotation) ----------------------------------

    def annotation(self, node: ast.expr) -> Annotation:
        if isinstance(node, ast.Name):
            return Annotation("simple", node.id)
        if isinstance(node, ast.Attribute):
            return Annotation("simple", self.segment(node))
        if isinstance(node, ast.Subscript):
            outer = self.segment(node.value)
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if isinstance(node.slice, ast.Tuple) and self.segment(node.slice).startswith("("):
                elements = [node.slice]
            args = tuple(self.annotation(e) for e in elements)
            if not args:
                return Annotation("simple", outer)
            return Annotation("generic", outer, args)
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, ast.BitOr):
                raise SourceError(
                    self.rel,
                    "unsupported type: non-union binary operator in type annotation",
                    node.lineno,
                )
            members: list[Annotation] = []
            for side in (node.left, node.right):
                parsed = self.annotation(side)
                members.extend(parsed.args if parsed.kind == "union" else (parsed,))
            return Annotation("union", "", tuple(members))
        if isinstance(node, ast.Constant) and node.value is None:
            return Annotation("simple", "None")
        text = self.segment(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            inner = text.lstrip("\"'").rstrip("\"'")
            from_string = _type_from_string(inner)
            if from_string is None:
                raise SourceError(
                    self.rel, f"unsupported type: string annotation: {text}", node.lineno
                )
            return from_string
        from_text = _type_from_string(text)
        if from_text is None:
            raise SourceError(
                self.rel,
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


# ---------------------------------------------------------------------------
# Sibling modules and models
# ---------------------------------------------------------------------------

_KNOWN_EXTERNAL = frozenset(
    """builtins typing typing_extensions collections abc enum dataclasses os sys io json re
    math pathlib functools itertools contextlib concurrent asyncio multiprocessing threading
    logging warnings unittest pytest numpy torch tensorflow jax scipy sklearn transformers
    diffusers accelerate safetensors PIL cv2 skimage requests httpx aiohttp fastapi flask
    pydantic cog""".split()
)


def _module_to_path(module: str, source_rel: str) -> str:
    """``moduleToFilePath``: where a local module's file would be, relative to the build."""
    if module.startswith(".") and source_rel:
        level = len(module) - len(module.lstrip("."))
        clean = module.lstrip(".")
        if not clean:
            return ""
        base = str(Path(source_rel).parent)
        base = "" if base == "." else base
        for _ in range(level - 1):
            if not base:
                break
            base = str(Path(base).parent)
            base = "" if base == "." else base
        parts = clean.split(".")
        return str(Path(base, *parts)) + ".py" if base else str(Path(*parts)) + ".py"
    clean = module.lstrip(".")
    if not clean:
        return ""
    return str(Path(*clean.split("."))) + ".py"


def _is_known_external(module: str) -> bool:
    top = module.split(".", 1)[0] if not module.startswith(".") else module
    top = top.lstrip(".").split(".", 1)[0] if top.startswith(".") else top
    return top in _KNOWN_EXTERNAL


class _Project:
    """The build folder: parsed modules by relative path, loaded on demand."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self._modules: dict[str, _Module | None] = {}
        self._models: dict[str, tuple[dict[str, list[ModelField]], set[str], dict[str, str]]] = {}
        self._loading: set[str] = set()

    def module(self, rel: str) -> _Module | None:
        rel = str(Path(rel))
        if rel in self._modules:
            return self._modules[rel]
        path = self.build_dir / rel
        try:
            resolved = path.resolve()
            resolved.relative_to(self.build_dir.resolve())
            text = resolved.read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError):
            self._modules[rel] = None
            return None
        module = _Module(self.build_dir, rel, text)
        self._modules[rel] = module
        return module

    def load_import(
        self, module: _Module, name: str, original: str
    ) -> tuple[str, _Module | None, bool]:
        """Find the sibling module behind an import entry: (module name, parsed, nested)."""
        if not _is_known_external(name):
            rel = _module_to_path(name, module.rel)
            found = self.module(rel) if rel else None
            if found is not None:
                return name, found, False
        nested = _nested_module(name, original)
        if nested == name or _is_known_external(nested):
            return name, None, False
        rel = _module_to_path(nested, module.rel)
        return nested, (self.module(rel) if rel else None), True

    def models(
        self, module: _Module
    ) -> tuple[dict[str, list[ModelField]], set[str], dict[str, str]]:
        """Models visible in ``module``: its own and those of the sibling modules it imports."""
        if module.rel in self._models:
            return self._models[module.rel]
        if module.rel in self._loading:
            return {}, set(), {}
        self._loading.add(module.rel)
        try:
            models, typed_dicts, kinds = _collect_models(module, {}, set())
            for local, (name, original) in module.imports.items():
                imported_name, imported, nested = self.load_import(module, name, original)
                if imported is None:
                    if original in models and local != original:
                        models[local] = models[original]
                    continue
                other_models, other_typed, other_kinds = self.models(imported)
                for model_name, fields in other_models.items():
                    models[f"{local}.{model_name}"] = fields
                    kinds[f"{local}.{model_name}"] = other_kinds.get(model_name, "model")
                for td in other_typed:
                    typed_dicts.add(f"{local}.{td}")
                if nested or original == imported_name or imported_name == ".":
                    continue
                if original in other_models:
                    models[local] = other_models[original]
                    kinds[local] = other_kinds.get(original, "model")
                if original in other_typed:
                    typed_dicts.add(local)
                for model_name, fields in other_models.items():
                    if model_name not in models:
                        models[model_name] = fields
                        kinds[model_name] = other_kinds.get(model_name, "model")
            # A second pass sees TypedDict parents that came from other modules.
            own, own_typed, own_kinds = _collect_models(module, models, typed_dicts)
            models.update(own)
            typed_dicts |= own_typed
            kinds.update(own_kinds)
        finally:
            self._loading.discard(module.rel)
        self._models[module.rel] = (models, typed_dicts, kinds)
        return models, typed_dicts, kinds


def _nested_module(module: str, original: str) -> str:
    if not module or not original:
        return module
    if module == ".":
        return "." + original
    return module + "." + original


def _top_level_classes(module: _Module) -> list[ast.ClassDef]:
    return [stmt for stmt in module.tree.body if isinstance(stmt, ast.ClassDef)]


def _top_level_functions(module: _Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        stmt
        for stmt in module.tree.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _is_base_model(module: _Module, cls: ast.ClassDef) -> bool:
    for base in cls.bases:
        if isinstance(base, ast.Name):
            entry = module.imports.get(base.id)
            if base.id == "BaseModel" or (
                entry is not None
                and entry[0] in ("cog", "pydantic", "pydantic.v1")
                and entry[1] == "BaseModel"
            ):
                return True
        elif isinstance(base, ast.Attribute) and module.segment(base).endswith(".BaseModel"):
            return True
    return False


def _typed_dict_info(
    module: _Module, cls: ast.ClassDef, typed_dicts: set[str]
) -> tuple[bool, bool, list[str]]:
    is_td, total, parents = False, True, []
    for base in cls.bases:
        if isinstance(base, ast.Name):
            entry = module.imports.get(base.id)
            if base.id == "TypedDict" or (
                entry is not None
                and entry[0] in ("typing", "typing_extensions")
                and entry[1] == "TypedDict"
            ):
                is_td = True
            elif base.id in typed_dicts:
                is_td = True
                parents.append(base.id)
        elif isinstance(base, ast.Attribute):
            text = module.segment(base)
            if text.endswith(".TypedDict"):
                is_td = True
            elif text in typed_dicts:
                is_td = True
                parents.append(text)
    for keyword in cls.keywords:
        if keyword.arg == "total" and module.segment(keyword.value).strip() == "False":
            total = False
    return is_td, total, parents


def _collect_models(
    module: _Module, known: dict[str, list[ModelField]], known_typed: set[str]
) -> tuple[dict[str, list[ModelField]], set[str], dict[str, str]]:
    models: dict[str, list[ModelField]] = {}
    typed_dicts: set[str] = set()
    kinds: dict[str, str] = {}
    for cls in _top_level_classes(module):
        is_model = _is_base_model(module, cls)
        is_td, total, parents = _typed_dict_info(module, cls, typed_dicts | known_typed)
        if not is_model and not is_td:
            continue
        fields: list[ModelField] = []
        for stmt in cls.body:
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            try:
                annotation = module.annotation(stmt.annotation)
            except SourceError:
                continue
            default = module.literal(stmt.value) if stmt.value is not None else None
            key_required: bool | None = None
            if is_td:
                annotation, key_required = _typed_dict_field(module, annotation, total)
            fields.append(ModelField(stmt.target.id, annotation, default, key_required))
        if is_td:
            merged: dict[str, ModelField] = {}
            for parent in parents:
                for parent_field in models.get(parent) or known.get(parent) or []:
                    merged[parent_field.name] = parent_field
            for own in fields:
                merged[own.name] = own
            fields = list(merged.values())
            typed_dicts.add(cls.name)
        models[cls.name] = fields
        kinds[cls.name] = "typeddict" if is_td else "model"
    return models, typed_dicts, kinds


def _typed_dict_field(module: _Module, ann: Annotation, total: bool) -> tuple[Annotation, bool]:
    if ann.kind != "generic" or len(ann.args) != 1:
        return ann, total
    name = ann.name
    if name == "NotRequired" or name.endswith(".NotRequired"):
        return ann.args[0], False
    if name == "Required" or name.endswith(".Required"):
        return ann.args[0], True
    entry = module.imports.get(name)
    if entry is not None and entry[0] in ("typing", "typing_extensions"):
        if entry[1] == "NotRequired":
            return ann.args[0], False
        if entry[1] == "Required":
            return ann.args[0], True
    return ann, total


# ---------------------------------------------------------------------------
# The target callable
# ---------------------------------------------------------------------------

_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


def _methods(cls: ast.ClassDef) -> dict[str, _FuncDef]:
    return {
        stmt.name: stmt
        for stmt in cls.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def _find_class(module: _Module, name: str) -> ast.ClassDef | None:
    return next((c for c in _top_level_classes(module) if c.name == name), None)


def _predict_methods(
    project: _Project, module: _Module, cls: ast.ClassDef, seen: set[tuple[str, str]]
) -> tuple[tuple[_Module, _FuncDef] | None, tuple[_Module, _FuncDef] | None]:
    key = (module.rel, cls.name)
    if key in seen:
        return None, None
    seen.add(key)
    methods = _methods(cls)
    run = (module, methods["run"]) if "run" in methods else None
    predict = (module, methods["predict"]) if "predict" in methods else None
    for base in cls.bases:
        if not isinstance(base, (ast.Name, ast.Attribute)):
            continue
        parent_name = module.segment(base)
        parent_module: _Module | None = module
        parent_cls = _find_class(module, parent_name)
        if parent_cls is None:
            parent_module, parent_cls = _imported_class(project, module, parent_name)
        if parent_module is None or parent_cls is None:
            continue
        parent_run, parent_predict = _predict_methods(project, parent_module, parent_cls, seen)
        run = run or parent_run
        predict = predict or parent_predict
    return run, predict


def _imported_class(
    project: _Project, module: _Module, parent: str
) -> tuple[_Module | None, ast.ClassDef | None]:
    if "." in parent:
        head, class_name = parent.split(".", 1)
        entry = module.imports.get(head)
        if entry is None:
            return None, None
    else:
        entry = module.imports.get(parent)
        if entry is None:
            return None, None
        class_name = entry[1]
    _, imported, _ = project.load_import(module, entry[0], entry[1])
    if imported is None:
        return None, None
    return imported, _find_class(imported, class_name)


def _decorator_names(module: _Module, func: _FuncDef) -> tuple[bool, bool]:
    """(``@cog.streaming``, ``@cog.concurrent``) as Cog recognises them."""
    streaming = concurrent = False
    for decorator in func.decorator_list:
        expr = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            entry = module.imports.get(expr.value.id)
            if entry is not None and entry == ("cog", "cog"):
                streaming |= expr.attr == "streaming"
                concurrent |= expr.attr == "concurrent"
        elif isinstance(expr, ast.Name):
            entry = module.imports.get(expr.id)
            if entry is not None and entry[0] == "cog":
                streaming |= entry[1] == "streaming"
                concurrent |= entry[1] == "concurrent"
    return streaming, concurrent


def find_target(
    project: _Project,
    module: _Module,
    name: str,
    train: bool,
    *,
    allow_predict: bool = True,
    run_method: bool = True,
) -> tuple[_Module, _FuncDef]:
    """``findTargetCallableNode``: the class method or function Cog would read.

    With ``run_method`` (Cog >= 0.20) a class's ``run()`` wins over ``predict()``
    and inherited methods count; before, only the class's own ``predict``/``train``.
    """
    method_name = "train" if train else "predict"
    cls = _find_class(module, name)
    if not run_method:
        if cls is not None:
            method = _methods(cls).get(method_name)
            if method is None:
                raise SourceError(module.rel, f"{name}.{method_name} not found", cls.lineno)
            return module, method
        for func in _top_level_functions(module):
            if func.name in (name, method_name):
                return module, func
        raise SourceError(module.rel, f"predictor not found: {name}")
    if cls is not None:
        if not train:
            run, predict = _predict_methods(project, module, cls, set())
            if run is not None:
                return run
            if predict is not None and allow_predict:
                return predict
            message = (
                f"{name} must define run() or predict()"
                if allow_predict
                else f"{name}.run not found"
            )
            raise SourceError(module.rel, message, cls.lineno)
        method = _methods(cls).get(method_name)
        if method is None:
            raise SourceError(module.rel, f"{name}.{method_name} not found", cls.lineno)
        return module, method
    functions = {f.name: f for f in _top_level_functions(module)}
    if name in functions:
        return module, functions[name]
    if name != method_name and method_name in functions:
        return module, functions[method_name]
    raise SourceError(module.rel, f"predictor not found: {name}")


def _is_input_call(module: _Module, node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func_text = module.segment(node.func)
    if func_text == "Input":
        return True
    entry = module.imports.get(func_text)
    return entry is not None and entry[0] == "cog" and entry[1] == "Input"


def _parse_input_call(module: _Module, call: ast.Call, param: str) -> InputCall:
    info = InputCall()
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        value = keyword.value
        text = module.go_node_text(value, keyword)
        key = keyword.arg
        static_value = module.resolve(value, text)
        if static_value is not None:
            info.python_kwargs[key] = static_value
        if key == "default":
            info.default = static_value if static_value is not None else NONE
        elif key == "default_factory":
            raise SourceError(
                module.rel,
                f"parameter '{param}': default_factory is not supported in static schema "
                "generation",
                keyword.value.lineno,
            )
        elif key == "description":
            info.description = module.resolve_string(value, text)
            info.description_is_constant = isinstance(value, ast.Name)
        elif key in ("ge", "le"):
            number = _go_parse_float(text.strip())
            if number is not None:
                setattr(info, key, number)
        elif key in ("min_length", "max_length"):
            number = _go_parse_float(text.strip())
            if number is not None and number >= 0:
                setattr(info, key, int(number))
        elif key in ("regex", "accept"):
            if not text.startswith("("):
                setattr(info, key, _go_string_literal(text))
        elif key == "choices":
            choices = module.resolve_choices(value, text)
            if choices is None:
                raise SourceError(
                    module.rel,
                    f"parameter '{param}': choices expression cannot be statically resolved",
                    keyword.value.lineno,
                )
            info.choices = choices
            info.python_kwargs["choices"] = Literal("list", choices)
        elif key == "deprecated":
            stripped = text.strip()
            if stripped in ("True", "False"):
                info.deprecated = stripped == "True"
    for arg in call.args:
        info.python_args.append(module.resolve(arg))
    return info


def _param_nodes(func: _FuncDef) -> list[tuple[ast.arg, ast.expr | None]]:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults.extend(args.defaults)
    result = list(zip(positional, defaults, strict=True))
    result.extend(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    return result


def _params(module: _Module, func: _FuncDef, method: str) -> tuple[list[Param], bool]:
    pairs = _param_nodes(func)
    first_untyped = next((a for a, _ in pairs if a.annotation is None), None)
    is_method = first_untyped is not None and first_untyped.arg == "self"
    params: list[Param] = []
    seen_self = False
    order = 0
    for arg, default in pairs:
        if arg.annotation is None:
            if default is None:
                if is_method and not seen_self and arg.arg == "self":
                    seen_self = True
                continue  # Cog's parser skips an untyped parameter without a default
            raise SourceError(
                module.rel,
                f"parameter '{arg.arg}' on {method} has no type annotation",
                arg.lineno,
            )
        annotation = module.annotation(arg.annotation)
        param = Param(arg.arg, order, annotation, arg.lineno)
        order += 1
        if default is not None:
            param.has_default = True
            param.default_text = module.segment(default)
            if _is_input_call(module, default):
                assert isinstance(default, ast.Call)
                param.input_call = _parse_input_call(module, default, arg.arg)
            else:
                resolved = module.resolve(default)
                if resolved is None:
                    raise SourceError(
                        module.rel,
                        f"parameter '{arg.arg}': default `{param.default_text}` cannot be "
                        "statically resolved",
                        default.lineno,
                    )
                param.plain_default = resolved
        params.append(param)
    return params, is_method


def parse_target(
    build_dir: Path, ref: str, *, train: bool, allow_predict: bool = True, run_method: bool = True
) -> Signature:
    """Parse ``ref`` (``"predict.py:Predictor"``) in ``build_dir`` into a :class:`Signature`.

    Raises :class:`SourceError` for what Cog's static parser refuses.
    """
    file, _, name = ref.partition(":")
    project = _Project(build_dir)
    rel = str(Path(file))
    module = project.module(rel)
    if module is None:
        raise SourceError(rel, "file not found")
    target_module, func = find_target(
        project, module, name, train, allow_predict=allow_predict, run_method=run_method
    )
    params, is_method = _params(target_module, func, func.name)
    returns = target_module.annotation(func.returns) if func.returns is not None else None
    models, typed_dicts, kinds = project.models(target_module)
    streaming, _ = _decorator_names(target_module, func)
    return Signature(
        file=target_module.rel,
        line=func.lineno,
        method=func.name,
        params=params,
        returns=returns,
        imports=target_module.imports,
        models=models,
        typed_dicts=typed_dicts,
        model_kinds=kinds,
        streaming=streaming,
        is_async=isinstance(func, ast.AsyncFunctionDef),
        is_method=is_method,
    )
