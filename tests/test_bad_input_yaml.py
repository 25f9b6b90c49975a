"""The bad-input suite, YAML shapes: documents every later step would choke on.

Nesting deeper than any config needs, an alias that refers to a mapping holding it,
and aliases that expand a few lines into millions of values are refused when the
file is read, naming the file and line (exit 2, nothing written), instead of a
RecursionError or a long wait somewhere downstream.
"""

from __future__ import annotations

import pytest

from cogfleet._errors import ConfigError
from cogfleet._yaml import load_yaml_text
from tests.test_bad_input import CONFIG, TEMPLATE, VARIANTS, assert_rejected

BETA = "beta:\n  model: acme/beta\n  variables: {steps: 8}\n"
BOMB = "".join(
    f"{name}: &{name} [{', '.join([prev] * 9)}]\n"
    for name, prev in zip("abcdef", ["x", "*a", "*b", "*c", "*d", "*e"], strict=True)
)


def deep_block(levels: int, indent: int) -> str:
    lines = "".join("  " * (indent + i) + f"k{i}:\n" for i in range(levels))
    return lines + "  " * (indent + levels) + "v\n"


CASES = [
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  variables:\n    steps: 4\n    deep:\n"
                  + deep_block(400, 3) + BETA},
                 f"{VARIANTS}:", ["nested more than 64 levels deep"], id="variants-deep-block"),
    pytest.param({CONFIG: "model: acme/alpha\npredict: &p\n  test_cases:\n    - inputs: *p\n"
                  "      exact_string: x\n"},
                 f"{CONFIG}:2:", ["an alias refers to a mapping or list that contains it"],
                 id="config-recursive-alias"),
    pytest.param({CONFIG: BOMB + "model: acme/alpha\npredict:\n  test_cases:\n"
                  "    - inputs: {prompt: *f}\n      exact_string: x\n"},
                 f"{CONFIG}:6:", ["aliases expand to more than 200,000 values"],
                 id="config-alias-bomb"),
    pytest.param({TEMPLATE: "build:\n  python_version: '3.11'\n  system_packages:\n"
                  + deep_block(400, 2) + "predict: predict.py:Predictor\n"},
                 f"{TEMPLATE}:", ["nested more than 64 levels deep"], id="cog-yaml-deep-block"),
]


@pytest.mark.parametrize(("files", "where", "what"), CASES)
def test_yaml_shapes_are_refused_where_written(push_broken, files, where, what):
    result, root = push_broken(files)
    assert_rejected(result, root, where, *what)


def test_shared_anchors_and_merge_keys_still_load():
    text = "base: &b {m: 1}\nv:\n  <<: *b\n  n: 2\nboth: [*b, *b]\n"
    assert load_yaml_text(text, "f.yaml") == {
        "base": {"m": 1}, "v": {"m": 1, "n": 2}, "both": [{"m": 1}, {"m": 1}]
    }


def test_an_alias_cannot_hide_depth():
    inner = "[" * 40 + "1" + "]" * 40
    with pytest.raises(ConfigError, match="nested more than 64 levels deep"):
        load_yaml_text(f"a: &a {inner}\nb: {'[' * 30}*a{']' * 30}\n", "f.yaml")
