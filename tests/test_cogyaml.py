"""Tests for cogfleet._cogyaml.validate_cog_yaml."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml

from cogfleet._cogyaml import validate_cog_yaml
from cogfleet._errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
build:
  python_version: "3.11"
run: "predict.py:Predictor"
"""


def write(tmp_path: Path, text: str, name: str = "cog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path, build_dir: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_cog_yaml(path, build_dir)
    return info.value


# --- valid files -------------------------------------------------------------------


def test_minimal_config_is_valid_without_warnings(tmp_path: Path) -> None:
    assert validate_cog_yaml(write(tmp_path, MINIMAL)) == []


def test_a_run_command_over_several_lines_is_refused_as_cog_refuses_it(tmp_path: Path) -> None:
    text = (
        "build:\n  python_version: '3.11'\n  run:\n"
        "    - |\n      echo one\n    - |\n      echo a\n      echo b\n"
        "predict: predict.py:P\n"
    )
    with pytest.raises(ConfigError) as err:
        validate_cog_yaml(write(tmp_path, text))
    # the block's own final newline is stripped, as Cog strips it; the second one spans lines
    assert err.value.line == 6
    assert "build.run[1]: contains a new line" in str(err.value)
    assert "build.run[0]" not in str(err.value)


def test_empty_file_is_valid(tmp_path: Path) -> None:
    assert validate_cog_yaml(write(tmp_path, "# nothing yet\n")) == []


def test_full_config_with_every_key_is_valid(tmp_path: Path) -> None:
    (tmp_path / "predict.py").write_text("class Predictor:\n    async def run(self): ...\n")
    (tmp_path / "train.py").write_text("def train(): ...\n")
    (tmp_path / "requirements.txt").write_text("pillow\n")
    path = write(
        tmp_path,
        """\
        build:
          gpu: true
          cuda: "12.4"
          cudnn: "9"
          python_version: "3.12.1"
          python_requirements: requirements.txt
          system_packages: [ffmpeg]
          run:
            - echo hi
            - command: cat /run/secrets/token
              mounts: [{type: secret, id: token, target: /run/secrets/token}]
          sdk_version: "0.23.1"
        model: r8.im/acme/toy
        run: "predict.py:Predictor"
        train: "train.py:train"
        environment:
          - HF_HOME=/src/cache
          - GREETING=a=b
        weights:
          - name: base
            target: /src/weights
            source: {uri: "hf://acme/base"}
        """,
    )
    assert validate_cog_yaml(path, tmp_path) == []


def _render_variant(family: str, variant: str, out: Path) -> Path:
    """Build a variant's folder as cogfleet does: family files + rendered templates."""
    family_dir = REPO / "models" / family
    spec = yaml.safe_load((family_dir / "variants.yaml").read_text())[variant]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(REPO)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    context = {**spec["variables"], "variant": variant, "model": spec["model"], "family": family}
    build = out / variant
    shutil.copytree(family_dir, build, ignore=shutil.ignore_patterns("*.j2", "__pycache__"))
    for template in family_dir.rglob("*.j2"):
        target = build / template.relative_to(family_dir).with_suffix("")
        rendered = env.get_template(template.relative_to(REPO).as_posix()).render(context)
        target.write_text(rendered)
    cog_template = spec.get("template", "templates/cog.yaml.j2")
    (build / "cog.yaml").write_text(env.get_template(cog_template).render(context))
    return build


@pytest.mark.parametrize(
    ("family", "variant"), [("imagegen", "schnell"), ("imagegen", "dev"), ("captioner", "caption")]
)
def test_demo_templates_render_to_valid_cog_yaml(tmp_path: Path, family: str, variant: str) -> None:
    build = _render_variant(family, variant, tmp_path)
    assert validate_cog_yaml(build / "cog.yaml", build) == []
    config = yaml.safe_load((build / "cog.yaml").read_text())
    assert config["build"]["python_version"] == "3.11"
    assert config["run"] == "predict.py:Predictor"
    assert ("train" in config) == (variant == "caption")


# --- YAML level ------------------------------------------------------------------------


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'build:\n  python_version: "3.11"\n  gpu: [true\nrun: x\n')
    err = error_of(path)
    assert err.path == str(path)
    assert err.line == 4
    assert "invalid YAML" in err.message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + 'run: "other.py:Predictor"\n'))
    assert err.message == "run: duplicate key"
    assert err.line == 4


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "- build\n"))
    assert "mapping" in err.message


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    err = error_of(tmp_path / "missing.yaml")
    assert err.path == str(tmp_path / "missing.yaml")
    assert "cannot read" in err.message


# --- schema: unknown, removed, required and typed keys ------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "imag: r8.im/acme/toy\n"))
    assert err.message.startswith("imag: unknown key (allowed: build, concurrency,")
    assert err.line == 4


def test_unknown_build_key_names_the_dotted_path(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL.replace("build:\n", "build:\n  gpus: true\n")))
    assert err.message.startswith("build.gpus: unknown key")
    assert err.line == 2


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ("tests:\n  - inputs: {prompt: hi}\n", "tests"),
        ("build:\n  python_version: '3.11'\n  fast: true\n", "build.fast"),
        ("build:\n  python_version: '3.11'\n  cog_runtime: true\n", "build.cog_runtime"),
        ("build:\n  python_version: '3.11'\n  python_overrides: o.txt\n", "build.python_overrides"),
    ],
)
def test_removed_keys_say_since_when(tmp_path: Path, snippet: str, key: str) -> None:
    err = error_of(write(tmp_path, 'run: "predict.py:Predictor"\n' + snippet))
    assert err.message.startswith(f"{key}: removed in cog 0.17")


def test_python_version_is_required_with_build(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "build:\n  gpu: false\nrun: predict.py:Predictor\n"))
    assert err.message == "build.python_version: required"
    assert err.line == 1


def test_schema_type_errors_name_the_key(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL.replace("build:\n", "build:\n  gpu: 'yes'\n")))
    assert err.message == "build.gpu: 'yes' is not of type 'boolean'"
    assert err.line == 2


# --- python_version / cuda ---------------------------------------------------------------


@pytest.mark.parametrize("written", ["3.10", '"3.10"', "3.13", '"3.12.4"', "'3.11'"])
def test_python_version_accepted_as_written(tmp_path: Path, written: str) -> None:
    # Unquoted 3.10 is the float 3.1 to YAML; the validator must read the text "3.10".
    path = write(tmp_path, f"build:\n  python_version: {written}\nrun: predict.py:Predictor\n")
    assert validate_cog_yaml(path) == []


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ('"3.9"', "'3.9' is too old: cog needs Python 3.10 or newer"),
        ("3.1", "'3.1' is too old: cog needs Python 3.10 or newer (write it quoted: \"3.10\")"),
        ("3", "expected MAJOR.MINOR such as \"3.11\", got '3'"),
        ('"3.x"', "expected MAJOR.MINOR such as \"3.11\", got '3.x'"),
    ],
)
def test_python_version_rejected(tmp_path: Path, written: str, problem: str) -> None:
    path = write(tmp_path, f"run: predict.py:Predictor\nbuild:\n  python_version: {written}\n")
    err = error_of(path)
    assert err.message == f"build.python_version: {problem}"
    assert err.line == 3


@pytest.mark.parametrize(("cog", "written", "problem"), [
    ("0.16.12", '"3.8"', None),  # Cog up to 0.16 built Python 3.8 and 3.9
    ("0.9.26", '"3.9"', None),
    ("0.16.12", '"3.7"', "'3.7' is too old: Cog 0.16.12 needs Python 3.8 or newer"),
    ("0.17.2", '"3.9"', "'3.9' is too old: Cog 0.17.2 needs Python 3.10 or newer"),
])
def test_the_oldest_python_is_the_pinned_cogs(
    tmp_path: Path, cog: str, written: str, problem: str | None
) -> None:
    path = write(tmp_path, f"predict: predict.py:Predictor\nbuild:\n  python_version: {written}\n")
    if problem is None:
        assert validate_cog_yaml(path, cog_version=cog) == []
        return
    with pytest.raises(ConfigError) as info:
        validate_cog_yaml(path, cog_version=cog)
    assert info.value.message == f"build.python_version: {problem}"


@pytest.mark.parametrize("cuda", ['"11.8"', '"12.4.1"', "12.1"])
def test_cuda_accepted(tmp_path: Path, cuda: str) -> None:
    path = write(tmp_path, MINIMAL.replace("build:\n", f"build:\n  gpu: true\n  cuda: {cuda}\n"))
    assert validate_cog_yaml(path) == []


@pytest.mark.parametrize(
    ("cuda", "problem"),
    [
        ('"10.2"', "'10.2' is too old: cog needs CUDA 11 or newer"),
        ('"12"', "expected MAJOR.MINOR such as \"12.4\", got '12'"),
    ],
)
def test_cuda_rejected(tmp_path: Path, cuda: str, problem: str) -> None:
    path = write(tmp_path, MINIMAL.replace("build:\n", f"build:\n  cuda: {cuda}\n"))
    assert error_of(path).message == f"build.cuda: {problem}"


# --- run / predict / train references ----------------------------------------------------


def test_run_and_predict_are_exclusive(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + 'predict: "predict.py:Predictor"\n'))
    assert err.message == "predict: set either run or predict, not both (predict is the old name)"
    assert err.line == 4


def test_predict_alone_is_deprecated(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("run:", "predict:"))
    assert validate_cog_yaml(path) == ["predict: deprecated since cog 0.20; use run"]


@pytest.mark.parametrize("key", ["run", "predict", "train"])
@pytest.mark.parametrize("ref", ["predict.py", "predict:Predictor", "predict.py:", ".py:Predictor"])
def test_reference_format(tmp_path: Path, key: str, ref: str) -> None:
    text = 'build:\n  python_version: "3.11"\n' + f'{key}: "{ref}"\n'
    err = error_of(write(tmp_path, text))
    assert err.message == (
        f'{key}: expected FILE.py:NAME such as "predict.py:Predictor", got {ref!r}'
    )


def test_referenced_files_must_exist_in_build_dir(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + 'train: "train.py:train"\n')
    # Without a build folder only the format is checked.
    assert validate_cog_yaml(path) == []
    err = error_of(path, tmp_path)
    assert err.message == (
        f"run: predict.py does not exist in {tmp_path}; "
        f"train: train.py does not exist in {tmp_path}"
    )
    assert err.line == 3
    (tmp_path / "predict.py").write_text("class Predictor: ...\n")
    (tmp_path / "train.py").write_text("def train(): ...\n")
    assert validate_cog_yaml(path, tmp_path) == []


def test_referenced_names_must_be_defined(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + 'train: "train.py:train"\n')
    (tmp_path / "predict.py").write_text("class Predictr: ...\nclass Other: ...\n")
    (tmp_path / "train.py").write_text("from helpers import train as train_fn\n")
    err = error_of(path, tmp_path)
    assert err.message == (
        "run: predict.py defines no 'Predictor' (classes there: Other, Predictr); "
        "train: train.py defines no 'train'"
    )
    # bound any way Python binds a name: import, assignment, inside if/try; or unknowable
    (tmp_path / "predict.py").write_text("try:\n    from x import Predictor\nexcept: pass\n")
    (tmp_path / "train.py").write_text("from helpers import *\n")
    assert validate_cog_yaml(path, tmp_path) == []
    (tmp_path / "predict.py").write_text("Predictor = make()\n")
    (tmp_path / "train.py").write_text("import helpers\ntrain = helpers.train\n")
    assert validate_cog_yaml(path, tmp_path) == []


# --- python packages ---------------------------------------------------------------------


def test_python_packages_and_requirements_are_exclusive(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "build:\n", "build:\n  python_packages: [pillow]\n  python_requirements: r.txt\n"
    )
    err = error_of(write(tmp_path, text))
    assert err.message == (
        "build.python_packages: set either python_packages or python_requirements, not both"
    )


def test_requirements_file_must_exist(tmp_path: Path) -> None:
    (tmp_path / "predict.py").write_text("class Predictor: ...\n")
    path = write(tmp_path, MINIMAL.replace("build:\n", "build:\n  python_requirements: r.txt\n"))
    err = error_of(path, tmp_path)
    assert err.message == f"build.python_requirements: r.txt does not exist in {tmp_path}"
    assert err.line == 2
    (tmp_path / "r.txt").write_text("pillow\n")
    assert validate_cog_yaml(path, tmp_path) == []


@pytest.mark.parametrize(
    "package", ["not a package ===", "numpy==", "foo bar", "foo~=1", "foo<=>1", "foo;;"]
)
def test_python_packages_are_requirements_pip_reads(tmp_path: Path, package: str) -> None:
    text = MINIMAL.replace("build:\n", f"build:\n  python_packages:\n    - pillow\n"
                           f"    - {package!r}\n")
    err = error_of(write(tmp_path, text))
    assert err.message.startswith(
        f"build.python_packages[1]: {package!r} is not a requirement pip can read ("
    ), err.message
    assert err.line == 4


GOOD_REQUIREMENTS = """\
# pinned for the demo
numpy==1.26.*  # trailing comment
torch==2.3.0+cpu ; platform_machine == "x86_64"
pillow[avif]>=10,<12 \\
    --hash=sha256:0123
-r other.txt
--extra-index-url https://download.pytorch.org/whl/cpu
-e ./vendored
./wheels/tool-1.0-py3-none-any.whl
git+https://github.com/acme/tool@v1
tool @ https://example.com/tool-1.0.tar.gz
${PACKAGE_FROM_ENV}
"""


def test_a_requirements_file_as_pip_reads_it_is_valid(tmp_path: Path) -> None:
    (tmp_path / "predict.py").write_text("class Predictor: ...\n")
    (tmp_path / "r.txt").write_text(GOOD_REQUIREMENTS)
    path = write(tmp_path, MINIMAL.replace("build:\n", "build:\n  python_requirements: r.txt\n"))
    assert validate_cog_yaml(path, tmp_path) == []


@pytest.mark.parametrize(
    ("text", "line", "bad"),
    [("numpy\nnot a package ===\n", 2, "not a package ==="),
     ("numpy \\\n  ==\nfoo\n", 1, "numpy   =="),  # a continued line is named by its first
     ("# ok\n\npillow>=10 --hash=sha256:0\nfoo==1.0-foo\n", 4, "foo==1.0-foo")],
)
def test_a_requirements_line_pip_cannot_read_is_named(
    tmp_path: Path, text: str, line: int, bad: str
) -> None:
    (tmp_path / "predict.py").write_text("class Predictor: ...\n")
    (tmp_path / "r.txt").write_text(text)
    path = write(tmp_path, MINIMAL.replace("build:\n", "build:\n  python_requirements: r.txt\n"))
    err = error_of(path, tmp_path)
    assert err.path == str(tmp_path / "r.txt")
    assert err.line == line
    assert err.message.startswith(f"{bad!r} is not a requirement pip can read ("), err.message


def test_deprecated_build_keys_warn(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "build:\n", "build:\n  python_packages: [pillow]\n  pre_install: [echo hi]\n"
    )
    warnings = validate_cog_yaml(write(tmp_path, text))
    assert [w.split(":")[0] for w in warnings] == ["build.python_packages", "build.pre_install"]


# --- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONUNBUFFERED",
        "LIBRARY_PATH",
        "HF_ENDPOINT",
        "HF_HUB_ENABLE_HF_TRANSFER",
        "R8_TOKEN",
        "REPLICATE_API_TOKEN",
        "CUDA_HOME",
        "NVIDIA_VISIBLE_DEVICES",
        "NV_CUDA_LIB_VERSION",
        "PGET_CONCURRENCY",
        "KUBERNETES_SERVICE_HOST",
    ],
)
def test_environment_deny_list(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, MINIMAL + f"environment:\n  - OK=1\n  - {name}=x\n")
    err = error_of(path)
    assert err.message == (
        f"environment[1]: {name} is reserved by Cog/Replicate and cannot be set in cog.yaml"
    )
    assert err.line == 6


@pytest.mark.parametrize("entry", ["FOO", "1FOO=x", "FOO BAR=x", "=x"])
def test_environment_entries_are_name_equals_value(tmp_path: Path, entry: str) -> None:
    err = error_of(write(tmp_path, MINIMAL + f'environment:\n  - "{entry}"\n'))
    assert err.message == f"environment[0]: expected NAME=VALUE, got {entry!r}"


def test_environment_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "environment:\n  - A=1\n  - B=2\n  - A=3\n")
    err = error_of(path)
    assert err.message == "environment[2]: A is already set by environment[0]"
    assert err.line == 7


def test_environment_allows_names_that_only_look_reserved(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "environment:\n  - MY_PATH=x\n  - HF_HOME=/c\n  - NVX=1\n")
    assert validate_cog_yaml(path) == []


# --- concurrency ---------------------------------------------------------------------------


def test_concurrency_max_at_least_one(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "concurrency:\n  max: 0\n"))
    assert err.message == "concurrency.max: must be at least 1, got 0"
    assert err.line == 5


def test_concurrency_above_one_needs_python_311(tmp_path: Path) -> None:
    text = MINIMAL.replace('"3.11"', '"3.10"') + "concurrency:\n  max: 4\n"
    err = error_of(write(tmp_path, text))
    assert err.message == "concurrency.max: 4 needs build.python_version 3.11 or newer"


def test_concurrency_above_one_needs_async_run(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "concurrency:\n  max: 4\n")
    (tmp_path / "predict.py").write_text("class Predictor:\n    def run(self): ...\n")
    err = error_of(path, tmp_path)
    assert err.message == (
        "concurrency.max: 4 needs an async run() or predict() in predict.py:Predictor; it is sync"
    )
    (tmp_path / "predict.py").write_text("class Predictor:\n    async def run(self): ...\n")
    assert validate_cog_yaml(path, tmp_path) == [
        "concurrency.max: deprecated; prefer @cog.concurrent(max=N) on an async run()"
    ]


def test_concurrency_max_is_required(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "concurrency:\n  default_target: 2\n"))
    assert err.message == "concurrency.max: required"


# --- image / model ---------------------------------------------------------------------------


def test_image_and_model_are_exclusive(tmp_path: Path) -> None:
    text = MINIMAL + "image: r8.im/acme/toy\nmodel: r8.im/acme/toy\n"
    err = error_of(write(tmp_path, text))
    assert err.message == "model: set either image or model, not both"
    assert err.line == 5


@pytest.mark.parametrize("model", ["r8.im/acme/toy:latest", "r8.im/acme/toy@sha256:abc"])
def test_model_must_be_a_bare_repository(tmp_path: Path, model: str) -> None:
    err = error_of(write(tmp_path, MINIMAL + f"model: {model}\n"))
    assert err.message == f"model: must be a bare repository without tag or digest, got {model!r}"


@pytest.mark.parametrize(
    ("image", "problem"),
    [("UPPER/Case", "image names are lower case"),
     ("r8.im/Acme/Alpha", "image names are lower case"),
     ("Acme/alpha", "image names are lower case"),  # Docker: a registry host named Acme
     ("a b c", "expected an image name of lower-case letters"),
     ("acme//alpha", "expected an image name of lower-case letters"),
     ("-acme/alpha", "expected an image name of lower-case letters"),
     ("r8.im/acme", "an image on r8.im is r8.im/<owner>/<model name>"),
     ("r8.im/acme/alpha/extra", "an image on r8.im is r8.im/<owner>/<model name>"),
     ("acme/alpha:", "'' is not an image tag"),
     ("acme/alpha@sha256:xyz", "'sha256:xyz' is not an image digest"),
     ("bad_host:5000/acme/alpha", "'bad_host:5000' is not a registry host")],
)
def test_image_is_a_name_docker_and_replicate_take(
    tmp_path: Path, image: str, problem: str
) -> None:
    err = error_of(write(tmp_path, MINIMAL + f"image: {image!r}\n"))
    assert err.message.startswith(f"image: {problem}"), err.message
    assert err.line == 4


@pytest.mark.parametrize(
    "image", ["r8.im/acme/alpha", "acme/alpha", "alpha", "localhost:5000/a/b:v1.2",
              "registry.example.com/team/a__b/c-d:latest", f"acme/alpha@sha256:{'0' * 64}"],
)
def test_image_names_docker_takes_are_valid(tmp_path: Path, image: str) -> None:
    assert validate_cog_yaml(write(tmp_path, MINIMAL + f"image: {image!r}\n")) == []


def test_model_with_registry_port_is_bare(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "model: localhost:5000/acme/toy\n")
    assert validate_cog_yaml(path) == []


def test_weights_need_model(tmp_path: Path) -> None:
    text = MINIMAL + "weights:\n  - name: base\n    target: /w\n    source: {uri: hf://a/b}\n"
    err = error_of(write(tmp_path, text))
    assert err.message == "weights: needs a top-level model: to push weights to"


# --- reporting -------------------------------------------------------------------------------


def test_all_problems_are_reported_in_file_order(tmp_path: Path) -> None:
    text = """\
    build:
      python_version: "3.9"
      bogus: 1
    run: "predict"
    environment:
      - PATH=/bin
    """
    err = error_of(write(tmp_path, text))
    assert err.line == 2
    assert err.message.split("; ") == [
        "build.python_version: '3.9' is too old: cog needs Python 3.10 or newer",
        "build.bogus: unknown key (allowed: cuda, cudnn, gpu, pre_install, python_packages, "
        "python_requirements, python_version, run, sdk_version, system_packages)",
        "run: expected FILE.py:NAME such as \"predict.py:Predictor\", got 'predict'",
        "environment[0]: PATH is reserved by Cog/Replicate and cannot be set in cog.yaml",
    ]
    assert str(err).startswith(f"{tmp_path / 'cog.yaml'}:2: build.python_version")
    assert "\n" not in str(err)


def test_wrong_typed_python_version_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "build:\n  python_version: true\nrun: predict.py:Predictor\n")
    assert error_of(path).message == (
        "build.python_version: True is not of type 'string', 'number'"
    )


def test_non_string_keys_are_unknown_keys(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "1: one\n"))
    assert err.message.startswith("1: unknown key")
    assert err.line == 4


def test_several_yaml_documents_are_rejected(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "---\nrun: other.py:P\n"))
    assert "invalid YAML" in err.message
    assert err.line == 4


def test_recursive_alias_does_not_hang(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MINIMAL + "environment: &loop\n  - *loop\n"))
    assert err.message == "an alias refers to a mapping or list that contains it"
    assert err.line == 4


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        (
            "{name: base, target: /w2, source: {uri: hf://a/c}}",
            "weights[1].name: 'base' is already used by weights[0]",
        ),
        (
            "{name: lora, target: /w/, source: {uri: hf://a/c}}",
            "weights[1].target: '/w/' overlaps weights[0].target '/w'",
        ),
        (
            "{name: lora, target: /w/lora, source: {uri: hf://a/c}}",
            "weights[1].target: '/w/lora' overlaps weights[0].target '/w'",
        ),
    ],
)
def test_weights_names_and_targets_are_unique(tmp_path: Path, second: str, problem: str) -> None:
    text = MINIMAL + (
        "model: r8.im/acme/toy\nweights:\n"
        "  - {name: base, target: /w, source: {uri: hf://a/b}}\n"
        f"  - {second}\n"
    )
    err = error_of(write(tmp_path, text))
    assert err.message == problem
    assert err.line == 7


def test_distinct_weight_targets_are_fine(tmp_path: Path) -> None:
    text = MINIMAL + (
        "model: r8.im/acme/toy\nweights:\n"
        "  - {name: base, target: /w, source: {uri: hf://a/b}}\n"
        "  - {name: lora, target: /w2, source: [{uri: hf://a/c}]}\n"
    )
    assert validate_cog_yaml(write(tmp_path, text)) == []


# --- the pinned Cog version's format -------------------------------------------------------


def test_pinned_cog_version_decides_run_predict_and_removed_keys(tmp_path: Path) -> None:
    predict = write(tmp_path, 'build:\n  python_version: "3.11"\npredict: "p.py:P"\n')
    assert "predict: deprecated since cog 0.20; use run" in validate_cog_yaml(predict)
    assert validate_cog_yaml(predict, cog_version="0.15.8") == []  # the only key it knows
    run = write(tmp_path, 'build:\n  python_version: "3.11"\nrun: "p.py:P"\n')
    assert validate_cog_yaml(run, cog_version="0.20.0") == []
    with pytest.raises(ConfigError) as err:
        validate_cog_yaml(run, cog_version="0.19.3")
    assert err.value.message == (
        "run: Cog 0.19.3 has no top-level run: (added in 0.20); use predict:"
    )
    assert err.value.line == 3
    fast = write(
        tmp_path, 'build:\n  python_version: "3.11"\n  fast: true\npredict: "p.py:P"\n'
    )
    assert validate_cog_yaml(fast, cog_version="0.16.8") == []  # valid before 0.17
    with pytest.raises(ConfigError) as err:
        validate_cog_yaml(fast, cog_version="0.17.0")
    assert "build.fast: removed in cog 0.17" in err.value.message


def test_render_validates_for_the_variants_pin(make_repo, cli) -> None:
    root = make_repo()
    variants = root / "models/fam/variants.yaml"
    variants.write_text(variants.read_text().replace(
        "model: acme/beta", 'model: acme/beta\n  cog_version: "0.15.8"'))
    result = cli("render", cwd=root)
    assert result.code == 0, result.err
    # the basic repo's template says predict:, which only alpha's newer Cog deprecates
    assert result.err == "warning: alpha: predict: deprecated since cog 0.20; use run\n"
