"""The judge process: the Anthropic client in a worker that a push starts first thing.

The worker is the real ``python -m cogfleet._judge_process`` talking to the fake
Messages API over HTTP; the command's side is :class:`JudgeProcess` as a push uses it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cogfleet._errors import RemoteError
from cogfleet._judge import AnthropicJudge, judge_from_env
from cogfleet._judge_process import JudgeProcess, judge_process, running
from tests.fakes.anthropic_server import FakeAnthropic

YES = '{"verdict": "yes", "reason": "it is"}'


def _client(fake: FakeAnthropic, **extra: object) -> dict[str, object]:
    return {"api_key": fake.api_key, "base_url": fake.base_url, "timeout": 30.0,
            "max_retries": 0, **extra}


def _ask(process: JudgeProcess, client: dict[str, object], text: str) -> str:
    return process.call(client, {"model": "claude-test", "max_tokens": 64,
                                 "content": text, "system": None})


def _ask_at_once(fake: FakeAnthropic, questions: dict[str, str]) -> dict[str, str]:
    """Each question from a thread of its own, all at once, through one worker."""
    process = JudgeProcess()
    try:
        answers: dict[str, str] = {}

        def ask(key: str, text: str) -> None:
            answers[key] = _ask(process, _client(fake), text)

        threads = [threading.Thread(target=ask, args=item) for item in questions.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        process.close()
    return answers


def test_requests_run_concurrently_and_answers_reach_their_callers() -> None:
    with FakeAnthropic(responder=lambda body: "echo " + body["messages"][0]["content"],
                       latency=1.0) as fake:
        answers = _ask_at_once(fake, {str(n): f"question {n}" for n in range(4)})
        assert answers == {str(n): f"echo question {n}" for n in range(4)}
        # all four waited on the API at once: the worker does not serialize requests
        assert fake.max_in_flight == 4


def test_a_request_of_megabytes_goes_through_among_others() -> None:
    big = "x" * 4_000_000  # attached images make requests of this size
    with FakeAnthropic(responder=lambda body: str(len(body["messages"][0]["content"])),
                       latency=0.2) as fake:
        answers = _ask_at_once(fake, {"big": big, "a": "small", "b": "tiny"})
    assert answers == {"big": "4000000", "a": "5", "b": "4"}


def test_api_errors_come_back_as_the_same_remote_error() -> None:
    with FakeAnthropic(responder=[YES]) as fake, judge_process({"ANTHROPIC_API_KEY": "x"}) as p:
        assert p is not None and running() is p
        judge = AnthropicJudge(api_key="sk-ant-not-this-one", base_url=fake.base_url,
                               process=p)
        with pytest.raises(RemoteError) as info:
            judge("a cat", "x", [])
    assert str(info.value) == "AI judge: HTTP 401 authentication_error: invalid x-api-key"
    assert running() is None


def test_a_judge_from_the_environment_uses_the_running_process() -> None:
    with FakeAnthropic(responder=[YES, YES]) as fake:
        env = {"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url}
        with judge_process(env) as p:
            assert p is not None
            judge = judge_from_env(environ=env, process=running())
            assert judge is not None
            result = judge("a cat", "x", [])
            assert p._proc.poll() is None
        assert result.passed and "2 yes, 0 no" in result.message
        assert len(fake.answered) == 2
        assert p._proc.poll() is not None  # ended with the block


def test_without_a_key_nothing_starts() -> None:
    for env in ({}, {"ANTHROPIC_API_KEY": "  "}):
        with judge_process(env) as p:
            assert p is None and running() is None


def test_a_frozen_program_keeps_the_client_in_its_own_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.executable is the program itself there: it cannot run the worker module
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with judge_process({"ANTHROPIC_API_KEY": "k"}) as p:
        assert p is None and running() is None


def test_the_working_directory_cannot_shadow_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user's repo with a module named like the client's package runs the push from
    # its root; the worker does not put that folder on its path.
    (tmp_path / "anthropic.py").write_text("raise ImportError('the repo module')\n")
    monkeypatch.chdir(tmp_path)
    with FakeAnthropic(responder=["fine"]) as fake:
        process = JudgeProcess()
        try:
            assert _ask(process, _client(fake), "hello") == "fine"
        finally:
            process.close()


def test_a_worker_that_cannot_load_the_client_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "site" / "anthropic"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('no client here')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    ))
    process = JudgeProcess()
    try:
        with pytest.raises(RemoteError) as info:
            _ask(process, {"api_key": "k", "base_url": None, "timeout": 5.0,
                           "max_retries": 0}, "hello")
        # and every later request gets the same answer at once
        with pytest.raises(RemoteError, match="no client here"):
            _ask(process, {"api_key": "k", "base_url": None, "timeout": 5.0,
                           "max_retries": 0}, "again")
    finally:
        process.close()
    assert str(info.value) == "AI judge: cannot load the anthropic client: no client here"


def test_ctrl_c_is_left_to_the_command() -> None:
    with FakeAnthropic(responder=lambda body: "still here") as fake:
        process = JudgeProcess()
        try:
            assert _ask(process, _client(fake), "first") == "still here"
            os.kill(process.pid, signal.SIGINT)
            assert _ask(process, _client(fake), "after ctrl-c") == "still here"
        finally:
            process.close()


ORPHAN_PROBE = textwrap.dedent("""\
    import json, sys, time
    from cogfleet._judge_process import JudgeProcess
    process = JudgeProcess()
    print(json.dumps({"worker": process.pid}), flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on a pidfd (Linux)")
def test_the_worker_ends_when_the_command_is_killed() -> None:
    command = subprocess.Popen([sys.executable, "-c", ORPHAN_PROBE], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert command.stdout is not None
        worker = os.pidfd_open(json.loads(command.stdout.readline())["worker"])
        try:
            command.kill()  # no chance to close anything: the worker's stdin reaches EOF
            command.wait(30)
            # a pidfd becomes readable when its process ends (the worker is not our child)
            ended, _, _ = select.select([worker], [], [], 60)
            assert ended == [worker], "the worker outlived its command"
        finally:
            os.close(worker)
    finally:
        command.kill()
        command.wait()


def test_lines_that_are_not_answers_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Something in the worker's interpreter prints to stdout as it starts.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('hello from a site hook')\nprint('[1, 2]')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    ))
    with FakeAnthropic(responder=lambda body: "answer") as fake:
        process = JudgeProcess()
        try:
            assert _ask(process, _client(fake), "hello") == "answer"
        finally:
            process.close()


def test_closing_a_worker_that_is_still_loading_ends_it_at_once() -> None:
    # A command that fails early (a bad config) does not wait for the client's import.
    process = JudgeProcess()
    process.close()
    assert process._proc.returncode == -signal.SIGTERM
    with pytest.raises(RemoteError, match="judge process ended"):
        _ask(process, {"api_key": "k", "base_url": None, "timeout": 5.0, "max_retries": 0}, "x")
