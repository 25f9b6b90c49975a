"""Behaviours that small deliberate bugs (mutations) once left unpinned.

Each test here fails when the bug named in its docstring is put into the code: a
checker crash counted as a pass, a failed prediction handed to a checker that expects
success, promotion without the schema check, a deployment created because its look-up
failed, and so on. Pipeline behaviours run against a real local server and a tiny real
predictor; a deployment look-up that fails the way only Replicate can is answered by a
proxy in front of that server (tests/fakes/fault_proxy.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import replicate

from cogfleet._checks import CheckContext, CheckResult, OutputFile
from cogfleet._config import SafePushConfig, TestCase
from cogfleet._errors import CheckFailed, ConfigError, RemoteError
from cogfleet._pipeline import _timed
from cogfleet._plugins import Plugins
from cogfleet._predict import FileCache, Predictions
from cogfleet._result import RunResult
from cogfleet._steps import PushContext, PushOptions, passed, skipped
from cogfleet._target import LocalTarget, ReplicateTarget
from cogfleet.builtins import checkers as builtin_checkers
from cogfleet.builtins.official import official_model
from cogfleet.builtins.release import _prefetch_deployment, deployment, promote
from cogfleet.schema._compat import check_compatibility, load_schema_file
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build
from tests.conftest import write_fake_cog
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.fault_proxy import FaultProxy, Rule

# --- a real server, a tiny real predictor ----------------------------------------------

PREDICT_PY = '''\
import time

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(
        self,
        mode: str = Input(description="echo, fail, sleep or empty", default="echo"),
        text: str = Input(description="what to echo (sleep: seconds)", default=""),
    ) -> str:
        if mode == "fail":
            raise ValueError(f"failing on purpose: {text}")
        if mode == "sleep":
            time.sleep(float(text))
        if mode == "empty":
            return ""
        return text
'''

COG_YAML = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'

# A repo plugin with two checkers of its own: one that crashes, one that passes anything
PLUGIN = '''\
from cogfleet import hookimpl
from cogfleet._checks import Checker, CheckResult


def _crash(ctx):
    raise RuntimeError("checker bug")


@hookimpl
def cogfleet_register_checkers(register):
    register(Checker(name="crashes", check=_crash))
    register(Checker(name="anything", check=lambda ctx: CheckResult(True, "fine")))
    register(Checker(name="anything_failing", check=lambda ctx: CheckResult(True, "fine"),
                     expects_failure=True))
'''

OWNER = "acme"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path_factory.mktemp("pins-state")) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: LocalServer) -> replicate.Client:
    return replicate.Client(api_token=server.token, base_url=server.base_url)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pins-repo")
    (root / "plugins").mkdir()
    (root / "plugins" / "pin_checkers.py").write_text(PLUGIN)
    build = root / "build"
    build.mkdir()
    (build / "predict.py").write_text(PREDICT_PY)
    (build / "cog.yaml").write_text(COG_YAML)
    return root


@pytest.fixture(scope="module")
def plugins(repo: Path) -> Plugins:
    return Plugins(repo)


_models = iter(range(10_000))


def new_model(client: replicate.Client, stem: str) -> str:
    name = f"{stem}-{next(_models)}"
    client.models.create(owner=OWNER, name=name, visibility="private", hardware="cpu")
    return f"{OWNER}/{name}"


@pytest.fixture(scope="module")
def version(client: replicate.Client, repo: Path) -> dict[str, Any]:
    """The tiny predictor pushed once to a test model."""
    model = new_model(client, "pins-test")
    pushed = push_build(client, *model.split("/"), repo / "build")
    got = client.models.get(model).versions.get(pushed["id"])
    return {"id": got.id, "openapi_schema": got.openapi_schema, "model": model}


def make_ctx(
    server: LocalServer, plugins: Plugins, repo: Path, config: dict[str, Any],
    test_version: dict[str, Any] | None = None,
) -> PushContext:
    cfg = SafePushConfig.model_validate(config)
    target = LocalTarget(server.base_url, server.token, embedded=False)
    ctx = PushContext(
        name="pins", config=cfg, build_dir=repo / "build", repo_root=repo, target=target,
        plugins=plugins, options=PushOptions(),
        result=RunResult(variant="pins", model=cfg.model,
                         test_model=cfg.effective_test_model, target="local"),
        predictions=Predictions(target.client, parallel=4, repo_root=repo),
        files=FileCache(repo),
    )
    ctx.test_version = test_version
    return ctx


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


@pytest.fixture
def ctx(server, plugins, repo, version) -> PushContext:
    return make_ctx(server, plugins, repo, {"model": "acme/pins"}, version)


# --- pipeline ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_checker_that_crashes_fails_the_case(ctx):
    """Mutation: a checker that raises counted as passed."""
    case = TestCase.model_validate({"inputs": {"text": "hi"}, "crashes": True})
    result = run(ctx.run_case("test-case", 0, case, version=ctx.test_version["id"]))
    assert result.status == "failed"
    assert result.message == "checker crashes raised RuntimeError: checker bug"


@pytest.mark.slow
def test_a_failed_prediction_never_reaches_a_checker_that_expects_success(ctx):
    """Mutation: a failed prediction handed to a checker expecting a success."""
    case = TestCase.model_validate({"inputs": {"mode": "fail", "text": "x"}, "anything": 1})
    result = run(ctx.run_case("test-case", 0, case, version=ctx.test_version["id"]))
    assert result.status == "failed"
    assert result.message.startswith("prediction failed:") and "failing on purpose" in (
        result.message)


@pytest.mark.slow
def test_a_timed_out_prediction_fails_before_any_checker(ctx):
    """Mutation: a timed-out prediction not failed up front (a checker that accepts
    failures would pass it)."""
    # The sleep outlasts the 1 s timeout whatever the load (it is wall time), yet stays
    # short: a sync predictor may go on sleeping after the cancel, and the module's
    # other cases share its process.
    case = TestCase.model_validate(
        {"inputs": {"mode": "sleep", "text": "4"}, "anything_failing": 1}
    )
    result = run(ctx.run_case("test-case", 0, case, version=ctx.test_version["id"], timeout=1))
    assert result.status == "failed"
    assert result.message.startswith("timed out after 1s")


@pytest.mark.slow
def test_a_fuzz_case_with_empty_output_fails(ctx):
    """Mutation: a fuzz case whose output is empty passes."""
    vid = ctx.test_version["id"]

    async def both() -> Any:
        return (await ctx.run_case("fuzz", 0, {"mode": "empty"}, version=vid),
                await ctx.run_case("fuzz", 1, {"text": "x"}, version=vid))

    result, echoed = run(both())
    assert (result.status, result.message) == ("failed", "empty output")
    assert echoed.status == "passed"


def test_a_step_raising_a_cogfleet_error_fails(tmp_path):
    """Mutation: a step raising a cogfleet error other than CheckFailed counts as skipped."""

    async def broken() -> Any:
        raise RemoteError("the API answered 500")

    async def fine() -> Any:
        return passed("ok")

    ctx = _bare_ctx(tmp_path)
    step = run(_timed(ctx, "custom", broken))
    assert (step.status, step.message) == ("failed", "the API answered 500")
    assert run(_timed(ctx, "other", fine)).status == "passed"
    assert [s.name for s in ctx.result.steps] == ["custom", "other"]


def _bare_ctx(tmp_path: Path) -> PushContext:
    cfg = SafePushConfig(model="acme/bare")
    return PushContext(
        name="bare", config=cfg, build_dir=tmp_path, repo_root=None, target=None,  # type: ignore[arg-type]
        plugins=Plugins(), options=PushOptions(),
        result=RunResult(variant="bare", model=cfg.model, test_model="acme/bare-test",
                         target="local"),
        predictions=None, files=FileCache(None),  # type: ignore[arg-type]
    )


# --- pipeline ordering ------------------------------------------------------------------

ORDER_PLUGIN = '''\
import asyncio

from cogfleet import CheckFailed, hookimpl
from cogfleet._steps import Step, passed

CALLS = []
FAIL = set()
SEEN = []  # the variant of the context each step was given
CRITICAL = {}  # each step: was the run in its critical section (promotion, release)?
PREFETCHED = {}  # each step's look-up, started before the run, as the step found it
EVENTS = []  # the run's own progress events
INTERRUPT_IN = set()  # steps during which an interrupt arrives (as from Ctrl-C)
CANCEL_IN = set()  # steps during which the run's task is cancelled
OUTER = []  # the run's task


def _step(name):
    async def run(ctx):
        SEEN.append(ctx.name)
        CRITICAL[name] = ctx.critical
        if name in ctx.prefetched:
            PREFETCHED[name] = await ctx.prefetched[name]
        if name in INTERRUPT_IN:
            ctx.interrupt.request()
        if name in CANCEL_IN:
            OUTER[0].cancel()
        CALLS.append(("start", name))
        await asyncio.sleep(0.01)
        CALLS.append(("end", name))
        if name in FAIL:
            raise CheckFailed(f"{name} says no")
        return passed(f"{name} ok")
    return run


async def _look_up(ctx):
    return f"{ctx.name} looked up"


@hookimpl
def cogfleet_register_steps(register):
    for name, phase, order in (("g2", "gate", 20), ("g1", "gate", 10), ("c1", "check", 1),
                               ("c2", "check", 2), ("p", "promote", 0),
                               ("r2", "release", 20), ("r1", "release", 10)):
        prefetch = _look_up if name == "r1" else None
        register(Step(name=name, phase=phase, run=_step(name), order=order, prefetch=prefetch))


@hookimpl
def cogfleet_progress(event):
    if event.kind in ("run-start", "run-done"):
        EVENTS.append(event.kind)
'''

BUILTIN_STEPS = {"schema-checks", "test-cases", "compare-outputs", "fuzz", "train", "release",
                 "official-model", "progress"}


@pytest.fixture(scope="module")
def order_plugins(
    tmp_path_factory: pytest.TempPathFactory, repo: Path, client: replicate.Client
) -> Plugins:
    client.models.create(owner=OWNER, name="pins-order", visibility="private", hardware="cpu")
    root = tmp_path_factory.mktemp("order-repo")
    (root / "plugins").mkdir()
    (root / "plugins" / "order.py").write_text(ORDER_PLUGIN)
    return Plugins(root, disabled=BUILTIN_STEPS)


def _run_order(
    server, order_plugins, repo, fail: set[str], *, interrupt: str | None = None,
    cancel: str | None = None, before: bool = False,
) -> tuple[RunResult, list[Any], PushContext]:
    from cogfleet._pipeline import run_pipeline

    module = order_plugins.pm.get_plugin("order")
    for state in (module.CALLS, module.SEEN, module.FAIL, module.CRITICAL, module.PREFETCHED,
                  module.EVENTS, module.INTERRUPT_IN, module.CANCEL_IN, module.OUTER):
        state.clear()
    module.FAIL.update(fail)
    module.INTERRUPT_IN.update({interrupt} if interrupt else set())
    module.CANCEL_IN.update({cancel} if cancel else set())
    ctx = make_ctx(server, order_plugins, repo, {"model": "acme/pins-order"})
    if before:
        ctx.interrupt.request()

    async def go() -> RunResult:
        task = asyncio.ensure_future(run_pipeline(ctx, order_plugins.steps()))
        module.OUTER.append(task)
        return await task

    result = run(go())
    return result, list(module.CALLS), ctx


@pytest.mark.slow
def test_pipeline_order_when_everything_passes(server, client, order_plugins, repo):
    started = time.monotonic()
    result, calls, ctx = _run_order(server, order_plugins, repo, set())
    elapsed = time.monotonic() - started
    assert result.result == "passed"
    starts = [name for what, name in calls if what == "start"]
    assert starts[:2] == ["g1", "g2"] and starts[4:] == ["p", "r1", "r2"]
    assert set(starts[2:4]) == {"c1", "c2"}
    # gates one after another, checks at once, then promotion and release in order
    assert calls.index(("end", "g1")) < calls.index(("start", "g2"))
    both_started = max(calls.index(("start", "c1")), calls.index(("start", "c2")))
    assert both_started < min(calls.index(("end", "c1")), calls.index(("end", "c2")))
    assert calls.index(("end", "c2")) < calls.index(("start", "p"))
    assert [s.name for s in result.steps][:2] == ["lint", "push-test"]
    assert all(s.status == "passed" for s in result.steps)
    module = order_plugins.pm.get_plugin("order")
    # every step, promotion and release included, is given the run's context
    assert module.SEEN == ["pins"] * 7
    # promotion and release, and only they, run in the critical section
    assert module.CRITICAL == {"g1": False, "g2": False, "c1": False, "c2": False,
                               "p": True, "r1": True, "r2": True}
    assert ctx.critical is False
    # a step's look-up started with the run, and the step gets its answer
    assert module.PREFETCHED == {"r1": "pins looked up"}
    assert module.EVENTS == ["run-start", "run-done"]
    assert result.interrupted is False
    assert result.started_at.endswith("+00:00")  # UTC
    assert 0 < result.duration_s <= elapsed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fail", "ran", "reason"),
    [
        ({"g1"}, ["g1"], "g1 failed"),
        ({"g2"}, ["g1", "g2"], "g2 failed"),
        ({"c1"}, ["g1", "g2", "c1", "c2"], "c1 failed"),
        ({"c1", "c2"}, ["g1", "g2", "c1", "c2"], "c1, c2 failed"),
        ({"p"}, ["g1", "g2", "c1", "c2", "p"], "p failed"),
        ({"r1"}, ["g1", "g2", "c1", "c2", "p", "r1"], "r1 failed"),
        ({"r2"}, ["g1", "g2", "c1", "c2", "p", "r1", "r2"], ""),
    ],
)
def test_pipeline_stops_at_the_first_failure(server, client, order_plugins, repo, fail, ran,
                                             reason):
    result, calls, _ = _run_order(server, order_plugins, repo, fail)
    assert result.result == "failed"
    assert sorted(name for what, name in calls if what == "start") == sorted(ran)
    statuses = {s.name: (s.status, s.message) for s in result.steps}
    for name in ("g1", "g2", "c1", "c2", "p", "r1", "r2"):
        if name in fail:
            assert statuses[name] == ("failed", f"{name} says no")
        elif name in ran:
            assert statuses[name] == ("passed", f"{name} ok")
        else:
            assert statuses[name] == ("skipped", reason)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("when", "ran", "outcome"),
    [
        ("before", [], "failed"),
        ("c1", ["g1", "g2", "c1", "c2"], "failed"),
        ("p", ["g1", "g2", "c1", "c2", "p", "r1", "r2"], "passed"),
        ("r1", ["g1", "g2", "c1", "c2", "p", "r1", "r2"], "passed"),
    ],
)
def test_an_interrupt_stops_the_run_before_promotion_never_during_it(
    server, client, order_plugins, repo, when, ran, outcome
):
    """Before promotion an interrupt skips what is left and nothing is promoted; once
    promotion has started it runs to its end. Either way the result says interrupted."""
    result, calls, ctx = _run_order(server, order_plugins, repo, set(),
                                    interrupt=None if when == "before" else when,
                                    before=when == "before")
    assert (result.result, result.interrupted) == (outcome, True)
    assert sorted(name for what, name in calls if what == "start") == sorted(ran)
    statuses = {s.name: (s.status, s.message) for s in result.steps}
    for name in ("g1", "g2", "c1", "c2", "p", "r1", "r2"):
        expected = ("passed", f"{name} ok") if name in ran else ("skipped", "interrupted")
        assert statuses[name] == expected
    assert ctx.critical is False


@pytest.mark.slow
def test_a_cancelled_run_lets_promotion_and_release_finish(server, client, order_plugins, repo):
    """The run's task cancelled (Ctrl-C) while promotion runs: promotion and release
    finish, the run passes, and the result says it was interrupted."""
    result, calls, ctx = _run_order(server, order_plugins, repo, set(), cancel="p")
    assert (result.result, result.interrupted) == ("passed", True)
    assert [name for what, name in calls if what == "start"][-3:] == ["p", "r1", "r2"]
    assert all(s.status == "passed" for s in result.steps)
    assert ctx.critical is False


# --- promotion and deployment -----------------------------------------------------------


@pytest.mark.slow
def test_promotion_checks_the_promoted_schema_equals_the_tested_one(
    server, client, plugins, repo, version, tmp_path
):
    """Mutation: promotion without the check that the promoted version's schema equals
    the tested one."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "cog.yaml").write_text(COG_YAML)
    (other / "predict.py").write_text(PREDICT_PY.replace(
        'default="")', 'default=""),\n        extra: int = Input(description="new", default=1)'
    ).replace("-> str:", "-> str:\n        del extra"))
    model = new_model(client, "pins-promoted")
    test_model = f"{model}-test"
    client.models.create(owner=OWNER, name=test_model.split("/")[1], visibility="private",
                         hardware="cpu")
    different = push_build(client, *test_model.split("/"), other)
    # what was tested had the first schema; the build promoted has another
    tested = {"id": different["id"], "openapi_schema": version["openapi_schema"]}
    ctx = make_ctx(server, plugins, repo, {"model": model, "test_model": test_model}, tested)
    with pytest.raises(CheckFailed) as caught:
        run(promote(ctx))
    promoted = client.models.get(model).latest_version.id
    assert str(caught.value) == (f"{model}:{promoted[:12]} has a different schema from the "
                                 f"tested {test_model}:{different['id'][:12]}")
    assert ctx.result.pushed is False and ctx.result.version is None


def _promoted_ctx(server, client, plugins, repo, version, deployment_cfg) -> PushContext:
    model = new_model(client, "pins-deploy")
    ctx = make_ctx(server, plugins, repo, {"model": model, "deployment": deployment_cfg},
                   version)
    promoted = run(ctx.target.promote(repo / "build", version["id"], model, None))
    ctx.promoted_version = promoted["id"]
    return ctx


@pytest.mark.slow
def test_min_instances_zero_is_kept(server, client, plugins, repo, version):
    """Mutation: ``min_instances: 0`` replaced by the default."""
    ctx = _promoted_ctx(server, client, plugins, repo, version,
                        {"name": "zero-min", "hardware": "cpu", "min_instances": 0})
    outcome = run(deployment(ctx))
    assert outcome.status == "passed", outcome.message
    account = client.accounts.current().username
    release = client.deployments.get(f"{account}/zero-min").current_release
    assert release.configuration.min_instances == 0
    assert release.configuration.max_instances == 20  # the CPU default


@pytest.mark.slow
def test_deployment_update_path(server, client, plugins, repo, version):
    """The second deployment of a model updates it as cog-safe-push does: the new version
    only, so hardware and scaling set on the deployment stay; scaling bounds the config
    sets explicitly (a cogfleet extension) are applied."""
    ctx = _promoted_ctx(server, client, plugins, repo, version,
                        {"name": "updated-one", "hardware": "gpu-t4"})
    account = client.accounts.current().username

    async def deploy_three_times() -> Any:
        first = await deployment(ctx)
        # tuned on the web after it was created
        client.deployments.update(account, "updated-one", hardware="gpu-a100-large",
                                  min_instances=1, max_instances=8)
        second = await deployment(ctx)
        ctx.config = SafePushConfig.model_validate(
            {"model": ctx.model, "deployment": {"name": "updated-one", "hardware": "gpu-a100-large",
                                                "max_instances": 3}})
        return first, second, await deployment(ctx)

    first, second, third = run(deploy_three_times())
    short = ctx.promoted_version[:12]  # the model's own version of the tested build
    assert first.message == (f"created deployment {account}/updated-one -> {short} "
                             "(gpu-t4, 0-2 instances)")
    assert second.message == (
        f"updated deployment {account}/updated-one -> {short} (gpu-a100-large, 1-8 instances)"
        "; it keeps its hardware: the config's gpu-t4 applies only when the deployment "
        "is created")
    assert third.message == (f"updated deployment {account}/updated-one -> {short} "
                             "(gpu-a100-large, 1-3 instances)")
    release = client.deployments.get(f"{account}/updated-one").current_release
    assert release.number == 4 and release.version == ctx.promoted_version
    assert (release.configuration.hardware, release.configuration.min_instances,
            release.configuration.max_instances) == ("gpu-a100-large", 1, 3)


@pytest.mark.slow
def test_a_deployment_without_a_name_deploys_nothing(server, client, plugins, repo, version):
    """As in cog-safe-push, a deployment section without ``name`` creates nothing."""
    ctx = _promoted_ctx(server, client, plugins, repo, version, {"hardware": "cpu"})
    outcome = run(deployment(ctx))
    assert (outcome.status, outcome.message) == (
        "skipped", "the deployment section has no name: nothing is deployed")
    assert _prefetch_deployment(ctx) is None  # not even looked up
    assert not [d for d in client.deployments.list() if d.name == ctx.model.split("/")[1]]


def _official_ctx(server, client, plugins, repo, version, official: str) -> PushContext:
    ctx = _promoted_ctx(server, client, plugins, repo, version, None)
    ctx.config = SafePushConfig.model_validate(
        {"model": ctx.model, "official_model": official, "test_hardware": "gpu-t4"})
    ctx.options = PushOptions(push_official_model=True)
    return ctx


@pytest.mark.slow
def test_a_missing_official_model_is_created_as_cog_safe_push_creates_it(
    server, client, plugins, repo, version
):
    """Private and on CPU (not public, not on the test hardware)."""
    official = f"{OWNER}/official-new-{next(_models)}"
    ctx = _official_ctx(server, client, plugins, repo, version, official)
    outcome = run(official_model(ctx))
    assert outcome.status == "passed", outcome.message
    created = client.models.get(official)
    assert created.visibility == "private" and created.latest_version is not None
    assert outcome.message == f"pushed {official}:{created.latest_version.id[:12]}"


@pytest.mark.slow
def test_an_official_model_the_token_may_not_read_is_pushed_anyway(
    server, client, plugins, repo, version
):
    """As cog-safe-push: a 403 when getting (or creating) the official model is a note,
    and the push goes on (the token may push to a model it may not read)."""
    official = new_model(client, "official-hidden")
    ctx = _official_ctx(server, client, plugins, repo, version, official)
    hidden = Rule("GET", rf"^/v1/models/{official}$", 403)
    with FaultProxy(server.base_url, [hidden]) as proxy:
        ctx.target = LocalTarget(proxy.base_url, server.token, embedded=False)
        outcome = run(official_model(ctx))
    assert hidden.hits == 1
    assert outcome.status == "passed", outcome.message
    pushed = client.models.get(official).latest_version
    assert pushed is not None
    assert outcome.message.startswith(f"pushed {official}:{pushed.id[:12]} "
                                      f"(could not get or create it: {official}: 403")
    # any other failure to look the model up still fails the step
    ctx = _official_ctx(server, client, plugins, repo, version, official)
    with FaultProxy(server.base_url, [Rule("GET", rf"^/v1/models/{official}$", 401)]) as proxy:
        ctx.target = LocalTarget(proxy.base_url, server.token, embedded=False)
        with pytest.raises(RemoteError, match="401"):
            run(official_model(ctx))


@pytest.mark.slow
def test_a_deployment_api_error_fails_the_step(server, client, plugins, repo, version):
    """Mutation: a deployment API error reported as skipped."""
    ctx = _promoted_ctx(server, client, plugins, repo, version,
                        {"name": "bad-hardware", "hardware": "no-such-gpu"})
    step = run(_timed(ctx, "deployment", lambda: deployment(ctx)))
    assert step.status == "failed"
    assert re.match(r"deployment \S+/bad-hardware: 422", step.message), step.message


@pytest.mark.slow
def test_a_failing_deployment_lookup_is_not_taken_for_a_missing_one(
    server, client, plugins, repo, version
):
    """Mutation: any error from the deployment look-up taken as "does not exist" (so it
    creates one)."""
    ctx = _promoted_ctx(server, client, plugins, repo, version,
                        {"owner": "acme", "name": "lookup-fails", "hardware": "cpu"})
    forbidden = Rule("GET", r"^/v1/deployments/acme/lookup-fails$", 403)
    with FaultProxy(server.base_url, [forbidden]) as proxy:
        ctx.target = LocalTarget(proxy.base_url, server.token, embedded=False)
        with pytest.raises(RemoteError, match="deployment acme/lookup-fails: 403"):
            run(deployment(ctx))
    assert forbidden.hits == 1
    names = [d.name for d in client.deployments.list()]
    assert "lookup-fails" not in names  # nothing was created


@pytest.mark.slow
def test_promotion_records_the_promoted_version(server, client, plugins, repo, version):
    """The local target adds the tested build to the model; the run records its version."""
    model = new_model(client, "pins-promote")
    ctx = make_ctx(server, plugins, repo, {"model": model}, version)
    outcome = run(promote(ctx))
    vid = client.models.get(model).latest_version.id  # the model's own version id
    assert vid != version["id"]
    assert (outcome.status, outcome.message) == ("passed", f"promoted {model}:{vid[:12]}")
    assert (ctx.promoted_version, ctx.result.version, ctx.result.pushed) == (vid, vid, True)


@pytest.mark.slow
def test_promotion_pushes_the_tested_build_with_the_run_flags(
    server, client, plugins, repo, version, tmp_path, monkeypatch
):
    """On Replicate, promotion pushes the build folder again with the run's `cog push`
    flags; the model's own version id is recorded."""
    bin_dir = write_fake_cog(tmp_path / "bin").parent
    log = tmp_path / "cog-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_COG_LOG", str(log))
    monkeypatch.setenv("REPLICATE_BASE_URL", server.base_url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", server.token)
    model = new_model(client, "pins-promote-cog")
    ctx = make_ctx(server, plugins, repo, {"model": model, "use_cog_base_image": False},
                   version)
    ctx.target = ReplicateTarget()
    ctx.options = PushOptions(separate_weights=True)
    outcome = run(promote(ctx))
    new_id = client.models.get(model).latest_version.id
    assert new_id != version["id"]
    assert (outcome.status, outcome.message) == ("passed", f"promoted {model}:{new_id[:12]}")
    assert (ctx.promoted_version, ctx.result.version, ctx.result.pushed) == (
        new_id, new_id, True)
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["cwd"] == str(repo / "build")
    assert call["argv"][:2] == ["push", f"r8.im/{model}"]
    assert {"--use-cog-base-image=false", "--separate-weights"} <= set(call["argv"])


def test_no_push_touches_nothing(server, plugins, repo, version):
    ctx = make_ctx(server, plugins, repo, {"model": "acme/never"}, version)
    ctx.options = PushOptions(no_push=True)
    outcome = run(promote(ctx))
    assert (outcome.status, outcome.message) == ("skipped", "--no-push: the model is not touched")
    assert (ctx.promoted_version, ctx.result.pushed) == (None, False)


@pytest.mark.slow
def test_the_deployment_look_up_starts_only_when_a_deployment_may_follow(
    server, client, plugins, repo, version
):
    assert _prefetch_deployment(make_ctx(server, plugins, repo, {"model": "acme/x"})) is None
    ctx = make_ctx(server, plugins, repo, {"model": "acme/x", "deployment": {"name": "d"}})
    ctx.options = PushOptions(no_push=True)
    assert _prefetch_deployment(ctx) is None
    ctx.options = PushOptions()
    lookup = _prefetch_deployment(ctx)
    assert lookup is not None
    account = client.accounts.current().username
    assert run(lookup) == (account, "d", None)


@pytest.mark.slow
def test_the_deployment_step_uses_the_look_up_made_during_the_checks(
    server, client, plugins, repo, version
):
    """The look-up made while the checks ran is not made again (here a second one fails)."""
    ctx = _promoted_ctx(server, client, plugins, repo, version, {"name": "prefetched"})
    lookups = [Rule("GET", r"^/v1/account$", 500), Rule("GET", r"^/v1/deployments/", 500)]

    async def go() -> Any:
        ctx.prefetched["deployment"] = asyncio.ensure_future(_prefetch_deployment(ctx))
        await ctx.prefetched["deployment"]
        ctx.target = LocalTarget(proxy.base_url, server.token, embedded=False)
        return await deployment(ctx)

    with FaultProxy(server.base_url, lookups) as proxy:
        outcome = run(go())
    assert outcome.status == "passed", outcome.message
    assert [rule.hits for rule in lookups] == [0, 0]
    # no hardware configured: CPU, with the CPU scaling defaults
    account = client.accounts.current().username
    assert outcome.message == (f"created deployment {account}/prefetched -> "
                               f"{ctx.promoted_version[:12]} (cpu, 1-20 instances)")
    release = client.deployments.get(f"{account}/prefetched").current_release
    assert release.configuration.hardware == "cpu"


@pytest.mark.slow
def test_a_failing_account_look_up_names_the_deployment(server, client, plugins, repo, version):
    ctx = _promoted_ctx(server, client, plugins, repo, version, {"name": "no-account"})
    with FaultProxy(server.base_url, [Rule("GET", r"^/v1/account$", 403)]) as proxy:
        ctx.target = LocalTarget(proxy.base_url, server.token, embedded=False)
        with pytest.raises(RemoteError) as caught:
            run(deployment(ctx))
    assert str(caught.value) == "deployment <account>/no-account: 403 injected 403"


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_deployment_update_is_the_targets_error(
    server, client, plugins, repo, version, status
):
    """A 401 or 403 when the deployment is updated after promotion ends the run with
    exit 2 (a usage error naming the target and the deployment), as a refused request
    does in every other step; it is not a failed check of the model."""
    ctx = _promoted_ctx(server, client, plugins, repo, version, {"name": f"refused-{status}"})
    run(deployment(ctx))  # created: the next run's step updates it
    account = client.accounts.current().username
    refused = Rule("PATCH", rf"^/v1/deployments/{account}/refused-{status}$", status)
    with FaultProxy(server.base_url, [refused]) as proxy:
        proxy_url = proxy.base_url
        ctx.target = LocalTarget(proxy_url, server.token, embedded=False)
        step = run(_timed(ctx, "deployment", lambda: deployment(ctx)))
    assert refused.hits == 1
    assert step.status == "failed"
    assert step.message == f"deployment {account}/refused-{status}: {status} injected {status}"
    [usage] = ctx.usage_errors
    assert usage.startswith(f"{ctx.name}: deployment: {proxy_url} answered {status} ")


@pytest.mark.slow
def test_a_deployment_update_points_at_the_new_version(
    server, client, plugins, repo, version, tmp_path
):
    """Mutation: the update left the deployment on its previous version."""
    ctx = _promoted_ctx(server, client, plugins, repo, version,
                        {"name": "moves", "hardware": "cpu"})
    first = ctx.promoted_version
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "cog.yaml").write_text(COG_YAML)
    (edited / "predict.py").write_text(PREDICT_PY + "# edited\n")

    async def deploy_both() -> Any:
        assert (await deployment(ctx)).status == "passed"
        pushed = await asyncio.to_thread(push_build, client, *ctx.model.split("/"), edited)
        ctx.promoted_version = pushed["id"]
        return await deployment(ctx)

    outcome = run(deploy_both())
    assert ctx.promoted_version != first
    account = client.accounts.current().username
    assert outcome.message.startswith(
        f"updated deployment {account}/moves -> {ctx.promoted_version[:12]} ")
    release = client.deployments.get(f"{account}/moves").current_release
    assert release.version == ctx.promoted_version


# --- checkers ---------------------------------------------------------------------------


def _check(name: str, expected: Any, output: Any, *, status: str = "succeeded",
           error: str | None = None, judge: Any = None) -> CheckResult:
    checker = {c.name: c for c in builtin_checkers.CHECKERS}[name]
    from cogfleet._checks import decode_data_uri

    return checker.check(CheckContext(
        expected=expected, inputs={}, output=output, error=error, status=status,
        prediction={"status": status}, read_file=decode_data_uri, judge=judge,
    ))


@pytest.mark.parametrize("output", ["hi ", " hi", "hi\n", ["hi\n"]])
def test_exact_string_does_not_ignore_surrounding_whitespace(output):
    """Mutation: ``exact_string`` ignoring surrounding whitespace."""
    assert not _check("exact_string", "hi", output).passed
    assert _check("exact_string", "hi", "hi").passed


def test_jq_judges_the_first_result():
    """Mutation: ``jq_query`` judging the last result instead of the first."""
    assert not _check("jq_query", ".[]", [False, True]).passed
    assert _check("jq_query", ".[]", [True, False]).passed


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_jq_fails_a_prediction_that_did_not_succeed(status):
    """Mutation: ``jq_query`` not failing a prediction that did not succeed itself."""
    result = _check("jq_query", ".ok", {"ok": True}, status=status, error="boom")
    assert not result.passed
    assert result.message.startswith(f"prediction {status}")


def _png(size: tuple[int, int]) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    ("prompt", "why"),
    [("a 256x256 png image of a green field", "256x256"),
     ("a webp image of a green field", "webp")],
)
def test_match_prompt_never_asks_the_judge_after_a_failed_fact(prompt, why):
    """Mutation: ``match_prompt`` sending a case whose fact check failed to the AI judge."""
    calls: list[str] = []

    def judge(prompt: str, output: Any, files: list[OutputFile]) -> CheckResult:
        calls.append(prompt)
        return CheckResult(True, "looks fine")

    result = _check("match_prompt", prompt, [_png((64, 48))], judge=judge)
    assert not result.passed and why in result.message
    assert calls == []
    # the same prompt with facts that hold does reach the judge
    with FakeAnthropic(responder=['{"verdict": "yes", "reason": "green"}'] * 3) as fake:
        from cogfleet._judge import AnthropicJudge

        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url) as real:
            ok = _check("match_prompt", prompt.replace("webp", "png"),
                        [_png((256, 256))], judge=real)
        assert fake.requests
    assert ok.passed, ok.message


# --- schema compatibility ---------------------------------------------------------------


def _doc(prop: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.2", "info": {"title": "Cog", "version": "0.1"}, "paths": {},
            "components": {"schemas": {
                "Input": {"title": "Input", "type": "object", "properties": {"x": prop}},
                "Output": {"title": "Output", "type": "string"}}}}


@pytest.mark.parametrize(
    ("old", "new", "breaking"),
    [
        # OpenAPI 3.0: booleans beside minimum/maximum
        ({"type": "number", "minimum": 0}, {"type": "number", "minimum": 0,
                                            "exclusiveMinimum": True}, True),
        ({"type": "number", "maximum": 1}, {"type": "number", "maximum": 1,
                                            "exclusiveMaximum": True}, True),
        ({"type": "number", "minimum": 0, "exclusiveMinimum": True},
         {"type": "number", "minimum": 0}, False),
        # JSON Schema / OpenAPI 3.1: the bound itself
        ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "exclusiveMinimum": 1},
         True),
        ({"type": "number", "exclusiveMinimum": 1}, {"type": "number", "exclusiveMinimum": 0},
         False),
        ({"type": "number", "exclusiveMaximum": 1}, {"type": "number", "exclusiveMaximum": 0},
         True),
        ({"type": "number", "exclusiveMaximum": 0}, {"type": "number", "exclusiveMaximum": 1},
         False),
        ({"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, True),
        ({"type": "number", "maximum": 5}, {"type": "number", "exclusiveMaximum": 5}, True),
        ({"type": "number", "exclusiveMaximum": 5}, {"type": "number", "maximum": 5}, False),
        ({"type": "number"}, {"type": "number", "exclusiveMaximum": 5}, True),
    ],
)
def test_exclusive_bounds_in_the_right_direction(old, new, breaking):
    """Mutation: ``exclusiveMinimum``/``exclusiveMaximum`` directions swapped."""
    assert bool(check_compatibility(_doc(old), _doc(new))) is breaking


# --- affected variants and rendering ----------------------------------------------------


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})


@pytest.fixture
def git_repo(make_repo: Callable[..., Path]) -> Path:
    root = make_repo({"models/other/variants.yaml":
                      "gamma:\n  model: acme/gamma\n  variables: {steps: 1}\n",
                      "models/other/predict.py": "x = 1\n",
                      "cog-safe-push-configs/gamma.yaml": "model: acme/gamma\n"})
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    return root


def _affected(root: Path) -> dict[str, list[str]]:
    from cogfleet._affected import affected_variants
    from cogfleet._repo import Repo

    return {a.variant: a.reasons for a in affected_variants(Repo.load(root), "main")}


@pytest.mark.parametrize("path", ["models/fam/pyproject.toml", "models/fam/noxfile.py"])
def test_nested_packaging_files_are_not_global(git_repo, path):
    """Mutation: a nested ``pyproject.toml`` or ``noxfile.py`` counted as a global change."""
    (git_repo / path).write_text("# family-local\n")
    assert _affected(git_repo) == {"alpha": [path], "beta": [path]}
    (git_repo / "noxfile.py").write_text("# repo-wide\n")
    assert set(_affected(git_repo)) == {"alpha", "beta", "gamma"}


def test_local_state_is_not_a_change(git_repo):
    """Mutation: the local state under ``.cogfleet/`` not filtered out of changed files."""
    from cogfleet._affected import changed_files

    state = git_repo / ".cogfleet" / "build" / "gamma"
    state.mkdir(parents=True)
    (state / "predict.py").write_text("y = 2\n")
    (git_repo / "models/other/predict.py").write_text("x = 2\n")
    assert changed_files(git_repo, "main")[1] == ["models/other/predict.py"]
    assert _affected(git_repo) == {"gamma": ["models/other/predict.py"]}


def test_a_variant_that_failed_to_render_at_the_base_may_have_read_deleted_files(git_repo):
    """Mutation: a variant that failed to render at the base not assumed to read the
    deleted files."""
    extra = git_repo / "models/other/helper.txt"
    extra.write_text("help\n")
    config = git_repo / "cog-safe-push-configs/gamma.yaml"
    config.write_text("model: {{ not_defined_at_the_base }}\n")  # gamma cannot render
    _git(git_repo, "add", "-A")
    _git(git_repo, "commit", "-q", "-m", "gamma broken, helper added")
    _git(git_repo, "checkout", "-q", "-b", "work")
    config.write_text("model: acme/gamma\n")
    extra.unlink()
    _git(git_repo, "commit", "-qam", "fix gamma, drop helper")
    found = _affected(git_repo)
    assert "models/other/helper.txt" in found["gamma"]
    assert "alpha" not in found


def test_a_familys_own_cog_yaml_wins_over_the_shared_template(make_repo):
    """Mutation: a family's own ``cog.yaml`` overridden by the shared template."""
    from cogfleet._render import render_in_memory
    from cogfleet._repo import Repo

    own = '# the family\'s own\nbuild:\n  python_version: "3.12"\npredict: "predict.py:Predictor"\n'
    root = make_repo({"models/fam/cog.yaml": own})
    repo = Repo.load(root)
    rendered = render_in_memory(repo, repo.variants["alpha"], Plugins(root))
    assert rendered.files["cog.yaml"].decode() == own
    assert "templates/cog.yaml.j2" not in rendered.reads


def test_unchanged_build_files_are_not_rewritten(make_repo, cli):
    """Mutation: unchanged build files rewritten."""
    root = make_repo()
    assert cli("render", "alpha", cwd=root).code == 0
    build = root / ".cogfleet/build/alpha"
    before = {p: p.stat().st_mtime_ns for p in build.rglob("*") if p.is_file()}
    time.sleep(0.01)
    # a change elsewhere forces a render; the alpha files' bytes stay the same
    (root / "cog-safe-push-configs/beta.yaml").write_text("model: acme/beta\n# edited\n")
    (root / ".cogfleet/cache/render/alpha.json").unlink()  # no reuse: render afresh
    result = cli("render", "alpha", cwd=root)
    assert result.code == 0 and "0 changed" in result.out
    after = {p: p.stat().st_mtime_ns for p in build.rglob("*") if p.is_file()}
    assert after == before


# --- exact verdicts and messages (a verdict of None or a wrong message is a bug too) -----


@pytest.mark.parametrize(
    ("name", "expected", "output", "status", "error", "verdict"),
    [
        ("exact_string", "hi", "ho", "succeeded", None, (False, "expected 'hi', got 'ho'")),
        ("exact_string", "42", "42", "succeeded", None, (True, "output is '42'")),
        ("exact_string", "hi", {"a": 1}, "succeeded", None,
         (False, "expected the string 'hi', got {\"a\": 1}")),
        ("exact_string", "hi", None, "succeeded", None,
         (False, "expected the string 'hi', got null")),
        ("exact_string", "hi", 7, "succeeded", None, (False, "expected the string 'hi', got 7")),
        ("exact_string", "hi", "hi", "failed", "boom", (False, "prediction failed: boom")),
        ("exact_string", "hi", "hi", "canceled", None, (False, "prediction canceled")),
        ("jq_query", ".a", "not json", "succeeded", None,
         (False, "output is not JSON: not json")),
        ("jq_query", ".a", {"a": 3}, "succeeded", None, (True, "jq '.a' gave 3")),
        ("jq_query", ".a", {"a": 0}, "succeeded", None, (False, "jq '.a' gave 0 on {\"a\": 0}")),
        ("jq_query", ".a", {"a": ""}, "succeeded", None,
         (False, "jq '.a' gave  on {\"a\": \"\"}")),
        ("jq_query", ".a", {"a": [1]}, "succeeded", None, (True, "jq '.a' gave [1]")),
        ("jq_query", ".a", {"a": False}, "succeeded", None,
         (False, "jq '.a' gave false on {\"a\": false}")),
        ("jq_query", "empty", {"a": 1}, "succeeded", None,
         (False, "jq 'empty' produced no result on {\"a\": 1}")),
        ("error_contains", "bad", "ok", "succeeded", None,
         (False, "expected the prediction to fail with 'bad', but it succeeded with ok")),
        ("error_contains", "bad", None, "canceled", None,
         (False, "expected the prediction to fail with 'bad', but it was canceled")),
        ("error_contains", "bad", None, "failed", "a bad input",
         (True, "failed as expected: a bad input")),
        ("error_contains", "bad", None, "failed", None,
         (False, "expected the error to contain 'bad', got ''")),
        ("error_contains", "bad", None, "failed", "x" * 600,
         (False, "expected the error to contain 'bad', got '" + "x" * 499 + "…'")),
    ],
)
def test_checker_verdicts_exactly(name, expected, output, status, error, verdict):
    result = _check(name, expected, output, status=status, error=error)
    assert (result.passed, result.message) == verdict
    assert type(result.passed) is bool


def test_jq_runtime_error_message_is_one_line_without_the_prefix():
    result = _check("jq_query", ".a.b", {"a": 1})
    assert result.passed is False
    assert result.message.startswith("jq '.a.b' failed: Cannot index number with")
    assert "jq: error" not in result.message and not result.message.endswith(":")


@pytest.mark.parametrize(
    ("checker", "value", "message"),
    [
        ("match_url", "", "match_url must be a non-empty string, got "),
        ("match_url", 3, "match_url must be a non-empty string, got 3"),
        ("match_url", "data:image/png;base64,", "match_url data URI holds no data"),
        ("jq_query", ".a |", "jq_query '.a |' does not compile: syntax error, unexpected end "
         "of file"),
        ("match_prompt", None, "match_prompt must be a non-empty string, got null"),
        ("match_prompt", " \n\t", "match_prompt must be a non-empty string, got "),
        ("error_contains", "   ", "error_contains must be a non-empty string, got "),
    ],
)
def test_checker_validation_messages(checker, value, message):
    validate = {c.name: c for c in builtin_checkers.CHECKERS}[checker].validate
    with pytest.raises(ValueError) as caught:
        validate(value)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value) and not str(caught.value).endswith(":")


def test_jq_truthiness():
    from cogfleet.builtins.checkers import _jq_truthy

    assert [_jq_truthy(v) for v in (None, False, "", [], {}, 0, "x", [0], {"a": 1}, True)] == [
        False, False, False, False, False, False, True, True, True, True]


def test_deployment_is_skipped_when_nothing_was_promoted(tmp_path):
    """``no_push or nothing promoted`` (not ``and``): no deployment without a promotion."""
    ctx = _bare_ctx(tmp_path)
    ctx.config = SafePushConfig(model="acme/bare", deployment={"name": "d"})
    assert run(deployment(ctx)) == skipped("nothing was promoted")
    ctx.options.no_push = True
    ctx.promoted_version = "abc"
    assert run(deployment(ctx)) == skipped("nothing was promoted")
    ctx.config = SafePushConfig(model="acme/bare")
    assert run(deployment(ctx)) == skipped("no deployment section")


@pytest.mark.parametrize("component", ["Output", "TrainingInput", "TrainingOutput"])
def test_schema_file_refs_are_resolved_in_every_component(tmp_path, component):
    doc = _doc({"type": "string"})
    doc["components"]["schemas"][component] = {"$ref": "#/components/schemas/Missing"}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        load_schema_file(path)
    assert str(caught.value) == (
        f"{path}: schema: $ref '#/components/schemas/Missing' does not resolve"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"openapi_schema": null}', "the version object's openapi_schema is empty"),
        ("[1]", "not an OpenAPI document (expected a JSON object)"),
        ('{"components": {"schemas": {}}}',
         "not a Cog OpenAPI document: components.schemas has neither Input nor TrainingInput"),
    ],
)
def test_schema_file_messages_name_the_file(tmp_path, content, message):
    path = tmp_path / "doc.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_schema_file(path)
    assert (caught.value.path, caught.value.message) == (str(path), message)


def test_schema_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ConfigError) as caught:
        load_schema_file(path)
    assert caught.value.path == str(path)
    assert caught.value.message.startswith("cannot read schema file: 'utf-8' codec can't decode")
    utf8 = tmp_path / "utf8.json"
    utf8.write_text(json.dumps(_doc({"type": "string", "title": "caf\u00e9"})), encoding="utf-8")
    assert load_schema_file(utf8)["components"]["schemas"]["Input"]["properties"]["x"]["title"] \
        == "caf\u00e9"


@pytest.mark.parametrize("direction", ["input", "output"])
def test_union_variants_lost_in_the_breaking_direction(direction):
    wide = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    narrow = {"anyOf": [{"type": "string"}]}
    if direction == "input":  # an input may gain variants, never lose them
        assert check_compatibility(_doc(wide), _doc(narrow))
        assert not check_compatibility(_doc(narrow), _doc(wide))
    else:  # an output may lose variants, never gain them
        old, new = _doc({"type": "string"}), _doc({"type": "string"})
        old["components"]["schemas"]["Output"] = narrow
        new["components"]["schemas"]["Output"] = wide
        assert check_compatibility(old, new)
        assert not check_compatibility(new, old)


# --- the pipeline's own lint step (one Cog folder, no variant) ------------------------------


def _lint(tmp_path: Path, predict: str, cog_yaml: str = COG_YAML) -> Any:
    from cogfleet._pipeline import lint_build

    (tmp_path / "predict.py").write_text(predict)
    (tmp_path / "cog.yaml").write_text(cog_yaml)
    return run(lint_build(_bare_ctx(tmp_path)))


def test_lint_of_one_cog_folder_reports_ruff_by_file(tmp_path):
    assert _lint(tmp_path, PREDICT_PY).status == "passed"
    with pytest.raises(CheckFailed) as caught:
        _lint(tmp_path, "import os\n" + PREDICT_PY)
    assert str(caught.value).startswith("predict.py:1:")
    assert "F401" in str(caught.value)


def test_lint_of_one_cog_folder_checks_the_files_cog_yaml_names(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _lint(tmp_path, PREDICT_PY, COG_YAML.replace("predict.py:", "missing.py:"))
    assert "missing.py" in str(caught.value)


def test_a_cancelled_background_look_up_is_left_alone():
    """Marking a background task's error as seen never raises, cancelled or not."""
    from cogfleet._pipeline import _retrieve

    async def go() -> None:
        loop = asyncio.get_running_loop()
        cancelled, failed = loop.create_future(), loop.create_future()
        cancelled.cancel()
        failed.set_exception(RemoteError("look-up failed"))
        _retrieve(cancelled)
        _retrieve(failed)

    run(go())


# --- one step: its record, its events, its errors ------------------------------------------

RECORD_PLUGIN = '''\
from cogfleet import hookimpl

EVENTS = []


@hookimpl
def cogfleet_progress(event):
    step = getattr(event, "step", None)
    EVENTS.append((event.kind, step.name if step else None, step.status if step else None))
'''


@pytest.fixture(scope="module")
def record_plugins(tmp_path_factory: pytest.TempPathFactory) -> Plugins:
    root = tmp_path_factory.mktemp("record-repo")
    (root / "plugins").mkdir()
    (root / "plugins" / "record.py").write_text(RECORD_PLUGIN)
    return Plugins(root, disabled=BUILTIN_STEPS)


def _recorded(record_plugins: Plugins, tmp_path: Path) -> tuple[PushContext, list[Any]]:
    ctx = _bare_ctx(tmp_path)
    ctx.plugins = record_plugins
    events = record_plugins.pm.get_plugin("record").EVENTS
    events.clear()
    return ctx, events


def test_a_step_is_timed_announced_and_listed_while_it_runs(record_plugins, tmp_path):
    ctx, events = _recorded(record_plugins, tmp_path)
    seen: list[list[str]] = []

    async def body() -> Any:
        seen.append(list(ctx.running))
        await asyncio.sleep(0.05)
        return passed("done")

    ctx.t0 = time.monotonic() - 100  # the run started 100 s before this step
    step = run(_timed(ctx, "slow", body))
    elapsed = time.monotonic() - ctx.t0
    assert (step.status, step.message) == ("passed", "done")
    assert seen == [["slow"]] and ctx.running == []
    assert 100 <= step.started_s <= elapsed
    assert 0.05 <= step.duration_s <= elapsed  # the step's own time, at least its sleep
    assert ctx.result.steps == [step]
    assert events == [("step-start", "slow", "passed"), ("step-done", "slow", "passed")]


def test_a_step_that_crashes_fails_with_its_error(record_plugins, tmp_path):
    ctx, events = _recorded(record_plugins, tmp_path)

    async def body() -> Any:
        raise KeyError("x")

    step = run(_timed(ctx, "buggy", body))
    assert (step.status, step.message) == ("failed", "step buggy raised KeyError: 'x'")
    assert ctx.running == [] and ctx.result.steps == [step]
    assert events[-1] == ("step-done", "buggy", "failed")


def test_a_step_cancelled_by_an_interrupt_is_skipped_and_recorded(record_plugins, tmp_path):
    ctx, events = _recorded(record_plugins, tmp_path)
    started = asyncio.Event()

    async def body() -> Any:
        started.set()
        await asyncio.sleep(3600)
        return passed("never")

    async def go() -> None:
        task = asyncio.ensure_future(_timed(ctx, "long", body))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    began = time.monotonic()
    run(go())
    elapsed = time.monotonic() - began
    [step] = ctx.result.steps
    assert (step.status, step.message) == ("skipped", "interrupted while running")
    assert 0 <= step.duration_s <= elapsed and ctx.running == []
    assert events == [("step-start", "long", "passed"), ("step-done", "long", "skipped")]


# --- push-test: the test model, the live model ----------------------------------------------


def _push_ctx(server, plugins, repo, model: str, *, embedded: bool = False) -> PushContext:
    ctx = make_ctx(server, plugins, repo, {"model": model})
    ctx.target = LocalTarget(server.base_url, server.token, embedded=embedded)
    return ctx


@pytest.mark.slow
def test_push_test_never_creates_a_test_model_for_a_missing_model(server, client, plugins,
                                                                 repo):
    from cogfleet._pipeline import push_test

    ctx = _push_ctx(server, plugins, repo, "acme/pins-missing")
    with pytest.raises(CheckFailed) as caught:
        run(push_test(ctx))
    assert str(caught.value) == "model acme/pins-missing does not exist on local; create it first"
    names = {m.name for m in client.models.list().results}
    assert not {"pins-missing", "pins-missing-test"} & names
    assert ctx.test_version is None and ctx.result.test_version is None


@pytest.mark.slow
def test_push_test_pushes_nothing_for_a_missing_model_whose_test_model_exists(
    server, client, plugins, repo
):
    # as cog-safe-push: the model is looked up before the build is pushed anywhere
    from cogfleet._pipeline import push_test

    client.models.create(owner="acme", name="pins-orphan-test", visibility="private",
                         hardware="cpu")
    ctx = _push_ctx(server, plugins, repo, "acme/pins-orphan")
    with pytest.raises(CheckFailed) as caught:
        run(push_test(ctx))
    assert str(caught.value) == "model acme/pins-orphan does not exist on local; create it first"
    assert client.models.get("acme/pins-orphan-test").versions.list().results == []
    assert ctx.test_version is None


@pytest.mark.slow
def test_push_test_creates_the_test_model_and_reads_the_live_version(
    server, client, plugins, repo
):
    from cogfleet._pipeline import push_test

    model = new_model(client, "pins-push")
    ctx = _push_ctx(server, plugins, repo, model)
    first = run(push_test(ctx))
    vid = ctx.test_version["id"]
    runtime = ctx.target.runtime_summary(vid)
    assert runtime  # how the local server runs it (Cog version, environment)
    assert (first.status, first.message) == (
        "passed", f"created private {model}-test (cpu); pushed {model}-test:{vid[:12]} "
                  f"({runtime})")
    assert ctx.result.test_version == vid
    assert client.models.get(f"{model}-test").latest_version.id == vid
    assert (ctx.live_version, ctx.result.live_version) == (None, None)
    # the model gets a version; the next push reads it as the live one
    live = push_build(client, *model.split("/"), repo / "build")["id"]
    ctx = _push_ctx(server, plugins, repo, model)
    again = run(push_test(ctx))
    assert again.message.startswith(f"pushed {model}-test:{vid[:12]} (")
    assert ctx.live_version["id"] == live and ctx.result.live_version == live


@pytest.mark.slow
def test_push_test_reads_the_live_version_when_it_creates_the_test_model(
    server, client, plugins, repo
):
    from cogfleet._pipeline import push_test

    model = new_model(client, "pins-live")
    live = push_build(client, *model.split("/"), repo / "build")["id"]
    ctx = _push_ctx(server, plugins, repo, model)
    outcome = run(push_test(ctx))
    assert outcome.message.startswith(f"created private {model}-test (cpu); ")
    assert ctx.live_version["id"] == live and ctx.result.live_version == live


@pytest.mark.slow
def test_push_test_on_the_embedded_server_creates_the_model(server, client, plugins, repo):
    from cogfleet._pipeline import push_test

    ctx = _push_ctx(server, plugins, repo, "acme/pins-embedded", embedded=True)
    outcome = run(push_test(ctx))
    assert outcome.message.startswith(
        "created acme/pins-embedded on the embedded local server; "
        "created private acme/pins-embedded-test (cpu); pushed acme/pins-embedded-test:")
    model = client.models.get("acme/pins-embedded")
    assert model.visibility == "public"


UNREAD_PY = '''\
from cog import BasePredictor, Input

MAX_STEPS = 4


class Predictor(BasePredictor):
    def predict(self, steps: int = Input(description="Steps", default=2, le=MAX_STEPS)) -> int:
        return steps
'''


def _lint_pinned(tmp_path: Path, pin: Any) -> Any:
    from cogfleet._pipeline import lint_build

    (tmp_path / "predict.py").write_text(UNREAD_PY)
    (tmp_path / "cog.yaml").write_text(COG_YAML)
    ctx = _bare_ctx(tmp_path)
    ctx.cog_pin = pin
    return run(lint_build(ctx))


def test_lint_of_one_cog_folder_reads_the_source_by_the_pinned_cog(tmp_path):
    """What the pinned Cog leaves out of the schema fails the lint (Cog >= 0.17) or warns
    (older Cog reads the value), naming the pin and where it was set."""
    from cogfleet.runtime._pin import CogPin
    from cogfleet.runtime._versions import installed_version

    unread = "predict.py:7: input 'steps': le=MAX_STEPS is not a literal"
    with pytest.raises(CheckFailed) as caught:
        _lint_pinned(tmp_path, CogPin("0.22.0", "--cog-version"))
    assert str(caught.value).startswith(
        f"{unread}, and Cog 0.22.0 (--cog-version) leaves it out (the input has no maximum)")
    installed = installed_version()
    for pin in (None, CogPin(installed, "installed")):
        with pytest.raises(CheckFailed) as caught:
            _lint_pinned(tmp_path, pin)
        assert str(caught.value).startswith(f"{unread}, and Cog {installed} leaves it out")
    warned = _lint_pinned(tmp_path, CogPin("0.15.8", "pyproject.toml", 5))
    assert warned.status == "passed"
    assert warned.message.startswith(
        f"ruff, cog.yaml and config are clean; warning: {unread}: Cog 0.15.8 "
        "(pyproject.toml:5) uses its value (4), but Cog 0.17 and later leave it out")
    # a Cog whose rules are unknown: the push reports it, the lint does not guess
    unknown = _lint_pinned(tmp_path, CogPin("9.9.9", "--cog-version"))
    assert (unknown.status, unknown.message) == ("passed", "ruff, cog.yaml and config are clean")


LINT_PLUGIN = '''\
from cogfleet import LintWarning, hookimpl

CALLS = []
PROBLEMS = []


@hookimpl
def cogfleet_lint(variant, build_dir, cog_pin):
    CALLS.append((variant.name, build_dir, cog_pin))
    return [*PROBLEMS, LintWarning("models/fam/predict.py:2: a bit dull")]
'''


def test_lint_of_a_variant_asks_the_lint_plugins(tmp_path):
    """A variant's lint is the plugins' answers on its build folder under its Cog pin:
    up to ten problems fail the step, warnings only show."""
    from cogfleet._pipeline import lint_build
    from cogfleet._repo import Variant
    from cogfleet.runtime._pin import CogPin

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "lintrec.py").write_text(LINT_PLUGIN)
    build = tmp_path / "build"
    build.mkdir()
    ctx = _bare_ctx(build)
    ctx.plugins = Plugins(tmp_path, disabled={"ruff-lint"})
    module = ctx.plugins.pm.get_plugin("lintrec")
    family = tmp_path / "models" / "fam"
    ctx.variant = Variant(name="v", family="fam", family_dir=family,
                          variants_file=family / "variants.yaml",
                          config_path=tmp_path / "v.yaml")
    ctx.cog_pin = CogPin("0.16.9", "pyproject.toml", 3)
    clean = run(lint_build(ctx))
    assert (clean.status, clean.message) == (
        "passed",
        "ruff, cog.yaml and config are clean; warning: models/fam/predict.py:2: a bit dull")
    assert module.CALLS == [("v", build, ctx.cog_pin)]
    module.PROBLEMS[:] = [f"models/fam/predict.py:{n}: problem {n}" for n in range(12)]
    with pytest.raises(CheckFailed) as caught:
        run(lint_build(ctx))
    assert str(caught.value) == "; ".join(
        [*module.PROBLEMS[:10], "warning: models/fam/predict.py:2: a bit dull"])


def test_lint_of_one_cog_folder_reads_cog_yaml_by_the_pinned_cog(tmp_path):
    """cog.yaml is read as the pinned Cog reads it: `run:` is Cog 0.20's."""
    from cogfleet._pipeline import lint_build
    from cogfleet.runtime._pin import CogPin

    (tmp_path / "predict.py").write_text(PREDICT_PY)
    (tmp_path / "cog.yaml").write_text(COG_YAML.replace("predict:", "run:"))
    ctx = _bare_ctx(tmp_path)
    ctx.cog_pin = CogPin("0.22.0", "--cog-version")
    assert run(lint_build(ctx)).status == "passed"
    ctx.cog_pin = CogPin("0.19.3", "--cog-version")
    with pytest.raises(ConfigError) as caught:
        run(lint_build(ctx))
    assert "Cog 0.19.3 has no top-level run: (added in 0.20)" in str(caught.value)
