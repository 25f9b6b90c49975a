"""Safe pushes on the local target run each version in its own environment (real uv,
real SDK installs, the session's environment store), or in cogfleet's with --env current."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import replicate

from cogfleet import ExitCode
from cogfleet.runtime import EnvStore, installed_version
from cogfleet.server._embedded import LocalServer
from tests.conftest import LEGACY_COG, CliResult, run_console, write_fake_cog
from tests.test_pipeline import Pusher, steps

pytestmark = pytest.mark.slow

HERE_PY = f"{sys.version_info.major}.{sys.version_info.minor}"

TOML_PREDICT = '''\
import importlib.metadata
import json

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        import tomli  # only the variant's own environment has it

        self.tomli = tomli

    def predict(
        self, document: str = Input(description="TOML text", default='name = "cog"')
    ) -> str:
        version = importlib.metadata.version("tomli")
        return json.dumps({"tomli": version, "doc": self.tomli.loads(document)})
'''

# Two variants of one family pin conflicting versions of one library.
TOML_REPO: dict[str, str | bytes | None] = {
    "models/fam/variants.yaml": None,
    "models/fam/predict.py": None,
    "cog-safe-push-configs/alpha.yaml": None,
    "cog-safe-push-configs/beta.yaml": None,
    "models/toml/variants.yaml": """\
        family: toml
        defaults:
          template: templates/toml.yaml.j2
        variants:
          one:
            model: acme/toml-one
            variables: {tomli: "tomli<2", gpu: true, run: ["echo prepared > run-command-ran"]}
          two:
            model: acme/toml-two
            variables: {tomli: "tomli>=2", gpu: false, run: []}
        """,
    "models/toml/predict.py": TOML_PREDICT,
    "templates/toml.yaml.j2": """\
        build:
          python_version: "{{ python }}"
          gpu: {{ gpu | tojson }}
          python_packages: [{{ tomli | tojson }}]
          run: {{ run | tojson }}
        predict: "predict.py:Predictor"
        """,
    "cog-safe-push-configs/one.yaml": """\
        model: acme/toml-one
        predict:
          compare_outputs: false
          test_cases:
            - inputs: {document: "a = 1"}
              jq_query: '.tomli == "1.2.3" and .doc.a == 1'
        """,
    "cog-safe-push-configs/two.yaml": """\
        model: acme/toml-two
        predict:
          compare_outputs: false
          test_cases:
            - inputs: {document: "a = 2"}
              jq_query: '(.tomli | startswith("2.")) and .doc.a == 2'
        """,
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> replicate.Client:
    return replicate.Client(api_token=server.token, base_url=server.base_url)


@pytest.fixture
def toml_repo(make_repo: Callable[..., Path]) -> Path:
    files = dict(TOML_REPO)
    files["models/toml/variants.yaml"] = str(files["models/toml/variants.yaml"]).replace(
        "variables: {", f'variables: {{python: "{HERE_PY}", '
    )
    return make_repo(files)


@pytest.fixture
def push(cli: Callable[..., CliResult], toml_repo: Path, server: LocalServer) -> Pusher:
    return Pusher(cli, toml_repo, server)


def create(client: replicate.Client, *models: str) -> None:
    for model in models:
        owner, name = model.split("/")
        client.models.create(owner=owner, name=name, visibility="public", hardware="cpu")


def only(data: Any) -> dict[str, Any]:
    """The report of a single-variant push (a JSON object, not a list)."""
    assert isinstance(data, dict), data
    return data


def push_message(report: dict[str, Any]) -> str:
    return next(s["message"] for s in report["steps"] if s["name"] == "push-test")


def test_conflicting_requirements_each_run_in_their_environment(
    push, client, shared_env_dir, tmp_path
):
    create(client, "acme/toml-one", "acme/toml-two")
    result, reports = push("push", "one", "two")
    assert result.code == ExitCode.OK, result.err
    by_variant = {r["variant"]: r for r in reports}
    for name in ("one", "two"):
        report = by_variant[name]
        assert report["result"] == "passed", report
        assert (report["cog_version"], report["environment"]) == (installed_version(), "isolated")
        message = push_message(report)
        assert f"(Cog {installed_version()}, isolated environment " in message
        assert f"(Python {HERE_PY}." in message and ", coglet" in message
    one = push_message(by_variant["one"])
    assert "skipped 1 build.run command(s) (--run-build-commands runs them): echo prepared" in one
    assert "gpu: true runs on the CPU (no CUDA on this host)" in one
    assert "skipped" not in push_message(by_variant["two"])
    # not run: no marker in the environments (their folder is where run: would run) or here
    assert [*shared_env_dir.rglob("run-command-ran"), *tmp_path.rglob("run-command-ran")] == []
    version = client.models.get("acme/toml-one").versions.list()[0]
    assert version.cog_version == installed_version()
    # the two environments differ; the same set elsewhere would share one
    ids = {push_message(r).split("isolated environment ")[1][:12] for r in reports}
    assert len(ids) == 2


def test_env_current_runs_in_cogfleets_interpreter(push, client):
    create(client, "acme/toml-two")
    result, reports = push("test", "two", "--env", "current")
    report = only(reports)
    assert result.code == ExitCode.CHECKS_FAILED
    assert report["environment"] == "current"
    message = push_message(report)
    assert "current environment (cogfleet's Python" in message
    assert "cog.yaml's Python packages are not installed (--env current)" in message
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    assert failed
    # tomli is not installed next to cogfleet: only the isolated run has it
    prediction = client.predictions.get(failed[0]["prediction_id"])
    assert "No module named 'tomli'" in (prediction.logs or "") + (prediction.error or "")


def test_requirement_that_does_not_resolve_fails_push_test(push, client, toml_repo):
    create(client, "acme/toml-two")
    variants = toml_repo / "models/toml/variants.yaml"
    variants.write_text(variants.read_text().replace('"tomli>=2"', '"tomli>=99"'))
    result, reports = push("test", "two")
    assert result.code == ExitCode.CHECKS_FAILED
    assert steps(only(reports))["push-test"] == "failed"
    message = push_message(only(reports))
    assert "cog.yaml: requirement 'tomli>=99' does not resolve: Because only tomli<" in message
    log = message.rsplit("(log: ", 1)[1].rstrip(")")
    assert Path(log).is_file() and "tomli>=99" in Path(log).read_text()
    assert steps(only(reports))["test-cases"] == "skipped"


def test_missing_python_is_explained_or_falls_back(push, client, toml_repo):
    create(client, "acme/toml-two")
    variants = toml_repo / "models/toml/variants.yaml"
    variants.write_text(variants.read_text().replace(f'python: "{HERE_PY}"', 'python: "3.12.99"'))
    result, reports = push("test", "two")
    assert result.code == ExitCode.CHECKS_FAILED
    message = push_message(only(reports))
    assert "Python 3.12.99 (build.python_version) is not on this machine: install it " in message
    assert "or run with --python X.Y" in message
    result, reports = push("test", "two", "--python", HERE_PY)
    assert result.code == ExitCode.OK, result.err
    assert f"Python 3.12.99 is not on this machine; running Python {HERE_PY}." in push_message(
        only(reports)
    )


def test_build_prepares_the_environment_a_push_then_uses(cli, toml_repo, push, client):
    create(client, "acme/toml-one")
    built = cli("build", "one", cwd=toml_repo)
    assert built.code == ExitCode.OK, built.err
    line = built.out.splitlines()[0]
    assert line.startswith("one: environment ")
    assert f"(Cog {installed_version()}, Python {HERE_PY}." in line
    assert "  note: gpu: true runs on the CPU (no CUDA on this host)" in built.out
    env_id = line.split()[2]
    # The embedded server's store (or $COGFLEET_ENV_DIR) now has it: a push only uploads.
    result, reports = push("test", "one")
    assert result.code == ExitCode.OK, result.err
    message = push_message(only(reports))
    assert f"isolated environment {env_id} " in message and "built in" not in message
    again = cli("build", "one", cwd=toml_repo)
    assert f"one: environment {env_id} " in again.out and "already built" in again.out


def test_build_failure_names_the_requirement(cli, toml_repo):
    variants = toml_repo / "models/toml/variants.yaml"
    variants.write_text(variants.read_text().replace('"tomli<2"', '"tomli<0.1"'))
    built = cli("build", "one", "two", cwd=toml_repo)
    assert built.code == ExitCode.CHECKS_FAILED
    assert "error: one: cog.yaml: requirement 'tomli<0.1' does not resolve" in built.err
    assert "two: environment " in built.out


def test_build_replicate_runs_cog_build_with_the_pinned_cli(
    toml_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = write_fake_cog(tmp_path / "bin").parent
    log = tmp_path / "calls.jsonl"
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
           "FAKE_COG_LOG": str(log)}  # fmt: skip
    result = run_console("build", "one", "two", "--target", "replicate", cwd=toml_repo, env=env)
    assert result.code == ExitCode.OK, result.err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["argv"] for c in calls] == [
        ["build", "-t", "r8.im/acme/toml-one"], ["build", "-t", "r8.im/acme/toml-two"]
    ]  # fmt: skip
    assert [c["cwd"] for c in calls] == [
        str(toml_repo / ".cogfleet/build/one"), str(toml_repo / ".cogfleet/build/two")
    ]  # fmt: skip
    assert "one: built r8.im/acme/toml-one" in result.out
    assert "warning" not in result.err
    # a CLI that is not the pinned one is called out
    other = run_console("build", "one", "--target", "replicate", cwd=toml_repo,
                        env={**env, "FAKE_COG_VERSION": "0.16.8"})  # fmt: skip
    assert other.code == ExitCode.OK
    assert (
        f"warning: one: the cog CLI on PATH is 0.16.8, the pin is {installed_version()} "
        "(installed); the image follows the CLI"
    ) in other.err
    failing = run_console("build", "two", "--target", "replicate", cwd=toml_repo,
                          env={**env, "FAKE_COG_FAIL_FOR": "acme/toml-two"})  # fmt: skip
    assert failing.code == ExitCode.CHECKS_FAILED
    assert "error: two: cog build failed (exit 1)" in failing.err


def test_run_build_commands_are_skipped_or_run_when_asked(
    push, client, toml_repo: Path, shared_env_dir: Path
) -> None:
    create(client, "acme/toml-two")
    variants = toml_repo / "models/toml/variants.yaml"
    command = "python -c 'import tomli' && echo ran > ran.txt"
    variants.write_text(variants.read_text().replace("run: []", f"run: [{json.dumps(command)}]"))
    result, reports = push("test", "two")
    assert result.code == ExitCode.OK, result.err
    skipped = push_message(only(reports))
    assert f"skipped 1 build.run command(s) (--run-build-commands runs them): {command}" in skipped
    result, reports = push("test", "two", "--run-build-commands")
    assert result.code == ExitCode.OK, result.err
    ran = push_message(only(reports))
    assert "ran 1 build.run command(s) in the environment's folder (--run-build-commands)" in ran
    # another environment (the commands are part of it); they ran in its folder, with
    # its Python (which has tomli: cogfleet's own does not)
    env_ids = [m.split("isolated environment ")[1][:12] for m in (skipped, ran)]
    assert env_ids[0] != env_ids[1]
    (folder,) = shared_env_dir.glob(f"{env_ids[1]}*")
    assert (folder / "ran.txt").read_text() == "ran\n"
    assert not list(shared_env_dir.glob(f"{env_ids[0]}*/ran.txt"))


def test_pinned_legacy_cog_runs_its_own_server_and_is_recorded(push, client, toml_repo):
    create(client, "acme/toml-two")
    variants = toml_repo / "models/toml/variants.yaml"
    pinned = f'model: acme/toml-two\n    cog_version: "{LEGACY_COG}"'
    variants.write_text(variants.read_text().replace("model: acme/toml-two", pinned))
    result, reports = push("test", "two")
    assert result.code == ExitCode.OK, result.err
    report = only(reports)
    assert report["cog_version"] == LEGACY_COG
    assert f"(Cog {LEGACY_COG}, isolated environment " in push_message(report)
    assert ", cog.server.http" in push_message(report)
    version = client.models.get("acme/toml-two-test").versions.list()[0]
    assert version.cog_version == LEGACY_COG


def test_prune_envs_keeps_what_versions_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult],
    toml_repo: Path,
) -> None:  # fmt: skip
    from cogfleet.runtime import read_build_spec
    from cogfleet.server._push import push_build

    env_dir = tmp_path / "own-envs"
    monkeypatch.setenv("COGFLEET_ENV_DIR", str(env_dir))
    assert cli("render", "one", "two", cwd=toml_repo).code == ExitCode.OK
    state = tmp_path / "state2"
    with LocalServer(state_dir=state) as srv:
        c = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        create(c, "acme/kept")
        pushed = push_build(c, "acme", "kept", toml_repo / ".cogfleet/build/two")
    used = pushed["cogfleet"]["environment_id"]
    spare = EnvStore(env_dir).ensure(
        read_build_spec(toml_repo / ".cogfleet/build/one", installed_version()),
        installed_version(),
    )
    result = cli("serve", "--state", str(state), "--prune-envs")
    assert result.code == ExitCode.OK, result.err
    assert result.out.startswith(f"removed {spare.key} (Cog {installed_version()}, Python ")
    assert "1 environment(s) removed" in result.out
    assert [info.key for info in EnvStore(env_dir).environments()] == [used]
    everything = cli("serve", "--state", str(state), "--prune-envs", "all")
    assert "1 environment(s) removed" in everything.out
    assert EnvStore(env_dir).environments() == []
