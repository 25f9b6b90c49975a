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


# Docker's image reference grammar (distribution/reference): a registry host (it has a
# dot or a port, is localhost, or has upper-case letters), then lower-case path parts.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"^{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?$")
_PATH_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
#: Replicate's registry: an image there is ``r8.im/<owner>/<name>`` of a model.
REGISTRY = "r8.im"


def image_problem(text: object, *, bare: bool = False) -> str | None:
    """Why ``text`` is not a Docker image name Cog can build and push (``None`` when it
    is one): lower-case path parts after an optional registry host, an optional
    ``:tag`` and ``@digest`` (neither with ``bare``); on Replicate's registry, the path
    is a model's ``owner/name``."""
    if not isinstance(text, str) or not text:
        return f"expected an image name such as 'r8.im/owner/model', got {text!r}"
    name, at, digest = text.partition("@")
    if at and (bare or not _DIGEST_RE.match(digest)):
        return (f"must be a bare repository without tag or digest, got {text!r}" if bare
                else f"{digest!r} is not an image digest (algorithm:hex), in {text!r}")
    head, slash, rest = name.partition("/")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if bare:
            return f"must be a bare repository without tag or digest, got {text!r}"
        if not _TAG_RE.match(tag):
            return f"{tag!r} is not an image tag, in {text!r}"
        head, slash, rest = name.partition("/")
    # Docker also takes an upper-case first part for a registry host ("Acme/model"
    # pushes to a host named Acme); that is a mistyped name, refused as one here
    domain = slash and ("." in head or ":" in head or head == "localhost")
    if domain and not _DOMAIN_RE.match(head):
        return f"{head!r} is not a registry host, in {text!r}"
    path = rest if domain else name
    parts = path.split("/")
    if path != path.lower():
        return f"image names are lower case (Docker refuses upper-case letters), got {text!r}"
    if len(name) > 255 or not all(_PATH_RE.match(part) for part in parts):
        return (f"expected an image name of lower-case letters, digits and . _ - parts "
                f"separated by / (after an optional registry host), got {text!r}")
    if domain and head.lower() == REGISTRY and (len(parts) != 2 or model_problem(path)):
        return f"an image on {REGISTRY} is {REGISTRY}/<owner>/<model name>, got {text!r}"
    return None
