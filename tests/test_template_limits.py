"""Templates render sandboxed and bounded: a runaway template is a one-line error at once.

Each bad template would run for minutes or take gigabytes without the bounds; with
them it is refused by count (size, steps, number size), never by a timer, so the same
template gives the same answer on every machine.
"""

from __future__ import annotations

import pytest

from cogfleet._template_limits import MAX_RENDERED_CHARS
from tests.test_bad_input import TEMPLATE, assert_rejected

HEAD = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
PARTIAL = "templates/partials/env.yaml.j2"

RUNAWAY_CASES = [
    pytest.param("# {{ 'x' * 50000000 }}\n", ["50,000,000 items"], id="string-repeat"),
    pytest.param("# {{ [0] * 10**9 }}\n", ["1,000,000,000 items"], id="list-repeat"),
    pytest.param("# {% for i in range(10**9) %}x{% endfor %}\n", ["Range too big"],
                 id="range"),
    pytest.param("# {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                 "{% endfor %}\n", ["more than 250,000 loop steps and calls"],
                 id="nested-loops-without-output"),
    pytest.param("{% set s = 'x' * 100000 %}# {% for c in s %}{% for d in s %}{% endfor %}"
                 "{% endfor %}\n", ["loop steps and calls"], id="nested-loops-over-text"),
    pytest.param("{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
                 "{% endmacro %}# {{ f(0) }}\n", ["loop steps and calls"],
                 id="branching-recursion"),
    pytest.param("# {{ 2 ** 10000000000 }}\n", ["too large a number"], id="power"),
    pytest.param("# {{ 'x' | center(10000000000) }}\n", ["10,000,000,000 items"],
                 id="center-width"),
    pytest.param("# {{ 'a\\nb' | indent(10**10) }}\n", ["items"], id="indent-width"),
    pytest.param("# {{ ''.__class__.__mro__ }}\n", ["SecurityError", "__class__"],
                 id="attribute-walk"),
]


@pytest.mark.parametrize(("line", "what"), RUNAWAY_CASES)
def test_a_runaway_template_is_refused_at_its_line(push_broken, line, what):
    result, root = push_broken({TEMPLATE: HEAD + line})
    assert_rejected(result, root, f"{TEMPLATE}:4: ", *what, "(variant 'alpha')")


def test_output_beyond_the_size_names_the_line_that_went_beyond_it(push_broken):
    partial = ("environment:\n  - STEPS={{ steps }}\n"
               "# {% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}\n")
    result, root = push_broken({PARTIAL: partial})
    assert_rejected(result, root, f"{PARTIAL}:3: ", "larger than 8 MiB")


def test_legitimate_templates_render_the_same_every_time(make_repo, cli):
    """Loops, repetition and powers well inside the bounds, and a large file just under
    the size bound, render, byte for byte the same twice."""
    filler = "x" * 1000
    big = MAX_RENDERED_CHARS // 1001 - 10  # lines of 1000 characters and a newline
    partial = (
        "environment:\n  - STEPS={{ steps }}\n"
        "  - LIST={% for i in range(3) %}{{ i }}{{ ',' if not loop.last }}{% endfor %}\n"
        "  - RULE={{ '-' * 20 }}\n  - POW={{ 2 ** 64 }}\n"
        "{% set items = {'a': 1, 'b': 2} %}"
        "{% for k, v in items.items() | sort %}  - {{ k | upper }}={{ v }}\n{% endfor %}"
        "# {{ 'title' | center(11) }}|{{ 'x' | indent(2) }}\n"
    )
    root = make_repo({
        PARTIAL: partial,
        "models/fam/weights.txt.j2":
            "{% for i in range(" + str(big) + ") %}{{ '" + filler + "' }}\n{% endfor %}",
    })
    first = cli("render", "alpha", cwd=root)
    assert first.code == 0, first.err
    build = root / ".cogfleet" / "build" / "alpha"
    cog_yaml = (build / "cog.yaml").read_text()
    assert "LIST=0,1,2" in cog_yaml and "RULE=" + "-" * 20 in cog_yaml
    assert f"POW={2 ** 64}" in cog_yaml and "  - A=1\n  - B=2\n" in cog_yaml
    assert "#    title   |x" in cog_yaml
    rendered = {p.name: p.read_bytes() for p in build.iterdir()}
    assert len(rendered["weights.txt"]) == big * 1001
    (root / ".cogfleet").rename(root / "first")
    second = cli("render", "alpha", cwd=root)
    assert second.code == 0, second.err
    assert {p.name: p.read_bytes() for p in build.iterdir()} == rendered
