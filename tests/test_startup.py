"""Start-up structure: a command imports what it runs, and nothing else.

Timings are measured in ``bench/startup.py``; these tests pin the structure that makes
start-up fast: what ``cogfleet --help`` and ``cogfleet list`` import (checked in a fresh
interpreter through ``sys.modules``), and that building only the running command's
flags changes nothing a user sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet.cli import build_parser
from cogfleet.cli._main import COMMANDS

# Run in a fresh interpreter: the command, then the modules it imported, as JSON
# (None entries in sys.modules are imports cogfleet keeps from happening).
PROBE = """\
import json, sys
from cogfleet.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(n for n, m in sys.modules.items() if m)}))
"""

# Never needed to list commands or variants.
HEAVY = [
    "cogfleet.server", "cogfleet._run", "cogfleet._pipeline", "cogfleet._plugins",
    "cogfleet._render", "cogfleet._target", "cogfleet.builtins", "cogfleet.schema",
    "replicate", "anthropic", "httpx", "pydantic", "jinja2", "starlette", "uvicorn", "rich",
    "jq", "jsonschema", "PIL", "pluggy",
]


def _imports(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["code"], set(data["modules"])


def _fresh(code: str) -> Any:
    """What ``code``, run in a fresh interpreter, printed last (as JSON)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_help_imports_no_command(tmp_path: Path) -> None:
    code, modules = _imports(["--help"], tmp_path)
    assert code == 0
    assert _loaded(modules, [*HEAVY, "yaml"]) == []
    assert "argparse" in modules  # the probe did run the command line


def test_list_imports_only_the_repo(make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    code, modules = _imports(["list"], root)
    assert code == 0
    assert "cogfleet._repo" in modules
    assert _loaded(modules, HEAVY) == []


def test_push_help_imports_neither_the_pipeline_nor_the_server(tmp_path: Path) -> None:
    code, modules = _imports(["push", "--help"], tmp_path)
    assert code == 0
    assert _loaded(modules, HEAVY) == []


def _help(
    parser_args: list[str] | None, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    parser = build_parser(parser_args)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], *([c.name, "--help"] for c in COMMANDS)])
def test_each_command_reads_as_with_every_flag_built(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The parser built for one command prints what the parser with every flag prints."""
    assert _help(argv, argv, capsys) == _help(None, argv, capsys)


# ---------------------------------------------------------------------------- the exit
EXIT_PROBE = """\
import atexit, sys
from cogfleet.cli import run
marker = sys.argv.pop()
atexit.register(lambda: open(marker, "w").write("ran"))
run()
"""


@pytest.mark.parametrize(
    ("args", "code"), [(["list", "--json"], 0), (["lint", "no-such-variant"], 2)]
)
def test_the_program_ends_after_its_output_and_exit_handlers(
    demo_repo: Path, tmp_path: Path, args: list[str], code: int
) -> None:
    """``run`` ends the process without the interpreter's teardown, but only after the
    output is flushed and the exit handlers (temporary folders, finalizers) have run."""
    marker = tmp_path / "atexit.txt"
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, *args, str(marker)], cwd=demo_repo,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == code, proc.stderr
    assert marker.read_text() == "ran"
    if code == 0:
        names = {v["name"] for v in json.loads(proc.stdout)}
        assert {"schnell", "dev", "caption"} <= names
    else:
        assert proc.stdout == ""
        assert proc.stderr.startswith("error: ") and "no-such-variant" in proc.stderr


def test_python_dash_m_is_the_program(demo_repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", "list"], cwd=demo_repo, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cogfleet-demo/imagegen-schnell" in proc.stdout


# What a push process and its judge process import to talk to the APIs, and what that
# must leave out (the judge process loads the client after skip_unused_extras).
API_PROBE = """\
import json, sys
import cogfleet.cli
from cogfleet._extras import skip_unused_extras
import cogfleet._run
skip_unused_extras()
import httpx, anthropic
loaded = sorted(n for n, m in sys.modules.items() if m)
print(json.dumps({"main": httpx.main.__module__, "modules": loaded}))
"""


def test_the_libraries_optional_extras_stay_unloaded() -> None:
    data = _fresh(API_PROBE)
    modules = set(data["modules"])
    assert {"httpx", "anthropic", "replicate"} <= modules
    # httpx's command-line client (click, pygments) and anthropic's aiohttp transport
    assert _loaded(modules, ["httpx._main", "click", "pygments", "aiohttp"]) == []
    assert data["main"] == "httpx"  # httpx's own stand-in for its missing CLI


def test_loading_the_checkers_leaves_pillow_for_the_first_image() -> None:
    probe = (
        "import json, sys\n"
        "from cogfleet._plugins import Plugins\n"
        "plugins = Plugins()\n"
        "before = 'PIL' in sys.modules\n"
        "from cogfleet._images import image_info\n"
        "import base64\n"
        "gif = base64.b64decode('R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==')\n"
        "info = image_info(gif)\n"
        "print(json.dumps({'before': before, 'size': info.size if info else None}))\n"
    )
    assert _fresh(probe) == {"before": False, "size": "1x1"}


def test_the_fuzz_prompt_leaves_jsonschema_for_the_first_validation() -> None:
    # A push builds the AI's fuzz prompt while its first predictions are being sent;
    # jsonschema (60-140 ms) is imported when the proposed inputs are validated.
    probe = (
        "import json, sys\n"
        "from cogfleet.schema import fuzz_prompt, validate_inputs\n"
        "doc = {'components': {'schemas': {'Input': {'type': 'object', 'properties': {\n"
        "    'prompt': {'type': 'string', 'title': 'Prompt'}}, 'required': ['prompt']}}}}\n"
        "text = fuzz_prompt(doc, iterations=2, fixed_inputs={}, disabled_inputs=[],\n"
        "                   user_prompt=None)\n"
        "before = 'jsonschema' in sys.modules\n"
        "problems = validate_inputs(doc, {'prompt': 3, 'extra': 1})\n"
        "print(json.dumps({'before': before, 'prompt': 'prompt' in text, 'problems': problems}))\n"
    )
    data = _fresh(probe)
    assert data["before"] is False
    assert data["prompt"] is True
    assert data["problems"] == [
        "input 'extra': unknown input", "input 'prompt': 3 is not of type 'string'"
    ]
