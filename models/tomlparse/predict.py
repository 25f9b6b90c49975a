"""Read a TOML document with tomli, and say which tomli did it.

Each variant pins its own tomli (see variants.yaml). tomli 2 reads only binary file
objects, tomli 1 also reads text ones: ``reads_text_files`` shows at run time which
major version the variant's environment really has.
"""

import importlib.metadata
import io
import json
import random

import tomli
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.tomli_version = importlib.metadata.version("tomli")
        try:
            tomli.load(io.StringIO("probe = true"))
            self.reads_text_files = True
        except TypeError:  # tomli >= 2: "File must be opened in binary mode"
            self.reads_text_files = False

    def predict(
        self,
        document: str = Input(description="A TOML document", default='title = "cogfleet"'),
        seed: int = Input(description="Seed for picking a sample key", default=None),
    ) -> str:
        result = {
            "tomli": self.tomli_version,
            "reads_text_files": self.reads_text_files,
            "seed": seed,
        }
        try:
            data = tomli.loads(document)
        except tomli.TOMLDecodeError as exc:
            return json.dumps({**result, "valid": False, "error": str(exc)})
        keys = sorted(data)
        sample = random.Random(seed).choice(keys) if keys else None
        return json.dumps({**result, "valid": True, "keys": keys, "sample": sample})
