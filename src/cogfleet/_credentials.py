"""The environment user code runs in: never with cogfleet's credentials.

Every subprocess that runs code from the user's repository (a predictor or trainer
under coglet, anything importing the model's modules) starts from
:func:`without_credentials`: a copy of the environment with every variable whose name
looks like a credential removed (``TOKEN``, ``KEY``, ``SECRET``, ``PASSWORD``,
``PASSWD`` or ``CREDENTIAL`` anywhere in the name, any case), and every ``REPLICATE_*``
and ``ANTHROPIC_*`` setting of cogfleet's own clients. That covers
``REPLICATE_API_TOKEN``, ``ANTHROPIC_API_KEY`` and the official-model key
(``COGFLEET_OFFICIAL_MODEL_API_KEY``) by name and shape alike.

What the user passes to the model on purpose (``environment:`` in ``cog.yaml``) is
added by the caller after scrubbing, so it reaches the model as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# cogfleet's own credentials, named so a reader can find them; the pattern covers them
COGFLEET_CREDENTIALS = (
    "REPLICATE_API_TOKEN",
    "ANTHROPIC_API_KEY",
    "COGFLEET_OFFICIAL_MODEL_API_KEY",
)

_CREDENTIAL_NAME = re.compile(
    r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|^REPLICATE_|^ANTHROPIC_", re.IGNORECASE
)


def looks_like_credential(name: str) -> bool:
    """True when the variable ``name`` may hold a credential (see the module docstring)."""
    return name in COGFLEET_CREDENTIALS or _CREDENTIAL_NAME.search(name) is not None


_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the value of every credential of the environment shown as ``***``.

    For messages made of what someone else wrote (an API's error detail that echoes
    the token it was sent, a URL with a password): a credential never reaches output
    or reports, whoever quoted it. Values under 8 characters are no credential.
    """
    source = os.environ if environ is None else environ
    for name, value in source.items():
        if len(value) >= 8 and value in text and (
            name in COGFLEET_CREDENTIALS or _SECRET_NAME.search(name)
        ):
            text = text.replace(value, "***")
    return text


def without_credentials(
    environ: Mapping[str, str] | None = None, *, drop_prefixes: Iterable[str] = ()
) -> dict[str, str]:
    """A copy of ``environ`` (default: ``os.environ``) for a process running user code.

    Variables that look like credentials are left out, and so are those starting with
    any of ``drop_prefixes`` (settings of the caller's that must not leak either).
    """
    source = os.environ if environ is None else environ
    prefixes = tuple(drop_prefixes)
    return {
        name: value
        for name, value in source.items()
        if not looks_like_credential(name) and not (prefixes and name.startswith(prefixes))
    }
