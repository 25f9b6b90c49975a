"""Shared fixtures: throw-away monorepos built from a dict of files, and a CLI runner."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cogfleet.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent

PREDICT_PY = '''\
from cog import BasePredictor, Input

STEPS = 4


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Text prompt"),
        steps: int = Input(description="Steps", default=STEPS, ge=1, le=4),
    ) -> str:
        return f"{prompt}:{steps}"
'''

BASIC_REPO: dict[str, str] = {
    "models/fam/variants.yaml": """\
        alpha:
          model: acme/alpha
          variables: {steps: 4}
        beta:
          model: acme/beta
          variables: {steps: 8}
        """,
    "models/fam/predict.py": PREDICT_PY,
    "templates/cog.yaml.j2": """\
        # {{ variant }}
        build:
          python_version: "3.11"
        {% include "partials/env.yaml.j2" %}
        predict: "predict.py:Predictor"
        """,
    "templates/partials/env.yaml.j2": """\
        environment:
          - STEPS={{ steps }}
        """,
    "cog-safe-push-configs/alpha.yaml": """\
        model: {{ model }}
        predict:
          test_cases:
            - inputs: {prompt: hi}
              exact_string: "hi:4"
        """,
    "cog-safe-push-configs/beta.yaml": """\
        model: acme/beta
        """,
}


def write_fake_cog(bin_dir: Path) -> Path:
    """Write ``bin_dir/cog``: the ``cog`` CLI stand-in (``tests/fakes/fake_cog.py``),
    run by this interpreter. Put ``bin_dir`` first on PATH to use it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "cog"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{REPO_ROOT}/tests/fakes/fake_cog.py" "$@"\n'
    )
    script.chmod(0o755)
    return script


# A predict.py with two predictors, for select-script repos that pick one per model.
TWO_PREDICTORS = """\
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, text: str = "x") -> str:
        return text


class LargePredictor(BasePredictor):
    def predict(self, text: str = "x", times: int = 2) -> str:
        return text * times
"""


#: The same two predictors with described inputs (schema lint passes): for `cogfleet test`.
DESCRIBED_PREDICTORS = """\
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, text: str = Input(description="Text", default="x")) -> str:
        return text


class LargePredictor(BasePredictor):
    def predict(
        self,
        text: str = Input(description="Text", default="x"),
        times: int = Input(description="Repeats", default=2),
    ) -> str:
        return text * times
"""


def write_files(root: Path, files: dict[str, str | bytes | None]) -> None:
    """Write ``files`` (relative path -> text; ``None`` deletes) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            if path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")


def after_select_script(
    root: Path, script: str, model: str, scratch: Path, name: str = "cog.yaml"
) -> bytes:
    """The file ``name`` as ``bash SCRIPT MODEL`` leaves it in a copy of ``root`` at
    ``scratch`` (what a repo's own select script writes, to compare cogfleet with)."""
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run(["bash", script, model], cwd=scratch, check=True, capture_output=True)
    return (scratch / name).read_bytes()


def assert_cog_build_context(build: Path, selected: Path, own: tuple[str, ...] = ()) -> None:
    """``build`` holds, byte for byte, what ``cog build`` of ``selected`` (a copy of the repo
    as its select script left it) sends, less ``own``: cogfleet's files, and the files and
    folders its ``.dockerignore`` leaves out (the caller names them); a build folder always
    has the variant's ``cog-safe-push.yaml``."""

    def tree(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and not {".git", ".cogfleet"} & set(p.relative_to(folder).parts)}

    sent = {rel: data for rel, data in tree(selected).items()
            if not any(rel == o or rel.startswith(f"{o}/") for o in own)}
    built = tree(build)
    if "cog-safe-push.yaml" not in sent:
        del built["cog-safe-push.yaml"]
    assert sorted(built) == sorted(sent)
    assert [rel for rel in sorted(sent) if built[rel] != sent[rel]] == []


def assert_select_sends_the_build(root: Path, variant: str) -> None:
    """After ``cogfleet select variant``, ``cog build`` of ``root`` (as its ``.dockerignore``
    has it) sends, byte for byte, the files of the variant's build folder (less the
    ``.dockerignore`` lines select adds, and the header of a ``models/`` family's
    ``cog.yaml``; a ``[tool.cogfleet]`` table is the build folder's only if the user's)."""
    from cogfleet._dockerignore import DockerIgnore, walk, without_select_block
    from cogfleet._render import without_cogfleet_table

    build = root / ".cogfleet" / "build" / variant
    built = {p.relative_to(build).as_posix(): p.read_bytes() for p in build.rglob("*")
             if p.is_file()}
    sent = {rel: (root / rel).read_bytes() for rel in walk(root, DockerIgnore.read(root))}
    if ".dockerignore" in sent:
        text = without_select_block(sent.pop(".dockerignore").decode())
        if text:
            sent[".dockerignore"] = text.encode()
    if "pyproject.toml" in sent:
        sent["pyproject.toml"] = without_cogfleet_table(sent["pyproject.toml"])
    if sent.get("cog.yaml", b"").startswith(b"# written by `cogfleet select"):
        sent["cog.yaml"] = sent["cog.yaml"].split(b"\n", 1)[1]
    assert sorted(sent) == sorted(built)
    assert [rel for rel in sorted(sent) if built[rel] != sent[rel]] == []


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Build a throw-away monorepo: ``make_repo()`` (the basic one) or ``make_repo(files)``."""

    def _make(
        files: dict[str, str | bytes | None] | None = None, *, base: bool = True
    ) -> Path:
        root = tmp_path / "repo"
        root.mkdir(exist_ok=True)
        merged: dict[str, str | bytes | None] = dict(BASIC_REPO) if base else {}
        merged.update(files or {})
        write_files(root, merged)
        return root

    return _make


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run the cogfleet CLI in-process: ``cli("render", "alpha", cwd=root)``."""

    def _run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture
def push_broken(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> Callable[..., tuple[CliResult, Path]]:
    """``cogfleet push alpha --report-json report.json`` on the basic repo with ``files``
    (the bad-input suites: ``tests/test_bad_input*.py``)."""

    def _run(files: dict[str, str | bytes | None], *args: str) -> tuple[CliResult, Path]:
        root = make_repo(files)
        result = cli("push", "alpha", "--report-json", "report.json", *args, cwd=root)
        return result, root

    return _run


@pytest.fixture
def demo_repo(tmp_path: Path) -> Iterator[Path]:
    """A copy of this repository's demo monorepo (models, templates, configs, plugins)."""
    root = tmp_path / "demo"
    root.mkdir()
    for name in ("models", "templates", "cog-safe-push-configs", "plugins", "tests/fixtures"):
        src = REPO_ROOT / name
        if src.exists():
            shutil.copytree(
                src, root / name, ignore=shutil.ignore_patterns("__pycache__", ".cogfleet")
            )
    yield root


@pytest.fixture(scope="session", autouse=True)
def shared_env_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One store of isolated environments for the whole session.

    Every local server of the session (embedded, ``cogfleet serve``, subprocesses)
    builds into and reuses it through ``$COGFLEET_ENV_DIR``; uv's own download cache
    is the machine's, so an environment costs a download once and a link after.
    Under pytest-xdist the workers share one store (in the run's temporary root, the
    parent of each worker's): the store builds an environment once under a file lock
    and renames it into place, so two workers that need it at once build it once.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = base.parent / "envs-shared"
        root.mkdir(exist_ok=True)
    else:
        root = tmp_path_factory.mktemp("envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COGFLEET_ENV_DIR", str(root))
        yield root


@pytest.fixture(scope="session")
def env_store(shared_env_dir: Path) -> Any:
    """The session's :class:`cogfleet.runtime.EnvStore`."""
    from cogfleet.runtime import EnvStore

    return EnvStore(shared_env_dir)


ALICE = "r8_alice-token"
BOB = "r8_bob-token"
"""Tokens of the two accounts the server API tests act as (each module's ``server``
fixture maps them to accounts)."""


def _token_client(server: Any, token: str) -> Any:
    import replicate

    client = replicate.Client(api_token=token, base_url=server.base_url)
    client.poll_interval = 0.05
    return client


@pytest.fixture(scope="module")
def alice(server: Any) -> Any:
    """The official client as ALICE against the module's ``server``."""
    return _token_client(server, ALICE)


@pytest.fixture(scope="module")
def bob(server: Any) -> Any:
    """The official client as BOB against the module's ``server``."""
    return _token_client(server, BOB)


LEGACY_COG = "0.15.8"
"""The old SDK the suite runs for real (the Python server, before coglet)."""


@pytest.fixture(scope="session")
def legacy_env(env_store: Any) -> Any:
    """An environment with Cog 0.15.8 (Python 3 of this interpreter, no other packages)."""
    from cogfleet.runtime import read_build_spec

    folder = REPO_ROOT / "tests" / "fixtures" / "legacy" / "echo"
    return env_store.ensure(read_build_spec(folder, LEGACY_COG), LEGACY_COG)


def run_console(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """Run ``python -m cogfleet`` as a real process."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@functools.cache
def container_view_here() -> bool:
    """Whether this system lets a process mount a /tmp of its own and a root of its own
    with a /src the host lacks (root, or user namespaces), asked of util-linux's unshare
    and chroot, independently of cogfleet's code."""
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        return False
    flags = ["-m"] if os.geteuid() == 0 else ["-U", "-r", "-m"]
    with tempfile.TemporaryDirectory() as scratch:
        # The new root is filled from inside it: once the overlay is on /tmp, the
        # scratch folder's path no longer leads to the tmpfs.
        script = (
            f"mount --make-rprivate / && mount -t tmpfs none {scratch} && "
            f"mkdir {scratch}/u {scratch}/w {scratch}/r {scratch}/r/src && "
            f"mount --bind {scratch}/u {scratch}/r/src && cd {scratch}/r && "
            f"mount -t overlay overlay "
            f"-o lowerdir=/tmp,upperdir={scratch}/u,workdir={scratch}/w /tmp && "
            "for e in /*; do n=${e#/}; [ $n = src ] && continue; "
            'if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$n" || exit 1; '
            'elif [ -d "$e" ]; then mkdir "$n" && mount --rbind "$e" "$n" || exit 1; '
            'else touch "$n" && mount --bind "$e" "$n" || exit 1; fi; done && '
            "chroot . sh -c 'cd /src && touch here'"
        )
        probe = subprocess.run(["unshare", *flags, "sh", "-c", script], capture_output=True)
    return probe.returncode == 0
