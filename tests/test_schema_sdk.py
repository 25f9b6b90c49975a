"""Proof by the real thing: for Cog <= 0.16, cogfleet's document equals the SDK's own.

Up to 0.16 ``cog build`` wrote the schema by running ``python -m
cog.command.openapi_schema`` in the image. Here each SDK version of a small,
representative set is really installed, in the session's store of isolated
environments (:class:`cogfleet.runtime.EnvStore`, built with uv once per session and
shared with the other tests that run Cog 0.15.8), with the pydantic the Cog CLI of that
version put in the image: ``pydantic<2`` from 0.11 to 0.14.7 (before 0.11 the SDK pins
it itself), the newest pydantic 2 after (the CLI's ``pydantic>=1.9,<3``). The SDK's
module then writes the document for every predictor of the corpus, and cogfleet's
static reading of the same source must give an equal document, or fail where the SDK
failed. Shapes only the SDK of some versions built (inputs held by module constants
or helper functions; predict and train sharing a choices name) are in the corpus too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema import dumps_schema, generate_schema, parse_version, rules_for

FIXTURES = Path(__file__).parent / "fixtures" / "schema"
CORPUS = FIXTURES / "corpus"
DRIVER = FIXTURES / "sdk_openapi_schema.py"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())

SDK_VERSIONS = ("0.9.26", "0.13.7", "0.15.8", "0.16.12")
"""One SDK per shape: pydantic 1 with the oldest supported paths (0.9), pydantic 1
pinned by the CLI while the SDK allowed 2 (0.13), pydantic 2 before and after the
0.16.9 fixes (x-order, optional inputs not required)."""

NOT_INSTALLED_MARK = "# not installed where schemas are made"
"""Lines of the corpus that import packages the SDK test environments do not have."""


def _environment(env_store: Any, root: Path, version: str) -> str:
    """The interpreter of an environment with SDK ``version`` as its CLI would install it."""
    folder = root / f"spec-{version}"
    folder.mkdir()
    packages = ""
    if (0, 11, 0) <= parse_version(version) < (0, 14, 8):
        packages = '  python_packages:\n    - "pydantic<2"\n'
    (folder / "cog.yaml").write_text(
        f'build:\n  python_version: "3.11"\n{packages}predict: "predict.py:Predictor"\n',
        encoding="utf-8",
    )
    from cogfleet.runtime import read_build_spec

    python: str = env_store.ensure(read_build_spec(folder, version), version).python
    return python


def _copy_corpus(dest: Path) -> list[Path]:
    folders = []
    for case in CASES:
        folder = dest / case
        goldens = shutil.ignore_patterns("openapi.json", "static-error.txt")
        shutil.copytree(CORPUS / case, folder, ignore=goldens)
        for source in folder.glob("*.py"):
            text = source.read_text(encoding="utf-8")
            kept = [ln for ln in text.splitlines(keepends=True) if NOT_INSTALLED_MARK not in ln]
            source.write_text("".join(kept), encoding="utf-8")
        folders.append(folder)
    return folders


@pytest.fixture(scope="session")
def sdk_documents(
    tmp_path_factory: pytest.TempPathFactory, env_store: Any
) -> dict[str, dict[str, Any]]:
    """version -> case -> the SDK's document (dict) or its error line (str)."""
    root = tmp_path_factory.mktemp("cog-sdks")
    folders = _copy_corpus(root / "corpus")
    with ThreadPoolExecutor(max_workers=2) as pool:  # independent builds (uv waits on I/O)
        built = pool.map(lambda version: _environment(env_store, root, version), SDK_VERSIONS)
        pythons = dict(zip(SDK_VERSIONS, built, strict=True))

    def run(version: str) -> tuple[str, dict[str, Any]]:
        python = pythons[version]
        out = root / f"out-{version}"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run(
            [str(python), str(DRIVER), str(out), *map(str, folders)],
            check=True,
            capture_output=True,
            env=env,
            timeout=600,
        )
        results: dict[str, Any] = {}
        for case in CASES:
            answer = out / f"{case}.json"
            if answer.exists():
                results[case] = json.loads(answer.read_text(encoding="utf-8"))
            else:
                results[case] = (out / f"{case}.error").read_text(encoding="utf-8")
        return version, results

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, SDK_VERSIONS))


def test_the_sdk_environments_follow_the_cli(sdk_documents: dict[str, dict[str, Any]]) -> None:
    # The SDK writes info.version 0.1.0 and OpenAPI 3.0.2 in every version checked.
    for version in SDK_VERSIONS:
        doc = sdk_documents[version]["str_required"]
        assert isinstance(doc, dict)
        assert doc["openapi"] == "3.0.2" and doc["info"] == {"title": "Cog", "version": "0.1.0"}
        assert rules_for(version).generator == "runtime"


def test_what_only_the_sdk_builds_is_built(sdk_documents: dict[str, dict[str, Any]]) -> None:
    # Inputs held by module constants, class-body names and helper functions: every SDK
    # builds them (the static parser does not); a class naming itself in its own body
    # (`Predictor.seed`) is the other way round; predict and train sharing choices
    # names: pydantic 2 only.
    for version in SDK_VERSIONS:
        assert isinstance(sdk_documents[version]["input_helpers"], dict)
        assert isinstance(sdk_documents[version]["input_class_body"], dict)
        assert "NameError" in sdk_documents[version]["input_own_class"]
        pydantic2 = rules_for(version).pydantic == 2
        for case in ("predict_and_train", "predict_and_train_shared_choices"):
            assert isinstance(sdk_documents[version][case], dict) is pydantic2


@pytest.mark.parametrize("version", SDK_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_document_equals_the_sdk_output(
    sdk_documents: dict[str, dict[str, Any]], version: str, case: str
) -> None:
    expected = sdk_documents[version][case]
    if isinstance(expected, str):
        # The SDK refused this predictor; so does cogfleet, as one line.
        with pytest.raises(ConfigError) as info:
            generate_schema(CORPUS / case, version)
        assert "\n" not in str(info.value)
        return
    doc = generate_schema(CORPUS / case, version)
    assert doc == expected
    # The bytes are what the CLI stored: the SDK's answer re-marshalled through Go maps.
    assert json.loads(dumps_schema(doc, version)) == expected
