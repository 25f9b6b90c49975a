"""Start-up: `cogfleet --help` and `cogfleet list` (200 variants), and what they import.

Each command runs through the real command line ``--repeat`` times after one untimed
run, in a user's environment (without ``PYTHONDONTWRITEBYTECODE``, which some sandboxes
set): the first run writes the bytecode caches, the measured ones read them, as on any
machine after a tool's first run. Reported per command:

* wall time (median and fastest run) and the child's CPU time (user + sys, median),
  which a busy shared machine inflates far less than wall time;
* what the command imports: the number of modules, the total import time from
  ``python -X importtime``, and which heavy libraries are among them;
* ``python -c pass`` as the floor: the interpreter's own start-up.

``cogfleet list`` runs on the generated monorepo of ``bench/scale.py``.

    python bench/startup.py [--variants 200] [--repeat 20] [--json PATH]
    python bench/startup.py --src OTHER/src    # another source tree, via python -m cogfleet
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script: the sibling benchmarks import by name
    sys.path.insert(0, str(HERE))

import scale  # noqa: E402

BIN = Path(sys.executable).parent

# Libraries a command that does not use them should never pay for.
HEAVY = (
    "cogfleet.server", "cogfleet._run", "cogfleet._pipeline", "cogfleet._render",
    "cogfleet._plugins", "replicate", "anthropic", "httpx", "pydantic", "jinja2",
    "starlette", "uvicorn", "rich", "jq", "jsonschema", "PIL", "cog",
)

# Run in the child: the command, then the names of the modules it imported.
_PROBE = """\
import json, sys
try:
    from cogfleet.cli import main
except ImportError:  # a source tree from before the cli package (for --src comparisons)
    from cogfleet._cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps(sorted(n for n, m in sys.modules.items() if m)) + "\\n")
"""


def _env(src: Path | None) -> dict[str, str]:
    """A user's environment (bytecode caches written and read), ``src`` first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def _command(args: list[str], src: Path | None) -> list[str]:
    if src is not None:  # the console script is bound to the installed tree
        return [sys.executable, "-m", "cogfleet", *args]
    return [str(BIN / "cogfleet"), *args]


def _run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + sys) and exit code of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def _imports(args: list[str], cwd: Path, src: Path | None) -> dict[str, Any]:
    """Modules the command imports and their total import time (``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE, *args], cwd=cwd, env=_env(src),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )
    lines = proc.stderr.rstrip().splitlines()
    modules: list[str] = json.loads(lines[-1]) if lines and lines[-1].startswith("[") else []
    total_us = 0
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        # top-level imports only: their cumulative times add up to the whole
        if not name.startswith("  ") and cumulative.strip().isdigit():
            total_us += int(cumulative)
    heavy = sorted(
        h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)
    )
    return {"modules": len(modules), "import_s": round(total_us / 1e6, 3), "heavy": heavy}


def measure(
    label: str, args: list[str], cwd: Path, *, repeat: int, src: Path | None
) -> dict[str, Any]:
    """Time ``cogfleet ARGS`` ``repeat`` times (after one untimed run) and list its imports."""
    cmd = _command(args, src)
    _, _, code = _run_once(cmd, cwd, _env(src))
    if code != 0:
        return {"status": "failed", "exit": code, "command": label}
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu, code = _run_once(cmd, cwd, _env(src))
        if code != 0:
            return {"status": "failed", "exit": code, "command": label}
        walls.append(wall)
        cpus.append(cpu)
    return {
        "status": "ok",
        "command": label,
        "seconds": round(statistics.median(walls), 3),
        "fastest_s": round(min(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "runs": [round(w, 3) for w in walls],
        **_imports(args, cwd, src),
    }


def _floor(repeat: int) -> dict[str, Any]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu, _ = _run_once([sys.executable, "-c", "pass"], HERE, _env(None))
        walls.append(wall)
        cpus.append(cpu)
    return {"seconds": round(statistics.median(walls), 3), "fastest_s": round(min(walls), 3),
            "cpu_s": round(statistics.median(cpus), 3)}


def run(
    *, variants: int = 200, families: int = 10, repeat: int = 20, src: Path | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Generate the monorepo, time both commands, return the figures."""
    with tempfile.TemporaryDirectory(prefix="cogfleet-startup-", dir=workdir) as tmp:
        repo = Path(tmp) / "repo"
        scale.make_repo(repo, variants=variants, families=families)
        commands = {
            "help": measure("cogfleet --help", ["--help"], repo, repeat=repeat, src=src),
            "list": measure("cogfleet list", ["list"], repo, repeat=repeat, src=src),
        }
    failed = [c["command"] for c in commands.values() if c["status"] != "ok"]
    return {
        "status": "failed" if failed else "ok",
        **({"error": f"{', '.join(failed)} failed"} if failed else {}),
        "params": {"variants": variants, "families": families, "repeat": repeat,
                   "source": "installed" if src is None else "--src"},
        "python_floor": _floor(repeat),
        "commands": commands,
    }


def table_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the summary table."""
    n = data["params"]["variants"]
    rows = []
    for key, item in data["commands"].items():
        label = f"startup: {item['command']}" + (f" ({n} variants)" if key == "list" else "")
        if item["status"] != "ok":
            rows.append((label, f"failed (exit {item.get('exit')})"))
            continue
        heavy = ", ".join(item["heavy"]) or "none"
        rows.append((label, f"{item['seconds']:.3f} s (fastest {item['fastest_s']:.3f} s, "
                            f"CPU {item['cpu_s']:.3f} s; {item['modules']} modules, "
                            f"imports {item['import_s']:.3f} s; heavy: {heavy})"))
    floor = data["python_floor"]
    rows.append(("startup: python -c pass (floor)",
                 f"{floor['seconds']:.3f} s (fastest {floor['fastest_s']:.3f} s, "
                 f"CPU {floor['cpu_s']:.3f} s)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=200)
    parser.add_argument("--families", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="4 variants, 2 runs (smoke test)")
    parser.add_argument("--src", type=Path, help="time this source tree (python -m cogfleet)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.variants, args.families, args.repeat = 4, 2, 2
    src = args.src.resolve() if args.src else None
    data = run(variants=args.variants, families=args.families, repeat=args.repeat, src=src)
    for figure, value in table_rows(data):
        print(f"| {figure} | {value}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if data["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
