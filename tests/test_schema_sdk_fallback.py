"""Cog <= 0.16 values only the model's code computes: the pinned SDK's own document.

Up to 0.16 ``cog build`` imported the predictor in the image, so a predictor may take
its choices from a package it installs (a public speech model has
``choices=["auto"] + sorted(LANGUAGES.keys()) + ...`` with ``LANGUAGES`` from its
``whisper`` package). The source alone cannot say what they are; cogfleet then asks
the pinned SDK in the version's environment, the one the push runs the model in
(built once for both). ``tests/fixtures/schema/sdk_fallback/speech`` has that shape,
with a small local package (``pkgs/spokenlangs``, installed from its path) standing
in for the third-party one. Everything here is real: uv environments of the
session's store, Cog 0.15.8's SDK, the local server, the official client.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet.schema import (
    ModelCodeNeeded,
    dumps_schema,
    generate_schema,
    sdk_document,
    sdk_document_in_store,
    validate_inputs,
)
from tests.conftest import LEGACY_COG, CliResult, container_view_here

FIXTURE = Path(__file__).parent / "fixtures" / "schema" / "sdk_fallback" / "speech"

LANGUAGE_CHOICES = [
    "auto", "de", "en", "fr", "ja", "English", "French", "German", "Japanese",
]  # fmt: skip
"""What Python computes for the fixture's ``choices=`` (the package builds its tables)."""

STATIC_ERROR = (
    "predict.py:13: choices of `language`: `[\"auto\"] + sorted(LANGUAGES) + "
    "sorted(name.title() for name in TO_LANGUAGE_CODE)` cannot be evaluated without "
    "running the model's code"
)


def _copy(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _repo(make_repo: Callable[..., Path], cog_version: str = LEGACY_COG, *, test_case: str =
          "{text: hi, language: German}", packages: bool = True) -> Path:  # fmt: skip
    """A monorepo with the fixture as family ``speech``, variant ``speech`` pinned."""
    files: dict[str, str | bytes | None] = {}
    for path in FIXTURE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(FIXTURE).as_posix()
            files[f"models/speech/{rel}"] = path.read_text(encoding="utf-8")
    cog_yaml = files.pop("models/speech/cog.yaml")
    assert isinstance(cog_yaml, str)
    if not packages:
        cog_yaml = cog_yaml.replace('  python_packages:\n    - "./pkgs/spokenlangs"\n', "")
    files["models/speech/cog.yaml.j2"] = cog_yaml
    files["models/speech/variants.yaml"] = (
        f'speech:\n  model: acme/speech\n  cog_version: "{cog_version}"\n'
    )
    files["cog-safe-push-configs/speech.yaml"] = (
        "model: acme/speech\npredict:\n  test_cases:\n"
        f"    - inputs: {test_case}\n      exact_string: \"German:hi:en\"\n"
    )
    return make_repo(files, base=False)


def test_the_source_names_the_value_only_the_model_computes(tmp_path: Path) -> None:
    # Under Cog 0.15.8 that is ModelCodeNeeded (a ConfigError: one line, file:line),
    # the expression written on one line although it spans three in the source.
    folder = _copy(tmp_path / "speech")
    with pytest.raises(ModelCodeNeeded) as info:
        generate_schema(folder, LEGACY_COG)
    assert str(info.value) == STATIC_ERROR
    # Cog 0.17 and later refuse it themselves (no SDK runs): their own error.
    for version in ("0.17.2", "0.19.3", "0.23.1"):
        with pytest.raises(Exception) as static:
            generate_schema(folder, version)
        assert not isinstance(static.value, ModelCodeNeeded)
        assert str(static.value) == (
            "predict.py:14: parameter 'language': choices expression cannot be statically "
            "resolved"
        )


def test_the_pinned_sdk_computes_it_in_the_versions_environment(
    tmp_path: Path, env_store: Any
) -> None:
    folder = _copy(tmp_path / "speech")
    with pytest.raises(ModelCodeNeeded) as info:
        generate_schema(folder, LEGACY_COG)
    doc = sdk_document_in_store(folder, LEGACY_COG, env_store, info.value)
    parts = doc["components"]["schemas"]
    assert parts["language"]["enum"] == LANGUAGE_CHOICES
    props = parts["Input"]["properties"]
    assert list(props) == ["text", "language", "fallback"]
    # the package's alias is a str to the SDK, as Python says
    assert props["fallback"]["type"] == "string" and props["fallback"]["default"] == "en"
    assert parts["Input"]["required"] == ["text"]
    assert validate_inputs(doc, {"text": "hi", "language": "German"}) == []
    assert validate_inputs(doc, {"text": "hi", "language": "Klingon"}) != []
    # the bytes the Cog 0.15.8 CLI stored: the SDK's answer through Go maps
    assert json.loads(dumps_schema(doc, LEGACY_COG)) == doc
    # the package was installed from its path and built out of the build folder
    assert not list(folder.rglob("*.egg-info")) and not (folder / "pkgs/spokenlangs/build").exists()


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_a_setuptools_package_folder_is_built_from_a_copy(tmp_path: Path, env_store: Any) -> None:
    # setuptools writes build/ and *.egg-info into the folder it builds: built in place,
    # that would change the build folder (and with it the environment's key).
    from cogfleet.runtime import read_build_spec

    folder = _copy(tmp_path / "speech")
    pyproject = folder / "pkgs" / "spokenlangs" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8")
        .replace('requires = ["flit_core>=3.4,<4"]', 'requires = ["setuptools>=61"]')
        .replace('"flit_core.buildapi"', '"setuptools.build_meta"'),
        encoding="utf-8",
    )
    assert "setuptools.build_meta" in pyproject.read_text(encoding="utf-8")
    before = _tree(folder)
    first = env_store.ensure(read_build_spec(folder, LEGACY_COG), LEGACY_COG)
    second = env_store.ensure(read_build_spec(folder, LEGACY_COG), LEGACY_COG)
    assert first.key == second.key and first.built and not second.built
    assert _tree(folder) == before
    # the package is installed in the environment, not left in it as sources
    assert not (first.path / ".sources").exists()
    doc = sdk_document_in_store(folder, LEGACY_COG, env_store, _needed(folder))
    assert doc["components"]["schemas"]["language"]["enum"] == LANGUAGE_CHOICES
    assert _tree(folder) == before


def _needed(folder: Path) -> ModelCodeNeeded:
    with pytest.raises(ModelCodeNeeded) as info:
        generate_schema(folder, LEGACY_COG)
    return info.value


def test_schema_command_and_push_build_the_environment_once(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult], env_store: Any
) -> None:
    root = _repo(make_repo)
    result = cli("schema", "speech", cwd=root)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["components"]["schemas"]["language"]["enum"] == LANGUAGE_CHOICES
    summary = cli("schema", "--summary", cwd=root)
    assert summary.out.strip() == "speech: 3 inputs (text, language, fallback) [Cog 0.15.8]"
    # The push runs the model in the environment the schema command built (not again),
    # and its test case passes through the server's validation of the SDK's document.
    result = cli("test", "speech", "--report-json", "report.json", cwd=root)
    assert result.code == 0, result.out + result.err
    report = json.loads((root / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    push = steps["push-test"]["message"]
    assert "Cog 0.15.8, isolated environment" in push and "built in" not in push
    assert steps["test-cases"]["status"] == "passed"


def test_a_choice_the_sdks_document_lacks_is_refused_before_the_push(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    # The push asks the SDK first, so the config is checked against its document as
    # against a static one: a config error at the line the user wrote, nothing pushed.
    root = _repo(make_repo, test_case="{text: hi, language: Klingon}")
    result = cli("test", "speech", cwd=root)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "error: cog-safe-push-configs/speech.yaml:4: predict.test_cases[0].inputs.language: "
        'must be one of the following: "auto", "de", "en", "fr", "ja", "English", "French", '
        '"German", "Japanese"\n'
    )
    assert not (root / ".cogfleet" / "local").exists()  # no server state: nothing created


def test_when_the_sdk_cannot_build_it_either_one_line_names_the_source(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    # cog.yaml does not install the package: the SDK fails to import the predictor.
    root = _repo(make_repo, packages=False)
    expected = (
        f"{STATIC_ERROR}; the Cog 0.15.8 SDK could not build the schema either: "
        "ModuleNotFoundError: No module named 'spokenlangs'\n"
    )
    result = cli("schema", "speech", cwd=root)
    assert result.code == 2 and result.out == ""
    assert result.err == f"error: {expected}"
    # a push says the same, at the file the user wrote, before anything is created
    for command in ("push", "test"):
        result = cli(command, "speech", cwd=root)
        assert result.code == 2 and result.out == "", result.err
        assert result.err == f"error: models/speech/{expected}"
    assert not (root / ".cogfleet" / "local").exists()


def test_env_current_cannot_run_the_pinned_sdk(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = _repo(make_repo)
    result = cli("test", "speech", "--env", "current", cwd=root)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        f"error: models/speech/{STATIC_ERROR} (Cog 0.15.8 wrote the schema by running the "
        "model's code, which needs the version's isolated environment, not --env current)\n"
    )
    assert not (root / ".cogfleet" / "local").exists()


def test_a_source_the_pinned_cog_refuses_is_refused_before_the_push(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    # Cog 0.23.1's build refuses choices it cannot resolve statically: push and test
    # say so in one line at the file the user wrote, before any model is created.
    root = _repo(make_repo, "0.23.1")
    expected = (
        "error: models/speech/predict.py:14: parameter 'language': choices expression "
        "cannot be statically resolved\n"
    )
    # and lint says so as the push does (not a warning that leaves it to the push)
    for command in ("push", "test", "lint"):
        result = cli(command, "speech", cwd=root)
        assert (result.code, result.out, result.err) == (2, "", expected)
    assert not (root / ".cogfleet" / "local").exists()


def test_safe_push_refuses_what_the_pinned_cog_refuses(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    folder = _copy(tmp_path / "speech")
    (folder / "cog-safe-push.yaml").write_text(
        "model: acme/speech\npredict:\n  test_cases:\n    - inputs: {text: hi}\n",
        encoding="utf-8",
    )
    result = cli("safe-push", "--cog-version", "0.23.1", "--no-push", cwd=folder)
    assert (result.code, result.out) == (2, ""), result.err
    assert result.err == (
        "error: predict.py:14: parameter 'language': choices expression cannot be "
        "statically resolved\n"
    )
    assert not (folder / ".cogfleet" / "local").exists()


# -- Cog 0.17-0.19: a type the static parser cannot follow --------------------------

PACKAGE_OUTPUT = FIXTURE.parent / "package_output"
UNRESOLVED = (
    "predict.py:9: cannot resolve output type 'Output' (imported from 'mypackage') \u2014 "
    "external types cannot be statically analyzed. Define it as a BaseModel subclass in "
    "your predict file, or provide a .pyi stub"
)


def test_from_020_a_type_cog_cannot_resolve_is_its_build_error(tmp_path: Path) -> None:
    # Cog 0.20 removed the fallback: its own error, and no environment is needed.
    folder = tmp_path / "model"
    shutil.copytree(PACKAGE_OUTPUT, folder)
    for version in ("0.20.0", "0.23.1"):
        with pytest.raises(Exception) as info:
            generate_schema(folder, version)
        assert not isinstance(info.value, ModelCodeNeeded)
        assert str(info.value).startswith(
            "predict.py:9: cannot resolve type 'Output' (imported from 'mypackage') - "
        )


def test_cog_017_to_019_fell_back_to_the_sdk_for_a_type_it_cannot_resolve(
    tmp_path: Path, env_store: Any
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(PACKAGE_OUTPUT, folder)
    with pytest.raises(ModelCodeNeeded) as info:
        generate_schema(folder, "0.19.3")
    assert str(info.value) == UNRESOLVED
    doc = sdk_document_in_store(folder, "0.19.3", env_store, info.value)
    parts = doc["components"]["schemas"]
    assert parts["Output"]["properties"] == {
        "text": {"title": "Text", "type": "string"},
        "score": {"title": "Score", "type": "number"},
    }
    assert parts["Output"]["required"] == ["text", "score"]
    assert parts["Input"]["properties"]["prompt"]["default"] == "hi"
    # the CLI stored the SDK's answer through Go maps: compact, every key sorted, even
    # though the version's own generator keeps declaration order
    assert dumps_schema(doc, "0.19.3") == json.dumps(doc, sort_keys=True, separators=(",", ":"))


def test_a_019_push_runs_the_model_with_the_sdks_document(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    files: dict[str, str | bytes | None] = {
        f"models/pkg/{p.relative_to(PACKAGE_OUTPUT).as_posix()}": p.read_text(encoding="utf-8")
        for p in PACKAGE_OUTPUT.rglob("*.py")
    }
    files["models/pkg/cog.yaml.j2"] = (PACKAGE_OUTPUT / "cog.yaml").read_text(encoding="utf-8")
    files["models/pkg/variants.yaml"] = 'pkg:\n  model: acme/pkg\n  cog_version: "0.19.3"\n'
    files["cog-safe-push-configs/pkg.yaml"] = (
        "model: acme/pkg\npredict:\n  test_cases:\n    - inputs: {prompt: hey}\n"
        "      jq_query: '.text == \"hey\" and .score == 0.5'\n"
    )
    root = make_repo(files, base=False)
    schema = cli("schema", "pkg", cwd=root)
    assert schema.code == 0, schema.err
    assert json.loads(schema.out)["components"]["schemas"]["Output"]["required"] == [
        "text", "score",
    ]  # fmt: skip
    result = cli("test", "pkg", cwd=root)
    assert result.code == 0, result.err
    assert "test-case[0] jq_query passed" in result.err


def test_a_target_that_writes_the_schema_itself_checks_the_inputs_after_the_test_push(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another server (--local-url) or Replicate (`cog push`) runs the pinned SDK in its
    # own build: the schema exists once the test version does. The config's inputs are
    # then checked against it as the embedded target checks them before the push: the
    # same one line at the config's line, exit 2, before any prediction; the model is
    # never touched.
    import replicate

    from cogfleet.server._embedded import LocalServer
    from tests.conftest import write_fake_cog

    root = _repo(make_repo, test_case="{text: hi, language: Klingon}")
    expected = (
        "error: cog-safe-push-configs/speech.yaml:4: predict.test_cases[0].inputs.language: "
        'must be one of the following: "auto", "de", "en", "fr", "ja", "English", "French", '
        '"German", "Japanese"\n'
    )
    bin_dir = write_fake_cog(tmp_path / "bin").parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_COG_VERSION", LEGACY_COG)  # its image runs that Cog's SDK
    with LocalServer(state_dir=tmp_path / "state") as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="acme", name="speech", visibility="public", hardware="cpu")
        monkeypatch.setenv("REPLICATE_BASE_URL", server.base_url)
        monkeypatch.setenv("REPLICATE_API_TOKEN", server.token)
        for target in (["--local-url", server.base_url], ["--target", "replicate"]):
            result = cli("push", "speech", *target, "--report-json", "r.json", cwd=root)
            assert result.code == 2, result.err
            lines = result.err.splitlines(keepends=True)
            warning, error = lines[0], lines[-1]
            assert "inputs are checked by the push only, against the schema of the test " \
                   "version" in warning and STATIC_ERROR in warning
            assert error == expected
            report = json.loads((root / "r.json").read_text())
            steps = {s["name"]: s["status"] for s in report["steps"]}
            assert steps["push-test"] == "failed" and report["cases"] == []
            assert steps["test-cases"] == "skipped" and steps["promote"] == "skipped"
        assert client.models.get("acme/speech").latest_version is None
        tested = [v.id for v in client.models.get("acme/speech-test").versions.list()]
        assert tested == [report["test_version"]]  # the same build: one version
        assert client.predictions.list().results == []


SRC_PREDICTOR = '''
from cog import BasePredictor, Input

# Cog's image has the model at /src, its working folder; models read files there.
MODES = open("/src/modes.txt").read().split()


class Predictor(BasePredictor):
    def predict(self, mode: str = Input(choices=MODES)) -> str:
        return mode
'''


def test_the_sdk_imports_the_model_from_src_as_in_the_image(
    tmp_path: Path, legacy_env: Any
) -> None:
    if not container_view_here():
        pytest.skip("this system lets no process mount a /src of its own")
    folder = tmp_path / "modes"
    folder.mkdir()
    (folder / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
    )
    (folder / "predict.py").write_text(SRC_PREDICTOR)
    (folder / "modes.txt").write_text("fast slow\n")
    with pytest.raises(ModelCodeNeeded) as info:
        generate_schema(folder, LEGACY_COG)
    doc = sdk_document(folder, legacy_env.python, LEGACY_COG, info.value)
    assert doc["components"]["schemas"]["mode"]["enum"] == ["fast", "slow"]
    assert not Path("/src/modes.txt").exists()
