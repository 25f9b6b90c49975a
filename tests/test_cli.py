"""The command line: entry points, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cogfleet import ExitCode
from tests.conftest import run_console

INTERRUPTING_PLUGIN = """\
from cogfleet import hookimpl


@hookimpl
def cogfleet_template_variables(variant):
    raise KeyboardInterrupt
"""


def test_python_dash_m_and_console_script(make_repo):
    root = make_repo()
    result = run_console("list", cwd=root)
    assert result.code == 0 and "alpha" in result.out
    script = Path(sys.executable).parent / "cogfleet"
    assert script.is_file(), "the cogfleet console script is installed beside python"
    proc = subprocess.run([str(script), "list"], cwd=root, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and "beta" in proc.stdout


def test_help_lists_commands(tmp_path):
    proc = run_console("--help", cwd=tmp_path)
    assert proc.code == 0
    for command in ("list", "render", "lint", "plugins", "select", "schema", "serve"):
        assert command in proc.out


def test_bad_arguments_exit_2_with_one_line(make_repo, cli):
    root = make_repo()
    result = cli("list", "--jsn", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.count("\n") == 1 and "unrecognized arguments: --jsn" in result.err


def test_no_command_prints_help(cli, tmp_path):
    result = cli(cwd=tmp_path)
    assert result.code == ExitCode.USAGE_ERROR and "COMMAND" in result.out


def test_traceback_only_with_vvv(make_repo):
    root = make_repo({"templates/cog.yaml.j2": "{{ nope }}\n"})
    quiet = run_console("render", "alpha", cwd=root)
    assert quiet.code == 2 and "Traceback" not in quiet.err
    assert quiet.err.strip().startswith("error: templates/cog.yaml.j2:1: undefined variable")
    loud = run_console("render", "alpha", "-vvv", cwd=root)
    assert loud.code == 2 and "Traceback" in loud.err


def test_interrupt_exits_130(make_repo, cli):
    root = make_repo({"plugins/stop.py": INTERRUPTING_PLUGIN})
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.INTERRUPTED == 130


def test_lint_reports_ruff_problems_with_file(make_repo, cli):
    root = make_repo({"models/fam/predict.py": "import os\n" + open_predict()})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "models/fam/predict.py:1:8: F401" in result.out  # the source, not its copy
    assert ".cogfleet" not in result.out


def test_lint_passes_clean_variants(make_repo, cli):
    root = make_repo()
    result = cli("lint", cwd=root)
    assert result.code == ExitCode.OK, result.out + result.err
    assert result.out.splitlines() == ["alpha: ok", "beta: ok"]


def open_predict() -> str:
    from tests.conftest import PREDICT_PY

    return PREDICT_PY
