"""docs/cog-safe-push-parity.md names every key of the config model, every built-in
checker and every cog-safe-push flag, so one added to cogfleet is documented there."""

from __future__ import annotations

import argparse

from pydantic import BaseModel

from cogfleet._config import (
    DeploymentConfig,
    FuzzConfig,
    PredictConfig,
    SafePushConfig,
    TrainConfig,
)
from cogfleet.builtins.checkers import CHECKERS
from cogfleet.cli._push import _safe_push_arguments
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "cog-safe-push-parity.md"


def _named(model: type[BaseModel], prefix: str = "") -> set[str]:
    return {f"{prefix}{name}" for name in model.model_fields}


def test_every_config_key_and_checker_is_in_the_parity_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    keys = (
        _named(SafePushConfig) | _named(DeploymentConfig, "deployment.")
        | _named(PredictConfig, "predict.") | _named(FuzzConfig, "fuzz.")
        | _named(TrainConfig, "train.") | {c.name for c in CHECKERS}
    )
    # cogfleet's own scaling keys share the row of cog-safe-push's scaling defaults
    keys -= {"deployment.min_instances", "deployment.max_instances"}
    assert "`min_instances`/`max_instances`" in text
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"config keys missing from {DOC.name}: {missing}"


def test_every_cog_safe_push_flag_is_in_the_parity_table() -> None:
    parser = argparse.ArgumentParser()
    _safe_push_arguments(parser)
    overrides = next(g for g in parser._action_groups if g.title == "cog-safe-push overrides")
    flags = {opt for action in overrides._group_actions for opt in action.option_strings}
    assert {"--test-case", "--fuzz-prompt", "--push-official-model"} <= flags
    flags |= {"--config", "--help-config", "--no-push"}
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(flag for flag in flags if f"`{flag}" not in text)
    assert not missing, f"flags missing from {DOC.name}: {missing}"
