"""The bad-input suite, plugins inside a step: a broken fuzz-input hook is the plugin's
error (exit 2 naming it), never a failed check of the model (exit 1)."""

from __future__ import annotations

import pytest

from tests.test_bad_input import CONFIG

FUZZ_CONFIG = "model: {{ model }}\npredict:\n  fuzz: {iterations: 2}\n"
HOOK = ("from cogfleet import hookimpl\n\n\n@hookimpl(tryfirst=True)\n"
        "def cogfleet_fuzz_inputs(ctx, schema, kind, count, fixed_inputs, disabled_inputs, "
        "prompt):\n    {body}\n")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise RuntimeError('fuzz boom')",
         "error: plugins/fuzzer.py:6: plugin 'fuzzer': cogfleet_fuzz_inputs raised "
         "RuntimeError: fuzz boom"),
        ("return 'nope'",
         "error: plugin fuzzer (plugins/fuzzer.py): cogfleet_fuzz_inputs returned str 'nope', "
         "expected a list of input mappings"),
        ("return [{'prompt': 'a'}, 5]",
         "error: plugin fuzzer (plugins/fuzzer.py): cogfleet_fuzz_inputs returned list "
         "[{'prompt': 'a'}, 5], expected a list of input mappings"),
    ],
)
def test_a_broken_fuzz_hook_names_the_plugin(push_broken, body, error):
    result, _ = push_broken({CONFIG: FUZZ_CONFIG,
                                "plugins/fuzzer.py": HOOK.format(body=body)})
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines()[-1] == error
    assert "Traceback" not in result.err
