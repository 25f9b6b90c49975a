"""The HTML report: drawn from the JSON report, checked in a real headless Chromium.

The results here are built from the same dataclasses a run fills, with real encoded
images (large and small), a real WAV file, JSON and long text outputs, a real schema
difference and a failed output comparison, 200 test cases in all: the size of report
a person must still be able to read.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import re
import struct
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from cogfleet._html import PREVIEW_SIDE, THUMB_SIDE, Renderer, load_reports, render_html
from cogfleet._result import CaseResult, Comparison, FileComparison, RunResult, StepResult
from cogfleet.schema import schema_changes
from tests.browser import Browser, artifacts_dir, browser, launch_browser  # noqa: F401

CASES = 200


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def picture(size: tuple[int, int], seed: int, fmt: str = "PNG", **save: Any) -> bytes:
    """A picture that differs with ``seed``: a gradient and a few shapes."""
    width, height = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    for i in range(4):
        x, y = (seed * 37 + i * 101) % width, (seed * 53 + i * 67) % height
        r = max(4, min(width, height) // (6 + i))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((seed * 40) % 256, 90 + i * 30, 200))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def noisy_photo(size: tuple[int, int]) -> bytes:
    """A large, hard-to-compress JPEG (several MB): what a real image model returns."""
    img = Image.merge("RGB", [Image.effect_noise(size, 60 + 10 * i) for i in range(3)])
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def wav_tone(seconds: float = 0.3, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
            for n in range(int(seconds * rate))
        )
        out.writeframes(frames)
    return buf.getvalue()


def schema(steps_max: int, *, extra: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0, "description": "Prompt"},
        "steps": {"type": "integer", "maximum": steps_max, "default": 4, "x-order": 1,
                  "description": "Steps"},
    }
    if extra:
        props["guidance"] = {"type": "number", "default": 3.5, "x-order": 2,
                             "description": "Guidance"}
    return {
        "openapi": "3.0.2",
        "components": {"schemas": {
            "Input": {"type": "object", "properties": props, "required": ["prompt"]},
            "Output": {"type": "array", "items": {"type": "string", "format": "uri"}},
        }},
    }


@functools.cache
def big_photo() -> bytes:
    return noisy_photo((1800, 1200))


LONG_TEXT = "\n".join(f"line {i}: " + "lorem ipsum " * 8 for i in range(60))


def image_results() -> RunResult:
    """A failed safe push of an image model: every kind of case and output."""
    result = RunResult(
        variant="schnell", model="acme/schnell", test_model="acme/schnell-test", target="local",
        result="failed", test_version="a" * 64, live_version="b" * 64,
        started_at="2026-01-01T00:00:00+00:00", duration_s=9.5,
    )
    result.steps = [
        StepResult("lint", "passed", "clean", 0.2, 0.0),
        StepResult("push-test", "passed", "pushed", 0.6, 0.2),
        StepResult("schema-lint", "passed", "clean", 0.01, 0.8),
        StepResult("schema-compat", "failed", "not backwards compatible", 0.01, 0.81),
        StepResult("compare-outputs", "failed", "differ", 3.0, 0.9),
        StepResult("test-cases", "failed", "3 failed", 8.5, 0.9),
        StepResult("fuzz", "passed", "ok", 4.0, 1.2),
        StepResult("promote", "skipped", "checks failed"),
    ]
    live, test = schema(50), schema(8, extra=True)
    result.schema_changes = schema_changes(live, test)
    url = "http://127.0.0.1:9/p/{}"
    result.cases.append(CaseResult(
        kind="compare-outputs", index=0, inputs={"prompt": "a fox", "seed": 42}, checker=None,
        status="failed", message="seed 42: output[0]: images differ", prediction_id="test0",
        duration_s=1.2, output=[data_uri("image/png", picture((768, 768), 2))],
        prediction_url=url.format("test0"), started_s=0.9,
        comparison=Comparison(
            live_version="b" * 64, live_prediction_id="live0",
            live_prediction_url=url.format("live0"),
            live_output=[data_uri("image/png", picture((768, 768), 1))], mode="seeded", seed=42,
            files=[FileComparison("output[0]", False, "images differ", "mean pixel distance",
                                  31.5, 8.0)],
        ),
    ))
    outputs: list[tuple[Any, str]] = [
        ([data_uri("image/jpeg", big_photo())], "big photo"),
        ([data_uri("audio/wav", wav_tone())], "audio"),
        ({"caption": "a fox", "scores": [0.1, 0.9], "nested": {"ok": True}}, "json"),
        (LONG_TEXT, "long text"),
        (["http://127.0.0.1:9/files/not-embedded.png"], "url"),
        ([data_uri("image/webp", picture((300, 200), 7, "WEBP")),
          data_uri("image/png", picture((200, 300), 8))], "two images"),
    ]
    for i in range(CASES):
        if i < len(outputs):
            output, _ = outputs[i]
        else:
            output = [data_uri("image/jpeg", picture((384, 384), i, "JPEG"))]
        failed = i % 50 == 7
        result.cases.append(CaseResult(
            kind="test-case", index=i, inputs={"prompt": f"picture {i}", "seed": i},
            checker="match_prompt" if i % 2 else "image_size",
            status="failed" if failed else "passed",
            message="the judge says no" if failed else "ok", prediction_id=f"p{i}",
            duration_s=0.5, expected="512x512" if i % 2 == 0 else "a picture",
            output=output, error="boom" if failed else None,
            prediction_url=url.format(f"p{i}"), started_s=1.0 + i / 100,
        ))
    for i in range(5):
        result.cases.append(CaseResult(
            kind="fuzz", index=i, inputs={"prompt": "x" * (i * 40), "steps": i + 1},
            checker=None, status="passed", message="succeeded", prediction_id=f"f{i}",
            output=[data_uri("image/png", picture((256, 256), 100 + i))],
            prediction_url=url.format(f"f{i}"), started_s=1.3,
        ))
    return result


def text_results() -> RunResult:
    result = RunResult(variant="caption", model="acme/caption", test_model="acme/caption-test",
                       target="local", result="passed", pushed=True, version="c" * 64,
                       test_version="c" * 64, duration_s=2.0)
    result.steps = [StepResult("lint", "passed", "clean", 0.1, 0.0)]
    result.cases.append(CaseResult(
        kind="test-case", index=0, inputs={"image": "tests/cat.png"}, checker="jq_query",
        status="passed", expected=".caption | length > 0", output={"caption": "a cat"},
    ))
    return result


@pytest.fixture(scope="module")
def reports() -> list[dict[str, Any]]:
    # through JSON text, exactly as `cogfleet report REPORT.json` reads it back
    docs = [image_results().to_json(), text_results().to_json()]
    return load_reports(json.loads(json.dumps(docs)))


@pytest.fixture(scope="module")
def page(reports: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(reports), encoding="utf-8")
    return path


def test_report_is_self_contained_and_light(page: Path) -> None:
    html = page.read_text()
    # nothing is fetched from anywhere: no external scripts, styles or images
    assert not re.search(r"""<(script|link|img|audio|video)[^>]*\s(src|href)=["']https?:""", html)
    # 200 cases, a 1800x1200 photo of several MB, 200 pictures: thumbnails keep it light
    assert len(big_photo()) > 2_000_000
    assert len(html) < 12_000_000, len(html)
    assert base64.b64encode(big_photo()).decode()[:2000] not in html  # not embedded as is
    assert html.count('loading="lazy"') >= CASES


def test_outputs_shown_as_what_they_are(page: Path) -> None:
    html = page.read_text()
    assert '<audio controls preload="none" src="data:audio/wav;base64,' in html
    assert "1800x1200 jpeg" in html  # the thumbnail's caption names the original
    assert '<details class="fold"><summary>line 0: lorem ipsum' in html  # long text folded
    assert '&#34;caption&#34;: &#34;a fox&#34;,\n  &#34;scores&#34;: [\n' in html  # pretty JSON
    assert 'href="http://127.0.0.1:9/files/not-embedded.png"' in html
    assert 'href="http://127.0.0.1:9/p/p42"' in html  # each prediction links to the target
    assert "mean pixel distance" in html and "31.50" in html


def test_schema_differences_table(page: Path, reports: list[dict[str, Any]]) -> None:
    rows = {(r["where"], r["field"]): r for r in reports[0]["schema_changes"]}
    assert rows[("input 'steps'", "maximum")]["breaking"] is True
    assert rows[("input 'steps'", "maximum")]["live"] == "50"
    assert rows[("input 'guidance'", "")]["change"] == "added"
    assert rows[("input 'guidance'", "")]["breaking"] is False
    html = page.read_text()
    assert '<tr class="breaking"><td><code>input &#39;steps&#39;</code>' in html
    assert "maximum lowered from 50 to 8" in html


def test_renderer_nodes_by_content_type() -> None:
    renderer = Renderer()
    video = renderer.value("data:video/mp4;base64,AAAAGGZ0eXBtcDQy")
    assert video["type"] == "video" and video["src"].startswith("data:video/mp4")
    as_json = renderer.value(data_uri("application/json", b'{"a": [1, 2]}'))
    assert as_json["type"] == "json" and '"a": [' in as_json["text"]
    other = renderer.value(data_uri("application/zip", b"PK\x03\x04"))
    assert other["type"] == "download" and other["name"].endswith(".zip")
    assert renderer.value(3.5) == {"type": "inline", "text": "3.5"}
    assert renderer.value("https://example.com/a.png")["type"] == "link"


def test_renderer_thumbnails_and_budget() -> None:
    renderer = Renderer()
    node = renderer.value(data_uri("image/jpeg", big_photo()))
    thumb = Image.open(io.BytesIO(base64.b64decode(node["thumb"].split(",", 1)[1])))
    assert max(thumb.size) == THUMB_SIDE
    # the original is too large to embed: the lightbox gets a smaller re-encoded preview
    preview = Image.open(io.BytesIO(base64.b64decode(node["full"].split(",", 1)[1])))
    assert max(preview.size) == PREVIEW_SIDE
    small = data_uri("image/png", picture((64, 64), 3))
    assert renderer.value(small)["thumb"] == small  # small images are shown as they are
    renderer.budget.left = 0
    assert Renderer(budget=renderer.budget).value(
        data_uri("image/jpeg", noisy_photo((900, 900)))
    )["full"] is None


def test_a_distance_the_report_computes_counts_transparency() -> None:
    from cogfleet._html import _comparison_view

    def rgba(alpha: int) -> str:
        buf = io.BytesIO()
        Image.new("RGBA", (32, 32), (10, 20, 30, alpha)).save(buf, format="PNG")
        return data_uri("image/png", buf.getvalue())

    # same colours, a different mask: the same picture only if transparency is ignored
    case = {"output": [rgba(0)], "comparison": {"live_output": [rgba(255)]}}
    (image,) = _comparison_view(Renderer(), case)["images"]
    metric = image["metric"]
    assert metric["message"] == "computed for this report"
    assert "RGBA" in metric["metric"]
    assert metric["value"] == 255.0 and metric["match"] is False


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("a string", "expected a JSON object, got str"),
        ([], "holds no variant"),
        ({"variant": "x"}, "missing result, steps, cases"),
        ([{"variant": "x", "result": "passed", "steps": {}, "cases": []}], "must be lists"),
        ([1], "item 0: expected a JSON object"),
        ({"variant": "x", "result": "passed", "steps": [{"name": "lint"}], "cases": []},
         r"report: steps\[0\]: missing status"),
        ({"variant": "x", "result": "passed", "cases": [],
          "steps": [{"name": "lint", "status": "passed", "duration_s": "slow"}]},
         r"steps\[0\]: duration_s must be int/float, not str"),
        ({"variant": "x", "result": "passed", "steps": [],
          "cases": [{"kind": "fuzz", "status": "passed", "inputs": [1]}]},
         r"cases\[0\]: inputs must be dict, not list"),
        ({"variant": "x", "result": "passed", "steps": [], "cases": ["fuzz"]},
         r"cases\[0\] is not an object"),
    ],
)
def test_load_reports_rejects_what_is_not_a_report(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_reports(data)


def test_report_in_a_real_browser(browser: Browser, page: Path) -> None:  # noqa: F811
    with browser.open(page) as check:
        check.reveal_everything()
        images = check.images()
        broken = [i for i in images if i["width"] == 0]
        assert not broken, broken[:5]
        assert len(images) >= CASES + 4
        pair = check.page.locator(".comparison").first
        assert pair.locator(".side.live img").count() == 1
        assert pair.locator(".side.test img").count() == 1
        assert pair.locator(".side.diff img").count() == 1
        sides = pair.evaluate(
            "el => [...el.querySelectorAll('.side.live img, .side.test img')]"
            ".map(i => [i.naturalWidth, i.getBoundingClientRect().width])"
        )
        assert [s[0] for s in sides] == [THUMB_SIDE, THUMB_SIDE]
        assert all(s[1] > 0 for s in sides)  # both shown, side by side
        # the audio player plays the embedded WAV
        duration = check.page.evaluate(
            """() => new Promise(resolve => {
                const a = document.querySelector('audio');
                a.addEventListener('loadedmetadata', () => resolve(a.duration));
                a.preload = 'auto'; a.load();
            })"""
        )
        assert abs(duration - 0.3) < 0.05
        # the lightbox shows a large image's full-size version
        check.page.locator("img.zoom").first.click()
        check.page.wait_for_function(
            "() => { const i = document.querySelector('#lightbox img');"
            " return i && i.complete && i.naturalWidth > 320; }", timeout=30_000,
        )
        check.page.keyboard.press("Escape")
        check.page.wait_for_function("() => !document.querySelector('#lightbox').open")
        # the filter hides passing cases
        section = check.page.locator("#variant-schnell section.cases-section[data-kind=test-case]")
        section.locator("input.only-failed").check()
        visible = section.locator("article.case:visible").count()
        assert visible == sum(1 for i in range(CASES) if i % 50 == 7)
        check.page.evaluate("window.scrollTo(0, 0)")
        check.page.screenshot(path=str(artifacts_dir() / "html-report.png"))
        pair.screenshot(path=str(artifacts_dir() / "html-report-comparison.png"))
        assert not check.console_errors, check.console_errors


@pytest.mark.slow
def test_real_push_report_in_a_browser(cli: Any, demo_repo: Path, tmp_path: Path) -> None:
    """Two real pushes of the demo's schnell (--html), then the page in Chromium."""
    import replicate

    from cogfleet.server._embedded import LocalServer

    pages = [tmp_path / "first.html", tmp_path / "second.html"]
    with LocalServer(state_dir=tmp_path / "state") as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="cogfleet-demo", name="imagegen-schnell",
                             visibility="public", hardware="cpu")
        for page, name in zip(pages, ("first", "second"), strict=True):
            result = cli("push", "schnell", "--local-url", server.base_url,
                         "--report-json", str(tmp_path / f"{name}.json"),
                         "--html", str(page), cwd=demo_repo)
            assert result.code == 0, result.err
    report = json.loads((tmp_path / "second.json").read_text())
    compare = next(c for c in report["cases"] if c["kind"] == "compare-outputs")
    assert compare["comparison"]["live_output"][0].startswith("data:image/")
    assert all(c["prediction_url"].startswith(server.base_url) for c in report["cases"])
    # drawn again from the JSON report: the same page
    again = tmp_path / "again.html"
    assert cli("report", str(tmp_path / "second.json"), "--html", str(again)).code == 0
    assert again.read_text() == pages[1].read_text()
    with launch_browser() as chromium, chromium.open(pages[1]) as check:
        check.reveal_everything()
        images = check.images()
        assert images and all(i["width"] > 0 for i in images), images
        pair = check.page.locator(".comparison").first
        assert pair.locator(".side.live img, .side.test img").count() == 2
        assert pair.locator(".side.diff img").count() == 1
        assert "mean pixel distance" in pair.inner_text()
        assert check.page.locator("article.case").count() == len(report["cases"])
        check.page.screenshot(path=str(artifacts_dir() / "html-report-demo.png"), full_page=True)
        assert not check.console_errors, check.console_errors


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read the report: No such file or directory"),
        ("{not json", "not valid JSON"),
        ('{"variant": "x"}', "not a cogfleet report: missing result, steps, cases"),
    ],
)
def test_report_command_rejects_bad_input(
    cli: Any, tmp_path: Path, content: str | None, problem: str
) -> None:
    source = tmp_path / "report.json"
    if content is not None:
        source.write_text(content)
    page = tmp_path / "out.html"
    result = cli("report", str(source), "--html", str(page), cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith(f"error: {source}") and problem in result.err
    assert result.err.count("\n") == 1
    assert not page.exists()


def test_report_command_draws_a_saved_report(
    cli: Any, tmp_path: Path, reports: list[dict[str, Any]]
) -> None:
    source = tmp_path / "report.json"
    source.write_text(json.dumps(reports))
    page = tmp_path / "out.html"
    result = cli("report", str(source), "--html", str(page), cwd=tmp_path)
    assert result.code == 0, result.err
    assert page.read_text() == render_html(reports)
