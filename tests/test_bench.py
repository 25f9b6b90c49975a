"""The benchmarks in ``bench/`` run with tiny parameters and write well-formed JSON.

Timings are never asserted (they depend on the machine); structure and the counts
that follow from the configuration are. The second half tests the build-folder
reuse the scale benchmark led to (``cogfleet._render_cache``): a second render reuses
an up-to-date folder and renders again whenever anything it was made from changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet import ExitCode
from cogfleet._errors import ConfigError
from cogfleet._plugins import Plugins
from cogfleet._render import Rendered
from cogfleet._render_folder import render_variant, render_variants
from cogfleet._repo import Repo

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench"


def _run_script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@pytest.mark.slow
def test_pipeline_quick_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    proc = _run_script("pipeline.py", "--quick", "--request-latency", "0.05", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["result"] == "passed"
    params = data["params"]
    assert params["parallel"] == 4 and params["test_cases"] == 2 and params["fuzz_iterations"] == 2
    # 2 test cases + 2 fuzz inputs + the live and the test run of the output comparison
    assert data["predictions"] == 6
    assert data["api_requests"]["prediction create"] == 6
    cp = data["critical_path"]
    assert cp["waves"] == 2  # ceil(6 / 4)
    for key in ("steps_s", "cold_start_s", "wave_s", "check_bound_s", "total_s"):
        assert _number(cp[key]), key
    assert cp["total_s"] >= cp["steps_s"] + cp["check_bound_s"]
    assert _number(data["wall_s"]) and _number(data["ratio"])
    assert data["ratio"] == pytest.approx(data["wall_s"] / cp["total_s"], rel=0.01)
    assert _number(data["prediction_requests_per_prediction"])
    assert data["prediction_requests_per_prediction"] >= 1
    # the quick config keeps the two match_prompt cases: 2 votes each, plus one fuzz proposal
    assert data["ai_requests"] == {"fuzz_proposals": 1, "judge": 4}
    assert "wall / critical path" in proc.stdout
    # outside the predictions the measured push makes three requests, none twice: the
    # live model's look-up, the push to the test model and the promotion
    trips = data["round_trips"]
    assert trips["outside_predictions"] == sorted([
        f"GET /v1/models/{pipeline_module().MODEL}",
        f"POST /v1/models/{pipeline_module().MODEL}/versions",
        f"POST /v1/models/{pipeline_module().TEST_MODEL}/versions",
    ])
    assert trips["repeated_fetches"] == []
    assert 1 <= trips["sequential"] <= 3 and len(trips["chain"]) == trips["sequential"]
    assert "round trips: sequential outside predictions" in proc.stdout


def pipeline_module() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import pipeline
    finally:
        sys.path.remove(str(BENCH))
    return pipeline


def test_sequential_chain_counts_overlapping_requests_once() -> None:
    bench = pipeline_module()
    req = bench.Request
    timed = [
        req("GET", "/v1/models/a/m", 200, 0.0, 0.5),  # overlaps the push: one round trip
        req("POST", "/v1/models/a/m-test/versions", 200, 0.01, 0.9),
        req("POST", "/v1/predictions", 201, 1.0, 3.0),  # predictions do not count
        req("GET", "/v1/files/x", 200, 3.0, 3.1),
        req("POST", "/v1/models/a/m/versions", 200, 3.2, 3.7),
        req("GET", "/v1/models/a/m", 200, 3.8, 4.0),  # the same look-up again
    ]
    chain = bench.sequential_chain(timed)
    assert [r.path for r in chain] == ["/v1/models/a/m", "/v1/models/a/m/versions",
                                       "/v1/models/a/m"]
    assert bench.repeated_fetches(timed) == ["GET /v1/models/a/m"]


def test_bench_names_no_machine_paths() -> None:
    """Docs and scripts give commands any user can run (no paths of one machine)."""
    texts = [*BENCH.glob("*.py"), BENCH / "README.md", REPO_ROOT / "README.md"]
    for path in texts:
        text = path.read_text()
        for marker in ("/work/", "/root/", "/home/", "/Users/", "/venv/bin/"):
            assert marker not in text, f"{path.name} names {marker}"


def test_critical_path_formula() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import pipeline
    finally:
        sys.path.remove(str(BENCH))
    cp = pipeline.critical_path(
        steps_s=2.0, cold_start_s=0.5, predictions=18, fuzz_predictions=10, parallel=4,
        latency=1.0, model_s=0.0, ai_latency=1.0, fuzz_proposals=1, judged_cases=2,
    )
    assert cp.waves == 5 and cp.check_bound_s == 5.0 and cp.total_s == 7.5
    # a slow AI proposal delays the fuzz chain past the plain waves
    slow = pipeline.critical_path(
        steps_s=0.0, cold_start_s=0.0, predictions=18, fuzz_predictions=10, parallel=4,
        latency=1.0, model_s=0.0, ai_latency=4.0, fuzz_proposals=1, judged_cases=0,
    )
    assert slow.check_bound_s == 7.0 and slow.ai_before_fuzz_s == 2.0


def test_scale_quick_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    _run_script("scale.py", "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["params"] == {"variants": 4, "families": 2, "repeat": 1}
    commands = data["commands"]
    assert set(commands) == {"list", "render_cold", "render_warm", "matrix_changed", "nox_list"}
    assert commands["list"]["stdout_lines"] == 4
    assert commands["render_cold"]["stdout_lines"] == 4
    for key in ("list", "render_cold", "render_warm", "nox_list"):
        assert commands[key]["status"] == "ok", commands[key]
        assert _number(commands[key]["seconds"])
    matrix = commands["matrix_changed"]
    assert matrix["status"] in ("ok", "not available"), matrix
    if matrix["status"] == "ok":  # one family of two touched: its two variants
        assert matrix["variants"] == data["touched_family_variants"] == 2
    assert _number(data["render_warm_speedup"])


def test_startup_quick_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    proc = _run_script("startup.py", "--quick", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["status"] == "ok", data
    assert data["params"]["variants"] == 4 and data["params"]["repeat"] == 2
    assert set(data["commands"]) == {"help", "list"}
    for item in data["commands"].values():
        assert item["status"] == "ok", item
        assert len(item["runs"]) == 2
        assert all(_number(item[k]) for k in ("seconds", "fastest_s", "cpu_s", "import_s"))
        assert item["fastest_s"] <= item["seconds"]
        assert item["modules"] > 0
        assert item["heavy"] == []  # neither command loads the server, clients or plugins
    assert _number(data["python_floor"]["seconds"])
    assert "startup: cogfleet list (4 variants)" in proc.stdout


@pytest.mark.slow
def test_run_all_quick_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = _run_script("run_all.py", "--quick", "--output", str(out))
    data = json.loads(out.read_text())
    assert data["quick"] is True
    for section in ("pipeline", "round_trips", "scale", "startup", "server_overhead",
                    "environments"):
        assert data[section]["status"] == "ok", data[section]
    rows = data["server_overhead"]["rows"]
    # sequential, 2 concurrent threads, 2 client processes, then 1 and 2 clients with a
    # model that waits
    assert [r["n"] for r in rows] == [8, 8, 8, 4, 8]
    assert rows[2]["scenario"] == "2 client processes"
    assert rows[3]["scenario"].startswith("1 client, model")
    assert 0 <= data["server_overhead"]["cpu_share"] <= 1
    figures = [row["figure"] for row in data["table"]]
    assert any(f.startswith("pipeline: wall / critical path") for f in figures)
    assert any(f.startswith("round trips: sequential outside predictions") for f in figures)
    # the keys other tools read stay where they were
    assert _number(data["pipeline"]["ratio"])
    assert _number(data["pipeline"]["api_requests_per_prediction"])
    assert _number(data["scale"]["commands"]["list"]["seconds"])
    assert _number(data["scale"]["commands"]["render_warm"]["seconds"])
    assert all(_number(row["overhead_p50_ms"]) for row in rows)
    assert _number(data["round_trips"]["round_trips"]["sequential"])
    assert _number(data["startup"]["commands"]["help"]["seconds"])
    assert _number(data["startup"]["commands"]["list"]["seconds"])
    assert any(f.startswith("scale (4 variants): cogfleet render (all, warm)") for f in figures)
    assert any(f.startswith("server overhead: sequential") for f in figures)
    environments = data["environments"]
    (row,) = environments["cold_builds"]  # --quick: one variant of the demo family
    assert (row["variant"], row["built"]) == ("toml-two", True)
    assert _number(row["build_s"]) and row["own_bytes"] > 0
    assert row["apparent_bytes"] >= row["own_bytes"]
    cost = environments["push_cost"]
    assert cost["pushes"] == 3
    for what in ("push", "total"):
        assert _number(cost[f"isolated_{what}_p50_s"]) and _number(cost[f"current_{what}_p50_s"])
        assert cost[f"isolated_{what}_p50_s"] > 0 and cost[f"current_{what}_p50_s"] > 0
    # a push + its first prediction takes longer than the push alone
    assert cost["isolated_total_p50_s"] > cost["isolated_push_p50_s"]
    added = cost["isolated_total_p50_s"] - cost["current_total_p50_s"]
    assert cost["added_s"] == pytest.approx(added, abs=1e-3)
    assert cost["met"] is (cost["added_s"] < 0.2)
    assert any(f.startswith("environments: push + first prediction") for f in figures)
    assert all(f in proc.stdout for f in figures)


def test_overhead_table_parser() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    text = (
        "| scenario | n | p50 | p95 | wall | req/s |\n|---|--:|\n"
        "| sequential             |   200 |    15.70 |    29.50 |    19.90 |    46.9 |\n"
        "| 8 concurrent clients   |   200 |    91.20 |   196.70 |   105.20 |    61.3 |\n"
    )
    rows = run_all.parse_overhead_table(text)
    assert rows == [
        {"scenario": "sequential", "n": 200, "overhead_p50_ms": 15.7, "overhead_p95_ms": 29.5,
         "wall_p50_ms": 19.9, "requests_per_s": 46.9},
        {"scenario": "8 concurrent clients", "n": 200, "overhead_p50_ms": 91.2,
         "overhead_p95_ms": 196.7, "wall_p50_ms": 105.2, "requests_per_s": 61.3},
    ]


# --- reusing up-to-date build folders ------------------------------------------------


MakeRepo = Callable[..., Path]


def _render(root: Path, name: str = "alpha") -> Rendered:
    repo = Repo.load(root)
    return render_variant(repo, repo.variants[name], Plugins(root))


def test_second_render_reuses_the_build_folder(make_repo: MakeRepo) -> None:
    root = make_repo()
    first = _render(root)
    assert not first.reused and first.written
    second = _render(root)
    assert second.reused and second.written == [] and second.removed == []
    assert second.files == first.files
    assert second.reads == first.reads
    # the config is parsed on first use, to the same result
    assert second.config == first.config and second.model == "acme/alpha"


@pytest.mark.parametrize(
    "change",
    [
        # an included partial changes
        {"templates/partials/env.yaml.j2": "environment:\n  - STEPS={{ steps }}0\n"},
        # the variant's variables change
        {"models/fam/variants.yaml": "alpha:\n  model: acme/alpha\n  variables: {steps: 5}\n"
                                     "beta:\n  model: acme/beta\n  variables: {steps: 8}\n"},
        # a new file in the family
        {"models/fam/extra.txt": "new\n"},
        # a partial in the family shadows the shared one
        {"models/fam/partials/env.yaml.j2": "environment:\n  - SHADOW=1\n"},
        # a file outside the family, earlier on the search path (templates/ comes before
        # the repo root), now answers the name "templates/cog.yaml.j2"
        {"templates/templates/cog.yaml.j2": 'build:\n  python_version: "3.11"\n'
                                            'predict: "predict.py:Predictor"\n'},
        # the config changes
        {"cog-safe-push-configs/alpha.yaml": "model: acme/alpha\n"},
    ],
    ids=["partial", "variables", "new-family-file", "family-shadow", "search-path-shadow",
         "config"],
)
def test_any_input_change_renders_again(
    make_repo: MakeRepo, change: dict[str, str | bytes | None]
) -> None:
    from tests.conftest import write_files

    root = make_repo()
    first = _render(root)
    write_files(root, change)
    again = _render(root)
    assert not again.reused
    assert again.files != first.files
    assert _render(root).reused  # and is reused from then on


# Renders alpha in a fresh interpreter: whether Cog's JSON Schema check ran (it needs
# jsonschema, which nothing else a render does imports).
_RENDER_PROBE = """\
import json, sys
from cogfleet._plugins import Plugins
from cogfleet._render_folder import render_variant
from cogfleet._repo import Repo
from pathlib import Path
repo = Repo.load(Path(sys.argv[1]))
rendered = render_variant(repo, repo.variants["alpha"], Plugins(repo.root))
print(json.dumps({"reused": rendered.reused, "schema": "jsonschema" in sys.modules}))
"""


def _render_fresh(root: Path) -> dict[str, bool]:
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER_PROBE, str(root)], capture_output=True, text=True,
        timeout=120, check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_a_rerender_with_the_same_cog_yaml_does_not_check_its_schema_again(
    make_repo: MakeRepo,
) -> None:
    from tests.conftest import write_files

    root = make_repo()
    assert _render_fresh(root) == {"reused": False, "schema": True}
    write_files(root, {"models/fam/extra.txt": "new\n"})  # cog.yaml stays the same
    assert _render_fresh(root) == {"reused": False, "schema": False}
    write_files(root, {"templates/partials/env.yaml.j2": "environment:\n  - STEPS=1\n"})
    assert _render_fresh(root) == {"reused": False, "schema": True}
    # a manifest that does not say under which Cog the text passed proves nothing
    manifest = root / ".cogfleet" / "cache" / "render" / "alpha.json"
    data = json.loads(manifest.read_text())
    del data["cog_version"]
    manifest.write_text(json.dumps(data))
    write_files(root, {"models/fam/extra.txt": "newer\n"})
    assert _render_fresh(root) == {"reused": False, "schema": True}


def test_a_changed_cog_yaml_meets_the_schema_check_again(make_repo: MakeRepo) -> None:
    from tests.conftest import write_files

    root = make_repo()
    _render(root)
    write_files(root, {"templates/partials/env.yaml.j2": "environment: []\nimage_size: 3\n"})
    with pytest.raises(ConfigError, match="image_size: unknown key"):
        _render(root)


def test_a_changed_build_folder_is_restored(make_repo: MakeRepo) -> None:
    root = make_repo()
    first = _render(root)
    build = first.build_dir
    (build / "cog.yaml").write_text("edited by hand\n")
    (build / "stray.txt").write_text("x\n")
    again = _render(root)
    assert not again.reused
    assert (build / "cog.yaml").read_bytes() == first.files["cog.yaml"]
    assert not (build / "stray.txt").exists()
    (build / "predict.py").unlink()
    assert not _render(root).reused
    assert (build / "predict.py").read_bytes() == first.files["predict.py"]


def test_reuse_in_render_variants_and_the_cli(
    make_repo: MakeRepo, cli: Callable[..., Any]
) -> None:
    root = make_repo()
    assert cli("render", cwd=root).code == ExitCode.OK
    from tests.conftest import write_files

    write_files(root, {"cog-safe-push-configs/beta.yaml": "model: acme/beta\nparallel: 2\n"})
    repo = Repo.load(root)
    alpha, beta = render_variants(repo, list(repo.variants.values()), Plugins(root))
    assert alpha.reused and not beta.reused
    assert beta.config.parallel == 2
    result = cli("render", cwd=root)
    assert result.code == ExitCode.OK and "0 changed" in result.out


def test_damaged_template_cache_compiles_again(make_repo: MakeRepo) -> None:
    from cogfleet import _templates as templates_module

    root = make_repo()
    first = _render(root)
    cache_files = list((root / ".cogfleet" / "cache" / "jinja").glob("*.cache"))
    assert cache_files  # the compiled templates were kept on disk
    for path in cache_files:
        path.write_bytes(path.read_bytes()[:40])  # cut short: marshal data is damaged
    templates_module._CACHES.clear()  # as in a new process
    (root / ".cogfleet" / "build" / "alpha" / "cog.yaml").unlink()
    again = _render(root)
    assert not again.reused and again.files == first.files
