"""The bad-input suite, variants.yaml settings: each error names the line it is about.

A wrong setting of a variant is reported at the line the setting is written on (the
variant's own line when the problem is the variant itself), as every other file's
errors are; a variable no template could use is an error rather than silently unused.
"""

from __future__ import annotations

import pytest

from tests.test_bad_input import VARIANTS, assert_rejected

BETA = "beta:\n  model: acme/beta\n  variables: {steps: 8}\n"
FLAT = "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"


CASES = [
    pytest.param(FLAT.replace("{steps: 4}", "{steps: 4, bad-name: 1}") + BETA, 3,
                 "variant 'alpha': variables: 'bad-name' is not a name a template can use",
                 id="variable-not-a-name"),
    pytest.param(FLAT.replace("{steps: 4}", "{steps: 4, 1: x}") + BETA, 3,
                 "variant 'alpha': variables: 1 is not a name", id="variable-an-integer"),
    pytest.param(BETA + "alpha:\n  model: 42\n  variables: {steps: 4}\n", 5,
                 "variant 'alpha': model: expected 'owner/name', got 42", id="model-not-a-name"),
    pytest.param(BETA + FLAT + "  template: templates/nope.yaml.j2\n", 7,
                 "variant 'alpha': template 'templates/nope.yaml.j2' does not exist",
                 id="template-missing"),
    pytest.param(BETA + FLAT + "  bogus: 1\n", 7, "variant 'alpha': unknown key 'bogus'",
                 id="unknown-key"),
    pytest.param(BETA + "'al/pha':\n  model: acme/alpha\n", 4,
                 "variant 'al/pha': names are lower-case letters", id="bad-name"),
    pytest.param("family: fam\nbogus: 1\nvariants:\n  alpha: {model: acme/alpha, variables: "
                 "{steps: 4}}\n  beta: {model: acme/beta}\n", 2, "unknown key 'bogus'",
                 id="family-unknown-key"),
    pytest.param("family: fam\ndefaults:\n  bogus: 1\nvariants:\n  alpha: {model: acme/alpha}\n",
                 3, "defaults: unknown key 'bogus'", id="defaults-unknown-key"),
]


@pytest.mark.parametrize(("text", "line", "what"), CASES)
def test_variant_settings_are_reported_at_their_line(push_broken, text, line, what):
    result, root = push_broken({VARIANTS: text})
    assert_rejected(result, root, f"{VARIANTS}:{line}: {what}")
