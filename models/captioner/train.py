"""Fine-tuning for the demo captioner.

``train()`` "learns" a vocabulary: it writes the JSON weights file that
``predict.Predictor.setup(weights)`` reads (format described in ``predict.py``).
A version created from these weights puts the words into every caption, so a
trained model visibly differs from the base one.
"""

import json
import tempfile

from cog import BaseModel, Input, Path

# Kept equal to predict.WEIGHTS_FORMAT (not imported, so train.py loads on its own).
WEIGHTS_FORMAT = "cogfleet-demo-captioner/1"


class TrainingOutput(BaseModel):
    weights: Path


def train(
    vocabulary: str = Input(
        description="Comma-separated words the captioner should add to its captions"
    ),
    epochs: int = Input(
        description="Training epochs; each adds 0.01 to the reported confidence",
        ge=1,
        le=10,
        default=1,
    ),
) -> TrainingOutput:
    """Turn ``vocabulary`` into a weights file for the captioner."""
    words = [word.strip().lower() for word in vocabulary.split(",") if word.strip()]
    if not words:
        raise ValueError("vocabulary must name at least one word")
    for epoch in range(1, epochs + 1):
        print(f"epoch {epoch}/{epochs}: vocabulary {words}")
    out = Path(tempfile.mkdtemp(prefix="captioner-train-")) / "weights.json"
    out.write_text(json.dumps({"format": WEIGHTS_FORMAT, "vocabulary": words, "epochs": epochs}))
    return TrainingOutput(weights=out)
