"""RunnerPool against real coglet servers running the predictors in tests/fixtures/runner/."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.server._runner import InvalidInput, RunnerPool, SetupFailed

FIXTURES = Path(__file__).parent / "fixtures" / "runner"

pytestmark = pytest.mark.slow


@pytest.fixture
def build(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a fixture predictor into a throw-away build folder."""

    def _copy(name: str) -> Path:
        dest = tmp_path / name
        if not dest.exists():
            shutil.copytree(FIXTURES / name, dest)
        return dest

    return _copy


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (missing, or a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=45))


class Updates:
    """Collects on_update calls and lets a test wait for one that matches."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, update: dict[str, Any]) -> None:
        self.items.append(update)
        self._changed.set()

    async def wait_for(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            for item in self.items:
                if match(item):
                    return item
            self._changed.clear()
            await self._changed.wait()


def is_iso(value: Any) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def test_predict_succeeds_and_runner_is_reused(
    build: Callable[[str], Path], tmp_path: Path
) -> None:
    async def scenario() -> None:
        pool = RunnerPool(log_dir=tmp_path / "logs")
        try:
            updates = Updates()
            env = {"EXTRA": "from caller", "COG_WEIGHTS": "/not/a/file"}
            first = await pool.run(
                "echo:predict",
                build("echo"),
                mode="predict",
                prediction_id="p1",
                input={"text": "hi", "repeat": 2},
                env=env,
                on_update=updates,
            )
            assert first["status"] == "succeeded", first
            out = first["output"]
            assert out["text"] == "hi hi"
            assert out["greeting"] == "hello from cog.yaml"
            assert out["extra"] == "from caller"
            # coglet hands COG_WEIGHTS to setup(weights=...) as a plain string.
            assert (out["weights"], out["weights_type"]) == ("/not/a/file", "str")
            assert "echoing 'hi' x2" in first["logs"]
            assert first["metrics"]["predict_time"] > 0
            assert first["error"] is None
            assert is_iso(first["started_at"]) and is_iso(first["completed_at"])
            assert first["started_at"] <= first["completed_at"]
            assert updates.items and updates.items[0]["status"] == "processing"
            pids = pool.processes()
            assert out["pid"] in pids and len(pids) == 2  # coglet and its worker

            second = await pool.run(
                "echo:predict",
                build("echo"),
                mode="predict",
                prediction_id="p2",
                input={"text": "again"},
                env=env,
            )
            assert second["status"] == "succeeded"
            assert second["output"]["pid"] == out["pid"]
            assert (second["output"]["setup_calls"], second["output"]["calls"]) == (1, 2)
            assert pool.processes() == pids
            log_file = tmp_path / "logs" / "echo_predict.log"
            assert "Starting coglet server on 127.0.0.1:" in log_file.read_text()
        finally:
            await pool.close()

    run_async(scenario)


def test_invalid_input_and_failed_predict(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            with pytest.raises(InvalidInput) as caught:
                await pool.run(
                    "echo",
                    build("echo"),
                    mode="predict",
                    prediction_id="bad",
                    input={"text": "x", "repeat": 99},
                )
            assert str(caught.value) == "repeat: 99 is greater than the maximum of 5"
            assert caught.value.detail[0]["loc"] == ["body", "input", "repeat"]

            failed = await pool.run(
                "echo",
                build("echo"),
                mode="predict",
                prediction_id="boom",
                input={"text": "x", "fail": True},
            )
            assert failed["status"] == "failed"
            assert "ValueError: asked to fail on 'x'" in failed["error"]
            assert failed["output"] is None
            # The same id can be used again once the first run has returned.
            again = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="boom", input={"text": "y"}
            )
            assert again["status"] == "succeeded"

            # A dead worker leaves coglet answering 409 forever: the pool replaces it.
            crashed = await pool.run(
                "echo",
                build("echo"),
                mode="predict",
                prediction_id="c",
                input={"text": "z", "crash": True},
            )
            assert (crashed["status"], crashed["error"]) == ("failed", "Worker crashed")
            fresh = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="d", input={"text": "w"}
            )
            assert fresh["status"] == "succeeded"
            assert fresh["output"]["pid"] != again["output"]["pid"]
            assert fresh["output"]["setup_calls"] == 1
        finally:
            await pool.close()

    run_async(scenario)


def test_setup_failure_raises_with_logs(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            with pytest.raises(SetupFailed) as caught:
                await pool.run(
                    "broken", build("setup_fails"), mode="predict", prediction_id="s1", input={}
                )
            # coglet 0.23.1 keeps only the exception line of a failed setup().
            assert "RuntimeError: weights missing" in caught.value.logs
            assert pool.processes() == []
        finally:
            await pool.close()

    run_async(scenario)


def test_cancel_stops_work_and_runner_stays_usable(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            updates = Updates()
            slow = asyncio.create_task(
                pool.run(
                    "slow",
                    build("slow"),
                    mode="predict",
                    prediction_id="long",
                    input={"steps": 2000},
                    on_update=updates,
                )
            )
            # Live logs arrive through coglet's webhooks while the prediction runs.
            await updates.wait_for(lambda u: "step 1\n" in (u.get("logs") or ""))
            # A second call waits for the single slot instead of getting coglet's 409 ...
            queued = asyncio.create_task(
                pool.run("slow", build("slow"), mode="predict", prediction_id="q", input={})
            )
            await asyncio.sleep(0)
            # ... and can be cancelled before it ever reaches coglet.
            assert await pool.cancel("q") is True
            queued_result = await queued
            assert queued_result["status"] == "canceled"
            assert queued_result["started_at"] is None

            cancelled_at = time.monotonic()
            assert await pool.cancel("long") is True
            result = await slow
            assert time.monotonic() - cancelled_at < 5
            assert result["status"] == "canceled", result
            assert "stopped after" in result["logs"]
            assert "CancelationException" in result["logs"]
            assert await pool.cancel("long") is False
            assert await pool.cancel("never-seen") is False

            pids = pool.processes()
            after = await pool.run(
                "slow", build("slow"), mode="predict", prediction_id="short", input={"steps": 2}
            )
            assert after["status"] == "succeeded"
            match = re.fullmatch(
                r"finished (\d+) steps in pid (\d+), (\d+) stopped before", after["output"]
            )
            assert match is not None, after["output"]
            steps, pid, stopped = match.groups()
            assert (int(steps), int(stopped)) == (2, 1)
            assert int(pid) in pids
            assert pool.processes() == pids
        finally:
            await pool.close()

    run_async(scenario)


def test_cancelled_run_task_stops_the_work_and_frees_the_slot(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            updates = Updates()
            task = asyncio.create_task(
                pool.run(
                    "slow",
                    build("slow"),
                    mode="predict",
                    prediction_id="dropped",
                    input={"steps": 2000},
                    on_update=updates,
                )
            )
            await updates.wait_for(lambda u: u["status"] == "processing")
            task.cancel()  # what the API does when its own work is cancelled
            with pytest.raises(asyncio.CancelledError):
                await task
            # The single slot is reused at once without a 409 from coglet.
            after = await pool.run(
                "slow", build("slow"), mode="predict", prediction_id="next", input={"steps": 1}
            )
            assert after["status"] == "succeeded"
            # The predictor itself was interrupted, not merely abandoned.
            assert after["output"].endswith(", 1 stopped before")
        finally:
            await pool.close()

    run_async(scenario)


def test_concurrency_two_with_async_predictor(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            folder = build("async_pair")

            def go(tag: str, group: str, peers: int) -> Awaitable[dict[str, Any]]:
                return pool.run(
                    "pair",
                    folder,
                    mode="predict",
                    prediction_id=tag,
                    input={"tag": tag, "group": group, "peers": peers, "timeout": 20},
                )

            # a and b only finish once both are inside the predictor at the same time;
            # the third call must wait for a slot rather than get coglet's 409.
            results = await asyncio.gather(go("a", "ab", 2), go("b", "ab", 2), go("c", "c", 1))
            assert all(r["status"] == "succeeded" for r in results), results
            assert all(r["output"]["met"] for r in results)
            assert max(r["output"]["most_in_flight"] for r in results) == 2
        finally:
            await pool.close()

    run_async(scenario)


def test_train_then_predict_with_trained_weights(
    build: Callable[[str], Path], tmp_path: Path
) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            folder = build("trainer")
            updates = Updates()
            trained = await pool.run(
                "v1:train",
                folder,
                mode="train",
                prediction_id="t1",
                input={"epochs": 2, "word": "tuned"},
                on_update=updates,
            )
            assert trained["status"] == "succeeded", trained
            assert "training for 2 epochs" in trained["logs"]
            uri = trained["output"]["weights"]
            assert uri.startswith("data:text/plain;base64,")
            weights = tmp_path / "weights.txt"
            weights.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
            assert weights.read_text() == "tuned tuned"
            assert any(u["status"] == "processing" for u in updates.items)

            with pytest.raises(InvalidInput, match="epochs: 9 is greater than the maximum of 3"):
                await pool.run(
                    "v1:train", folder, mode="train", prediction_id="t2", input={"epochs": 9}
                )

            base = await pool.run(
                "v1:predict", folder, mode="predict", prediction_id="p0", input={"prefix": "> "}
            )
            tuned = await pool.run(
                "v2:predict",
                folder,
                mode="predict",
                prediction_id="p1",
                input={"prefix": "> "},
                env={"COG_WEIGHTS": str(weights)},
            )
            assert (base["output"], tuned["output"]) == ("> base", "> tuned tuned")
            assert len(pool.processes()) == 6  # three runners, each coglet + worker
        finally:
            await pool.close()

    run_async(scenario)


def test_file_input_and_output_as_data_uris(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            document = "data:text/plain;base64," + base64.b64encode(b"hello").decode()
            result = await pool.run(
                "files",
                build("files"),
                mode="predict",
                prediction_id="f1",
                input={"document": document, "suffix": "?"},
            )
            assert result["status"] == "succeeded", result
            mime, _, payload = result["output"].partition(";base64,")
            assert mime == "data:text/plain"
            assert base64.b64decode(payload) == b"HELLO?"
            assert "read 5 characters" in result["logs"]
            # The predictor's temporary files are in its runner's own folder, not in
            # the system's, and go when the runner stops. Where the runner has a /tmp
            # of its own (test_runner_tmp.py), they never reach the host at all.
            found = re.search(r"wrote (\S+)", result["logs"])
            assert found, result["logs"]
            written = Path(found.group(1))
            runner_tmp = written.parent.parent  # <runner tmp>/<mkdtemp>/shout.txt
            assert runner_tmp.name.startswith("tmp-")
            assert runner_tmp.parent != Path(tempfile.gettempdir())
            assert runner_tmp.is_dir()
            pool.idle_timeout = 0
            await pool.stop_idle()
            assert not runner_tmp.exists()
        finally:
            await pool.close()

    run_async(scenario)


def test_idle_runners_are_stopped(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool(idle_timeout=3600)
        try:
            first = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="i1", input={"text": "a"}
            )
            pids = pool.processes()
            await pool.stop_idle()
            assert pool.processes() == pids  # not idle long enough
            pool.idle_timeout = 0
            await pool.stop_idle()
            assert pool.processes() == []
            assert all(gone(pid) for pid in pids)
            again = await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="i2", input={"text": "b"}
            )
            assert again["output"]["pid"] != first["output"]["pid"]
            assert again["output"]["setup_calls"] == 1
        finally:
            await pool.close()

    run_async(scenario)


def test_background_task_stops_idle_runner(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool(idle_timeout=0.2)
        try:
            await pool.run(
                "echo", build("echo"), mode="predict", prediction_id="b1", input={"text": "a"}
            )
            pids = pool.processes()
            assert pids
            deadline = time.monotonic() + 10
            # Idleness is a timer inside the pool; watch for its effect.
            while pool.processes() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert pool.processes() == []
            assert all(gone(pid) for pid in pids)
        finally:
            await pool.close()

    run_async(scenario)


def test_close_stops_everything_including_work_in_flight(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        updates = Updates()
        await pool.run(
            "echo", build("echo"), mode="predict", prediction_id="c1", input={"text": "a"}
        )
        slow = asyncio.create_task(
            pool.run(
                "slow",
                build("slow"),
                mode="predict",
                prediction_id="c2",
                input={"steps": 2000},
                on_update=updates,
            )
        )
        await updates.wait_for(lambda u: u["status"] == "processing")
        pids = pool.processes()
        assert len(pids) == 4
        await pool.close()
        assert all(gone(pid) for pid in pids), [p for p in pids if not gone(p)]
        assert pool.processes() == []
        result = await slow
        # coglet answers the dropped request itself ("Worker crashed") as it shuts down.
        assert result["status"] == "failed"
        assert result["error"]

    run_async(scenario)


def test_coglet_dies_with_its_parent(build: Callable[[str], Path], tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from pathlib import Path
        from cogfleet.server._runner import RunnerPool

        async def main():
            pool = RunnerPool()
            await pool.run("echo", Path({str(build("echo"))!r}), mode="predict",
                           prediction_id="x", input={{"text": "a"}})
            print(" ".join(map(str, pool.processes())), flush=True)
            os._exit(0)  # die abruptly: no close(), no cleanup

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    # The kernel delivers the death signal; the worker notices its server is gone.
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)


def test_cog_yaml_without_train_is_a_config_error(build: Callable[[str], Path]) -> None:
    async def scenario() -> None:
        pool = RunnerPool()
        try:
            with pytest.raises(ConfigError, match=r"cog.yaml: train: not set"):
                await pool.run("e", build("echo"), mode="train", prediction_id="t", input={})
            assert pool.processes() == []
        finally:
            await pool.close()

    run_async(scenario)
