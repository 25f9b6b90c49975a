"""Output comparison (live vs test version): verdicts on concrete pairs of outputs.

The rules are cog-safe-push's: types and structure must agree, integers and booleans
are equal, floats closer than 0.1, files of one type, images of one size; only
strings and images are left to the AI judge when the inputs carry no seed.
"""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from cogfleet._predict import FileCache
from cogfleet.builtins.compare import output_difference, structure_difference


def uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png(size: tuple[int, int] = (32, 16), color: tuple[int, int, int] = (200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return uri(buf.getvalue(), "image/png")


CTX: Any = SimpleNamespace(files=FileCache(None))
WAV_A, WAV_B = uri(b"RIFF-one", "audio/x-wav"), uri(b"RIFF-two", "audio/x-wav")


def seeded(a: Any, b: Any) -> str | None:
    return structure_difference(a, b) or output_difference(CTX, a, b)


def unseeded(a: Any, b: Any) -> tuple[str | None, list[str]]:
    undecided: list[str] = []
    diff = structure_difference(a, b) or output_difference(CTX, a, b, undecided=undecided)
    return diff, undecided


@pytest.mark.parametrize(("live", "test", "verdict"), [
    (0.5, 0.55, None),                       # closer than 0.1: equal
    (0.5, 0.65, "output: 0.5 vs 0.65"),
    ({"score": 1.25}, {"score": 1.3}, None),
    (1, 1.0, "output: int vs float"),        # an integer is not a float
    (3, 4, "output: 3 vs 4"),
    (True, False, "output: True vs False"),
    ("a cat", "a dog", "output: 'a cat' vs 'a dog'"),
    (WAV_A, WAV_B, None),                    # audio: only the type is compared
    (WAV_A, uri(b"ID3", "audio/mpeg"), "output: file types differ: wav vs mp3"),
    (png(), png(), None),
    (png(), png(color=(20, 200, 30)), "output: images differ: mean pixel distance"),
    (png(), png(size=(16, 16)), "output: image sizes differ: expected 32x16, got 16x16"),
])
def test_with_a_seed(live: Any, test: Any, verdict: str | None) -> None:
    found = seeded(live, test)
    assert (found if verdict is None else (found or "")[: len(verdict)]) == verdict


@pytest.mark.parametrize(("live", "test", "verdict", "for_judge"), [
    # decided without the judge: numbers, booleans, file types, sizes, other files
    ([1, 2], [1, 3], "output[1]: 2 vs 3", []),
    ({"n": 0.1}, {"n": 0.15}, None, []),
    ({"ok": True}, {"ok": False}, "output.ok: True vs False", []),
    ([WAV_A], [WAV_B], None, []),
    (png(), png(size=(16, 16)), "output: image sizes differ: 32x16 vs 16x16", []),
    # left to the judge: texts and same-sized images that differ
    ({"caption": "a cat", "n": 1}, {"caption": "a kitten", "n": 1}, None, ["output.caption"]),
    ([png(), png()], [png(), png(color=(0, 0, 255))], None, ["output[1]"]),
])
def test_without_a_seed(live: Any, test: Any, verdict: str | None, for_judge: list[str]) -> None:
    assert unseeded(live, test) == (verdict, for_judge)


def test_structure_differences() -> None:
    assert structure_difference("https://x/a.png", "a.png") == "output: file vs value"
    assert structure_difference([1], [1, 2]) == "output: 1 items vs 2"
    assert structure_difference({"a": 1}, {"b": 1}) == "output: keys ['a'] vs ['b']"
    assert structure_difference(True, 1) == "output: bool vs int"
    assert structure_difference(None, None) is None


SVG_A = uri(b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', "image/svg+xml")
SVG_B = uri(b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="4"/></svg>', "image/svg+xml")


def test_an_svg_is_compared_as_other_files_are() -> None:
    """cog-safe-push tells images by their extension (jpg, png, gif, bmp, webp): an SVG is
    not one, so only its type counts, with a seed or without (no pixels to compare, and
    nothing for the judge)."""
    assert seeded(SVG_A, SVG_A) is None
    assert seeded(SVG_A, SVG_B) is None
    assert unseeded(SVG_A, SVG_B) == (None, [])
    assert seeded(SVG_A, png()) == "output: file types differ: svg vs png"
