"""The cog-safe-push.yaml model: cog-safe-push files load unchanged; errors are precise."""

from __future__ import annotations

import textwrap

import pytest

from cogfleet._checks import Checker, CheckResult
from cogfleet._config import parse_config
from cogfleet._errors import ConfigError
from cogfleet._plugins import Plugins

FULL = """\
model: acme/flux-schnell
test_model: acme/flux-schnell-test
test_hardware: gpu-l40s
dockerfile: Dockerfile
parallel: 8
fast_push: true
use_cog_base_image: false
ignore_schema_compatibility: true
official_model: black-forest-labs/flux-schnell
deployment:
  owner: acme
  name: flux-schnell
  hardware: gpu-h100
predict:
  compare_outputs: false
  predict_timeout: 500
  test_cases:
    - inputs: {prompt: a cat, seed: 1, num_outputs: 2, tags: [a, b]}
      match_prompt: two webp images of a cat
    - inputs: {prompt: x}
      exact_string: x
    - inputs: {prompt: x}
      match_url: https://example.com/out.webp
    - inputs: {prompt: ""}
      error_contains: prompt
    - inputs: {prompt: x}
      jq_query: .caption | length > 0
    - inputs: {prompt: "no checker: must succeed"}
  fuzz:
    fixed_inputs: {go_fast: true}
    disabled_inputs: [seed]
    iterations: 20
    prompt: vary aspect ratios
train:
  destination: acme/flux-dest
  destination_hardware: cpu
  train_timeout: 900
  test_cases:
    - inputs: {steps: 10}
      match_prompt: a weights file
  fuzz:
    iterations: 3
"""


@pytest.fixture(scope="module")
def checkers():
    return Plugins(None).checkers()


def test_every_cog_safe_push_key_loads(checkers):
    config = parse_config(FULL, "c.yaml", checkers)
    assert config.parallel == 8 and config.official_model == "black-forest-labs/flux-schnell"
    assert config.predict is not None and config.predict.predict_timeout == 500
    cases = config.predict.test_cases
    assert cases[0].checker == ("match_prompt", "two webp images of a cat")
    assert cases[5].checker is None
    assert config.predict.fuzz is not None and config.predict.fuzz.disabled_inputs == ["seed"]
    assert config.train is not None and config.train.destination == "acme/flux-dest"
    assert config.deployment is not None and config.deployment.hardware == "gpu-h100"


def test_defaults_match_cog_safe_push(checkers):
    config = parse_config("model: a/b\npredict: {}\n", "c.yaml", checkers)
    assert config.effective_test_model == "a/b-test"
    assert config.test_hardware == "cpu" and config.parallel == 4
    assert config.predict is not None
    assert config.predict.compare_outputs is True and config.predict.predict_timeout == 300


def _error(text, checkers):
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "cfg.yaml", checkers)
    return str(info.value)


def test_unknown_top_level_key(checkers):
    assert _error("model: a/b\nparalel: 3\n", checkers) == "cfg.yaml:2: paralel: unknown key"


def test_missing_model(checkers):
    assert _error("predict: {}\n", checkers) == "cfg.yaml: model: required key is missing"


def test_bad_field_in_test_case_names_index_and_field(checkers):
    err = _error(
        """\
        model: a/b
        predict:
          test_cases:
            - inputs: {x: 1}
            - inputs: not-a-mapping
        """,
        checkers,
    )
    assert err.startswith("cfg.yaml:5: predict.test_cases[1].inputs:")


def test_unknown_checker_lists_known(checkers):
    err = _error(
        """\
        model: a/b
        predict:
          test_cases:
            - inputs: {}
              exact_strin: x
        """,
        checkers,
    )
    assert err.startswith("cfg.yaml:5: predict.test_cases[0]: unknown checker 'exact_strin'")
    assert "error_contains, exact_string" in err and "jq_query" in err


def test_two_checkers_in_one_case(checkers):
    err = _error(
        """\
        model: a/b
        predict:
          test_cases:
            - inputs: {}
              exact_string: x
              error_contains: y
        """,
        checkers,
    )
    assert "predict.test_cases[0]: at most one checker per test case" in err


def test_checker_value_validated_at_load(checkers):
    err = _error(
        """\
        model: a/b
        predict:
          test_cases:
            - inputs: {}
              jq_query: ".caption |"
        """,
        checkers,
    )
    assert err.startswith("cfg.yaml:5: predict.test_cases[0].jq_query:")


def test_checker_set_is_open_to_plugins():
    def validate(value):
        if value != "ok":
            raise ValueError("only 'ok' is accepted")

    shout = Checker(name="shout", check=lambda ctx: CheckResult(True), validate=validate)
    custom = {"shout": shout}
    good = parse_config("model: a/b\npredict:\n  test_cases:\n  - {inputs: {}, shout: ok}\n",
                        "c.yaml", custom)
    assert good.predict is not None and good.predict.test_cases[0].checker == ("shout", "ok")
    with pytest.raises(ConfigError, match="shout: only 'ok' is accepted"):
        parse_config("model: a/b\npredict:\n  test_cases:\n  - {inputs: {}, shout: no}\n",
                     "c.yaml", custom)


def test_test_model_must_differ(checkers):
    assert "test_model: must differ from model" in _error(
        "model: a/b\ntest_model: a/b\n", checkers
    )


def test_model_must_be_owner_name(checkers):
    assert "model: expected 'owner/name'" in _error("model: flux\n", checkers)


def test_fuzz_fixed_and_disabled_overlap(checkers):
    err = _error(
        "model: a/b\npredict:\n  fuzz:\n    fixed_inputs: {seed: 1}\n    disabled_inputs: [seed]\n",
        checkers,
    )
    assert "'seed' is both fixed and disabled" in err


def test_a_test_case_without_inputs_is_an_error(checkers):
    err = _error(
        """\
        model: a/b
        predict:
          test_cases:
            - inputs: {}
              exact_string: ok
            - exact_string: "no inputs"
        """,
        checkers,
    )
    assert err == "cfg.yaml:6: predict.test_cases[1].inputs: required key is missing"


def test_a_null_checker_is_not_set(checkers):
    """As in cog-safe-push, whose checkers are optional fields: ``null`` is not set, so
    beside another checker it does not count, and alone the case must only succeed."""
    config = parse_config(
        textwrap.dedent(
            """\
            model: a/b
            predict:
              test_cases:
                - inputs: {prompt: a}
                  exact_string: null
                  match_prompt: an image
                - inputs: {prompt: b}
                  error_contains:
            """
        ),
        "c.yaml", checkers,
    )
    assert config.predict is not None
    assert [c.checker for c in config.predict.test_cases] == [("match_prompt", "an image"), None]
    # an unknown key is refused whatever its value, as cog-safe-push forbids extra keys
    err = _error("model: a/b\npredict:\n  test_cases:\n  - {inputs: {}, exact_strin: null}\n",
                 checkers)
    assert "unknown checker 'exact_strin'" in err


@pytest.mark.parametrize(("value", "message"), [
    ("2024-01-01", 'YAML reads 2024-01-01 as a date, which JSON cannot carry; '
                   'write it quoted ("2024-01-01") for a string'),
    ("2024-01-01 10:30:00", "YAML reads 2024-01-01T10:30:00 as a date"),
    ("!!binary aGVsbG8=", "a YAML bytes is not a JSON value"),
])
def test_inputs_yaml_cannot_send_as_json_are_refused(checkers, value, message):
    """An unquoted date is a date to YAML: cog-safe-push refuses it as an input, and no
    prediction could carry it."""
    err = _error(f"model: a/b\npredict:\n  test_cases:\n  - inputs: {{when: [{value}]}}\n",
                 checkers)
    assert err.startswith("cfg.yaml:4: predict.test_cases[0].inputs: when[0]: ")
    assert message in err
    err = _error(f"model: a/b\npredict:\n  fuzz:\n    fixed_inputs: {{when: {value}}}\n",
                 checkers)
    assert err.startswith("cfg.yaml:4: predict.fuzz.fixed_inputs: when: ")
