"""A stand-in for the `cog` CLI (which needs Docker) that speaks to the local server.

``cog push r8.im/<owner>/<name> [flags]`` uploads the current folder to the server at
``$REPLICATE_BASE_URL`` with ``$REPLICATE_API_TOKEN`` (as cogfleet's local push does)
and prints cog 0.17+'s real push output on stderr, with the version id as the image
digest. ``cog build -t IMAGE [flags]`` checks the folder is a Cog folder and prints
cog's "Image built as" line. ``cog --version`` prints ``$FAKE_COG_VERSION`` (default:
the installed Cog SDK's version, i.e. the default pin). Each push and build is
appended to ``$FAKE_COG_LOG`` as a JSON line (argv, cwd, and whether each ``--secret``
source file existed during the push, never its content).
``FAKE_COG_FAIL_FOR=<owner/name>`` makes a push or build of that model fail midway.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def _log(entry: dict[str, object]) -> None:
    path = os.environ.get("FAKE_COG_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _version() -> str:
    if os.environ.get("FAKE_COG_VERSION"):
        return os.environ["FAKE_COG_VERSION"]
    import importlib.metadata

    return importlib.metadata.version("cog")


def build(argv: list[str]) -> int:
    """``cog build -t IMAGE [flags]`` in the current folder."""
    err = sys.stderr
    if "-t" not in argv[:-1]:
        print("fake cog: build needs -t IMAGE", file=err)
        return 2
    image = argv[argv.index("-t") + 1]
    cwd = Path.cwd()
    _log({"argv": argv, "cwd": str(cwd), "cog_yaml": (cwd / "cog.yaml").is_file()})
    if not (cwd / "cog.yaml").is_file():
        print("ⅹ cog.yaml not found in " + str(cwd), file=err)
        return 1
    print(f"Building Docker image from environment in cog.yaml as {image}...", file=err)
    if os.environ.get("FAKE_COG_FAIL_FOR") == image.partition("/")[2]:
        print("error: failed to solve: process did not complete successfully", file=err)
        return 1
    print(f"Image built as {image}", file=err)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"cog version {_version()} (built 2026-01-01T00:00:00Z) (fake)")
        return 0
    if argv[:1] == ["build"]:
        return build(argv)
    if argv[:1] != ["push"] or len(argv) < 2:
        print("fake cog: only `cog push IMAGE` and `cog build -t IMAGE` work", file=sys.stderr)
        return 2
    image = argv[1]
    if "--x-fast" in argv and tuple(int(n) for n in _version().split(".")[:2]) >= (0, 17):
        # Cog 0.17 removed fast push with its flag
        print("Error: unknown flag: --x-fast", file=sys.stderr)
        return 1
    registry, _, model = image.partition("/")
    owner, _, name = model.partition("/")
    secrets = []
    args = argv[2:]
    for i, arg in enumerate(args):
        if arg == "--secret" and i + 1 < len(args):
            fields = dict(part.split("=", 1) for part in args[i + 1].split(","))
            src = Path(fields.get("src", ""))
            secrets.append({"id": fields.get("id"), "src": str(src), "existed": src.is_file()})
    cwd = Path.cwd()
    _log({"argv": argv, "cwd": str(cwd), "secrets": secrets})
    err = sys.stderr
    base_digest = hashlib.sha256(b"cog-base").hexdigest()
    print(f"Building Docker image from environment in cog.yaml as {image}...", file=err)
    print(f"#2 FROM r8.im/cog-base:python3.11@sha256:{base_digest}", file=err)
    print("#7 exporting to image", file=err)
    if os.environ.get("FAKE_COG_FAIL_FOR") == model:
        print(f"Pushing to {image}...", file=err)
        print("error: failed to push: unexpected EOF", file=err)
        return 1
    from cogfleet.runtime import RuntimeOptions
    from cogfleet.server._push import push_build

    token = os.environ.get("REPLICATE_API_TOKEN", "")
    base_url = os.environ.get("REPLICATE_BASE_URL", "")
    # the image's SDK is the CLI's own version
    options = RuntimeOptions(cog_version=_version())
    try:
        version = push_build(base_url, owner, name, cwd, token=token, options=options)
    except Exception as exc:  # a push failure looks like cog's
        print(f"error: {exc}", file=err)
        return 1
    digest = version["id"]
    print(f"\nPushing to {image}...", file=err)
    print(f"The push refers to repository [{registry}/{model}]", file=err)
    print("5f70bf18a086: Pushed", file=err)
    print(f"latest: digest: sha256:{digest} size: 4321", file=err)
    print(f"\n  image  {image}@sha256:{digest}\n", file=err)
    print(f"Run your model on Replicate:\n    https://replicate.com/{model}", file=err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
