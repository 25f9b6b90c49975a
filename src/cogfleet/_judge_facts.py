"""The facts of a ``match_prompt`` that need no AI, verified on the output files.

A prompt's file type ("png", ".webp"), pixel size ("512x512px") and number of outputs
("four images") are read from its words and checked against what the prediction
returned. A contradiction fails the case without any request; a prompt made only of
such facts passes without one; anything else is left to the AI judge
(:mod:`cogfleet._judge`). Prompts whose grammar is too rich to read safely (negations,
bounds such as "at least") are left to the AI as well, so a misreading cannot fail a case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cogfleet import _images
from cogfleet._checks import CheckResult, OutputFile

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "single": 1,
}  # fmt: skip
# "a"/"an" are not counts: "an image of a cat" is often written for each of several outputs.

# Format words -> the normalized extensions that satisfy them.
_FORMATS: dict[str, frozenset[str]] = {
    "webp": frozenset({"webp"}),
    "jpg": frozenset({"jpg"}),
    "jpeg": frozenset({"jpg"}),
    "png": frozenset({"png"}),
    "gif": frozenset({"gif"}),
    "bmp": frozenset({"bmp"}),
    "tif": frozenset({"tif"}),
    "tiff": frozenset({"tif"}),
    "mp3": frozenset({"mp3"}),
    "wav": frozenset({"wav"}),
    "flac": frozenset({"flac"}),
    "ogg": frozenset({"ogg"}),
    "mp4": frozenset({"mp4"}),
    "webm": frozenset({"webm"}),
    "mov": frozenset({"mov"}),
}

_IMAGE_NOUNS = {"image", "images", "picture", "pictures", "photo", "photos"}
_FILE_NOUNS = {"file", "files"}
_OUTPUT_NOUNS = {"output", "outputs"}
_NOUNS = _IMAGE_NOUNS | _FILE_NOUNS | _OUTPUT_NOUNS

# Words that carry no claim of their own once the facts around them are read.
_FILLER = {
    "a",
    "an",
    "the",
    "and",
    "of",
    "in",
    "with",
    "format",
    "px",
    "pixel",
    "pixels",
    "size",
    "sized",
    "resolution",
    "each",
    "all",
    "file",
    "files",
    "output",
    "outputs",
}

# Any of these makes the prompt's grammar too rich to read facts from safely.
_NEGATIONS = re.compile(
    r"\b(not|no|non|without|except|never|neither|nor|instead|rather|unlike)\b|n't\b"
)
# Words before a number or size that turn it into a bound or an estimate.
_QUALIFIERS = re.compile(
    r"(?<!\w)(at\s+least|at\s+most|up\s+to|more\s+than|less\s+than|fewer\s+than|over|under|about|"
    r"around|approximately|roughly|between|minimum|maximum|min|max|~|>|<|>=|<=)\s*$"
)

_SIZE_RE = re.compile(r"(?<![\w.])(\d{1,5})\s*[x×]\s*(\d{1,5})(?:\s*(?:px|pixels?))?(?!\w)")
_FORMAT_RE = re.compile(
    r"(?<![\w.])\.?(" + "|".join(sorted(_FORMATS, key=len, reverse=True)) + r")(?!\w)"
)
_NOUN_RE = re.compile(r"\b(" + "|".join(sorted(_NOUNS, key=len, reverse=True)) + r")\b")


@dataclass
class _Facts:
    """What a prompt claims, as read by :func:`_read_facts`."""

    count: int | None = None
    formats: frozenset[str] = frozenset()
    sizes: frozenset[tuple[int, int]] = frozenset()
    wants_image: bool = False
    wants_file: bool = False
    leftover: bool = False

    def any(self) -> bool:
        return bool(
            self.count is not None
            or self.formats
            or self.sizes
            or self.wants_image
            or self.wants_file
        )


def _qualified(text: str, start: int) -> bool:
    """Whether the words just before ``start`` make the following number a bound."""
    return _QUALIFIERS.search(text[:start].rstrip()) is not None


def _read_facts(prompt: str) -> _Facts:
    """Extract the verifiable facts of ``prompt`` and whether anything else is said."""
    text = prompt.lower().strip()
    facts = _Facts()
    if _NEGATIONS.search(text):
        facts.leftover = True
        return facts
    consumed = [False] * len(text)
    # A placeholder keeps positions stable so the count pattern can step over sizes.
    masked = list(text)

    def consume(start: int, end: int) -> None:
        for i in range(start, end):
            consumed[i] = True

    sizes: set[tuple[int, int]] = set()
    for m in _SIZE_RE.finditer(text):
        if _qualified(text, m.start()):
            continue
        sizes.add((int(m.group(1)), int(m.group(2))))
        consume(m.start(), m.end())
        masked[m.start() : m.end()] = "§" * (m.end() - m.start())
    formats: set[str] = set()
    for m in _FORMAT_RE.finditer(text):
        formats |= _FORMATS[m.group(1)]
        consume(m.start(), m.end())
        masked[m.start() : m.end()] = "¤" * (m.end() - m.start())
    masked_text = "".join(masked)

    count_re = re.compile(
        r"(?<![\w§.])(\d+|" + "|".join(_NUMBER_WORDS) + r")\s+"
        r"((?:(?:§+|¤+|-|,)\s*)*)"
        r"(" + "|".join(sorted(_NOUNS, key=len, reverse=True)) + r")\b"
    )
    counts: list[int] = []
    bounded = False
    for m in count_re.finditer(masked_text):
        word = m.group(1)
        if _qualified(masked_text, m.start()):
            bounded = True
            continue
        counts.append(int(word) if word.isdigit() else _NUMBER_WORDS[word])
        consume(m.start(1), m.end(1))
    # "two or three images", "a png and two jpg images": several or alternative counts
    # are left to the AI rather than guessed at.
    if len(counts) == 1 and not bounded and not re.search(r"\bor\b", text):
        facts.count = counts[0]
    elif counts:
        facts.leftover = True

    for m in _NOUN_RE.finditer(text):
        noun = m.group(1)
        if noun in _IMAGE_NOUNS:
            facts.wants_image = True
        elif noun in _FILE_NOUNS:
            facts.wants_file = True
        consume(m.start(), m.end())

    facts.sizes = frozenset(sizes)
    facts.formats = frozenset(formats)
    rest = "".join(" " if consumed[i] else ch for i, ch in enumerate(text))
    words = re.findall(r"[^\W_]+|[^\w\s,.;:!-]", rest)
    if any(w not in _FILLER for w in words):
        facts.leftover = True
    return facts


def _got_count(output: Any, files: list[OutputFile]) -> int:
    """How many outputs a prediction returned, as a prompt's "four images" counts them."""
    # A list output counts its items (files or not); a dict counts the files in it.
    if isinstance(output, list):
        return len(output)
    if files:
        return len(files)
    return 0 if output is None else 1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_facts(
    prompt: str, output: Any, files: list[OutputFile]
) -> tuple[CheckResult | None, bool]:
    """Verify what ``prompt`` states about file type, pixel size and count, without AI.

    Returns ``(failed CheckResult, False)`` on a contradiction ("expected 4 outputs,
    got 1"); ``(passed CheckResult, False)`` when the prompt consists only of facts
    that all held ("two 256x256px png images"); otherwise ``(None, True)``: nothing
    contradicted and something is left for the AI judge. Prompts with negations or
    alternatives in counts are left to the AI, so a misreading cannot fail a case.
    """
    facts = _read_facts(prompt)
    if not facts.any():
        return None, True
    verified: list[str] = []

    if facts.count is not None:
        got = _got_count(output, files)
        if got != facts.count:
            expected = _plural(facts.count, "output")
            return CheckResult(False, f"expected {expected}, got {got}"), False
        verified.append(_plural(got, "output"))

    needs_files = facts.wants_image or facts.wants_file or facts.formats or facts.sizes
    if needs_files and not files:
        what = "an image" if facts.wants_image or facts.sizes else "a file"
        if facts.formats:
            what = f"a {'/'.join(sorted(facts.formats))} file"
        return CheckResult(False, f"expected {what}, got no file output"), False

    infos = [(f, _images.image_info(f.data)) for f in files]
    if facts.wants_image or facts.sizes:
        for f, info in infos:
            if info is None:
                return CheckResult(
                    False, f"expected an image, got {f.name} ({f.content_type})"
                ), False
        verified.append("images")
    if facts.formats:
        for f, info in infos:
            actual = info.format if info is not None else _images.normalize_extension(f.extension)
            if actual not in facts.formats:
                want = " or ".join(sorted(facts.formats))
                return CheckResult(False, f"expected a {want} file, got {actual} ({f.name})"), False
        verified.append("/".join(sorted(facts.formats)))
    if facts.sizes:
        for f, info in infos:
            assert info is not None  # checked above: every file is an image
            if (info.width, info.height) not in facts.sizes:
                want = " or ".join(f"{w}x{h}" for w, h in sorted(facts.sizes))
                return CheckResult(
                    False, f"expected a {want} image, got {info.size} ({f.name})"
                ), False
        verified.append(" or ".join(f"{w}x{h}" for w, h in sorted(facts.sizes)))

    if facts.leftover:
        return None, True
    return CheckResult(True, "verified without AI: " + ", ".join(verified)), False
