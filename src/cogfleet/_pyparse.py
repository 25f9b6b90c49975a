"""Python source parsed to a syntax tree, one parse at a time in the process.

CPython 3.11 keeps the syntax-tree constructor's recursion counter in interpreter-wide
state: when two threads build trees at once (the garbage collector can hand the GIL
over in the middle of one), the count goes wrong and the parse fails with
``SystemError: AST constructor recursion depth mismatch``. cogfleet parses sources
from several threads (lint, schema generation in the local server, cog.yaml checks),
so every parse goes through :func:`parse`, which holds a lock for its duration.
"""

from __future__ import annotations

import ast
import threading
from typing import Literal, overload

_LOCK = threading.Lock()


@overload
def parse(source: str | bytes, filename: str = ..., mode: Literal["exec"] = ...) -> ast.Module: ...
@overload
def parse(source: str | bytes, filename: str = ..., *, mode: Literal["eval"]) -> ast.Expression: ...
def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec") -> ast.AST:
    """:func:`ast.parse` of ``source``, never concurrently with another parse."""
    with _LOCK:
        return ast.parse(source, filename=filename, mode=mode)
