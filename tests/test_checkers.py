"""The five built-in checkers, on real images, real jq and the fake Anthropic API."""

from __future__ import annotations

import base64
import io
import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cogfleet._checks import CheckContext, Checker, CheckResult, OutputFile, decode_data_uri
from cogfleet._judge import AnthropicJudge
from cogfleet._plugins import Plugins
from cogfleet.builtins import checkers as builtin_checkers
from cogfleet.builtins.checkers import JUDGE_NOT_CONFIGURED
from tests.fakes.anthropic_server import FakeAnthropic

CHECKERS: dict[str, Checker] = {c.name: c for c in builtin_checkers.CHECKERS}
YES = '{"verdict": "yes", "reason": "it is a cat"}'
NO = '{"verdict": "no", "reason": "it is a dog"}'


def image_bytes(
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (200, 30, 30),
    fmt: str = "PNG",
    **save: Any,
) -> bytes:
    img = Image.new("RGB", size, color)
    # A gradient stripe makes the picture non-uniform, so lossy codecs actually work on it.
    for x in range(size[0]):
        img.putpixel((x, 0), (x % 256, 0, 255 - x % 256))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png_uri(**kw: Any) -> str:
    return data_uri(image_bytes(fmt="PNG", **kw), "image/png")


def make_reader(root: Path) -> Callable[[str], OutputFile]:
    """A FileReader for data URIs and repo-relative paths, counting reads."""

    def read(ref: str) -> OutputFile:
        if ref.startswith("data:"):
            return decode_data_uri(ref)
        path = root / ref
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return OutputFile(name=path.name, data=path.read_bytes(), content_type=mime)

    return read


@pytest.fixture
def ctx(tmp_path: Path) -> Callable[..., CheckContext]:
    def _make(
        expected: Any,
        output: Any = None,
        *,
        status: str = "succeeded",
        error: str | None = None,
        judge: Any = None,
    ) -> CheckContext:
        return CheckContext(
            expected=expected,
            inputs={"prompt": "x"},
            output=output,
            error=error,
            status=status,
            prediction={"id": "p1", "status": status},
            read_file=make_reader(tmp_path),
            judge=judge,
            repo_root=tmp_path,
        )

    return _make


def run(name: str, context: CheckContext) -> CheckResult:
    return CHECKERS[name].check(context)


def test_plugin_registers_five_described_checkers() -> None:
    found = Plugins().checkers()
    names = {"exact_string", "match_url", "match_prompt", "jq_query", "error_contains"}
    assert names <= set(found)
    for name in names:
        assert found[name].description
    assert found["error_contains"].expects_failure
    assert not found["exact_string"].expects_failure


# --- exact_string -----------------------------------------------------------------


def test_exact_string_passes_on_equal_string(ctx: Callable[..., CheckContext]) -> None:
    assert run("exact_string", ctx("hello:4", "hello:4")).passed


def test_exact_string_needs_a_string_output_as_cog_safe_push(
    ctx: Callable[..., CheckContext],
) -> None:
    one_item = run("exact_string", ctx("hello", ["hello"]))
    assert (one_item.passed, one_item.message) == (
        False, """expected the string 'hello', got ["hello"]""")
    number = run("exact_string", ctx("42", 42))
    assert (number.passed, number.message) == (False, "expected the string '42', got 42")


def test_exact_string_fails_with_expected_and_got(ctx: Callable[..., CheckContext]) -> None:
    result = run("exact_string", ctx("hello", "hullo"))
    assert not result.passed
    assert "'hello'" in result.message and "'hullo'" in result.message


def test_exact_string_truncates_long_outputs(ctx: Callable[..., CheckContext]) -> None:
    result = run("exact_string", ctx("short", "y" * 5000))
    assert not result.passed
    assert len(result.message) < 400


def test_exact_string_value_must_be_a_yaml_string() -> None:
    validate = CHECKERS["exact_string"].validate
    assert validate is not None
    validate("42")
    for value, shown in ((42, '42 (write it quoted: "42")'),
                         (True, 'true (write it quoted: "true")')):
        with pytest.raises(ValueError) as info:
            validate(value)
        assert str(info.value) == f"exact_string must be a string, got {shown}"


def test_exact_string_rejects_structured_output(ctx: Callable[..., CheckContext]) -> None:
    result = run("exact_string", ctx("a", ["a", "b"]))
    assert not result.passed
    assert "expected the string" in result.message


def test_exact_string_fails_on_failed_prediction(ctx: Callable[..., CheckContext]) -> None:
    result = run("exact_string", ctx("a", None, status="failed", error="CUDA out of memory"))
    assert not result.passed
    assert result.message == "prediction failed: CUDA out of memory"


def test_exact_string_validate_rejects_lists() -> None:
    validate = CHECKERS["exact_string"].validate
    assert validate is not None
    validate("ok")
    with pytest.raises(ValueError, match="must be a string"):
        validate(["a"])


# --- match_url --------------------------------------------------------------------


def test_match_url_identical_png(ctx: Callable[..., CheckContext]) -> None:
    uri = png_uri()
    result = run("match_url", ctx(uri, uri))
    assert result.passed, result.message


def test_match_url_reads_expected_from_repo_path(
    ctx: Callable[..., CheckContext], tmp_path: Path
) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "cat.png").write_bytes(image_bytes())
    assert run("match_url", ctx("fixtures/cat.png", [png_uri()])).passed


def test_match_url_tolerates_lossy_reencoding(ctx: Callable[..., CheckContext]) -> None:
    expected = data_uri(image_bytes(fmt="JPEG", quality=95), "image/jpeg")
    got = data_uri(image_bytes(fmt="JPEG", quality=70), "image/jpeg")
    assert expected != got
    result = run("match_url", ctx(expected, got))
    assert result.passed, result.message


def test_match_url_size_mismatch(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_url", ctx(png_uri(size=(64, 48)), png_uri(size=(48, 64))))
    assert not result.passed
    assert result.message == "image sizes differ: expected 64x48, got 48x64"


def test_match_url_pixel_difference(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_url", ctx(png_uri(color=(200, 30, 30)), png_uri(color=(30, 30, 200))))
    assert not result.passed
    assert "mean pixel distance" in result.message


def test_match_url_extension_mismatch(ctx: Callable[..., CheckContext]) -> None:
    webp = data_uri(image_bytes(fmt="WEBP"), "image/webp")
    result = run("match_url", ctx(png_uri(), webp))
    assert not result.passed
    assert "expected a .png file" in result.message and ".webp" in result.message


def test_match_url_jpeg_and_jpg_are_one_extension(
    ctx: Callable[..., CheckContext], tmp_path: Path
) -> None:
    jpg = image_bytes(fmt="JPEG", quality=90)
    (tmp_path / "a.jpeg").write_bytes(jpg)
    assert run("match_url", ctx("a.jpeg", data_uri(jpg, "image/jpeg"))).passed


def test_match_url_non_image_compares_type_only(
    ctx: Callable[..., CheckContext], tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF" + b"\0" * 100)
    same = run("match_url", ctx("a.wav", data_uri(b"RIFF" + b"\0" * 100, "audio/x-wav")))
    assert same.passed and "identical" in same.message
    other = run("match_url", ctx("a.wav", data_uri(b"RIFF" + b"\1" * 50, "audio/x-wav")))
    assert other.passed and "not compared" in other.message
    mp3 = run("match_url", ctx("a.wav", data_uri(b"ID3" + b"\0" * 10, "audio/mpeg")))
    assert not mp3.passed


@pytest.mark.parametrize(("reference", "mime"), [
    ("a.ogg", "audio/ogg"), ("a.wav", "audio/wav"), ("a.wav", "audio/x-wav"),
    ("a.flac", "audio/x-flac"), ("a.m4a", "audio/x-m4a"), ("a.mp4", "video/mp4"),
])
def test_match_url_data_uri_output_has_the_usual_extension(
    ctx: Callable[..., CheckContext], tmp_path: Path, reference: str, mime: str
) -> None:
    # an output inlined as a data URI compares with a reference file of its usual name
    (tmp_path / reference).write_bytes(b"reference")
    result = run("match_url", ctx(reference, data_uri(b"output", mime)))
    assert result.passed, result.message


def test_match_url_needs_a_file_output(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_url", ctx(png_uri(), "just text"))
    assert not result.passed
    assert result.message.startswith("expected a file output")


def test_match_url_missing_expected_file(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_url", ctx("fixtures/none.png", png_uri()))
    assert not result.passed
    assert "cannot read the expected file fixtures/none.png" in result.message


def test_match_url_validate() -> None:
    validate = CHECKERS["match_url"].validate
    assert validate is not None
    validate("https://example.com/a.png")
    with pytest.raises(ValueError, match="non-empty string"):
        validate("")
    with pytest.raises(ValueError, match="invalid data URI"):
        validate("data:image/png;base64,abc")
    with pytest.raises(ValueError, match="holds no data"):
        validate("data:image/png;base64,")


# --- jq_query ---------------------------------------------------------------------


def test_jq_on_object(ctx: Callable[..., CheckContext]) -> None:
    output = {"images": ["a", "b"], "nsfw": False}
    assert run("jq_query", ctx(".images | length == 2", output)).passed
    failed = run("jq_query", ctx(".nsfw", output))
    assert not failed.passed
    assert "gave false" in failed.message


def test_jq_on_json_string(ctx: Callable[..., CheckContext]) -> None:
    output = json.dumps({"caption": "a cat", "score": 0.9})
    assert run("jq_query", ctx('.caption | contains("cat")', output)).passed
    assert not run("jq_query", ctx(".score > 0.95", output)).passed


def test_jq_empty_and_null_results_fail(ctx: Callable[..., CheckContext]) -> None:
    output = {"items": [], "name": None}
    assert not run("jq_query", ctx(".items", output)).passed
    assert not run("jq_query", ctx(".name", output)).passed
    no_result = run("jq_query", ctx(".items[]", output))
    assert not no_result.passed and "no result" in no_result.message


def test_jq_zero_fails_as_in_cog_safe_push(ctx: Callable[..., CheckContext]) -> None:
    output = {"count": 0, "score": 0.0, "faces": 2, "tags": {}}
    for query in (".count", ".score", ".tags", ".faces - 2"):
        result = run("jq_query", ctx(query, output))
        assert not result.passed, query
        assert result.message.startswith(f"jq {query!r} gave "), result.message
    assert run("jq_query", ctx(".faces", output)).passed
    assert run("jq_query", ctx(".count == 0", output)).passed


def test_jq_only_the_first_result_is_computed(ctx: Callable[..., CheckContext]) -> None:
    # As in cog-safe-push: the first result decides, and a later one jq cannot compute
    # (here indexing a number) is never reached.
    output = [{"score": 0.9}, 5]
    assert run("jq_query", ctx(".[] | .score > 0.5", output)).passed
    failed = run("jq_query", ctx(".[] | .score > 0.5", output[::-1]))
    assert not failed.passed and "Cannot index number" in failed.message


def test_jq_on_non_json_string(ctx: Callable[..., CheckContext]) -> None:
    result = run("jq_query", ctx(".a", "not json"))
    assert not result.passed
    assert result.message.startswith("output is not JSON")


def test_jq_runtime_error_is_a_failure(ctx: Callable[..., CheckContext]) -> None:
    result = run("jq_query", ctx(".a.b", {"a": 1}))
    assert not result.passed
    assert "Cannot index number" in result.message


def test_jq_reads_nothing_of_cogfleets_environment(
    ctx: Callable[..., CheckContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a query runs in a process without cogfleet's variables: no token reaches a report
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_jq-must-not-see-this")
    for query in ("$ENV.REPLICATE_API_TOKEN", "env.REPLICATE_API_TOKEN"):
        result = run("jq_query", ctx(query, {"a": 1}))
        assert not result.passed and result.message == f"jq {query!r} gave null on {{\"a\": 1}}"


@pytest.mark.parametrize("query", ["def f: f; f"])
def test_a_jq_query_that_never_ends_is_stopped(
    ctx: Callable[..., CheckContext], monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    from cogfleet.builtins import _jq_run

    monkeypatch.setattr(_jq_run, "SECONDS", 1.0)
    result = run("jq_query", ctx(query, {"a": 1}))
    assert not result.passed
    assert result.message == f"jq {query!r} failed: ran longer than 1 s and was stopped"


def test_a_jq_query_that_exhausts_memory_fails_the_case_not_the_run(
    ctx: Callable[..., CheckContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cogfleet.builtins import _jq_run

    monkeypatch.setattr(_jq_run, "MEMORY", 256 << 20)  # jq aborts its process at the limit
    query = 'reduce range(40) as $i ("xx"; . + .) | length'  # a string of 2 TiB
    result = run("jq_query", ctx(query, {"a": 1}))
    assert not result.passed
    assert result.message == f"jq {query!r} failed: cannot allocate memory"


def test_jq_validate_refuses_a_huge_query() -> None:
    validate = CHECKERS["jq_query"].validate
    assert validate is not None
    with pytest.raises(ValueError, match=r"^jq_query is 10001 characters long; at most 10000"):
        validate("." + " " * 10_000)


def test_jq_validate_rejects_bad_query_in_one_line() -> None:
    validate = CHECKERS["jq_query"].validate
    assert validate is not None
    validate(".a | length > 0")
    with pytest.raises(ValueError) as info:
        validate(".a[")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("jq_query '.a[' does not compile: syntax error")


# --- error_contains ---------------------------------------------------------------


def test_error_contains_on_failed_prediction(ctx: Callable[..., CheckContext]) -> None:
    context = ctx(
        "prompt is too long",
        None,
        status="failed",
        error="ValueError: prompt is too long (300 > 256)",
    )
    assert run("error_contains", context).passed


def test_error_contains_wrong_error(ctx: Callable[..., CheckContext]) -> None:
    result = run("error_contains", ctx("too long", None, status="failed", error="CUDA OOM"))
    assert not result.passed
    assert result.message == "expected the error to contain 'too long', got 'CUDA OOM'"


def test_error_contains_on_success(ctx: Callable[..., CheckContext]) -> None:
    result = run("error_contains", ctx("too long", "fine"))
    assert not result.passed
    assert result.message.startswith("expected the prediction to fail with 'too long'")


def test_error_contains_on_canceled(ctx: Callable[..., CheckContext]) -> None:
    result = run("error_contains", ctx("x", None, status="canceled"))
    assert not result.passed and "canceled" in result.message


# --- match_prompt -----------------------------------------------------------------


def test_match_prompt_facts_only_needs_no_judge(ctx: Callable[..., CheckContext]) -> None:
    webp = data_uri(image_bytes(size=(256, 256), fmt="WEBP"), "image/webp")
    result = run("match_prompt", ctx("a 256x256px webp image", [webp]))
    assert result.passed
    assert result.message.startswith("verified without AI")


def test_match_prompt_contradiction_makes_no_request(ctx: Callable[..., CheckContext]) -> None:
    with FakeAnthropic(responder=[YES, YES, YES]) as fake:
        judge = AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url)
        result = run("match_prompt", ctx("four png images of a cat", [png_uri()], judge=judge))
        judge.close()
        assert fake.requests == []
    assert not result.passed
    assert result.message == "expected 4 outputs, got 1"


def test_match_prompt_unverified_without_judge(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_prompt", ctx("a png image of a cat", [png_uri()]))
    assert not result.passed
    assert result.message == JUDGE_NOT_CONFIGURED


def test_match_prompt_failed_prediction(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_prompt", ctx("a cat", None, status="failed", error="boom"))
    assert result == CheckResult(False, "prediction failed: boom")


def test_match_prompt_asks_judge_with_images(ctx: Callable[..., CheckContext]) -> None:
    bmp = data_uri(image_bytes(fmt="BMP"), "image/bmp")
    with FakeAnthropic(responder=[YES, YES, YES]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=3) as judge:
            result = run("match_prompt", ctx("an image of a cat", [png_uri(), bmp], judge=judge))
        requests = fake.requests
    assert result.passed, result.message
    assert "it is a cat" in result.message
    # Two agreeing votes of three are a majority: the third is never asked.
    assert len(requests) == 2
    images = requests[0].images()
    assert [i["source"]["media_type"] for i in images] == ["image/png", "image/png"]
    for block in images:
        img = Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))
        assert img.size == (64, 48)
    text = requests[0].text()
    assert "an image of a cat" in text
    assert "dimensions: 64x48" in text and "image format: bmp" in text
    # Data URIs are replaced by placeholders, never sent as text.
    assert "base64," not in text


def test_match_prompt_majority_no(ctx: Callable[..., CheckContext]) -> None:
    with FakeAnthropic(responder=[NO, YES, NO, YES]) as fake:
        with AnthropicJudge(api_key=fake.api_key, base_url=fake.base_url, votes=3) as judge:
            result = run("match_prompt", ctx("an image of a cat", png_uri(), judge=judge))
        assert len(fake.requests) == 3
    assert not result.passed
    assert "1 yes, 2 no" in result.message and "it is a dog" in result.message


def test_match_prompt_judge_error_fails_case(ctx: Callable[..., CheckContext]) -> None:
    with FakeAnthropic(responder=[YES]) as fake:
        with AnthropicJudge(api_key="sk-ant-wrong", base_url=fake.base_url) as judge:
            result = run("match_prompt", ctx("a text about cats", "cats!", judge=judge))
    assert not result.passed
    assert result.message.startswith("AI judge: HTTP 401 authentication_error")
    assert "sk-ant-wrong" not in result.message


# --- behaviours found by mutation testing -------------------------------------------
# (`nox -s mutants`: each test fails on a small deliberate bug every other test let pass)


def test_messages_show_values_on_one_line_and_cut_at_the_limit() -> None:
    short = builtin_checkers._short
    assert short("x" * 200) == "x" * 200
    assert short("x" * 201) == "x" * 199 + "…"
    assert short("a\n  b\tc") == "a b c"
    assert short("a  b") == "a  b"  # spaces kept when the value is on one line already
    assert short({"a": b"x"}) == '{"a": "b\'x\'"}'  # not JSON: shown as text
    assert short("data:text/plain,a,b") == "data:text/plain,…"  # data URIs by type only


def test_exact_string_message_keeps_inner_spaces(ctx: Callable[..., CheckContext]) -> None:
    result = run("exact_string", ctx("a  b", "a b"))
    assert result.passed is False
    assert result.message == "expected 'a  b', got 'a b'"


def test_match_url_fails_a_prediction_that_did_not_succeed(
    ctx: Callable[..., CheckContext],
) -> None:
    result = run("match_url", ctx(png_uri(), png_uri(), status="failed", error="boom"))
    assert (result.passed, result.message) == (False, "prediction failed: boom")


@pytest.mark.parametrize("output", [{"image": "x"}, 5, ["a", "b"], "just text"])
def test_match_url_verdicts_are_false_not_merely_falsy(
    ctx: Callable[..., CheckContext], output: Any
) -> None:
    result = run("match_url", ctx(png_uri(), output))
    assert result.passed is False
    assert result.message == f"expected a file output, got {builtin_checkers._short(output)}"
    unreadable = run("match_url", ctx("fixtures/none.png", png_uri()))
    assert unreadable.passed is False


def test_match_url_names_a_missing_extension(
    ctx: Callable[..., CheckContext], tmp_path: Path
) -> None:
    (tmp_path / "noext").write_bytes(b"\x89PNG")
    result = run("match_url", ctx("noext", png_uri()))
    assert result.passed is False
    assert result.message == "expected a .? file like noext, got .png (output.png)"
    (tmp_path / "a.png").write_bytes(image_bytes())
    odd = run("match_url", ctx("a.png", "data:foo/bar;base64,AAAA"))
    assert odd.passed is False
    assert odd.message == "expected a .png file like a.png, got .? (output)"


def test_jq_errors_on_one_line() -> None:
    jq_error = builtin_checkers._jq_error
    assert jq_error(ValueError("jq: error: a\n  src\n  ^\njq: error: b X:")) == "a; b X"
    assert jq_error(ValueError("string (\"x\") and\nnumber (1) cannot be added")) == (
        'string ("x") and number (1) cannot be added'
    )
    assert jq_error(ValueError("jq: error: " + "y" * 300)) == "y" * 300
    assert jq_error(ValueError("jq: error: " + "y" * 301)) == "y" * 299 + "…"


def test_jq_validate_names_the_key() -> None:
    validate = CHECKERS["jq_query"].validate
    assert validate is not None
    with pytest.raises(ValueError, match=r"^jq_query must be a non-empty string, got $"):
        validate("")


def test_match_prompt_failures_say_the_judge_decided(ctx: Callable[..., CheckContext]) -> None:
    """A judge's "no", a judge that cannot answer and a missing judge are the judge's
    failures; a fact that does not hold is the checker's; a "yes" is the judge's own."""
    from cogfleet._errors import RemoteError

    output = [png_uri(size=(64, 48))]
    asked: list[tuple[str, Any, list[str]]] = []

    def no(prompt: str, out: Any, files: list[OutputFile]) -> CheckResult:
        asked.append((prompt, out, [f.name for f in files]))
        return CheckResult(False, "it is a dog")

    def broken(prompt: str, out: Any, files: list[OutputFile]) -> CheckResult:
        raise RemoteError("judge unreachable: 503")

    yes = CheckResult(True, "it is a cat")
    prompt = "a 64x48 png image of a cat"  # the size and type hold; "a cat" is the judge's
    missing = run("match_prompt", ctx(prompt, output))
    assert (missing.passed, missing.message, missing.error_kind) == (
        False, JUDGE_NOT_CONFIGURED, "judge")
    said_no = run("match_prompt", ctx(prompt, output, judge=no))
    assert (said_no.passed, said_no.message, said_no.error_kind) == (False, "it is a dog", "judge")
    assert asked == [(prompt, output, ["output.png"])]
    failed = run("match_prompt", ctx(prompt, output, judge=broken))
    assert (failed.passed, failed.message, failed.error_kind) == (
        False, "judge unreachable: 503", "judge")
    assert run("match_prompt", ctx(prompt, output, judge=lambda *_: yes)) is yes
    wrong_count = run("match_prompt", ctx("two images of a cat", output, judge=no))
    assert (wrong_count.passed, wrong_count.error_kind) == (False, None)
    assert len(asked) == 1


def test_match_prompt_counts_the_outputs_themselves(ctx: Callable[..., CheckContext]) -> None:
    result = run("match_prompt", ctx("two outputs", ["a", "b"]))
    assert (result.passed, result.message) == (True, "verified without AI: 2 outputs")


def test_a_failed_prediction_shows_its_error_up_to_500_characters(
    ctx: Callable[..., CheckContext],
) -> None:
    whole = run("exact_string", ctx("x", None, status="failed", error="e" * 500))
    assert whole.message == "prediction failed: " + "e" * 500
    cut = run("exact_string", ctx("x", None, status="failed", error="e" * 501))
    assert cut.message == "prediction failed: " + "e" * 499 + "…"


def test_exact_string_validate_shows_the_value() -> None:
    validate = CHECKERS["exact_string"].validate
    assert validate is not None
    with pytest.raises(ValueError, match=r"^exact_string must be a string, got \[1\]$"):
        validate([1])


def test_match_url_counts_transparency_when_both_images_have_it(
    ctx: Callable[..., CheckContext], tmp_path: Path
) -> None:
    """As cog-safe-push: two RGBA images with the same colours but another mask differ."""
    def rgba(alpha_right: int) -> bytes:
        img = Image.new("RGBA", (40, 20), (10, 200, 30, 255))
        img.paste((10, 200, 30, alpha_right), (20, 0, 40, 20))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    (tmp_path / "mask.png").write_bytes(rgba(255))
    same = run("match_url", ctx("mask.png", data_uri(rgba(255), "image/png")))
    assert same.passed, same.message
    other = run("match_url", ctx("mask.png", data_uri(rgba(0), "image/png")))
    # half the pixels differ by 255 in alpha only: a mean distance of 127.5
    assert (other.passed, other.message) == (
        False, "images differ: mean pixel distance 127.5 is above 8")
    # an image without transparency is compared on its colours only
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(buf, format="PNG")
    opaque = run("match_url", ctx("mask.png", data_uri(buf.getvalue(), "image/png")))
    assert (opaque.passed, opaque.message) == (True, "images match (mean pixel distance 0.0)")
