"""What Python would compute for an expression of the predictor, without running it.

Cog <= 0.16 imported the predictor, so a default, ``choices`` list or constraint was
whatever Python evaluated: constants imported from sibling modules, ``a + b``,
``list(D.keys())``. :class:`Evaluator` computes the same values from the source, for
the expressions that can be computed without running the model's code; anything else
is a :class:`ValueError`.
"""

from __future__ import annotations

import ast
from typing import Any

from cogfleet.schema._project import Project
from cogfleet.schema._sourcefile import SourceFile

__all__ = ["Evaluator"]


class Evaluator:
    """What Python would compute for a default/choices expression, without running it."""

    def __init__(self, project: Project, module: SourceFile) -> None:
        self.project = project
        self.module = module

    def value(self, node: ast.expr, module: SourceFile | None = None, depth: int = 0) -> Any:
        module = module or self.module
        if depth > 20:
            raise ValueError("too deep")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.value(e, module, depth + 1) for e in node.elts]
            return items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("dict unpacking")
            return {
                self.value(k, module, depth + 1): self.value(v, module, depth + 1)
                for k, v in zip(node.keys, node.values, strict=True)
                if k is not None
            }
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand, module, depth + 1)
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise ValueError("not a number")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.value(node.left, module, depth + 1)
            right = self.value(node.right, module, depth + 1)
            if type(left) is type(right) and isinstance(left, (list, str, int, float)):
                return left + right
            raise ValueError("unsupported +")
        if isinstance(node, ast.Name):
            return self.name(node.id, module, depth)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "list"
        ):
            if len(node.args) == 1 and not node.keywords:
                inner = node.args[0]
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in ("keys", "values")
                    and not inner.args
                ):
                    mapping = self.value(inner.func.value, module, depth + 1)
                    if isinstance(mapping, dict):
                        return list(
                            mapping.keys() if inner.func.attr == "keys" else mapping.values()
                        )
                return list(self.value(inner, module, depth + 1))
        raise ValueError("not static")

    def name(self, name: str, module: SourceFile, depth: int) -> Any:
        for stmt in reversed(module.tree.body):
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in stmt.targets
            ):
                return self.value(stmt.value, module, depth + 1)
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == name
                and stmt.value is not None
            ):
                return self.value(stmt.value, module, depth + 1)
        entry = module.imports.get(name)
        if entry is not None and entry[0] != "builtins":
            _, imported, nested = self.project.load_import(module, entry[0], entry[1])
            if imported is not None and not nested:
                return self.name(entry[1], imported, depth + 1)
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        raise ValueError(f"{name} is not static")
