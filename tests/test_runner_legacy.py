"""RunnerPool driving Cog 0.15.8's own Python server in a real isolated environment."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet.server._runner import InvalidInput, RunnerPool, Runtime, SetupFailed
from tests.conftest import container_view_here

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"

pytestmark = pytest.mark.slow


@pytest.fixture
def build(tmp_path: Path) -> Callable[[str], Path]:
    def _copy(name: str) -> Path:
        dest = tmp_path / name
        if not dest.exists():
            shutil.copytree(FIXTURES / name, dest)
        return dest

    return _copy


@pytest.fixture
def runtime(legacy_env: Any) -> Runtime:
    assert legacy_env.server == "legacy"
    return Runtime(python=legacy_env.python, server="legacy", isolated=True)


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=120))


def test_legacy_server_predicts_with_optional_seed_and_no_leaks(
    build: Callable[[str], Path], runtime: Runtime, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, legacy_env: Any,
) -> None:  # fmt: skip
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    updates: list[dict[str, Any]] = []

    async def scenario() -> None:
        pool = RunnerPool(log_dir=tmp_path / "logs")
        try:
            first = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="p1",
                input={"text": "yo"}, runtime=runtime, on_update=updates.append,
            )  # fmt: skip
            assert first["status"] == "succeeded", first
            out = first["output"]
            # seed: int = Input(default=None) is optional under Cog 0.15.8.
            assert out.startswith("yo seed=None calls=1 cog=0.15.8 greeting=hello from cog.yaml")
            assert "leaked=[]" in out
            assert f"prefix={legacy_env.path}" in out
            # Its working folder is /src, as in the image, where the system allows it.
            cwd = "/src" if container_view_here() else str(build("echo").resolve())
            assert out.endswith(f" cwd={cwd}")
            assert "echoing 'yo'" in first["logs"]
            assert first["error"] is None and first["metrics"]["predict_time"] > 0
            assert updates and updates[0]["status"] == "processing"
            second = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="p2",
                input={"text": "again", "seed": 7}, runtime=runtime,
            )  # fmt: skip
            assert second["output"].startswith("again seed=7 calls=2 ")  # same process
        finally:
            await pool.close()

    run_async(scenario)


def test_legacy_invalid_input_failure_and_cancel(
    build: Callable[[str], Path], runtime: Runtime
) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            with pytest.raises(InvalidInput) as info:
                await pool.run(
                    "echo", build("echo"), mode="predict", prediction_id="bad",
                    input={"seed": "x"}, runtime=runtime,
                )  # fmt: skip
            assert "seed" in str(info.value)
            failed = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="f1",
                input={"text": "boom", "fail": True}, runtime=runtime,
            )  # fmt: skip
            assert failed["status"] == "failed"
            assert "asked to fail on 'boom'" in failed["error"]

            slow = asyncio.create_task(
                pool.run(
                    "echo", build("echo"), mode="predict", prediction_id="s1",
                    input={"text": "slow", "sleep": 60}, runtime=runtime,
                )  # fmt: skip
            )
            while "s1" not in pool._inflight or not pool._inflight["s1"].sent:  # noqa: SLF001
                await asyncio.sleep(0.05)
            assert await pool.cancel("s1")
            canceled = await slow
            assert canceled["status"] == "canceled"
            after = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="a1",
                input={"text": "after"}, runtime=runtime,
            )  # fmt: skip
            assert after["status"] == "succeeded"
        finally:
            await pool.close()

    run_async(scenario)


def test_legacy_file_outputs_become_data_uris(
    build: Callable[[str], Path], runtime: Runtime
) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            result = await pool.run(
                "files", build("files"), mode="predict", prediction_id="f1",
                input={"count": 2}, runtime=runtime,
            )  # fmt: skip
            assert result["status"] == "succeeded", result
            assert len(result["output"]) == 2
            for index, uri in enumerate(result["output"]):
                head, _, data = uri.partition(",")
                assert head == "data:text/plain;base64"
                assert base64.b64decode(data).decode() == f"frame {index}"
        finally:
            await pool.close()

    run_async(scenario)


def test_legacy_setup_failure(build: Callable[[str], Path], runtime: Runtime) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            with pytest.raises(SetupFailed) as info:
                await pool.run(
                    "bad", build("setup_fails"), mode="predict", prediction_id="x",
                    input={}, runtime=runtime,
                )  # fmt: skip
            assert "weights missing" in info.value.logs
        finally:
            await pool.close()

    run_async(scenario)
