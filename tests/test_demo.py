"""The demo monorepo of this repository: variants, configs, the example plugin, schemas."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cogfleet import ExitCode
from cogfleet._checks import CheckContext, decode_data_uri
from cogfleet._plugins import Plugins
from tests.conftest import REPO_ROOT


def _rendered_configs(root: Path) -> dict[str, dict]:
    build = root / ".cogfleet/build"
    return {d.name: yaml.safe_load((d / "cog-safe-push.yaml").read_text())
            for d in sorted(build.iterdir())}


def test_demo_lists_and_lints(cli, demo_repo):
    listed = json.loads(cli("list", "--json", cwd=demo_repo).out)
    assert {v["name"]: v["family"] for v in listed} == {
        "caption": "captioner", "dev": "imagegen", "schnell": "imagegen",
        "toml-legacy": "tomlparse", "toml-one": "tomlparse", "toml-two": "tomlparse"}
    result = cli("lint", cwd=demo_repo)
    assert result.code == ExitCode.OK, result.out + result.err


def test_demo_configs_use_every_checker_and_fuzz(cli, demo_repo):
    assert cli("render", cwd=demo_repo).code == ExitCode.OK
    configs = _rendered_configs(demo_repo)
    used = {key for cfg in configs.values() for section in ("predict", "train")
            for case in (cfg.get(section) or {}).get("test_cases", [])
            for key in case if key != "inputs"}
    assert used >= {"exact_string", "match_url", "jq_query", "error_contains", "match_prompt",
                    "image_size"}
    assert all(cfg["predict"]["fuzz"]["iterations"] > 0 for cfg in configs.values())
    # match_url points at a reference output kept in the repo
    urls = [case["match_url"] for cfg in configs.values()
            for case in cfg["predict"]["test_cases"] if "match_url" in case]
    assert urls and all((demo_repo / u).is_file() for u in urls)


def test_variant_variables_reach_the_predictor(cli, demo_repo):
    assert cli("render", "schnell", "dev", cwd=demo_repo).code == ExitCode.OK
    schnell = (demo_repo / ".cogfleet/build/schnell/predict.py").read_text()
    dev = (demo_repo / ".cogfleet/build/dev/predict.py").read_text()
    assert "MAX_STEPS = 4" in schnell and "MAX_STEPS = 50" in dev


def test_image_size_plugin_is_loaded_from_the_repo(cli, demo_repo):
    infos = json.loads(cli("plugins", "--json", cwd=demo_repo).out)
    plugin = next(i for i in infos if i["name"] == "image_size")
    assert plugin["source"] == "plugins/image_size.py"
    assert plugin["hooks"] == ["cogfleet_register_checkers"]


def test_image_size_key_is_validated_by_the_plugin(cli, demo_repo, monkeypatch):
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    original = config.read_text()
    config.write_text(original.replace("image_size: 256x256", "image_size: big"))
    result = cli("render", "schnell", cwd=demo_repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert "cog-safe-push-configs/schnell.yaml" in result.err
    assert "predict.test_cases[1].image_size" in result.err and "'big'" in result.err
    config.write_text(original)
    monkeypatch.setenv("COGFLEET_DISABLE_PLUGINS", "image_size")
    blocked = cli("render", "schnell", cwd=demo_repo)
    assert blocked.code == ExitCode.USAGE_ERROR
    assert "unknown checker 'image_size'" in blocked.err


def _png_uri(size: tuple[int, int]) -> str:
    import base64

    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(("size", "passed"), [((256, 256), True), ((256, 144), False)])
def test_image_size_checker_on_real_images(size, passed):
    checker = Plugins(REPO_ROOT).checkers()["image_size"]
    ctx = CheckContext(
        expected="256x256", inputs={}, output=[_png_uri(size)], error=None,
        status="succeeded", prediction={}, read_file=decode_data_uri,
    )
    assert checker.check(ctx).passed is passed


def test_schnell_schema_has_cogs_shape(cli, demo_repo):
    result = cli("schema", "schnell", cwd=demo_repo)
    assert result.code == ExitCode.OK, result.err
    doc = json.loads(result.out)
    schemas = doc["components"]["schemas"]
    inputs = schemas["Input"]
    props = inputs["properties"]
    assert list(props) == ["prompt", "seed", "aspect_ratio", "num_outputs",
                           "num_inference_steps", "output_format", "output_quality", "go_fast"]
    assert [p["x-order"] for p in props.values()] == list(range(8))
    assert inputs["required"] == ["prompt"]
    assert props["num_inference_steps"] == {
        "default": 4, "description": props["num_inference_steps"]["description"],
        "maximum": 4, "minimum": 1, "title": "Num Inference Steps", "type": "integer",
        "x-order": 4,
    }
    assert props["seed"]["nullable"] is True and "seed" not in inputs["required"]
    assert props["aspect_ratio"]["allOf"] == [{"$ref": "#/components/schemas/aspect_ratio"}]
    assert "type" not in props["aspect_ratio"] and "title" not in props["aspect_ratio"]
    assert schemas["aspect_ratio"]["description"] == "An enumeration."
    assert schemas["aspect_ratio"]["type"] == "string" and "1:1" in schemas["aspect_ratio"]["enum"]
    assert schemas["Output"] == {"items": {"format": "uri", "type": "string"},
                                 "title": "Output", "type": "array"}
    assert all(p.get("description") for p in props.values())
    dev = json.loads(cli("schema", "dev", cwd=demo_repo).out)
    dev_steps = dev["components"]["schemas"]["Input"]["properties"]["num_inference_steps"]
    assert (dev_steps["maximum"], dev_steps["default"]) == (50, 28)


@pytest.mark.slow
def test_schema_command_prints_what_a_pushed_version_gets(cli, demo_repo, tmp_path):
    import replicate

    from cogfleet.server._embedded import LocalServer
    from cogfleet.server._push import push_build

    printed = json.loads(cli("schema", "schnell", cwd=demo_repo).out)
    with LocalServer(state_dir=tmp_path / "state") as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="s", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "s", demo_repo / ".cogfleet/build/schnell")
        assert version["openapi_schema"] == printed
        again = push_build(client, "acme", "s", demo_repo / ".cogfleet/build/schnell")
        assert again["id"] == version["id"]  # same folder, same id


@pytest.mark.slow
def test_tomlparse_family_runs_each_variant_as_its_cog_builds_it(cli, demo_repo, tmp_path):
    """Conflicting pins side by side, and a variant pinned to Cog 0.15.8 (seed optional)."""
    from cogfleet.runtime import installed_version

    report_path = tmp_path / "report.json"
    # the README's command: the embedded server, models created on first use
    result = cli("push", "toml-one", "toml-two", "toml-legacy", "--report-json",
                 str(report_path), cwd=demo_repo)
    assert result.code == ExitCode.OK, result.err
    reports = {r["variant"]: r for r in json.loads(report_path.read_text())}

    assert {name: r["cog_version"] for name, r in reports.items()} == {
        "toml-one": installed_version(), "toml-two": installed_version(),
        "toml-legacy": "0.15.8"}
    assert all(r["environment"] == "isolated" and r["pushed"] for r in reports.values())
    push = {name: next(s["message"] for s in r["steps"] if s["name"] == "push-test")
            for name, r in reports.items()}
    assert ", coglet" in push["toml-one"] and ", cog.server.http" in push["toml-legacy"]
    # each variant's test cases check which tomli its environment has (jq_query)
    cases = {name: [c["status"] for c in r["cases"] if c["kind"] == "test-case"]
             for name, r in reports.items()}
    assert cases == {name: ["passed", "passed"] for name in reports}
