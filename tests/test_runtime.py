"""Cog version pins, build specs, pip's index settings and the environment store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet._repo import Repo
from cogfleet.runtime import (
    EnvBuildError,
    EnvStore,
    PythonNotFound,
    installed_version,
    read_build_spec,
    sdk_requirements,
    server_kind,
    takes_host_flag,
)
from cogfleet.runtime._pipconf import _from_values, _parse_config_list, pip_index_config
from tests.conftest import LEGACY_COG, CliResult

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"


# --- versions and pins --------------------------------------------------------------------


def test_server_kinds_and_sdk_requirements() -> None:
    assert server_kind("0.23.1") == "coglet" and server_kind("0.17.0") == "coglet"
    assert server_kind("0.16.12") == "legacy" and server_kind("0.7.0") == "legacy"
    assert server_kind("0.6.1") == "unsupported"
    assert sdk_requirements("0.19.3") == ["cog==0.19.3", "coglet==0.19.3"]
    assert sdk_requirements("0.15.8") == ["cog==0.15.8"]
    assert not takes_host_flag("0.9.9") and takes_host_flag("0.9.12")


def test_pins_from_pyproject_and_variants_yaml(make_repo: Callable[..., Path]) -> None:
    root = make_repo(
        {
            "pyproject.toml": '[project]\nname = "x"\n\n[tool.cogfleet]\ncog-version = "v0.16.8"\n',
            "models/fam/variants.yaml": """\
                alpha:
                  model: acme/alpha
                  variables: {steps: 4}
                beta:
                  model: acme/beta
                  cog_version: "0.15.8"
                  variables: {steps: 8}
                """,
        }
    )
    repo = Repo.load(root)
    alpha, beta = repo.variants["alpha"], repo.variants["beta"]
    assert repo.pin_for(alpha).describe() == "0.16.8 (pyproject.toml:5)"
    assert repo.pin_for(beta).describe() == "0.15.8 (models/fam/variants.yaml:6)"
    (root / "pyproject.toml").unlink()
    repo = Repo.load(root)
    assert repo.pin_for(repo.variants["alpha"]).version == installed_version()
    assert repo.pin_for(repo.variants["alpha"]).source == "installed"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"pyproject.toml": '[tool.cogfleet]\n# pinned\ncog-version = "0.99.1"\n'},
            'pyproject.toml:3: [tool.cogfleet] cog-version: cog version "0.99.1" is not a '
            "released Cog version (known: 0.4.3 … 0.23.1)",
        ),
        (
            {"pyproject.toml": "[tool.cogfleet]\ncog-version = 0.16\n"},
            "pyproject.toml:2: [tool.cogfleet] cog-version: cog version 0.16 is not",
        ),
        (
            {"pyproject.toml": "[tool.cogfleet\ncog-version = 1\n"},
            "pyproject.toml: invalid TOML",
        ),
        (
            {
                "models/fam/variants.yaml": """\
                    alpha:
                      model: acme/alpha
                      cog_version: 0.16
                    beta: {model: acme/beta}
                    """
            },
            "models/fam/variants.yaml:3: variant 'alpha': cog_version: cog version 0.16 is "
            "not a released Cog version (known: 0.4.3 … 0.23.1; quote the version",
        ),
        (
            {
                "models/fam/variants.yaml": """\
                    alpha: {model: acme/alpha, cog_version: "0.15.99"}
                    beta: {model: acme/beta}
                    """
            },
            'variant \'alpha\': cog_version: cog version "0.15.99" is not a released Cog '
            "version (0.15 releases: 0.15.0, 0.15.1",
        ),
    ],
)
def test_unknown_pin_is_exit_2_naming_file_and_line(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult],
    files: dict[str, str], expected: str,
) -> None:  # fmt: skip
    root = make_repo(files)
    result = cli("list", cwd=root)
    assert result.code == 2
    assert expected in result.err
    assert result.err.count("\n") == 1  # one line, no traceback


def test_safe_push_cog_version_flag_is_checked(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    (tmp_path / "cog.yaml").write_text('build:\n  python_version: "3.11"\npredict: "p.py:P"\n')
    result = cli("safe-push", "acme/x", "--cog-version", "1.2.3", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith('error: --cog-version: cog version "1.2.3" is not a released')


# --- build specs ------------------------------------------------------------------------


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_build_spec_reads_requirements_like_pip(tmp_path: Path) -> None:
    build = write(
        tmp_path / "b",
        {
            "cog.yaml": (
                "build:\n  python_version: 3.10\n  gpu: true\n  python_requirements: req.txt\n"
                "  run:\n    - echo one\n    - command: echo two\n"
                "  pre_install:\n    - echo three\n"
                "  system_packages: [ffmpeg]\npredict: predict.py:P\n"
            ),
            "req.txt": (
                "# the model\nsix>=1.16  # pinned below 2\n-r more/extra.txt\n"
                "--extra-index-url https://example.invalid/simple\n"
                "-e ./pkg\nwheels/tiny-1.0-py3-none-any.whl\n"
            ),
            "more/extra.txt": "attrs \\\n  >=23\n-c ../constraints.txt\n",
            "constraints.txt": "attrs<30\n",
            "pkg/setup.py": "print('x')\n",
            "wheels/tiny-1.0-py3-none-any.whl": b"wheel bytes",
        },
    )
    spec = read_build_spec(build, "0.23.1")
    assert spec.python == "3.10"  # as written, not YAML's float 3.1
    assert spec.gpu and spec.system_packages == ("ffmpeg",)
    # Cog runs the old build.pre_install after build.run, as run commands
    assert spec.run_commands == ("echo one", "echo two", "echo three")
    assert spec.requirements[:3] == (
        "six>=1.16", "attrs >=23", "--extra-index-url https://example.invalid/simple"
    )  # fmt: skip
    assert spec.requirements[3] == str(build / "pkg")  # a copy, not an editable link
    assert spec.requirements[4] == str(build / "wheels/tiny-1.0-py3-none-any.whl")
    assert spec.constraints == ("attrs<30",)
    # Local files count by content: the same wheel elsewhere gives the same identity.
    assert "-c attrs<30" in spec.identity
    assert any(i.startswith("wheels/tiny-1.0-py3-none-any.whl#sha256=") for i in spec.identity)
    assert any(i.startswith("pkg#sha256=") for i in spec.identity)
    other = write(tmp_path / "c", {p: (build / p).read_bytes() for p in (
        "cog.yaml", "req.txt", "more/extra.txt", "constraints.txt", "pkg/setup.py",
        "wheels/tiny-1.0-py3-none-any.whl")})  # fmt: skip
    assert read_build_spec(other, "0.23.1").identity == spec.identity
    (other / "wheels/tiny-1.0-py3-none-any.whl").write_bytes(b"other bytes")
    assert read_build_spec(other, "0.23.1").identity != spec.identity
    assert spec.requirement_names == {
        "six": "six>=1.16", "attrs": "attrs >=23", "tiny": "wheels/tiny-1.0-py3-none-any.whl"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"cog.yaml": "build: [1]\n"}, "build: expected a mapping"),
        ({"cog.yaml": "build:\n  python_version: three\n"}, "build.python_version: expected"),
        (
            {"cog.yaml": "build:\n  python_version: '3.11'\n  python_requirements: nope.txt\n"},
            "build.python_requirements: nope.txt does not exist",
        ),
        (
            {
                "cog.yaml": "build:\n  python_version: '3.11'\n  python_requirements: r.txt\n",
                "r.txt": "-r missing.txt\n",
            },
            "r.txt: -r missing.txt: no such file",
        ),
        (
            {
                "cog.yaml": "build:\n  python_version: '3.11'\n  python_requirements: r.txt\n",
                "r.txt": "--hash-everything\n",
            },
            "r.txt: --hash-everything: option not supported here",
        ),
        ({"cog.yaml": "build:\n  python_version: '3.11'\n  run: [[1]]\n"}, "build.run[0]"),
    ],
)
def test_build_spec_bad_input(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_build_spec(write(tmp_path, files), "0.23.1")
    assert message in str(info.value)


# --- pip's index configuration --------------------------------------------------------


def test_pip_config_precedence_and_uv_flags(tmp_path: Path) -> None:
    listed = _parse_config_list(
        "global.index-url='https://global.invalid/simple'\n"
        "install.index-url='https://install.invalid/simple'\n"
        "global.extra-index-url='file:///a/simple file:///b/simple'\n"
        ":env:.find-links='/wheels'\n"
        f"global.constraint='{tmp_path / 'c.txt'}'\n"
    )
    (tmp_path / "c.txt").write_text("torch<3\n")
    config = _from_values(listed, "pip config")
    assert config.index_url == "https://install.invalid/simple"  # [install] beats [global]
    assert config.uv_args() == [
        "--index-url", "https://install.invalid/simple",
        "--extra-index-url", "file:///a/simple", "--extra-index-url", "file:///b/simple",
        "--find-links", "/wheels", "--constraint", str(tmp_path / "c.txt"),
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    env_wins = _from_values({**listed, ":env:.index-url": "https://env.invalid/simple"}, "x")
    assert env_wins.index_url == "https://env.invalid/simple"


def test_pip_index_config_asks_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://from-file.invalid/simple\nno-index = true\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://extra.invalid/simple")
    pip_index_config.cache_clear()
    try:
        config = pip_index_config()
    finally:
        pip_index_config.cache_clear()
    assert config.source == "pip config"
    assert config.index_url == "https://from-file.invalid/simple"
    assert config.extra_index_urls == ("https://extra.invalid/simple",)
    assert config.no_index
    assert config.uv_args()[0] == "--no-index"


# --- the environment store (real uv, real SDK installs) --------------------------------


def legacy_build(tmp_path: Path, packages: list[str] | None = None) -> Path:
    lines = [f"build:\n  python_version: \"{HERE_PY}\"\n"]
    if packages:
        lines.append("  python_packages:\n" + "".join(f"    - {json.dumps(p)}\n" for p in packages))
    return write(tmp_path, {"cog.yaml": "".join(lines) + "predict: predict.py:Predictor\n"})


def test_environment_has_the_pinned_sdk_and_is_shared(env_store: EnvStore, legacy_env: Any,
                                                      tmp_path: Path) -> None:  # fmt: skip
    meta = json.loads((legacy_env.path / "cogfleet-env.json").read_text())
    assert meta["cog_version"] == LEGACY_COG and meta["key"] == legacy_env.key
    assert f"cog=={LEGACY_COG}" in (legacy_env.path / "freeze.txt").read_text()
    assert "coglet" not in (legacy_env.path / "freeze.txt").read_text()
    assert os.access(legacy_env.python, os.X_OK)
    # Another build folder with the same set shares it; nothing is rebuilt.
    again = env_store.ensure(read_build_spec(legacy_build(tmp_path), LEGACY_COG), LEGACY_COG)
    assert (again.key, again.built) == (legacy_env.key, False)


_ENSURE = """\
import json, sys
from pathlib import Path
from cogfleet.runtime import EnvStore, read_build_spec
root, build, cog = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
env = EnvStore(root).ensure(read_build_spec(build, cog), cog)
print(json.dumps({"key": env.key, "built": env.built}))
"""


def test_concurrent_builds_of_one_environment_build_it_once(tmp_path: Path) -> None:
    """Two pushes (processes) and a thread of this one need one environment at once."""
    store = EnvStore(tmp_path / "store")
    build = legacy_build(tmp_path / "b")
    spec = read_build_spec(build, LEGACY_COG)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENSURE, str(store.root), str(build), LEGACY_COG],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    here = store.ensure(spec, LEGACY_COG)
    results = [{"key": here.key, "built": here.built}]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert {r["key"] for r in results} == {here.key}
    assert sorted(r["built"] for r in results) == [False, False, True]
    assert [info.key for info in store.environments()] == [here.key]
    assert list((store.root / ".tmp").iterdir()) == []
    removed = store.prune(keep=set())
    assert [info.key for info in removed] == [here.key]
    assert store.environments() == [] and not here.path.exists()


def test_prune_removes_what_killed_builds_left(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "store")
    tmp = store.root / ".tmp"
    dead = tmp / "aaaa-999999-0001"  # a build whose process was killed
    (dead / "bin").mkdir(parents=True)
    trash = tmp / "bbbb-pruned-0002"  # a prune killed while deleting
    trash.mkdir()
    building = tmp / "cccc-1-0003"
    building.mkdir()
    with store._lock("cccc"):  # ... while cccc is being built (its builder holds the lock)
        assert store.prune(keep=set()) == []
        assert sorted(p.name for p in tmp.iterdir()) == [building.name]
    store.prune(keep=set())  # that build is gone too
    assert list(tmp.iterdir()) == []


def test_unresolvable_requirement_names_it_with_reason_and_log(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "store")
    spec = read_build_spec(legacy_build(tmp_path / "b", ["requests<2"]), LEGACY_COG)
    with pytest.raises(EnvBuildError) as info:
        store.ensure(spec, LEGACY_COG)
    message = str(info.value)
    assert message.startswith("cog.yaml: requirement 'requests<2' does not resolve: Because ")
    assert "cog==0.15.8 depends on requests" in message
    assert "\n" not in message
    assert info.value.log_path is not None and info.value.log_path.is_file()
    assert message.endswith(f"(log: {info.value.log_path})")
    assert store.environments() == [] and list((store.root / ".tmp").iterdir()) == []


def test_missing_python_says_how_to_get_it_or_falls_back(
    tmp_path: Path, env_store: EnvStore, legacy_env: Any
) -> None:
    build = write(tmp_path, {"cog.yaml": 'build:\n  python_version: "3.99"\n'})
    spec = read_build_spec(build, LEGACY_COG)
    with pytest.raises(PythonNotFound) as info:
        env_store.ensure(spec, LEGACY_COG)
    assert str(info.value) == (
        "Python 3.99 (build.python_version) is not on this machine: install it "
        "(`uv python install 3.99`, pyenv or your OS packages) or run with --python X.Y "
        "to use another installed version"
    )
    env = env_store.ensure(spec, LEGACY_COG, python_fallback=HERE_PY)
    assert env.key == legacy_env.key and not env.built
    assert env.notes[0].startswith(f"Python 3.99 is not on this machine; running Python {HERE_PY}")


def test_notes_for_what_is_not_reproduced(tmp_path: Path, env_store: EnvStore) -> None:
    from cogfleet.runtime import build_notes

    build = write(tmp_path, {"cog.yaml": (
        f'build:\n  python_version: "{HERE_PY}"\n  gpu: true\n  run: ["apt-get install -y x"]\n'
        "  system_packages: [ffmpeg, libgl1]\n")})  # fmt: skip
    notes = build_notes(read_build_spec(build, LEGACY_COG), run_build_commands=False)
    assert notes[0] == (
        "skipped 1 build.run command(s) (--run-build-commands runs them): apt-get install -y x"
    )
    assert notes[1] in (
        "gpu: true runs on the CPU (no CUDA on this host)",
        "gpu: true runs with CUDA (this host has an NVIDIA driver)",
    )
    assert notes[2] == "build.system_packages are not installed locally: ffmpeg, libgl1"
    ran = build_notes(read_build_spec(build, LEGACY_COG), run_build_commands=True)
    assert ran[0] == (
        "ran 1 build.run command(s) in the environment's folder (--run-build-commands)"
    )
    assert ran[1:] == notes[1:]


def test_run_build_commands_run_in_the_environment_folder(
    tmp_path: Path, env_store: EnvStore
) -> None:
    build = write(tmp_path, {"cog.yaml": (
        f'build:\n  python_version: "{HERE_PY}"\n'
        '  run:\n    - python -c "import cog, sys; print(sys.prefix)" > prefix.txt\n'
        "    - echo $REPLICATE_API_TOKEN- > token.txt\n")})  # fmt: skip
    os.environ["REPLICATE_API_TOKEN"] = "r8_must_not_leak"
    try:
        env = env_store.ensure(
            read_build_spec(build, LEGACY_COG), LEGACY_COG, run_build_commands=True
        )
    finally:
        del os.environ["REPLICATE_API_TOKEN"]
    assert env.built
    # Ran with the environment's python, inside its folder (renamed into place after).
    assert f"/.tmp/{env.key}-" in (env.path / "prefix.txt").read_text()
    assert (env.path / "token.txt").read_text().strip() == "-"
    failing = write(tmp_path / "f", {"cog.yaml": (
        f'build:\n  python_version: "{HERE_PY}"\n  run: ["exit 3"]\n')})  # fmt: skip
    with pytest.raises(EnvBuildError) as info:
        env_store.ensure(read_build_spec(failing, LEGACY_COG), LEGACY_COG, run_build_commands=True)
    assert "build.run[0] failed: 'exit 3'" in str(info.value)
