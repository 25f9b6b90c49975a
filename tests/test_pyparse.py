"""Every syntax tree cogfleet builds goes through the one lock (CPython 3.11's shared counter)."""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path

import cogfleet
from cogfleet._pyparse import parse

SRC = Path(cogfleet.__file__).parent


def test_no_module_parses_around_the_lock() -> None:
    direct = re.compile(r"\bast\.parse\(|compile\([^)]*PyCF_ONLY_AST")
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "_pyparse.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []


def test_parse_is_ast_parse_held_by_one_lock() -> None:
    source = "\n".join(f"def f{i}(x):\n    return [x + {i} for _ in range(3)]" for i in range(200))
    trees: list[str] = []

    def work() -> None:
        for _ in range(5):
            trees.append(ast.dump(parse(source, filename="many.py")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trees == [ast.dump(ast.parse(source))] * 20
    assert isinstance(parse("1 + 2", mode="eval"), ast.Expression)
