"""Errors in rendered files name the file and line the user wrote, through Jinja.

Every line of the templates below carries a marker ``@<file>:<line>`` naming where it
is written, so the line map of a render can be checked line by line against the truth,
through includes, loops, conditionals, whitespace control and macros.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cogfleet import ExitCode
from cogfleet._plugins import Plugins
from cogfleet._render import render_in_memory
from cogfleet._repo import Repo

CONFIG = "cog-safe-push-configs/alpha.yaml"
SHARED = "cog-safe-push-configs/shared/cases.yaml.j2"
PARTIAL = "templates/partials/env.yaml.j2"

MARKED_CONFIG = """\
# @cog-safe-push-configs/alpha.yaml:1
model: {{ model }}  # @cog-safe-push-configs/alpha.yaml:2
{% macro note(n) %}# note {{ n }}{% endmacro %}
predict:  # @cog-safe-push-configs/alpha.yaml:4
  test_cases:  # @cog-safe-push-configs/alpha.yaml:5
{% include "cog-safe-push-configs/shared/cases.yaml.j2" %}
{% for i in range(2) %}
    - inputs: {prompt: "{{ i }}"}  # @cog-safe-push-configs/alpha.yaml:8
      exact_string: "{{ i }}"  # @cog-safe-push-configs/alpha.yaml:9
{% endfor %}
{%- if steps > 1 %}
  fuzz:  # @cog-safe-push-configs/alpha.yaml:12
{%- endif %}
    iterations: {{ steps }}  # @cog-safe-push-configs/alpha.yaml:14
{{ note(1) }}  # @cog-safe-push-configs/alpha.yaml:15
# @cog-safe-push-configs/alpha.yaml:16
"""

MARKED_SHARED = """\
    # @cog-safe-push-configs/shared/cases.yaml.j2:1
    - inputs: {prompt: a}  # @cog-safe-push-configs/shared/cases.yaml.j2:2
{% if true %}
      exact_string: a  # @cog-safe-push-configs/shared/cases.yaml.j2:4
{% endif %}
    - inputs: {prompt: b}  # @cog-safe-push-configs/shared/cases.yaml.j2:6
      exact_string: {{ "b" }}  # @cog-safe-push-configs/shared/cases.yaml.j2:7
"""

MARKER = re.compile(r"@([\w./-]+):(\d+)")


def _render(make_repo, files):
    root = make_repo(files)
    repo = Repo.load(root)
    return render_in_memory(repo, repo.variants["alpha"], Plugins(root))


def test_every_rendered_line_maps_to_the_line_written(make_repo):
    rendered = _render(make_repo, {CONFIG: MARKED_CONFIG, SHARED: MARKED_SHARED})
    text = rendered.files["cog-safe-push.yaml"].decode()
    checked = 0
    for number, line in enumerate(text.splitlines(), 1):
        marker = MARKER.search(line)
        if marker:
            where = rendered.source_position("cog-safe-push.yaml", number)
            assert where == (marker.group(1), int(marker.group(2))), (number, line)
            checked += 1
    assert checked == 17  # the loop body twice, the included lines, all the rest


def test_cog_yaml_lines_map_through_the_partial(make_repo):
    rendered = _render(make_repo, {})
    text = rendered.files["cog.yaml"].decode().splitlines()
    steps_line = next(i for i, line in enumerate(text, 1) if "STEPS=" in line)
    assert rendered.source_position("cog.yaml", steps_line) == (PARTIAL, 2)
    predict_line = next(i for i, line in enumerate(text, 1) if line.startswith("predict:"))
    assert rendered.source_position("cog.yaml", predict_line) == ("templates/cog.yaml.j2", 5)
    # a copied file maps line for line
    assert rendered.source_position("predict.py", 7) == ("models/fam/predict.py", 7)


@pytest.mark.parametrize(
    ("files", "where", "message"),
    [
        pytest.param(  # an unknown key after the include: the line in the config as written
            {CONFIG: MARKED_CONFIG.replace("    iterations:", "    bogus: 1\n    iterations:"),
             SHARED: MARKED_SHARED},
            f"{CONFIG}:14", "predict.fuzz.bogus: unknown key", id="after-include",
        ),
        pytest.param(  # inside the included file: that file and its line
            {CONFIG: MARKED_CONFIG,
             SHARED: MARKED_SHARED.replace("exact_string: a ", "wrong_checker: a ")},
            f"{SHARED}:4", "unknown checker 'wrong_checker'", id="inside-include",
        ),
        pytest.param(  # a YAML syntax error inside the included file
            {CONFIG: MARKED_CONFIG,
             SHARED: MARKED_SHARED.replace("{prompt: b}", "{prompt: b")},
            f"{SHARED}:", "invalid YAML", id="yaml-in-include",
        ),
        pytest.param(  # a bad value inside the loop body
            {CONFIG: MARKED_CONFIG.replace('exact_string: "{{ i }}"', "exact_string: [1]"),
             SHARED: MARKED_SHARED},
            f"{CONFIG}:9", "exact_string must be a string", id="in-loop",
        ),
        pytest.param(  # the model line, compared with variants.yaml
            {CONFIG: MARKED_CONFIG.replace("model: {{ model }}", "model: acme/other"),
             SHARED: MARKED_SHARED},
            f"{CONFIG}:2", "differs from 'acme/alpha'", id="model-mismatch",
        ),
        pytest.param(  # cog.yaml: a reserved variable set in the partial
            {PARTIAL: "environment:\n  - STEPS={{ steps }}\n  - PATH=/x\n"},
            f"{PARTIAL}:3", "PATH is reserved", id="cog-yaml-in-partial",
        ),
        pytest.param(  # cog.yaml: an unknown key in the template after the include
            {"templates/cog.yaml.j2": "build:\n  python_version: '3.11'\n"
             '{% include "partials/env.yaml.j2" %}\npredict: "predict.py:Predictor"\nbogus: 1\n'},
            "templates/cog.yaml.j2:5", "bogus: unknown key", id="cog-yaml-after-include",
        ),
        pytest.param(  # an undefined variable handed to a filter names the variable
            {CONFIG: MARKED_CONFIG,
             SHARED: MARKED_SHARED.replace('{{ "b" }}', "{{ use_gpu | tojson }}")},
            f"{SHARED}:7", "undefined variable 'use_gpu'", id="undefined-into-filter",
        ),
        pytest.param(  # same, as a filter's argument
            {CONFIG: MARKED_CONFIG.replace("{{ steps }}  #", '{{ steps | replace(x, "y") }}  #'),
             SHARED: MARKED_SHARED},
            f"{CONFIG}:14", "undefined variable 'x'", id="undefined-filter-argument",
        ),
        pytest.param(  # an undefined variable inside the included file
            {CONFIG: MARKED_CONFIG,
             SHARED: MARKED_SHARED.replace('{{ "b" }}', "{{ nope }}")},
            f"{SHARED}:7", "undefined variable 'nope'", id="undefined-in-include",
        ),
        pytest.param(  # a filter that raises (plugin code) is the template line's error
            {CONFIG: MARKED_CONFIG.replace("{{ steps }}  #", "{{ steps | int // 0 }}  #"),
             SHARED: MARKED_SHARED},
            f"{CONFIG}:14", "ZeroDivisionError", id="error-in-expression",
        ),
        pytest.param(
            {SHARED: b"    # fine\n    - inputs: {prompt: \xff}\n", CONFIG: MARKED_CONFIG},
            f"{SHARED}:2", "not UTF-8 text (byte 0xff", id="template-not-utf8",
        ),
    ],
)
def test_errors_name_the_file_and_line_written(make_repo, cli, files, where, message):
    root = make_repo(files)
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR, result
    assert result.err.startswith(f"error: {where}"), result.err
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not (root / ".cogfleet/build/alpha").exists()


def test_a_plugin_filter_that_raises(make_repo, cli):
    root = make_repo({
        "plugins/shout.py": (
            "from cogfleet import hookimpl\n\n"
            "def shout(value):\n    raise RuntimeError('no shouting today')\n\n"
            "@hookimpl\ndef cogfleet_template_filters(register):\n"
            "    register('shout', shout)\n"
        ),
        PARTIAL: "environment:\n  - STEPS={{ steps | shout }}\n",
    })
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith(f"error: {PARTIAL}:2: RuntimeError: no shouting today")
    assert not Path(root / ".cogfleet/build/alpha").exists()
