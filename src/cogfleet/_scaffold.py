"""The minimal monorepo ``cogfleet init`` writes in an empty folder.

One family (``models/hello/``) with one variant, the shared ``cog.yaml`` template, its
cog-safe-push config, a thin ``noxfile.py`` and the GitHub workflows; ``cogfleet push
hello`` passes on it as it is. Data only: :func:`cogfleet.adopt._command.plan_scaffold` writes it.
"""

from __future__ import annotations

from cogfleet._repo import MODELS_DIR
from cogfleet._settings import DEFAULT_CONFIGS_DIR

_PREDICT = '''\
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, text: str = Input(description="What to echo", default="hello")) -> str:
        return f"{text}!"
'''

FILES: dict[str, str] = {
    f"{MODELS_DIR}/hello/variants.yaml": """\
# The hello family's variants: name -> settings (see the cogfleet README).
hello:
  model: my-org/hello             # owner/name on Replicate
  variables:                      # what templates/cog.yaml.j2 fills in
    python_version: "3.11"
""",
    f"{MODELS_DIR}/hello/predict.py": _PREDICT,
    "templates/cog.yaml.j2": """\
# cog.yaml of {{ family }}/{{ variant }}, rendered by cogfleet: edit this template or
# models/{{ family }}/variants.yaml, not the rendered file.
build:
  python_version: "{{ python_version }}"
run: "predict.py:Predictor"
""",
    f"{DEFAULT_CONFIGS_DIR}/hello.yaml": """\
# cog-safe-push's config format (cogfleet safe-push --help-config shows every key)
model: my-org/hello
test_hardware: cpu
predict:
  test_cases:
    - inputs: {text: hello}
      exact_string: "hello!"
  fuzz:
    iterations: 3
""",
    "noxfile.py": '''\
"""nox sessions: thin calls into the cogfleet command line (nox -l lists them)."""

import nox
import nox.command

nox.options.sessions = ["lint"]  # safe default: nothing here pushes
nox.options.default_venv_backend = "none"  # run where cogfleet is installed


def _cogfleet(session: nox.Session, *args: str) -> None:
    """Run cogfleet; its exit code 2 (bad input) stays 2 (nox would make it 1)."""
    try:
        session.run("cogfleet", *args, stderr=None)
    except nox.command.CommandFailed as exc:
        if exc.return_code == 2:
            raise SystemExit(2) from None
        raise


@nox.session
def lint(session: nox.Session) -> None:
    """Render and lint every variant: nox -s lint -- [VARIANT...]."""
    _cogfleet(session, "lint", *session.posargs)


@nox.session
def test(session: nox.Session) -> None:
    """Safe push without promotion: nox -s test -- VARIANT... [flags]."""
    _cogfleet(session, "test", *session.posargs)


@nox.session
def push(session: nox.Session) -> None:
    """Safe push: nox -s push -- VARIANT... [flags]. Never a default session."""
    _cogfleet(session, "push", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    """CI matrix JSON: nox -s matrix -- [--changed-since REF] [--variants a,b|all]."""
    _cogfleet(session, "matrix", *session.posargs)
''',
    ".gitignore": ".cogfleet/\n/cog.yaml\n/cog-safe-push.yaml\n__pycache__/\n",
    ".github/workflows/ci.yaml": """\
# Lint on every change; test the variants a pull request affects on Replicate.
name: CI

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

jobs:
  lint:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install cogfleet
        run: pip install cogfleet nox
      - name: Lint
        run: nox -s lint

  plan:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{ steps.matrix.outputs.matrix }}
    steps:
      - uses: actions/checkout@v5
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install cogfleet
        run: pip install cogfleet nox
      - name: Affected variants
        id: matrix
        env:
          BASE: ${{ github.event.pull_request.base.sha || github.event.before }}
        run: echo "matrix=$(nox -s matrix -- --changed-since "$BASE")" >> "$GITHUB_OUTPUT"

  test:
    needs: [lint, plan]
    if: >-
      github.event_name == 'pull_request' &&
      fromJson(needs.plan.outputs.matrix).include[0] != null
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix: ${{ fromJson(needs.plan.outputs.matrix) }}
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install cogfleet and cog ${{ matrix.cog_version }} (the variant's pinned Cog)
        env:
          COG_VERSION: ${{ matrix.cog_version }}
          COG_RELEASES: https://github.com/replicate/cog/releases/download
        run: |
          pip install cogfleet nox
          sudo curl -fsSL -o /usr/local/bin/cog \\
            "$COG_RELEASES/v${COG_VERSION}/cog_$(uname -s)_$(uname -m)"
          sudo chmod +x /usr/local/bin/cog
          cog --version
      - name: cog login
        env:
          COG_TOKEN: ${{ secrets.COG_TOKEN }}
        run: echo "$COG_TOKEN" | cog login --token-stdin
      - name: Test ${{ matrix.variant }}
        env:
          VARIANT: ${{ matrix.variant }}
          REPLICATE_API_TOKEN: ${{ secrets.REPLICATE_API_TOKEN }}
          ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}
        run: nox -s test -- "$VARIANT" --target replicate
""",
    ".github/workflows/push.yaml": """\
# Safe push of chosen variants (Actions -> Push -> Run workflow).
name: Push

on:
  workflow_dispatch:
    inputs:
      variants:
        description: 'Variants to push: a comma-separated list or "all"'
        type: string
        required: true
        default: all

permissions:
  contents: read

jobs:
  plan:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{ steps.matrix.outputs.matrix }}
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install cogfleet
        run: pip install cogfleet nox
      - name: Matrix
        id: matrix
        env:
          VARIANTS: ${{ inputs.variants }}
        run: echo "matrix=$(nox -s matrix -- --variants "$VARIANTS")" >> "$GITHUB_OUTPUT"

  push:
    needs: plan
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix: ${{ fromJson(needs.plan.outputs.matrix) }}
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install cogfleet and cog ${{ matrix.cog_version }} (the variant's pinned Cog)
        env:
          COG_VERSION: ${{ matrix.cog_version }}
          COG_RELEASES: https://github.com/replicate/cog/releases/download
        run: |
          pip install cogfleet nox
          sudo curl -fsSL -o /usr/local/bin/cog \\
            "$COG_RELEASES/v${COG_VERSION}/cog_$(uname -s)_$(uname -m)"
          sudo chmod +x /usr/local/bin/cog
          cog --version
      - name: cog login
        env:
          COG_TOKEN: ${{ secrets.COG_TOKEN }}
        run: echo "$COG_TOKEN" | cog login --token-stdin
      - name: Safe push of ${{ matrix.variant }}
        env:
          VARIANT: ${{ matrix.variant }}
          REPLICATE_API_TOKEN: ${{ secrets.REPLICATE_API_TOKEN }}
          ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}
        run: nox -s push -- "$VARIANT" --target replicate
""",
}
