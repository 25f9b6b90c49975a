"""The names Replicate accepts for accounts, models and deployments.

One rule for every place a name is read (``variants.yaml``, a cog-safe-push config,
``--test-model``), so a name the target would refuse is refused there, before
anything is rendered or pushed: an account is letters, digits, ``.``, ``_`` and ``-``;
a model or deployment name is the same in lower case.
"""

from __future__ import annotations

import re

#: Why an official model may not be the model itself (the config and variants.yaml).
SAME_AS_MODEL = ("is the model itself; the official model is a second model the tested build "
                 "is pushed to")

_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def account_problem(text: object) -> str | None:
    """Why ``text`` is not an account name (``None`` when it is one)."""
    if not isinstance(text, str) or not _ACCOUNT_RE.match(text):
        return f"expected an account name (letters, digits, . _ -), got {text!r}"
    return None


def name_problem(text: object) -> str | None:
    """Why ``text`` is not a model or deployment name (``None`` when it is one)."""
    if not isinstance(text, str) or not _NAME_RE.match(text):
        return f"expected a name of lower-case letters, digits, . _ -, got {text!r}"
    return None


def model_problem(text: object) -> str | None:
    """Why ``text`` is not a model, ``owner/name`` (``None`` when it is one)."""
    if not isinstance(text, str) or text.count("/") != 1:
        return f"expected 'owner/name', got {text!r}"
    owner, name = text.split("/")
    if account_problem(owner) or name_problem(name):
        return (f"expected 'owner/name' (owner: letters, digits, . _ -; name: the same in "
                f"lower case), got {text!r}")
    return None
