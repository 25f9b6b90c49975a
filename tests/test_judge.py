"""The AI judge: deterministic facts, and the Anthropic client against a local Messages API."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import anthropic
import httpx
import pytest
from PIL import Image

from cogfleet._checks import CheckResult, OutputFile
from cogfleet._errors import RemoteError, UsageError
from cogfleet._images import image_info, images_match, to_api_image
from cogfleet._judge import (
    DEFAULT_MODEL,
    AnthropicJudge,
    judge_from_env,
    parse_verdict,
)
from cogfleet._judge_facts import check_facts
from tests.fakes.anthropic_server import FakeAnthropic, default_responder

YES = '{"verdict": "yes", "reason": "looks right"}'
NO = '{"verdict": "no", "reason": "wrong subject"}'


def image_file(size: tuple[int, int] = (256, 256), fmt: str = "PNG", name: str = "") -> OutputFile:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format=fmt)
    ext = {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
    mime = {"jpg": "image/jpeg", "tif": "image/tiff"}.get(ext, f"image/{ext}")
    return OutputFile(name=name or f"out.{ext}", data=buf.getvalue(), content_type=mime)


PNG256 = image_file()
WEBP256 = image_file(fmt="WEBP")
JPG1024 = image_file((1024, 1024), "JPEG")
WAV = OutputFile(name="out.wav", data=b"RIFF" + b"\0" * 40, content_type="audio/wav")
# A JPEG named .png: the format is read from the bytes, not the name.
MISNAMED = OutputFile(name="out.png", data=JPG1024.data, content_type="image/png")


def refs(n: int) -> list[str]:
    return [f"https://files.test/{i}.bin" for i in range(n)]


# (prompt, output, files) -> (verdict: True/False/None for "ask the AI", message part)
FACT_CASES: list[tuple[str, Any, list[OutputFile], bool | None, str]] = [
    ("a 256x256px webp image", refs(1), [WEBP256], True, "webp"),
    ("a 256x256px webp image", refs(1), [PNG256], False, "expected a webp file, got png"),
    ("a 1024x1024px jpg image", refs(1), [JPG1024], True, "1024x1024"),
    ("a 1024x1024px jpg image", refs(1), [MISNAMED], True, "jpg"),
    ("a 1024x1024px jpeg image", refs(1), [PNG256], False, "expected a jpg file, got png"),
    ("a 512x512 image", refs(1), [PNG256], False, "expected a 512x512 image, got 256x256"),
    ("256x256", refs(1), [PNG256], True, "256x256"),
    ("256 × 256 pixels", refs(1), [PNG256], True, "256x256"),
    ("two png images", refs(2), [PNG256, PNG256], True, "2 outputs"),
    ("four png images", refs(1), [PNG256], False, "expected 4 outputs, got 1"),
    ("2 images", refs(3), [PNG256] * 3, False, "expected 2 outputs, got 3"),
    ("one image", refs(1), [PNG256], True, "1 output"),
    ("ONE PNG IMAGE.", refs(1), [PNG256], True, "png"),
    ("an image", "just text", [], False, "expected an image, got no file output"),
    ("a png", "just text", [], False, "expected a png file, got no file output"),
    ("an image", refs(1), [WAV], False, "expected an image, got out.wav"),
    ("a wav file", refs(1), [WAV], True, "wav"),
    ("three outputs", ["a", "b", "c"], [], True, "3 outputs"),
    ("2 outputs", ["caption", refs(1)[0]], [PNG256], True, "2 outputs"),
    ("two images", {"image": refs(2)[0], "mask": refs(2)[1]}, [PNG256] * 2, True, "2 outputs"),
    # Anything beyond verifiable facts is left to the AI ...
    ("an image of a cat", refs(1), [PNG256], None, ""),
    ("two png images of cats", refs(2), [PNG256, PNG256], None, ""),
    ("a png or jpg image", refs(1), [JPG1024], None, ""),
    ("at least 2 images", refs(1), [PNG256], None, ""),
    ("two or three images", refs(1), [PNG256], None, ""),
    ("a picture named cat.png", refs(1), [JPG1024], None, ""),
    ("a haiku about the sea", "waves...", [], None, ""),
    # ... and negations are never read as facts.
    ("an image that is not a png", refs(1), [PNG256], None, ""),
    ("no watermark, 256x256", refs(1), [PNG256], None, ""),
    # ... but facts in a longer prompt still fail fast when contradicted.
    ("four png images of a cat", refs(1), [PNG256], False, "expected 4 outputs, got 1"),
    ("a webp image of a cat", refs(1), [PNG256], False, "expected a webp file, got png"),
]


@pytest.mark.parametrize(("prompt", "output", "files", "verdict", "message"), FACT_CASES)
def test_check_facts(
    prompt: str, output: Any, files: list[OutputFile], verdict: bool | None, message: str
) -> None:
    result, unverified = check_facts(prompt, output, files)
    if verdict is None:
        assert result is None
        assert unverified
    else:
        assert result is not None
        assert result.passed is verdict
        assert message in result.message
        assert not unverified


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"verdict": "yes", "reason": "a cat"}', (True, "a cat")),
        ('```json\n{"verdict": "NO", "reason": "a dog"}\n```', (False, "a dog")),
        ('Sure. {"verdict": "no", "reason": "x"} Hope that helps', (False, "x")),
        ('{"verdict": "yes", "reason": "bad json"', (True, "")),
        ("YES", (True, "")),
        ("No. The image shows a dog.", (False, "The image shows a dog.")),
        ("I cannot tell", None),
        ('{"answer": 1}', None),
    ],
)
def test_parse_verdict(answer: str, expected: tuple[bool, str] | None) -> None:
    assert parse_verdict(answer) == expected


# --- AnthropicJudge against the local Messages API ---------------------------------


def test_judge_majority_and_early_stop() -> None:
    with FakeAnthropic(responder=[YES, NO, YES, NO, NO]) as fake:
        with AnthropicJudge(
            api_key=fake.api_key, base_url=fake.base_url, votes=3, model="claude-test-1"
        ) as judge:
            first = judge("an image of a lake", ["https://x.test/a.png"], [PNG256])
            assert len(fake.requests) == 3
            second = judge("an image of a lake", ["https://x.test/a.png"], [PNG256])
        requests = fake.requests
    assert first == CheckResult(True, first.message)
    assert "2 yes, 1 no" in first.message
    # NO, NO: a majority after two answers, the third is not asked.
    assert not second.passed and "0 yes, 2 no" in second.message
    assert len(requests) == 5
    body = requests[0].body
    assert body is not None
    assert body["model"] == "claude-test-1"
    assert body["max_tokens"] > 0
    assert "verdict" in body["system"]


def test_judge_single_vote() -> None:
    with FakeAnthropic(responder=[NO]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=1) as judge:
            result = judge("a poem", "roses are red", [])
        assert len(fake.requests) == 1
        assert '"roses are red"' in fake.requests[0].text()
        assert fake.requests[0].images() == []
    assert not result.passed and "wrong subject" in result.message


def test_judge_reasks_unreadable_answers_then_gives_up() -> None:
    with FakeAnthropic(responder=["hmm", YES, "??", YES]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=3) as judge:
            assert judge("text", "t", []).passed
        assert len(fake.requests) == 4
    with FakeAnthropic(responder=["hmm"] * 5) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=1) as judge:
            with pytest.raises(RemoteError, match="answer is not a yes/no verdict: hmm"):
                judge("text", "t", [])
        assert len(fake.requests) == 2


def test_judge_attaches_text_files_and_describes_others() -> None:
    note = OutputFile(name="out.txt", data=b"hello from the model", content_type="text/plain")
    with FakeAnthropic(responder=[YES, YES]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url) as judge:
            judge("a greeting", refs(2), [note, WAV])
        text = fake.requests[0].text()
    assert "hello from the model" in text
    assert "name: out.wav; content type: audio/wav; size: 44 bytes (content not attached)" in text
    assert "[file 1]" in text and "[file 2]" in text


def test_judge_compare_labels_both_sides() -> None:
    with FakeAnthropic(responder=[YES, YES]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url) as judge:
            result = judge.compare(refs(1), refs(1), [PNG256], [WEBP256])
        request = fake.requests[0]
    assert result.passed and "outputs equivalent" in result.message
    media = [i["source"]["media_type"] for i in request.images()]
    assert media == ["image/png", "image/webp"]
    text = request.text()
    assert "[A file 1]" in text and "[B file 1]" in text
    assert "no fixed random seed" in text


def test_judge_propose_returns_text() -> None:
    with FakeAnthropic(responder=lambda body: "echo: " + body["messages"][0]["content"]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url) as judge:
            assert judge.propose("give me inputs") == "echo: give me inputs"
        body = fake.requests[0].body
        assert body is not None and "system" not in body


def test_auth_failure_is_remote_error() -> None:
    with FakeAnthropic(responder=[YES]) as fake:
        judge = AnthropicJudge(api_key="sk-ant-not-this-one", base_url=fake.base_url)
        with pytest.raises(RemoteError) as info:
            judge("a cat", "x", [])
        judge.close()
        # Authentication errors are not retried.
        assert len(fake.requests) == 1
    message = str(info.value)
    assert message == "AI judge: HTTP 401 authentication_error: invalid x-api-key"
    assert "sk-ant-not-this-one" not in message + repr(judge)


def test_retry_on_overload_then_success() -> None:
    with FakeAnthropic(responder=[YES], fail_first=1, fail_status=529) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=1) as judge:
            assert judge("a cat", "x", []).passed
        assert [r.status for r in fake.requests] == [529, 200]
        assert fake.requests[1].headers["x-stainless-retry-count"] == "1"


def test_persistent_server_errors_become_remote_error() -> None:
    with FakeAnthropic(responder=[YES], fail_first=10, fail_status=500, retry_after_ms=1) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, max_retries=2) as judge:
            with pytest.raises(RemoteError, match="HTTP 500 api_error: Internal server error"):
                judge("a cat", "x", [])
        assert [r.status for r in fake.requests] == [500, 500, 500]


def test_unreachable_api_is_remote_error() -> None:
    with FakeAnthropic() as fake:
        url = fake.base_url
    with AnthropicJudge(api_key="k", base_url=url, max_retries=0) as judge:
        with pytest.raises(RemoteError, match=r"AI judge: cannot reach http://127\.0\.0\.1"):
            judge.propose("hi")


def test_judge_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert judge_from_env() is None
    with FakeAnthropic(responder=[YES, YES]) as fake:
        assert fake.api_key is not None
        env = {
            "ANTHROPIC_API_KEY": fake.api_key,
            "ANTHROPIC_BASE_URL": fake.base_url,
            "COGFLEET_JUDGE_MODEL": "claude-env-model",
            "COGFLEET_JUDGE_VOTES": "1",
        }
        judge = judge_from_env(environ=env)
        assert judge is not None
        assert (judge.model, judge.votes) == ("claude-env-model", 1)
        assert fake.api_key not in repr(judge)
        assert judge("a cat", "x", []).passed
        judge.close()
        body = fake.requests[0].body
        assert body is not None and body["model"] == "claude-env-model"
        # Through the process environment too, with explicit arguments winning.
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        judge = judge_from_env(model="claude-arg", votes=5)
        assert judge is not None and (judge.model, judge.votes) == ("claude-arg", 5)
        judge.close()
    defaults = judge_from_env(environ={"ANTHROPIC_API_KEY": "k"})
    assert defaults is not None and (defaults.model, defaults.votes) == (DEFAULT_MODEL, 3)
    defaults.close()
    with pytest.raises(UsageError, match="COGFLEET_JUDGE_VOTES must be a positive integer"):
        judge_from_env(environ={"ANTHROPIC_API_KEY": "k", "COGFLEET_JUDGE_VOTES": "lots"})


def test_default_model_is_not_deprecated() -> None:
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    assert DEFAULT_MODEL not in DEPRECATED_MODELS


# --- image helpers ----------------------------------------------------------------


def test_to_api_image_converts_and_scales() -> None:
    tiff = image_file((64, 32), "TIFF")
    media_type, data = to_api_image(tiff.data) or ("", b"")
    assert media_type == "image/png"
    assert Image.open(io.BytesIO(data)).size == (64, 32)
    assert to_api_image(PNG256.data) == ("image/png", PNG256.data)
    big = image_file((3000, 1500), "PNG")
    media_type, data = to_api_image(big.data) or ("", b"")
    assert Image.open(io.BytesIO(data)).size == (1568, 784)
    assert to_api_image(b"not an image") is None


def test_images_match_and_info() -> None:
    info = image_info(JPG1024.data)
    assert info is not None and (info.format, info.size) == ("jpg", "1024x1024")
    assert image_info(WAV.data) is None
    assert images_match(PNG256.data, PNG256.data)[0]
    assert images_match(PNG256.data, WAV.data) == (False, "the output file is not a readable image")


# --- the fake itself speaks the protocol -------------------------------------------


def _post(fake: FakeAnthropic, body: Any, **headers: str) -> httpx.Response:
    base = {"x-api-key": fake.api_key or "", "anthropic-version": "2023-06-01"}
    return httpx.post(f"{fake.base_url}/v1/messages", json=body, headers={**base, **headers})


def test_fake_validates_requests() -> None:
    png = base64.b64encode(PNG256.data).decode()
    with FakeAnthropic(responder=[YES]) as fake:
        missing = _post(fake, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert missing.status_code == 400
        assert missing.json()["error"] == {
            "type": "invalid_request_error",
            "message": "max_tokens: Field required",
        }
        lying = _post(
            fake,
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/jpeg",
                                    "data": png,
                                },
                            }
                        ],
                    }
                ],
            },
        )
        assert lying.status_code == 400
        assert "does not match the provided media type" in lying.json()["error"]["message"]
        bmp = _post(
            fake,
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": png,
                                },
                            }
                        ],
                    }
                ],
            },
        )
        assert bmp.status_code == 400
        no_version = httpx.post(
            f"{fake.base_url}/v1/messages", headers={"x-api-key": fake.api_key or ""}, json={}
        )
        assert no_version.status_code == 400
        assert no_version.json()["error"]["message"] == "anthropic-version: header is required"
        no_key = _post(fake, {}, **{"x-api-key": ""})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["type"] == "authentication_error"
        ok = _post(
            fake, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert ok.status_code == 200
        answer = ok.json()
        assert answer["type"] == "message" and answer["role"] == "assistant"
        assert answer["content"] == [{"type": "text", "text": YES}]
        assert answer["stop_reason"] == "end_turn" and answer["id"].startswith("msg_")
        assert answer["usage"]["input_tokens"] > 0
        exhausted = _post(
            fake, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert exhausted.status_code == 500
        assert exhausted.headers["x-should-retry"] == "false"


def test_fake_latency_and_official_client() -> None:
    with FakeAnthropic(latency=0.3) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url)
        start = time.monotonic()
        message = client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hello"}]
        )
        assert time.monotonic() - start >= 0.3
        client.close()
    assert message.content[0].type == "text"
    assert message.content[0].text == "yes"


def test_default_responder_answers_judges_and_fuzzers() -> None:
    judge_body = {
        "system": 'Answer {"verdict": "yes" or "no"}',
        "messages": [{"role": "user", "content": "is it a cat?"}],
    }
    assert json.loads(default_responder(judge_body))["verdict"] == "yes"
    schema = {
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "properties": {
                        "prompt": {"type": "string"},
                        "steps": {"type": "integer", "minimum": 1, "maximum": 4, "default": 4},
                        "mode": {"allOf": [{"enum": ["fast", "slow"]}]},
                    },
                }
            }
        }
    }
    fuzz_body = {
        "messages": [
            {
                "role": "user",
                "content": f"Schema: {json.dumps(schema)}\nGive 4 sets of inputs as JSON.",
            }
        ]
    }
    batch = json.loads(default_responder(fuzz_body))
    assert len(batch) == 4
    assert batch[0]["steps"] == 4
    assert all(1 <= b["steps"] <= 4 and b["mode"] in ("fast", "slow") for b in batch)
    assert all(isinstance(b["prompt"], str) for b in batch)


# ------------------------------------------------------------------ the client in its own process
PUSH_PROBE = """\
import json, sys
from cogfleet._judge import judge_from_env
from cogfleet._judge_process import judge_process
with judge_process() as process:
    judge = judge_from_env(process=process)
    verdict = judge("a cat", "x", []) if judge is not None else None
print(json.dumps({"process": process is not None, "loaded": "anthropic" in sys.modules,
                  "passed": verdict.passed if verdict else None}))
"""


@pytest.mark.parametrize("key", ["fake", "", "  "])
def test_the_client_loads_in_a_process_of_its_own_only_with_a_key(key: str) -> None:
    """A push starts the judge process first thing when a judge can be made; its own
    interpreter never imports the client. Without a key nothing starts."""
    with FakeAnthropic(responder=[YES, YES]) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": fake.api_key if key == "fake" else key,
               "ANTHROPIC_BASE_URL": fake.base_url}
        proc = subprocess.run([sys.executable, "-c", PUSH_PROBE], capture_output=True,
                              text=True, timeout=180, check=False, env=env)
        assert proc.returncode == 0, proc.stderr
        judged = key == "fake"
        assert json.loads(proc.stdout) == {
            "process": judged, "loaded": False, "passed": True if judged else None
        }
        assert len(fake.answered) == (2 if judged else 0)
