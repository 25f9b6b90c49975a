"""Demo image captioner: a CPU-only stand-in for an image-to-text model.

The caption is derived from the picture itself (mean colour, size, shape), so it is
deterministic and can be checked exactly. It loads no model weights, but it can be
*fine-tuned* with ``train.py``, whose weights change the captions visibly.

Output contract: the prediction returns a string. With ``output_format="json"``
(the default) the string is a JSON document ``{"caption": str, "confidence": float,
"tags": [str, ...]}`` (keys in that order, compact separators); with
``output_format="text"`` it is the bare caption. A string output keeps both kinds of
test-case check natural: ``jq_query`` runs on the JSON text, ``exact_string``
compares the plain caption.

Weights contract: ``setup(weights)`` receives what Cog passes from ``COG_WEIGHTS``
(a trained version's weights), which may be a local file path, a directory holding
``weights.json``, a ``file://`` URL, an ``http(s)://`` URL or a ``data:`` URI. The
content is the JSON file ``train.py`` writes: ``{"format": "cogfleet-demo-captioner/1",
"vocabulary": ["word", ...], "epochs": int}``. A trained captioner adds the vocabulary
as a ``style`` list to its JSON answer and reports a confidence raised by
``0.01 * epochs`` (capped at 1.0); the caption itself and the tags stay as they were,
so every prediction test case holds for trained versions too.
"""

import base64
import dataclasses
import json
import math
import urllib.parse
import urllib.request
from pathlib import Path as FsPath

from cog import BaseModel, BasePredictor, Input, Path
from PIL import Image, ImageStat

WEIGHTS_FORMAT = "cogfleet-demo-captioner/1"

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 50),
    "green": (50, 170, 70),
    "blue": (40, 90, 210),
    "purple": (130, 60, 180),
    "pink": (240, 140, 190),
    "brown": (130, 80, 40),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
}

# The farthest two RGB colours can be apart; confidence is 1 - distance / this.
MAX_DISTANCE = math.dist((0, 0, 0), (255, 255, 255))


class Caption(BaseModel):
    caption: str
    confidence: float
    tags: list[str]


def read_weights(ref: str) -> dict[str, object]:
    """Load trained weights from a path, directory, file/http(s) URL or data URI."""
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        raw = (
            base64.b64decode(payload)
            if header.endswith(";base64")
            else urllib.parse.unquote_to_bytes(payload)
        )
    elif ref.startswith(("http://", "https://")):
        with urllib.request.urlopen(ref, timeout=60) as response:
            raw = response.read()
    else:
        if ref.startswith("file://"):
            ref = urllib.parse.unquote(ref[len("file://") :])
        path = FsPath(ref)
        if path.is_dir():
            path = path / "weights.json"
        raw = path.read_bytes()
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"weights are not {WEIGHTS_FORMAT} JSON: {ref[:80]}")
    return data


def nearest_colour(rgb: tuple[float, float, float]) -> tuple[str, float]:
    """The palette name closest to ``rgb`` and the confidence of that match."""
    name = min(PALETTE, key=lambda n: math.dist(PALETTE[n], rgb))
    return name, 1.0 - math.dist(PALETTE[name], rgb) / MAX_DISTANCE


class Predictor(BasePredictor):
    def setup(self, weights: Path | str | None = None) -> None:
        """Load fine-tuned weights when Cog passes them (see the module docstring)."""
        self.vocabulary: list[str] = []
        self.epochs = 0
        if weights:
            data = read_weights(str(weights))
            self.vocabulary = [str(word) for word in data.get("vocabulary", [])]
            self.epochs = int(data.get("epochs", 0))
            print(f"captioner: loaded weights, vocabulary={self.vocabulary} epochs={self.epochs}")
        else:
            print("captioner: no weights, using the base vocabulary")

    def predict(
        self,
        # Cog declares inputs as Input() defaults by design, hence the B008 exemption.
        image: Path = Input(description="Image to describe (any format Pillow reads)"),  # noqa: B008
        max_words: int = Input(
            description="Longest caption to return, in words", ge=1, le=32, default=12
        ),
        output_format: str = Input(
            description="json: a JSON object with caption, confidence and tags; "
            "text: the caption alone",
            choices=["json", "text"],
            default="json",
        ),
    ) -> str:
        """Describe the image by its mean colour, size and shape."""
        with Image.open(image) as img:
            width, height = img.size
            mean = ImageStat.Stat(img.convert("RGB")).mean
        colour, confidence = nearest_colour((mean[0], mean[1], mean[2]))
        longest = max(width, height)
        size = "small" if longest <= 256 else "medium" if longest <= 1024 else "large"
        shape = "square" if width == height else "wide" if width > height else "tall"
        words = ["a", size, colour, shape, "image"][:max_words]
        confidence = min(1.0, confidence + 0.01 * self.epochs)
        result = Caption(
            caption=" ".join(words),
            confidence=round(confidence, 3),
            tags=[colour, shape, f"{width}x{height}"],
        )
        print(f"captioned {width}x{height} image as {result.caption!r}")
        if output_format == "text":
            return result.caption
        answer = dataclasses.asdict(result)
        if self.vocabulary:
            answer["style"] = self.vocabulary
        return json.dumps(answer, separators=(",", ":"))
