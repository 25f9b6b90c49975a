"""The noxfile: thin sessions over the CLI, safe defaults, posargs as variants."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, write_fake_cog


def _nox(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **(env or {}), "PATH": f"{(env or {}).get('PATH', '')}{path}"}
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_sessions_are_listed_with_docstrings_and_safe_defaults():
    proc = _nox("-l", cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(" -> ")[0]: line for line in proc.stdout.splitlines() if " -> " in line}
    selected = {name[2:] for name in lines if name.startswith("* ")}
    assert selected == {"tests", "lint"}
    for session in ("render", "build", "test", "push", "matrix", "canary", "bench"):
        assert f"- {session}" in lines, proc.stdout
    assert all(line.split(" -> ")[1].strip() for line in lines.values())


def test_render_session_takes_variants_as_posargs(make_repo):
    root = make_repo()
    shutil.copy(REPO_ROOT / "noxfile.py", root / "noxfile.py")
    proc = _nox("-s", "render", "--", "beta", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / ".cogfleet/build/beta/cog.yaml").is_file()
    assert not (root / ".cogfleet/build/alpha").exists()
    everything = _nox("-s", "render", cwd=root)
    assert everything.returncode == 0 and (root / ".cogfleet/build/alpha/cog.yaml").is_file()
    assert not (root / ".nox").exists()  # no virtualenv per session


def test_build_session(demo_repo, tmp_path):
    """nox -s build builds the variant's environment (what its push will run in), or
    with --target replicate its image, with the cog CLI (a fake that records the call)."""
    shutil.copy(REPO_ROOT / "noxfile.py", demo_repo / "noxfile.py")
    proc = _nox("-s", "build", "--", "schnell", cwd=demo_repo)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("schnell: environment "))
    assert "(Cog " in line and ", Python 3." in line

    bin_dir = write_fake_cog(tmp_path / "bin").parent
    log = tmp_path / "cog-calls.jsonl"
    # the cog CLI of toml-legacy's pin (the workflows install it)
    env = {"PATH": f"{bin_dir}{os.pathsep}", "FAKE_COG_LOG": str(log),
           "FAKE_COG_VERSION": "0.15.8"}  # fmt: skip
    proc = _nox("-s", "build", "--", "toml-legacy", "--target", "replicate", cwd=demo_repo,
                env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (call,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert call["argv"] == ["build", "-t", "r8.im/cogfleet-demo/tomlparse-legacy"]
    assert call["cwd"] == str(demo_repo / ".cogfleet/build/toml-legacy") and call["cog_yaml"]
    assert "toml-legacy: cog build -t r8.im/cogfleet-demo/tomlparse-legacy (Cog 0.15.8)" in (
        proc.stdout
    )
    assert "warning" not in proc.stderr  # the CLI is the pinned one


def test_bad_input_through_a_session_keeps_exit_code_2(make_repo):
    # nox makes any failed command its exit 1; a usage error must stay one
    root = make_repo()
    shutil.copy(REPO_ROOT / "noxfile.py", root / "noxfile.py")
    proc = _nox("-s", "push", "--", "gamma", cwd=root)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("nox >")]
    assert errors == ["error: unknown variant 'gamma'; valid: alpha, beta"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (root / ".cogfleet").exists()
