"""The canary: is pushing and predicting on the target working right now?

Each run generates a tiny Cog predictor whose source holds a fresh random marker
(so every run is a new version, never a cache hit), pushes it to the canary model,
runs one prediction on exactly the version that push returned and checks the marker
comes back. Anything else (push failure, API error, failed or wrong prediction,
timeout) is a failure, reported loudly.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cogfleet._errors import CheckFailed, UsageError
from cogfleet._predict import Predictions
from cogfleet._target_base import PushFlags, Target

CANARY_NAME = "cogfleet-canary"
ENV_MODEL = "COGFLEET_CANARY_MODEL"
_OWNER_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9_.-]+/[a-z0-9_.-]+$")

COG_YAML = """\
# The cogfleet canary: generated for one run, never edited by hand.
build:
  python_version: "3.11"
run: "predict.py:Predictor"
"""

PREDICT_PY = '''\
"""The cogfleet canary predictor: it answers with the marker of the run that pushed it."""

from cog import BasePredictor

MARKER = {marker!r}


class Predictor(BasePredictor):
    def predict(self) -> str:
        return MARKER
'''


@dataclass
class CanaryResult:
    """What one canary run did, with timings in seconds."""

    model: str
    marker: str
    version: str | None = None
    prediction_id: str | None = None
    output: object = None
    push_s: float = 0.0
    predict_s: float = 0.0
    steps: list[str] = field(default_factory=list)


def canary_model(value: str | None, default_owner: str | None = None) -> str | None:
    """``owner/name`` of the canary model from ``--model`` / ``$COGFLEET_CANARY_MODEL``.

    ``value`` may be a full ``owner/name`` or just an owner (then the name is
    ``cogfleet-canary``). Returns ``None`` when neither it nor ``default_owner`` says.
    """
    text = (value or os.environ.get(ENV_MODEL) or "").strip()
    if not text:
        return f"{default_owner}/{CANARY_NAME}" if default_owner else None
    source = "--model" if value else f"${ENV_MODEL}"
    if "/" in text:
        if not _MODEL_RE.match(text):
            raise UsageError(
                f"{source}: canary model must be 'owner/name' (lower-case name), got {text!r}"
            )
        return text
    if not _OWNER_RE.match(text):
        raise UsageError(f"{source}: canary model owner {text!r} is not a valid account name")
    return f"{text}/{CANARY_NAME}"


def write_canary(folder: Path, marker: str) -> None:
    """Write the canary's ``cog.yaml`` and ``predict.py`` into ``folder``."""
    (folder / "cog.yaml").write_text(COG_YAML, encoding="utf-8")
    (folder / "predict.py").write_text(PREDICT_PY.format(marker=marker), encoding="utf-8")


async def account_owner(target: Target) -> str:
    """The username of the account the target's token belongs to."""
    account = await target.client.accounts.async_current()
    return str(account.username)


async def run_canary(
    target: Target, model: str, *, timeout: float = 600.0, hardware: str = "cpu"
) -> CanaryResult:
    """Push a fresh canary version of ``model`` and check one prediction on it.

    Raises :class:`CheckFailed` naming the step that went wrong; API errors surface as
    :class:`cogfleet._errors.RemoteError`.
    """
    marker = f"cogfleet-canary-{uuid.uuid4().hex}"
    result = CanaryResult(model=model, marker=marker)
    if await target.ensure_model(model, hardware=hardware, visibility="private"):
        result.steps.append(f"created private {model} ({hardware})")
    with tempfile.TemporaryDirectory(prefix="cogfleet-canary-") as tmp:
        folder = Path(tmp)
        write_canary(folder, marker)
        start = time.monotonic()
        result.version = (await target.push(folder, model, PushFlags()))["id"]
        result.push_s = time.monotonic() - start
    # the version must be on the canary model, not just somewhere on the target
    await target.get_version(model, result.version)
    result.steps.append(f"pushed {model}:{result.version[:12]} in {result.push_s:.1f}s")
    predictions = Predictions(target.client, parallel=1, repo_root=None)
    outcome = await predictions.predict(result.version, {}, timeout=timeout)
    result.prediction_id = outcome.id
    result.output = outcome.output
    result.predict_s = outcome.duration_s
    if not outcome.succeeded:
        raise CheckFailed(
            f"prediction {outcome.id or '?'} on {model}:{result.version[:12]} "
            f"{outcome.status}: {outcome.error or 'no error message'}"
        )
    if outcome.output != marker:
        raise CheckFailed(
            f"prediction {outcome.id} on {model}:{result.version[:12]} returned "
            f"{str(outcome.output)[:200]!r}, expected the marker {marker!r}"
        )
    result.steps.append(
        f"prediction {outcome.id} returned the marker {marker} in {result.predict_s:.1f}s"
    )
    return result
