"""The bad-input suite: every kind of bad input gets the same clear answer.

The contract (README, "Exit codes"): exit 2, at most three lines on stderr starting
``error: <file>:<line>: <what>`` (or ``error: <what>`` for the command line), no
traceback, and nothing written or started: no build folder, no local server state,
no report. Each case runs ``cogfleet push`` (which would render, start the embedded
server, push and promote) on a throw-away monorepo broken in one way.

Classes: monorepo files (variants.yaml, configs, cog.yaml), templates, plugins, the
command line, and the HTTP side the command line sees. The server's own answers to
bad requests are tested with the server; interrupts in ``test_interrupts.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliResult

CONFIG = "cog-safe-push-configs/alpha.yaml"
VARIANTS = "models/fam/variants.yaml"
TEMPLATE = "templates/cog.yaml.j2"
PARTIAL = "templates/partials/env.yaml.j2"

GOOD_CONFIG = """\
model: {{ model }}
predict:
  test_cases:
    - inputs: {prompt: hi}
      exact_string: "hi:4"
"""


def assert_rejected(result: CliResult, root: Path, where: str, *what: str) -> None:
    """Exit 2, one short error naming ``where`` and ``what``; nothing written or started."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert 1 <= len(lines) <= 3, result.err
    assert lines[0].startswith(f"error: {where}"), result.err
    for text in what:
        assert text in result.err, result.err
    assert "Traceback" not in result.err + result.out
    state = root / ".cogfleet"
    assert not (state / "build").exists(), "a build folder (or an empty .cogfleet/build/) was left"
    assert not (state / "local").exists(), "the local server was started"
    assert not (root / "report.json").exists(), "a report was written"


# --- monorepo files: variants.yaml -------------------------------------------------------

FILE_CASES = [
    pytest.param({VARIANTS: b"alpha:\n  model: acme/alpha\n  variables: {steps: \xff}\n"},
                 f"{VARIANTS}:3", ["not UTF-8 text (byte 0xff"], id="variants-not-utf8"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n   variables: {steps: 4}\n"},
                 f"{VARIANTS}:3", ["invalid YAML"], id="variants-yaml-syntax"),
    pytest.param({VARIANTS: "- alpha\n- beta\n"}, VARIANTS,
                 ["expected a mapping of variant name"], id="variants-not-a-mapping"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  modle: x\n"}, VARIANTS,
                 ["unknown key 'modle'"], id="variant-unknown-key"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  envsubst: [GPU]\n"}, VARIANTS,
                 ["envsubst must be a mapping of NAME: value"], id="variant-envsubst-list"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  envsubst: {1GPU: x}\n"}, VARIANTS,
                 ["envsubst: '1GPU' is not a shell variable name"], id="variant-envsubst-name"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  envsubst: {GPU: [1]}\n"}, VARIANTS,
                 ["envsubst: GPU: expected text, got list"], id="variant-envsubst-value"),
    pytest.param({VARIANTS: 'alpha:\n  model: acme/alpha\n  envsubst: {GPU: "a\\nb"}\n'},
                 VARIANTS, ["envsubst: GPU: one line of text only"],
                 id="variant-envsubst-multiline"),
    pytest.param({VARIANTS: "alpha:\n  model: not-a-model\n"}, VARIANTS,
                 ["model: expected 'owner/name'"], id="variant-bad-model"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/Alpha\n"}, VARIANTS,
                 ["model: expected 'owner/name'", "lower case"], id="variant-model-upper-case"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\nalpha:\n  model: acme/other\n"},
                 f"{VARIANTS}:3", ["duplicate key 'alpha' (first on line 1)"],
                 id="variants-duplicate-variant"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
                  "  variables: {steps: 8}\n"}, f"{VARIANTS}:4",
                 ["duplicate key 'variables' (first on line 3)"], id="variants-duplicate-key"),
    pytest.param({VARIANTS: "Alpha!:\n  model: acme/alpha\n"}, VARIANTS,
                 ["names are lower-case"], id="variant-bad-name"),
    pytest.param({VARIANTS: "a" * 101 + ":\n  model: acme/alpha\n"}, VARIANTS,
                 [f"variant '{'a' * 57}...': 101 characters long; a name has at most 100"],
                 id="variant-name-too-long"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
                  "beta:\n  model: acme/alpha\n"}, f"{VARIANTS}:5",
                 ["variant 'beta': model: 'acme/alpha' is already the model of variant 'alpha'"],
                 id="two-variants-one-model"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
                  "beta:\n  model: acme/beta\n  official_model: acme/alpha\n"}, f"{VARIANTS}:6",
                 ["variant 'beta': official_model: 'acme/alpha' is already the model of "
                  "variant 'alpha'"], id="official-model-of-one-is-model-of-another"),
    # --- the cog-safe-push config -----------------------------------------------------
    pytest.param({CONFIG: b"model: {{ model }}\n# caf\xe9\n"}, f"{CONFIG}:2",
                 ["not UTF-8 text"], id="config-not-utf8"),
    pytest.param({CONFIG: "model: {{ model }}\npredict:\n  test_cases: [\n"}, f"{CONFIG}:",
                 ["invalid YAML"], id="config-yaml-syntax"),
    pytest.param({CONFIG: ""}, CONFIG, ["expected a mapping at the top level"],
                 id="config-empty"),
    pytest.param({CONFIG: "predict: {}\n"}, f"{CONFIG}:", ["model: required key is missing"],
                 id="config-no-model"),
    pytest.param({CONFIG: GOOD_CONFIG + "paralel: 2\n"}, f"{CONFIG}:6",
                 ["paralel: unknown key"], id="config-unknown-key"),
    pytest.param({CONFIG: GOOD_CONFIG + "model: acme/alpha\n"}, f"{CONFIG}:6",
                 ["duplicate key 'model' (first on line 1)"], id="config-duplicate-key"),
    pytest.param({CONFIG: GOOD_CONFIG + "  predict_timeout: true\n"}, f"{CONFIG}:6",
                 ["predict.predict_timeout: expected an integer, got true"],
                 id="config-timeout-a-bool"),
    pytest.param({CONFIG: GOOD_CONFIG + "parallel: yes\n"}, f"{CONFIG}:6",
                 ["parallel: expected an integer, got true"], id="config-parallel-a-bool"),
    pytest.param({CONFIG: GOOD_CONFIG + "test_model: acme/Alpha Test\n"}, f"{CONFIG}:6",
                 ["test_model: expected 'owner/name'"], id="config-test-model-not-a-name"),
    pytest.param({CONFIG: GOOD_CONFIG + "deployment:\n  name: My Deployment\n"}, f"{CONFIG}:7",
                 ["deployment.name: expected a name of lower-case letters"],
                 id="config-deployment-name"),
    pytest.param({CONFIG: GOOD_CONFIG + "train:\n  destination: trained\n"}, f"{CONFIG}:7",
                 ["train.destination: expected 'owner/name'"], id="config-train-destination"),
    pytest.param({CONFIG: "model: {{ model }}\npredict:\n  test_cases:\n"
                  "    - exact_string: hi\n"}, f"{CONFIG}:4",
                 ["predict.test_cases[0].inputs: required key is missing"],
                 id="case-without-inputs"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"',
                                              "match_url: refs/missing.png")},
                 f"{CONFIG}:5", ["match_url: file 'refs/missing.png' not found"],
                 id="match-url-missing-file"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"', "match_url: /etc/hostname")},
                 f"{CONFIG}:5", ["match_url: file '/etc/hostname' is outside the repo"],
                 id="match-url-outside-the-repo"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"',
                                              "match_url: ../../outside.png")},
                 f"{CONFIG}:5", ["is outside the repo"], id="match-url-dotdot"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"', "match_url: 'http://[::1'")},
                 f"{CONFIG}:5", ["match_url: 'http://[::1' is not a URL"],
                 id="match-url-not-a-url"),
    pytest.param({CONFIG: GOOD_CONFIG + "      error_contains: x\n"}, f"{CONFIG}:4",
                 ["at most one checker per test case"], id="two-checkers"),
    pytest.param({CONFIG: GOOD_CONFIG.replace("exact_string", "exact_strng")}, f"{CONFIG}:5",
                 ["unknown checker 'exact_strng'", "known:"], id="unknown-checker"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"', "jq_query: '.a |'")},
                 f"{CONFIG}:5", ["does not compile"], id="jq-does-not-compile"),
    pytest.param({CONFIG: GOOD_CONFIG.replace('"hi:4"', "[1, 2]")}, f"{CONFIG}:5",
                 ["exact_string must be a string"], id="exact-string-list"),
    pytest.param({CONFIG: GOOD_CONFIG + "  fuzz:\n    fixed_inputs: {prompt: x}\n"
                  "    disabled_inputs: [prompt]\n"}, f"{CONFIG}:6",
                 ["'prompt' is both fixed and disabled"], id="fuzz-overlap"),
    pytest.param({CONFIG: GOOD_CONFIG + "  fuzz:\n    iterations: -1\n"}, f"{CONFIG}:7",
                 ["iterations"], id="fuzz-iterations-negative"),
    pytest.param({CONFIG: GOOD_CONFIG + "  predict_timeout: 0\n"}, f"{CONFIG}:6",
                 ["predict_timeout"], id="predict-timeout-zero"),
    pytest.param({CONFIG: GOOD_CONFIG + "parallel: 0\n"}, f"{CONFIG}:6", ["parallel"],
                 id="parallel-zero"),
    pytest.param({CONFIG: GOOD_CONFIG + "parallel: 10000000000\n"}, f"{CONFIG}:6",
                 ["parallel", "less than or equal to 100"], id="parallel-huge"),
    pytest.param({CONFIG: GOOD_CONFIG + "  predict_timeout: 86401\n"}, f"{CONFIG}:6",
                 ["predict.predict_timeout", "less than or equal to 86400"],
                 id="predict-timeout-huge"),
    pytest.param({CONFIG: GOOD_CONFIG + "train:\n  train_timeout: 99999999999\n"},
                 f"{CONFIG}:7", ["train.train_timeout", "less than or equal to 604800"],
                 id="train-timeout-huge"),
    pytest.param({CONFIG: GOOD_CONFIG + "deployment:\n  min_instances: 3\n  max_instances: 2\n"},
                 f"{CONFIG}:6", ["min_instances (3) is above max_instances (2)"],
                 id="deployment-min-above-max"),
    pytest.param({CONFIG: GOOD_CONFIG + "official_model: official\n"}, f"{CONFIG}:6",
                 ["expected 'owner/name'"], id="official-model-malformed"),
    pytest.param({CONFIG: GOOD_CONFIG + "test_model: acme/alpha\n"}, f"{CONFIG}:6",
                 ["test_model: must differ from model"], id="test-model-is-model"),
    pytest.param({CONFIG: GOOD_CONFIG + "official_model: acme/alpha\n"}, f"{CONFIG}:6",
                 ["official_model: 'acme/alpha' is the model itself"],
                 id="official-model-is-model"),
    pytest.param({CONFIG: GOOD_CONFIG + "official_model: acme/alpha-test\n"}, f"{CONFIG}:6",
                 ["official_model: 'acme/alpha-test' is also the test model"],
                 id="official-model-is-test-model"),
    pytest.param({CONFIG: GOOD_CONFIG + "train:\n  destination: acme/alpha\n"}, f"{CONFIG}:7",
                 ["train.destination: 'acme/alpha' is also the model"],
                 id="train-destination-is-model"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  official_model: acme/alpha\n"},
                 f"{VARIANTS}:3", ["variant 'alpha': official_model: 'acme/alpha' is the model"],
                 id="variant-official-model-is-model"),
    pytest.param({VARIANTS: "alpha:\n  model: acme/alpha\n  official_model: acme/alpha-test\n"
                  "  variables: {steps: 4}\nbeta:\n  model: acme/beta\n"
                  "  variables: {steps: 8}\n"},
                 f"{CONFIG}: official_model: 'acme/alpha-test' is also the test model",
                 [
                                 "declared for variant 'alpha' in models/fam/variants.yaml"],
                 id="variant-official-model-is-test-model"),
    pytest.param({CONFIG: GOOD_CONFIG.replace("{{ model }}", "acme/other")}, f"{CONFIG}:1",
                 ["differs from 'acme/alpha'"], id="model-differs-from-variants"),
    pytest.param({CONFIG: GOOD_CONFIG.replace("{prompt: hi}", "{prompt: hi, steps: .nan}")},
                 f"{CONFIG}:4", ["inputs: steps: nan is not a number JSON can carry"],
                 id="case-input-nan"),
    pytest.param({CONFIG: GOOD_CONFIG + "  fuzz:\n    fixed_inputs: {x: [1, -.inf]}\n"},
                 f"{CONFIG}:7", ["fixed_inputs: x[1]: -inf is not a number JSON can carry"],
                 id="fuzz-input-infinite"),
    pytest.param({CONFIG: GOOD_CONFIG + "  fuzz:\n    iterations: 100000000000\n"},
                 f"{CONFIG}:7", ["predict.fuzz.iterations", "less than or equal to 10000"],
                 id="fuzz-iterations-huge"),
    pytest.param({CONFIG: GOOD_CONFIG + "test_hardware: ''\n"}, f"{CONFIG}:6",
                 ["test_hardware: String should have at least 1 character"],
                 id="test-hardware-empty"),
    pytest.param({CONFIG: GOOD_CONFIG + "deployment:\n  max_instances: 99999999999999999999\n"},
                 f"{CONFIG}:7", ["deployment.max_instances", "less than or equal to 20"],
                 id="deployment-above-the-api-limit"),
    pytest.param({"pyproject.toml": "tool = 'x'\n"}, "pyproject.toml",
                 ["tool must be a table, got str"], id="pyproject-tool-not-a-table"),
    pytest.param({"pyproject.toml": "[tool.cogfleet]\nconfigs-dir = 'confs'\n"},
                 "pyproject.toml", ["[tool.cogfleet] configs-dir: no folder 'confs'"],
                 id="pyproject-configs-dir-missing"),
    # --- cog.yaml ---------------------------------------------------------------------
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictr"\n'},
                 f"{TEMPLATE}:3", ["predict.py defines no 'Predictr'", "Predictor"],
                 id="cog-yaml-class-missing"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\npredict: "predictor.py:P"\n'},
                 f"{TEMPLATE}:3", ["predictor.py does not exist"], id="cog-yaml-file-missing"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "2.7"\npredict: "predict.py:Predictor"\n'},
                 f"{TEMPLATE}:2", ["python_version"], id="cog-yaml-old-python"),
    pytest.param({TEMPLATE: 'biuld:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'},
                 f"{TEMPLATE}:1", ["biuld: unknown key"], id="cog-yaml-unknown-key"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\n'
                  'predict: "../../../models/fam/predict.py:Predictor"\n'},
                 f"{TEMPLATE}:3", ["../../../models/fam/predict.py is outside the model folder"],
                 id="cog-yaml-ref-outside-the-folder"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\n  python_requirements: /etc/hostname'
                  '\npredict: "predict.py:Predictor"\n'}, f"{TEMPLATE}:3",
                 ["build.python_requirements: /etc/hostname is outside the model folder"],
                 id="cog-yaml-requirements-absolute"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\n'}, f"{TEMPLATE}:1",
                 ["nothing to run: set run:"], id="cog-yaml-nothing-to-run"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\n  python_packages:\n'
                  '    - "not a package ==="\npredict: "predict.py:Predictor"\n'}, f"{TEMPLATE}:4",
                 ["build.python_packages[0]: 'not a package ===' is not a requirement pip can "
                  "read"], id="cog-yaml-package-unparseable"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\n  python_requirements: r.txt\n'
                  'predict: "predict.py:Predictor"\n',
                  "models/fam/r.txt": "pillow\nnot a package ===\n"}, "models/fam/r.txt:2",
                 ["'not a package ===' is not a requirement pip can read"],
                 id="requirements-line-unparseable"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\nimage: UPPER/Case\n'
                  'predict: "predict.py:Predictor"\n'}, f"{TEMPLATE}:3",
                 ["image: image names are lower case"], id="cog-yaml-image-upper-case"),
    pytest.param({TEMPLATE: ""}, f"{TEMPLATE}", ["nothing to run"], id="cog-yaml-empty"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
                  "# \x00\n"}, TEMPLATE, ["invalid YAML: unacceptable character #x0000"],
                 id="cog-yaml-control-character"),
    pytest.param({TEMPLATE: 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
                  'predict: "predict.py:Predictor"\n'}, f"{TEMPLATE}:4", ["duplicate key"],
                 id="cog-yaml-duplicate-key"),
    pytest.param({PARTIAL: "environment:\n  - STEPS={{ steps }}\n  - REPLICATE_API_TOKEN=x\n"},
                 f"{PARTIAL}:3", ["reserved"], id="cog-yaml-reserved-env-in-partial"),
    # --- templates --------------------------------------------------------------------
    pytest.param({"models/fam/predict.py.j2": "STEPS = {{ steps }}\n"}, "models/fam/predict.py.j2",
                 ["renders predict.py, and models/fam/predict.py is there too"],
                 id="template-and-plain-file-of-one-name"),
    pytest.param({PARTIAL: "environment:\n  - STEPS={{ stepz }}\n"}, f"{PARTIAL}:2",
                 ["undefined variable 'stepz'"], id="template-undefined"),
    pytest.param({PARTIAL: "environment:\n  - STEPS={{ gpu | tojson }}\n"}, f"{PARTIAL}:2",
                 ["undefined variable 'gpu'"], id="template-undefined-into-filter"),
    pytest.param({PARTIAL: "environment:\n{% if steps %}\n  - STEPS={{ steps }}\n"},
                 f"{PARTIAL}:", ["template syntax error"], id="template-syntax"),
    pytest.param({TEMPLATE: '{% include "partials/nope.j2" %}\n'}, f"{TEMPLATE}:1",
                 ["included template not found: partials/nope.j2"], id="template-missing-include"),
    pytest.param({PARTIAL: 'environment:\n{% include "templates/partials/env.yaml.j2" %}\n'},
                 f"{PARTIAL}:2", ["templates include or call each other without end"],
                 id="template-includes-itself"),
    pytest.param({PARTIAL: b"environment:\n  - STEPS=\xfe{{ steps }}\n"}, f"{PARTIAL}:2",
                 ["not UTF-8 text"], id="template-not-utf8"),
    pytest.param({PARTIAL: "environment:\n  - STEPS={{ steps // 0 }}\n"}, f"{PARTIAL}:2",
                 ["ZeroDivisionError"], id="template-expression-raises"),
]


@pytest.mark.parametrize(("files", "where", "what"), FILE_CASES)
def test_bad_files(push_broken, files, where, what):
    result, root = push_broken(files)
    assert_rejected(result, root, where, *what)


def test_a_match_url_that_is_a_symlink_loop(make_repo, cli):
    root = make_repo({CONFIG: GOOD_CONFIG.replace('exact_string: "hi:4"', "match_url: loop.png")})
    (root / "loop.png").symlink_to("loop.png")
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert_rejected(result, root, f"{CONFIG}:5", "match_url: file 'loop.png' not found in the repo")


# --- plugins ---------------------------------------------------------------------------

HOOK = "from cogfleet import hookimpl\n\n"

PLUGIN_CASES = [
    pytest.param("def broken(:\n", "plugins/bad.py:1", ["failed to import", "SyntaxError"],
                 id="plugin-syntax-error"),
    pytest.param("import os\nraise RuntimeError('no import for you')\n", "plugins/bad.py:2",
                 ["failed to import", "no import for you"], id="plugin-import-raises"),
    pytest.param("import sys\nsys.exit(3)\n", "plugins/bad.py:2",
                 ["plugin 'bad' failed to import: SystemExit: 3"], id="plugin-exits-at-import"),
    pytest.param("raise BaseException('no')\n", "plugins/bad.py:1",
                 ["plugin 'bad' failed to import: BaseException: no"],
                 id="plugin-base-exception-at-import"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_template_variables(variant):\n"
                 "    return ['steps', 8]\n", "plugin bad (plugins/bad.py)",
                 ["cogfleet_template_variables returned list ['steps', 8], expected a dict"],
                 id="plugin-template-variables-not-a-dict"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_template_filters(register):\n"
                 "    register('shout', 'upper')\n", "plugins/bad.py:5",
                 ["filter 'shout' is not callable"], id="plugin-filter-not-callable"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_template_filters(register):\n"
                 "    register(5, str)\n", "plugins/bad.py:5",
                 ["a filter's name must be an identifier, got 5"], id="plugin-filter-name"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_register_steps(register):\n"
                 "    register('step')\n", "plugins/bad.py:5",
                 ["registered str 'step', not a Step"], id="plugin-registers-a-non-step"),
    pytest.param(HOOK + "from cogfleet._steps import Step\n\n@hookimpl\n"
                 "def cogfleet_register_steps(register):\n"
                 "    register(Step('mine', 'later', lambda ctx: None))\n", "plugins/bad.py:7",
                 ["registered the step 'mine' in phase 'later'; the phases are gate, check, "
                  "promote, release"], id="plugin-step-in-no-phase"),
    pytest.param(HOOK + "from cogfleet._steps import Step\n\n@hookimpl\n"
                 "def cogfleet_register_steps(register):\n"
                 "    register(Step('mine', 'gate', None))\n", "plugins/bad.py:7",
                 ["registered the step 'mine' with a run that is not callable"],
                 id="plugin-step-run-not-callable"),
    pytest.param(HOOK + "from cogfleet._steps import Step\n\n@hookimpl\n"
                 "def cogfleet_register_steps(register):\n"
                 "    register(Step('push-test', 'gate', lambda ctx: None))\n",
                 "plugins/bad.py:7", ["registered the step 'push-test', which cogfleet runs "
                                      "itself"], id="plugin-step-core-name"),
    pytest.param(HOOK + "from cogfleet._steps import Step\n\n@hookimpl\n"
                 "def cogfleet_register_steps(register):\n"
                 "    register(Step('fuzz', 'check', lambda ctx: None))\n",
                 "plugins bad (plugins/bad.py) and fuzz (builtin) both register the pipeline "
                 "step 'fuzz'", [], id="plugin-step-name-taken"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_lnt(variant, build_dir):\n    return []\n",
                 "plugins/bad.py", ["cogfleet_lnt"], id="plugin-unknown-hook"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_template_variables(variant):\n"
                 "    raise KeyError('steps')\n", "plugins/bad.py:5",
                 ["plugin 'bad': cogfleet_template_variables raised KeyError"],
                 id="plugin-template-variables-raise"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_register_checkers(register):\n"
                 "    register('not a checker')\n", "", ["registered a non-Checker"],
                 id="plugin-registers-non-checker"),
    pytest.param(HOOK + "from cogfleet._checks import Checker, CheckResult\n\n@hookimpl\n"
                 "def cogfleet_register_checkers(register):\n"
                 "    register(Checker(name='exact_string', check=lambda c: CheckResult(True)))\n",
                 "", ["checker 'exact_string' is registered by both"],
                 id="plugin-checker-name-taken"),
    pytest.param(HOOK + "from cogfleet._checks import Checker, CheckResult\n\n"
                 "def validate(value):\n    raise KeyError(value)\n\n@hookimpl\n"
                 "def cogfleet_register_checkers(register):\n"
                 "    register(Checker(name='exact_string2', check=lambda c: CheckResult(True),"
                 " validate=validate))\n",
                 f"{CONFIG}:5", ["exact_string2", "KeyError"], id="plugin-validate-raises"),
    pytest.param(HOOK + "@hookimpl\ndef cogfleet_template_filters(register):\n"
                 "    register('shout', lambda v: v.upper())\n", f"{PARTIAL}:2",
                 ["AttributeError"], id="plugin-filter-raises"),
]


@pytest.mark.parametrize(("plugin", "where", "what"), PLUGIN_CASES)
def test_bad_plugins(push_broken, plugin, where, what):
    files: dict[str, str | bytes | None] = {"plugins/bad.py": plugin}
    if "exact_string2" in plugin:
        files[CONFIG] = GOOD_CONFIG.replace('exact_string: "hi:4"', "exact_string2: x")
    if "shout" in plugin:
        files[PARTIAL] = "environment:\n  - STEPS={{ steps | shout }}\n"
    result, root = push_broken(files)
    assert_rejected(result, root, where, *what)


@pytest.mark.parametrize(("answer", "shown"), [
    ("'problem'", "str 'problem'"), ("5", "int 5"), ("[5]", "list [5]"),
])
def test_a_lint_hook_answering_no_list_of_text_names_the_plugin(make_repo, cli, answer, shown):
    root = make_repo({"plugins/bad.py": HOOK + "@hookimpl\ndef cogfleet_lint(variant, build_dir):"
                      f"\n    return {answer}\n"})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == 2, result
    assert result.err == (f"error: plugin bad (plugins/bad.py): cogfleet_lint returned {shown}, "
                          "expected a list of str\n")


@pytest.mark.parametrize(("body", "shown"), [
    ("return 'problem'", "cogfleet_lint returned str 'problem', expected a list of str"),
    ("return 1 / 0", "cogfleet_lint raised ZeroDivisionError"),
])
def test_a_broken_lint_hook_under_push_is_exit_2_before_the_push(make_repo, cli, body, shown):
    # as under `cogfleet lint`: a plugin that breaks its hook's contract is bad input, not
    # a failed check, and the lint step comes before anything is pushed
    root = make_repo({"plugins/bad.py": HOOK + "@hookimpl\ndef cogfleet_lint(variant, build_dir):"
                      f"\n    {body}\n"})
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert result.code == 2, result
    assert "Traceback" not in result.err + result.out
    last = result.err.splitlines()[-1]
    assert last.startswith("error: ") and "plugins/bad.py" in last and shown in last, result
    report = json.loads((root / "report.json").read_text())
    (run,) = report["runs"] if "runs" in report else [report]
    assert run["result"] == "failed" and not run["pushed"] and run["test_version"] is None
    assert [s["name"] for s in run["steps"] if s["status"] == "failed"] == ["lint"]


def test_a_lint_hook_that_raises_names_the_plugin(make_repo, cli):
    root = make_repo({"plugins/bad.py": HOOK + "@hookimpl\ndef cogfleet_lint(variant, build_dir):"
                      "\n    return 1 / 0\n"})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == 2
    assert result.err.startswith("error: plugins/bad.py:5: plugin 'bad': cogfleet_lint raised "
                                 "ZeroDivisionError"), result.err
    assert "Traceback" not in result.err


# --- serve -----------------------------------------------------------------------------


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cogfleet", "serve", *args], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(("state", "message"), [
    ("state", "--state state: not a directory (a file is there)"),
    ("state/inside", "--state state/inside: cannot keep the server's state there: "
                     "Not a directory"),
])
def test_serve_state_on_or_under_a_file(tmp_path, state, message):
    (tmp_path / "state").write_text("I am a file\n")
    proc = _serve(tmp_path, "--state", state, "--port", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}"]
    assert (tmp_path / "state").read_text() == "I am a file\n"


def test_serve_on_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(tmp_path, "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --port {port}: ")
    assert "in use" in lines[0]
    assert not (tmp_path / ".cogfleet").exists()  # nothing created first


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--port", "70000"], "--port"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--rate-limit", "0"], "--rate-limit"),
        (["--latency", "-1"], "--latency"),
        (["--latency", "inf"], "--latency"),
        (["--request-latency", "nan"], "--request-latency"),
        (["--rate-limit", "nan"], "--rate-limit"),
        (["--idle-timeout", "-1"], "--idle-timeout"),
        (["--idle-timeout", "0"], "--idle-timeout"),
        (["--token", "no-account"], "--token"),
        # an empty path is not the current folder; sizes past any use are refused
        (["--state", ""], "--state: empty value"),
        (["--state="], "--state: empty value"),
        (["--latency", "1e20"], "--latency must be at most 86400"),
        (["--request-latency", "99999999999999999999"], "--request-latency must be at most"),
        (["--idle-timeout", "1e300"], "--idle-timeout must be at most 604800"),
        (["--page-size", "99999999999"], "--page-size must be from 1 to 10000"),
    ],
)
def test_serve_bad_flags(tmp_path, args, what):
    proc = _serve(tmp_path, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and what in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".cogfleet").exists()
    assert not (tmp_path / "builds").exists()


def test_serve_names_the_variable_a_bad_token_came_from(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", "serve"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False, env={**os.environ, "COGFLEET_SERVE_TOKEN": "nope"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: $COGFLEET_SERVE_TOKEN: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- the command line ------------------------------------------------------------------

CLI_CASES = [
    pytest.param(["--predict-timeout", "-5"], "",
                 ["--predict-timeout", "must be a positive integer, got -5"],
                 id="predict-timeout-negative"),
    pytest.param(["--predict-timeout", "0"], "", ["--predict-timeout", "positive"],
                 id="predict-timeout-zero"),
    pytest.param(["--predict-timeout", "soon"], "", ["--predict-timeout", "'soon'"],
                 id="predict-timeout-not-a-number"),
    pytest.param(["--parallel", "0"], "", ["--parallel", "must be a positive integer, got 0"],
                 id="parallel-zero"),
    pytest.param(["--fuzz-iterations", "-1"], "", ["--fuzz-iterations", "at least 0"],
                 id="fuzz-iterations-negative"),
    pytest.param(["--predict-timeout", "99999999999999999999"], "",
                 ["--predict-timeout", "must be at most 86400, got 99999999999999999999"],
                 id="predict-timeout-huge"),
    pytest.param(["--parallel", "101"], "", ["--parallel", "must be at most 100, got 101"],
                 id="parallel-huge"),
    pytest.param(["--parallel", "2.5"], "", ["--parallel", "expected an integer, got '2.5'"],
                 id="parallel-not-an-integer"),
    pytest.param(["--parallel", ""], "", ["--parallel", "expected an integer, got ''"],
                 id="parallel-empty"),
    pytest.param(["--fuzz-seed", "x"], "", ["--fuzz-seed"], id="fuzz-seed-not-a-number"),
    pytest.param(["--target", "production"], "", ["--target", "invalid choice"],
                 id="target-unknown"),
    pytest.param(["--report-json", "models/fam/predict.py/r.json"],
                 "--report-json models/fam/predict.py/r.json",
                 ["models/fam/predict.py is a file, not a folder"], id="report-inside-a-file"),
    pytest.param(["--report-json", "models"], "--report-json models", ["is a folder"],
                 id="report-is-a-folder"),
    # written through a rename, a report would replace the device (as root)
    pytest.param(["--report-json", "/dev/null"], "--report-json /dev/null",
                 ["is not a regular file"], id="report-is-a-device"),
    # permission bits say yes to root there: creating a file is what is tried
    pytest.param(["--report-json", "/proc/r.json"], "--report-json /proc/r.json",
                 ["/proc is not writable"], id="report-where-no-file-can-be-made"),
    pytest.param(["--junit-xml", "models/fam/predict.py/j.xml"], "--junit-xml", ["is a file"],
                 id="junit-inside-a-file"),
    pytest.param(["--markdown", "models/fam/predict.py/s.md"], "--markdown", ["is a file"],
                 id="markdown-inside-a-file"),
    pytest.param(["--local-url", "ftp://example.org"], "--local-url ftp://example.org",
                 ["expected http://HOST:PORT"], id="local-url-wrong-scheme"),
    pytest.param(["--local-url", "localhost"], "--local-url localhost",
                 ["expected http://HOST:PORT"], id="local-url-no-scheme"),
    pytest.param(["--local-url", "http://[::1"], "--local-url", ["not a URL"],
                 id="local-url-malformed"),
    pytest.param(["--local-url", "http://127.0.0.1:{closed}"], "--local-url",
                 ["cannot reach it", "cogfleet serve"], id="local-url-unreachable"),
    pytest.param(["--secret", "api_key"], "--secret api_key", ["expected id=NAME,src=PATH"],
                 id="secret-malformed"),
    pytest.param(["--secret", "id=k,src=f,extra=1"], "--secret", ["expected id=NAME,src=PATH"],
                 id="secret-unknown-field"),
    pytest.param(["--test-model", "no-slash"], "", ["--test-model", "expected 'owner/name'"],
                 id="test-model-malformed"),
    pytest.param(["--test-case", "no-equals-sign"], "", ["--test-case", "key=value"],
                 id="test-case-malformed"),
    pytest.param(["--fuzz-fixed-inputs", "a=1;b"], "", ["--fuzz-fixed-inputs", "key=value"],
                 id="fuzz-fixed-inputs-malformed"),
    pytest.param(["--no-such-flag"], "", ["unrecognized arguments: --no-such-flag"],
                 id="unknown-flag"),
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "where", "what"), CLI_CASES)
def test_bad_command_lines(push_broken, args, where, what):
    args = [a.replace("{closed}", str(_closed_port())) for a in args]
    result, root = push_broken({}, *args)
    assert_rejected(result, root, where, *what)


def test_unknown_variant_lists_the_known_ones(make_repo, cli):
    root = make_repo()
    result = cli("push", "gamma", "--report-json", "report.json", cwd=root)
    assert_rejected(result, root, "", "unknown variant 'gamma'", "valid: alpha, beta")


def test_a_report_that_cannot_be_written_is_one_line_after_the_others_are(tmp_path):
    # The destinations are checked before the run; a place that still refuses the file
    # at the end (here a folder that cannot exist) does not stop the other reports.
    from cogfleet._errors import UsageError
    from cogfleet._result import RunResult
    from cogfleet.builtins.reporters import cogfleet_report

    result = RunResult(variant="alpha", model="acme/alpha", test_model="acme/alpha-test",
                       target="local")
    options = {"report_json": str(tmp_path / "ok.json"), "html": None,
               "junit_xml": str(tmp_path / "report.xml/inside/j.xml"),
               "markdown": str(tmp_path / "summary.md")}
    (tmp_path / "report.xml").write_text("a file where a folder would be\n")
    with pytest.raises(UsageError) as info:
        cogfleet_report(results=[result], options=options)
    assert str(info.value) == (
        f"cannot write the JUnit report {tmp_path}/report.xml/inside/j.xml: Not a directory"
    )
    assert json.loads((tmp_path / "ok.json").read_text())["variant"] == "alpha"
    assert "alpha" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("value", ["/etc/hostname", "../outside.png"])
def test_a_file_input_outside_the_repo_is_never_read(tmp_path, value):
    # a test case's file input is uploaded to the target: only files of the repo may be
    import asyncio

    from cogfleet._errors import ConfigError
    from cogfleet._predict import Predictions

    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(b"not the repo's\n")
    predictions = Predictions(None, parallel=1, repo_root=root)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        asyncio.run(predictions.prepare_inputs({"image": value}, {"image"}))
    assert str(info.value) == f"input 'image': file {value!r} is outside the repo"
