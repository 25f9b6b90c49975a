"""The HTML report: one self-contained page drawn from JSON reports (``--html``).

Everything the page shows comes from :meth:`cogfleet._result.RunResult.to_json`, so
``cogfleet report REPORT.json --html PATH`` draws the same page later. Output files
arrive as ``data:`` URIs (embedded when the run wrote its reports) or, for files too
large to embed, as URLs the page links to. Pillow turns images into thumbnails (the
page stays light with hundreds of cases), draws the difference of the live and the
test image, and the template (``data/report.html.j2``) lays it all out with no
request to anywhere: styles and the few lines of script are inline.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from cogfleet._checks import OutputFile, decode_data_uri, iter_file_refs

THUMB_SIDE = 320  # pixels: the longest side of an image shown in a card
SMALL_IMAGE_BYTES = 120_000  # a small enough image is shown as it is, not re-encoded
PREVIEW_SIDE = 1600  # the longest side of what the lightbox shows of a large image
FULL_IMAGE_BYTES = 1_500_000  # larger originals are re-encoded for the lightbox
MEDIA_BYTES = 25_000_000  # audio, video or other files larger than this are not embedded
BUDGET_BYTES = 60_000_000  # per page: lightbox images and media beyond this are left out
LONG_TEXT_CHARS = 600
INLINE_CHARS = 100  # a single line up to this long is shown inline
LONG_TEXT_LINES = 12

_BROWSER_IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})
_TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/xml")


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _open_image(data: bytes, *, draft: int | None = None) -> tuple[Any, tuple[int, int]] | None:
    """The decoded image and its original size, or ``None`` when Pillow cannot read it.

    With ``draft``, a JPEG is decoded at the smallest scale that still has ``draft``
    pixels a side (libjpeg's DCT scaling: far faster for thumbnails of large photos).
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            size = img.size
            if draft and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            img.load()
        return img, size
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is shown as a plain file
        return None


def _encode(img: Any, side: int) -> str:
    """A smaller copy of ``img`` as a data URI: JPEG, or WebP where it has transparency."""
    img = img.copy()
    img.thumbnail((side, side))
    has_alpha = "A" in img.getbands() or img.info.get("transparency") is not None
    buf = io.BytesIO()
    if has_alpha:
        img.convert("RGBA").save(buf, format="WEBP", quality=80, method=0)
        return _data_uri("image/webp", buf.getvalue())
    img.convert("RGB").save(buf, format="JPEG", quality=82)
    return _data_uri("image/jpeg", buf.getvalue())


@dataclass
class Budget:
    """Bytes a page may still spend on full-size images and media."""

    left: int = BUDGET_BYTES

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


@dataclass
class Renderer:
    """Turns outputs into nodes the template draws; caches work per distinct file.

    Decoding and thumbnailing (:meth:`prepare`, in threads: Pillow releases the GIL)
    is separate from spending the page's budget on full-size versions, which happens
    in page order, so the same report always gives the same page.
    """

    budget: Budget = field(default_factory=Budget)
    _analyzed: dict[str, dict[str, Any]] = field(default_factory=dict)
    _nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _full: dict[str, Any] = field(default_factory=dict)

    # -- files ---------------------------------------------------------------------------

    def prepare(self, refs: Iterator[str] | list[str]) -> None:
        """Decode and thumbnail the ``data:`` files among ``refs`` in parallel."""
        todo = list(dict.fromkeys(r for r in refs if r.startswith("data:")
                                  and r not in self._analyzed))
        if len(todo) < 2:
            return
        workers = min(4, os.cpu_count() or 1, len(todo))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for ref, analyzed in zip(todo, pool.map(self._analyze, todo), strict=True):
                self._analyzed[ref] = analyzed

    def file(self, ref: str) -> dict[str, Any]:
        """A node for one output file (an image, audio, video, text or a download)."""
        node = self._nodes.get(ref)
        if node is None:
            analyzed = self._analyzed.get(ref)
            if analyzed is None:
                analyzed = self._analyzed[ref] = self._analyze(ref)
            node = self._nodes[ref] = self._spend(analyzed)
        return node

    def _spend(self, analyzed: dict[str, Any]) -> dict[str, Any]:
        """The final node: full-size versions and media only while the budget lasts."""
        node = {k: v for k, v in analyzed.items() if k not in ("candidate", "too_big")}
        candidate = analyzed.get("candidate")
        if node["type"] == "image":
            node["full"] = candidate if candidate and self.budget.take(len(candidate)) else None
        elif candidate is not None:
            if self.budget.take(len(candidate)):
                node["src"] = candidate
            else:
                return {"type": "note", "text": analyzed["too_big"]}
        return node

    def _analyze(self, ref: str) -> dict[str, Any]:
        """Everything about one file that does not depend on the rest of the page."""
        if not ref.startswith("data:"):
            return {"type": "link", "url": ref, "label": ref.rsplit("/", 1)[-1] or ref}
        try:
            found = decode_data_uri(ref)
        except ValueError as exc:
            return {"type": "inline", "text": f"(unreadable data URI: {exc})"}
        mime = found.content_type
        size = _human_bytes(len(found.data))
        if mime.startswith("image/") or mime == "application/octet-stream":
            node = self._image(ref, found, size)
            if node is not None:
                return node
        if mime.startswith(("audio/", "video/")):
            kind = "audio" if mime.startswith("audio/") else "video"
            too_big = f"{kind} file ({mime}, {size}) too large to embed"
            if len(found.data) > MEDIA_BYTES:
                return {"type": "note", "text": too_big}
            return {"type": kind, "candidate": ref, "too_big": too_big, "mime": mime,
                    "caption": f"{mime}, {size}"}
        if mime.startswith(_TEXT_TYPES):
            text = found.data.decode("utf-8", "replace")
            if "json" in mime:
                with contextlib.suppress(ValueError):  # not JSON after all: shown as text
                    return self.value(json.loads(text))
            return self.text(text)
        too_big = f"file ({mime}, {size}) too large to embed"
        if len(found.data) > MEDIA_BYTES:
            return {"type": "note", "text": too_big}
        return {"type": "download", "candidate": ref, "too_big": too_big, "name": found.name,
                "caption": f"{mime}, {size}"}

    def _image(self, ref: str, found: OutputFile, size: str) -> dict[str, Any] | None:
        as_is = len(found.data) <= FULL_IMAGE_BYTES  # else the lightbox gets a preview
        opened = _open_image(found.data, draft=THUMB_SIDE if as_is else PREVIEW_SIDE)
        if opened is None:
            if found.content_type == "image/svg+xml":
                return {"type": "image", "thumb": ref, "caption": f"svg, {size}",
                        "width": None, "height": None}
            return None
        img, (width, height) = opened
        fmt = img.format or "?"
        caption = f"{width}x{height} {fmt.lower()}, {size}"
        node: dict[str, Any] = {"type": "image", "caption": caption, "width": width,
                                "height": height}
        browser_format = fmt in _BROWSER_IMAGE_FORMATS
        small = max(width, height) <= THUMB_SIDE and len(found.data) <= SMALL_IMAGE_BYTES
        if browser_format and small:
            node["thumb"] = ref  # small: shown as it is
            return node
        node["thumb"] = _encode(img, THUMB_SIDE)
        node["candidate"] = ref if browser_format and as_is else _encode(img, PREVIEW_SIDE)
        return node

    def pil_image(self, ref: str) -> Any:
        """The fully decoded image behind a ``data:`` reference (``None`` if it is no image)."""
        if ref not in self._full:
            opened = None
            if ref.startswith("data:"):
                with contextlib.suppress(ValueError):
                    opened = _open_image(decode_data_uri(ref).data)
            self._full[ref] = opened[0] if opened else None
        return self._full[ref]

    # -- values --------------------------------------------------------------------------

    def text(self, text: str) -> dict[str, Any]:
        if len(text) <= INLINE_CHARS and "\n" not in text:
            return {"type": "inline", "text": text}
        lines = text.count("\n") + 1
        long = len(text) > LONG_TEXT_CHARS or lines > LONG_TEXT_LINES
        head = text.strip().splitlines()[0][:120] if text.strip() else ""
        return {"type": "text", "text": text, "long": long, "head": head,
                "stats": f"{len(text)} characters, {lines} lines"}

    def value(self, value: Any) -> dict[str, Any]:
        """A node for any output value: files inside lists and objects are shown as files."""
        if isinstance(value, str):
            if value.startswith(("data:", "http://", "https://")):
                return self.file(value)
            return self.text(value)
        if isinstance(value, list | dict) and any(True for _ in iter_file_refs(value)):
            if isinstance(value, list):
                return {"type": "list", "items": [self.value(v) for v in value]}
            return {"type": "dict", "items": [(str(k), self.value(v)) for k, v in value.items()]}
        if value is None or isinstance(value, bool | int | float):
            return {"type": "inline", "text": json.dumps(value)}
        pretty = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
        node = self.text(pretty)
        node["type"] = "json"
        return node

    # -- comparison ----------------------------------------------------------------------

    def difference(self, live_ref: str, test_ref: str) -> dict[str, Any] | None:
        """The difference image of two same-sized images, amplified so small changes show."""
        from PIL import ImageChops

        a, b = self.pil_image(live_ref), self.pil_image(test_ref)
        if a is None or b is None:
            return None
        if a.size != b.size:
            return {"type": "note",
                    "text": f"no difference image: sizes differ ({a.width}x{a.height} vs "
                            f"{b.width}x{b.height})"}
        diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
        amplified = diff.point(lambda v: min(255, v * 4))
        thumb = _encode(amplified, THUMB_SIDE)
        return {"type": "image", "thumb": thumb, "full": None, "width": a.width,
                "height": a.height, "caption": "|live - test| per channel, x4"}


def _pairs(live: Any, test: Any) -> Iterator[tuple[str, str]]:
    yield from zip(iter_file_refs(live), iter_file_refs(test), strict=False)


def _comparison_view(renderer: Renderer, case: dict[str, Any]) -> dict[str, Any]:
    from cogfleet._images import DISTANCE_METRIC, PIXEL_THRESHOLD, mean_pixel_distance

    comp = case.get("comparison") or {}
    live_output, test_output = comp.get("live_output"), case.get("output")
    recorded = {f.get("path"): f for f in comp.get("files") or []}
    paths = [p for p, _ in _file_paths(live_output)]
    images = []
    for index, (live_ref, test_ref) in enumerate(_pairs(live_output, test_output)):
        path = paths[index] if index < len(paths) else f"file {index}"
        diff = renderer.difference(live_ref, test_ref)
        metric = recorded.get(path)
        if metric is None and diff is not None and diff["type"] == "image":
            distance = mean_pixel_distance(
                renderer.pil_image(live_ref), renderer.pil_image(test_ref)
            )
            metric = {
                "metric": DISTANCE_METRIC, "value": distance,
                "threshold": PIXEL_THRESHOLD, "match": distance <= PIXEL_THRESHOLD,
                "message": "computed for this report",
            }
        images.append({
            "path": path, "live": renderer.file(live_ref), "test": renderer.file(test_ref),
            "diff": diff, "metric": metric,
        })
    return {
        "live": renderer.value(live_output),
        "test": renderer.value(test_output),
        "images": images,
        "mode": comp.get("mode"),
        "seed": comp.get("seed"),
        "live_version": comp.get("live_version"),
        "live_prediction_id": comp.get("live_prediction_id"),
        "live_prediction_url": comp.get("live_prediction_url"),
        "files": comp.get("files") or [],
    }


def _file_paths(output: Any, path: str = "output") -> Iterator[tuple[str, str]]:
    """(path, ref) of each file in ``output``, in :func:`iter_file_refs` order."""
    if isinstance(output, str):
        if output.startswith(("data:", "http://", "https://")):
            yield path, output
    elif isinstance(output, list):
        for i, item in enumerate(output):
            yield from _file_paths(item, f"{path}[{i}]")
    elif isinstance(output, dict):
        for key, item in output.items():
            yield from _file_paths(item, f"{path}.{key}")


def _timeline(report: dict[str, Any]) -> dict[str, Any]:
    """Bars for the steps that ran, placed by start and duration."""
    bars = []
    cursor = 0.0
    for step in report.get("steps") or []:
        duration = float(step.get("duration_s") or 0.0)
        start = step.get("started_s")
        if start is None:  # a report from before steps had start times: one after another
            start = cursor
        start = float(start)
        cursor = max(cursor, start + duration)
        bars.append({**step, "start": start, "duration": duration})
    total = max([float(report.get("duration_s") or 0.0), cursor, 0.001])
    for bar in bars:
        bar["left"] = 100.0 * bar["start"] / total
        bar["width"] = max(0.4, 100.0 * bar["duration"] / total) if bar["duration"] else 0.0
    return {"bars": bars, "total": total}


_SECTIONS = (
    ("compare-outputs", "Output comparison: live vs test"),
    ("test-case", "Test cases"),
    ("fuzz", "Fuzz inputs and outcomes"),
    ("train-case", "Training cases"),
)


def _variant_view(renderer: Renderer, report: dict[str, Any]) -> dict[str, Any]:
    cases = report.get("cases") or []
    sections = []
    for kind, title in _SECTIONS:
        chosen = sorted(
            (c for c in cases if c.get("kind") == kind), key=lambda c: c.get("index", 0)
        )
        if not chosen:
            continue
        views = []
        for case in chosen:
            inputs = case.get("inputs") or {}
            view = {
                **case,
                "inputs_node": [(k, renderer.value(v)) for k, v in inputs.items()],
                "expected_node": (
                    renderer.value(case["expected"]) if case.get("expected") is not None else None
                ),
                "output_node": renderer.value(case.get("output")),
            }
            if kind == "compare-outputs":
                view["compare"] = _comparison_view(renderer, case)
            views.append(view)
        failed = sum(1 for c in chosen if c.get("status") == "failed")
        sections.append({"kind": kind, "title": title, "cases": views, "failed": failed})
    known = {"variant", "model", "test_model", "target", "result", "pushed", "version",
             "test_version", "steps", "cases", "live_version", "started_at", "duration_s",
             "schema_changes", "cog_version", "environment", "interrupted"}
    extra = {k: v for k, v in report.items() if k not in known and isinstance(v, str | int | float)}
    return {
        **report,
        "anchor": "variant-" + "".join(c if c.isalnum() else "-" for c in str(report["variant"])),
        "timeline": _timeline(report),
        "sections": sections,
        "case_total": len(cases),
        "case_failed": sum(1 for c in cases if c.get("status") == "failed"),
        "extra": extra,
    }


def _file_refs(report: dict[str, Any]) -> Iterator[str]:
    """Every file the page of ``report`` shows."""
    for case in report.get("cases") or []:
        yield from iter_file_refs(case.get("inputs"))
        yield from iter_file_refs(case.get("expected"))
        yield from iter_file_refs(case.get("output"))
        yield from iter_file_refs((case.get("comparison") or {}).get("live_output"))


def _web_url(url: Any) -> str:
    """``url`` if it is an http(s) URL (a link never runs script), else empty."""
    text = str(url or "")
    return text if text.startswith(("http://", "https://")) else ""


def render_html(reports: list[dict[str, Any]], *, title: str = "cogfleet report") -> str:
    """The whole page for ``reports`` (one JSON report per variant)."""
    import jinja2

    template_text = resources.files("cogfleet").joinpath("data/report.html.j2").read_text("utf-8")
    # not StrictUndefined: reports written by older versions lack the newer keys
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["seconds"] = lambda v: f"{float(v or 0):.2f} s"
    env.filters["short"] = lambda v: (str(v)[:12] if v else "-")
    env.filters["pct"] = lambda v: f"{float(v):.3f}%"
    env.filters["web_url"] = _web_url
    renderer = Renderer()
    renderer.prepare([ref for report in reports for ref in _file_refs(report)])
    variants = [_variant_view(renderer, r) for r in reports]
    passed = sum(1 for v in variants if v.get("result") == "passed")
    return env.from_string(template_text).render(
        title=title, variants=variants, passed=passed, failed=len(variants) - passed,
    )


def _check_fields(item: Any, where: str, kinds: dict[str, Any], required: tuple[str, ...]) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    for key in required:
        if key not in item:
            raise ValueError(f"{where}: missing {key}")
    for key, kind in kinds.items():
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ValueError(f"{where}: {key} must be {names}, not {type(value).__name__}")


_NUMBER = (int, float)
_REPORT_FIELDS = {"variant": str, "result": str, "model": str, "steps": list, "cases": list,
                  "duration_s": _NUMBER, "schema_changes": list}
_STEP_FIELDS = {"name": str, "status": str, "message": str, "duration_s": _NUMBER,
                "started_s": _NUMBER}
_CASE_FIELDS = {"kind": str, "status": str, "index": int, "inputs": dict, "message": str,
                "checker": str, "duration_s": _NUMBER, "started_s": _NUMBER,
                "comparison": dict, "prediction_id": str, "prediction_url": str}
_CHANGE_FIELDS = {"where": str, "change": str, "field": str, "live": str, "test": str,
                  "breaking": bool, "reason": str}


def load_reports(data: Any) -> list[dict[str, Any]]:
    """The per-variant reports of a parsed ``--report-json`` file (one object or a list).

    Raises ``ValueError`` naming the item and what is wrong when ``data`` is not a
    cogfleet report, so the page is never drawn from something else.
    """
    docs = data if isinstance(data, list) else [data]
    if not docs:
        raise ValueError("the report holds no variant")
    for i, doc in enumerate(docs):
        where = f"item {i}" if isinstance(data, list) else "report"
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        missing = [k for k in ("variant", "result", "steps", "cases") if k not in doc]
        if missing:
            raise ValueError(f"{where}: not a cogfleet report: missing {', '.join(missing)}")
        if not isinstance(doc["steps"], list) or not isinstance(doc["cases"], list):
            raise ValueError(f"{where}: not a cogfleet report: steps and cases must be lists")
        _check_fields(doc, where, _REPORT_FIELDS, ())
        for j, step in enumerate(doc["steps"]):
            _check_fields(step, f"{where}: steps[{j}]", _STEP_FIELDS, ("name", "status"))
        for j, case in enumerate(doc["cases"]):
            _check_fields(case, f"{where}: cases[{j}]", _CASE_FIELDS, ("kind", "status"))
        for j, row in enumerate(doc.get("schema_changes") or []):
            _check_fields(row, f"{where}: schema_changes[{j}]", _CHANGE_FIELDS, ())
    return docs
