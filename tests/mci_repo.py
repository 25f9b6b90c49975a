"""A repo in model-ci-template's shape, as teams have it before adopting cogfleet.

A base ``cog.yaml.template``, one overlay per variant in ``model-cog-configs/`` merged by
yq's ``*+`` in ``script/select.sh``, ``safe-push-configs/<variant>.yaml``, a ``ruff.toml``
and a push workflow whose matrix key is ``model``. The predictor is several modules: it
imports a sibling module and a package next to it.
"""

from __future__ import annotations

VARIANTS = ("schnell", "dev", "krea-dev")
COG_URL = "https://github.com/replicate/cog/releases/download/v0.16.8/cog_$(uname -s)_$(uname -m)"

PREDICT_PY = '''\
from cog import BasePredictor, Input

MODEL_CACHE = "model-cache"  # settings before the model's own imports, as Cog code has them

from common import STYLE  # a sibling module
from helpers.text import shout  # a package next to it


class BasePredictorFlux(BasePredictor):
    steps = 1

    def predict(
        self,
        prompt: str = Input(description="Prompt"),
        loud: bool = Input(description="Shout", default=False),
    ) -> str:
        if prompt == "fail":
            raise ValueError("failed on purpose")
        text = f"{STYLE}:{prompt}:{self.steps}"
        return shout(text) if loud else text


class SchnellPredictor(BasePredictorFlux):
    steps = 4


class DevPredictor(BasePredictorFlux):
    steps = 28


class KreaPredictor(BasePredictorFlux):
    steps = 30
'''

FILES: dict[str, str] = {
    "cog.yaml.template": """\
        # Configuration for Cog
        build:
          gpu: false
          python_version: "3.11"
          # commands run after the environment is set up
          run:
            - echo base
        environment:
          - MCI_BASE=1
        """,
    "model-cog-configs/schnell.yaml": 'predict: "predict.py:SchnellPredictor"\n',
    "model-cog-configs/dev.yaml": """\
        predict: "predict.py:DevPredictor"
        build:
          run:
            - echo dev
        """,
    "model-cog-configs/krea-dev.yaml": """\
        predict: "predict.py:KreaPredictor"
        environment:
          - MCI_KREA=1
        """,
    "predict.py": PREDICT_PY,
    "common.py": 'STYLE = "flux"\n',
    "helpers/__init__.py": "",
    "helpers/text.py": 'def shout(text: str) -> str:\n    return text.upper() + "!"\n',
    "ruff.toml": """\
        line-length = 100

        [lint]
        select = ["E", "F", "N"]
        ignore = ["E402"]
        """,
    "safe-push-configs/schnell.yaml": """\
        model: acme/flux-schnell
        test_model: acme/flux-schnell-test
        predict:
          test_cases:
            - inputs: {prompt: a cat}
              exact_string: "flux:a cat:4"
            - inputs: {prompt: a dog, loud: true}
              exact_string: "FLUX:A DOG:4!"
        """,
    "safe-push-configs/dev.yaml": """\
        model: acme/flux-dev
        predict:
          test_cases:
            - inputs: {prompt: a cat}
              exact_string: "flux:a cat:28"
        """,
    "safe-push-configs/krea-dev.yaml": """\
        model: acme/flux-krea-dev
        predict:
          test_cases:
            - inputs: {prompt: a cat}
              exact_string: "flux:a cat:30"
        """,
    "script/select.sh": """\
        #!/bin/bash
        if [[ $1 == --list ]]; then
            ls model-cog-configs | sed 's/.yaml//'
            exit 0
        fi
        yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)' \\
            cog.yaml.template "model-cog-configs/$1.yaml" > cog.yaml
        cp safe-push-configs/$1.yaml cog-safe-push.yaml
        """,
    ".github/workflows/push.yaml": """\
        name: Push Models
        on:
          workflow_dispatch:
            inputs:
              models:
                description: 'Comma-separated list of models to push or "all"'
                default: all
        jobs:
          cog-safe-push:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                model: [schnell, dev, krea-dev]
            steps:
              - uses: actions/checkout@v4
              - name: Install Cog
                run: |
                  sudo curl -o /usr/local/bin/cog -L "COG_URL"
                  sudo chmod +x /usr/local/bin/cog
              - name: Push selected models
                run: |
                  ./script/select.sh ${{ matrix.model }}
                  cog-safe-push -vv
                  if [ "${{ matrix.model }}" != "krea-dev" ]; then
                    cog push r8.im/acme-official/flux-${{ matrix.model }}
                  fi
        """,
    ".gitignore": "cog.yaml\ncog-safe-push.yaml\n",
    ".dockerignore": "# user's own\n.git\n__pycache__\n/model-cache\n",
    "model-cache/weights.bin": "not for the image\n",
}

# What `yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)'` writes for each
# variant (yq v4 output, comments aside), as data.
YQ_OUTPUT: dict[str, dict[str, object]] = {
    "schnell": {
        "build": {"gpu": False, "python_version": "3.11", "run": ["echo base"]},
        "environment": ["MCI_BASE=1"],
        "predict": "predict.py:SchnellPredictor",
    },
    "dev": {
        "build": {"gpu": False, "python_version": "3.11", "run": ["echo base", "echo dev"]},
        "environment": ["MCI_BASE=1"],
        "predict": "predict.py:DevPredictor",
    },
    "krea-dev": {
        "build": {"gpu": False, "python_version": "3.11", "run": ["echo base"]},
        "environment": ["MCI_BASE=1", "MCI_KREA=1"],
        "predict": "predict.py:KreaPredictor",
    },
}

# variants.yaml as a team would write it by hand (cogfleet init writes the same meaning)
VARIANTS_YAML = """\
    family: flux
    source: .
    defaults:
      template: cog.yaml.template
      overlay: model-cog-configs/{variant}.yaml
    variants:
      schnell: {}
      dev: {}
      krea-dev: {}
    """

PYPROJECT = '[tool.cogfleet]\nconfigs-dir = "safe-push-configs"\n'

FILES[".github/workflows/push.yaml"] = FILES[".github/workflows/push.yaml"].replace(
    "COG_URL", COG_URL
)
