"""Variant discovery from models/*/variants.yaml and cog-safe-push-configs/."""

from __future__ import annotations

import json

from cogfleet import ExitCode


def test_list_shows_every_variant(make_repo, cli):
    root = make_repo()
    result = cli("list", cwd=root)
    assert result.code == ExitCode.OK
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["alpha", "beta"]
    assert "acme/alpha" in lines[0]


def test_list_json(make_repo, cli):
    root = make_repo()
    data = json.loads(cli("list", "--json", cwd=root).out)
    assert data[0] == {
        "name": "alpha",
        "family": "fam",
        "model": "acme/alpha",
        "config": "cog-safe-push-configs/alpha.yaml",
        "variables": {"steps": 4},
    }


def test_found_from_a_subfolder(make_repo, cli):
    root = make_repo()
    result = cli("list", cwd=root / "models" / "fam")
    assert result.code == ExitCode.OK and "alpha" in result.out


def test_duplicate_variant_names_both_files(make_repo, cli):
    root = make_repo({"models/other/variants.yaml": "alpha:\n  model: acme/x\n"})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "error: models/other/variants.yaml" in result.err
    assert "'alpha' is also declared in models/fam/variants.yaml" in result.err


def test_variant_without_config(make_repo, cli):
    root = make_repo({"cog-safe-push-configs/beta.yaml": None})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "models/fam/variants.yaml" in result.err
    assert "cog-safe-push-configs/beta.yaml" in result.err


def test_config_without_variant(make_repo, cli):
    root = make_repo({"cog-safe-push-configs/gamma.yaml": "model: acme/gamma\n"})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "cog-safe-push-configs/gamma.yaml" in result.err
    assert "unknown variant 'gamma'" in result.err


def test_invalid_variants_yaml_names_file_and_line(make_repo, cli):
    root = make_repo({"models/fam/variants.yaml": "alpha:\n  model: [unclosed\n"})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: models/fam/variants.yaml:")
    assert "invalid YAML" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_unknown_key_in_variant(make_repo, cli):
    root = make_repo({"models/fam/variants.yaml": "alpha:\n  modle: acme/a\n"})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "unknown key 'modle'" in result.err


def test_unknown_variant_lists_valid_ones(make_repo, cli):
    root = make_repo()
    result = cli("render", "gamma", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "unknown variant 'gamma'; valid: alpha, beta" in result.err


def test_outside_a_monorepo(tmp_path, cli):
    result = cli("list", cwd=tmp_path)
    assert result.code == ExitCode.USAGE_ERROR
    assert "no cogfleet monorepo found" in result.err
