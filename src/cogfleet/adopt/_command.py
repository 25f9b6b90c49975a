"""``cogfleet init`` itself: plan, show, and write (checked, undone on failure).

In a folder that is empty it scaffolds a new monorepo; otherwise it adopts the repo
as :mod:`cogfleet.adopt._plan` plans it, or stops naming what it found and missed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cogfleet._errors import CogfleetError, ConfigError
from cogfleet._files import write_atomic
from cogfleet._repo import MODELS_DIR, VARIANTS_FILE, Repo
from cogfleet._scaffold import FILES as SCAFFOLD_FILES
from cogfleet.adopt._plan import Plan, plan_adopt
from cogfleet.adopt._read import CONFIG_DIRS, LayoutError
from cogfleet.adopt._scriptrun import scratch_ignore

# --- scaffolding -------------------------------------------------------------------------


def plan_scaffold() -> Plan:
    return Plan(
        kind="scaffold",
        files=dict(SCAFFOLD_FILES),
        notes=["next: cogfleet push hello (a full safe push on the local server)"],
    )


# --- the command -------------------------------------------------------------------------


def _is_empty(root: Path) -> bool:
    return not any(p.name != ".git" for p in root.iterdir())


def plan_init(root: Path) -> Plan:
    """What ``cogfleet init`` would do in ``root`` (raises for a layout it cannot use)."""
    if Repo.is_root(root):
        what = VARIANTS_FILE if (root / VARIANTS_FILE).is_file() else (
            f"{MODELS_DIR}/<family>/{VARIANTS_FILE}"
        )
        raise LayoutError(f"{root} is already a cogfleet monorepo ({what} exists)")
    if _is_empty(root):
        return plan_scaffold()
    plan = plan_adopt(root)
    if plan is not None and plan.expected:
        _check_in_copy(root, plan)
    if plan is None:
        present = sorted(p.name for p in root.iterdir() if p.name != ".git")[:8]
        raise LayoutError(
            f"cannot init here: the folder is not empty (found {', '.join(present)}) and has "
            "no select-script layout (missing a select script that writes cog.yaml, such "
            "as script/select.sh, or a base such as cog.yaml.template with overlays in "
            f"model-cog-configs/; and configs in {' or '.join(CONFIG_DIRS)}/)"
        )
    return plan


def apply_plan(root: Path, plan: Plan, verify: bool = True) -> list[str]:
    """Write ``plan``; for an adoption, check the repo loads and renders, else undo it all."""
    for rel in plan.files:
        if (root / rel).exists():
            raise LayoutError(f"{rel} already exists; init never overwrites a file")
    originals: dict[str, bytes] = {}
    written: list[str] = []
    try:
        for rel, text in plan.appends.items():
            originals[rel] = (root / rel).read_bytes()
            write_atomic(root / rel, originals[rel] + text.encode("utf-8"))
            written.append(rel)
        for rel, text in plan.files.items():
            write_atomic(root / rel, text.encode("utf-8"))
            written.append(rel)
        if verify and plan.kind == "adopt":
            _verify(root, plan.expected)
    except (CogfleetError, OSError) as exc:
        for rel in written:
            if rel in originals:
                write_atomic(root / rel, originals[rel])
            else:
                (root / rel).unlink(missing_ok=True)
        if isinstance(exc, CogfleetError):
            raise ConfigError(None, f"init wrote nothing: {exc}") from None
        raise
    return written


def _verify(root: Path, expected: dict[str, dict[str, bytes]]) -> None:
    """Every variant loads and renders; the files ``expected`` names render as those bytes
    (raises a :class:`LayoutError` naming the first that does not)."""
    from cogfleet._plugins import Plugins
    from cogfleet._render import render_in_memory

    repo = Repo.load(root)
    plugins = Plugins(repo.root)
    for variant in repo.variants.values():
        rendered = render_in_memory(repo, variant, plugins)
        for rel, data in sorted(expected.get(variant.name, {}).items()):
            got = rendered.files.get(rel)
            if got != data:
                raise LayoutError(f"{variant.name}'s {rel} would render differently from what "
                                  f"the select script writes ({_first_difference(got, data)})")


def _first_difference(got: bytes | None, want: bytes) -> str:
    if got is None:
        return "cogfleet would not write it"
    got_lines, want_lines = got.splitlines(keepends=True), want.splitlines(keepends=True)
    for number, (a, b) in enumerate(zip(got_lines, want_lines, strict=False), 1):
        if a != b:
            return f"line {number}: {a[:60]!r} instead of {b[:60]!r}"
    number = min(len(got_lines), len(want_lines)) + 1
    return (f"line {number}: "
            + ("an extra line" if len(got_lines) > len(want_lines) else "a missing line"))


def _check_in_copy(root: Path, plan: Plan) -> None:
    """Write ``plan`` into a scratch copy of ``root`` and check it renders what the select
    script wrote, so a plan that does not is refused before anything is written here."""
    with tempfile.TemporaryDirectory(prefix="cogfleet-init-") as scratch:
        copy = Path(scratch) / "repo"
        shutil.copytree(root, copy, symlinks=True, ignore=scratch_ignore)
        for rel, text in plan.appends.items():
            with (copy / rel).open("a", encoding="utf-8") as fh:
                fh.write(text)
        for rel, text in plan.files.items():
            write_atomic(copy / rel, text.encode("utf-8"))
        try:
            _verify(copy, plan.expected)
        except LayoutError as exc:
            raise LayoutError(f"cannot adopt this repo: {exc}; write {VARIANTS_FILE} by "
                              "hand") from None
        except CogfleetError as exc:
            raise LayoutError(f"cannot adopt this repo: what init would write does not "
                              f"render ({exc})") from None


def run_init(root: Path, *, dry_run: bool, out: Callable[[str], None]) -> None:
    """``cogfleet init``: plan, show, and (unless ``dry_run``) write."""
    plan = plan_init(root)
    what = "adopting a select-script repo" if plan.kind == "adopt" else (
        "scaffolding a new monorepo"
    )
    out(f"{what}{' (dry run: nothing is written)' if dry_run else ''}")
    if plan.found:
        out("found: " + "; ".join(plan.found))
    for note in plan.notes:
        out(f"note: {note}")
    if dry_run:
        for rel, text in plan.files.items():
            out(f"would write {rel}:")
            out("".join(f"    {line}\n" for line in text.splitlines()))
        for rel, text in plan.appends.items():
            out(f"would append to {rel}:")
            out("".join(f"    {line}\n" for line in text.strip("\n").splitlines()))
        return
    written = apply_plan(root, plan)
    for rel in written:
        out(f"{'appended [tool.cogfleet] to' if rel in plan.appends else 'wrote'} {rel}")
    if plan.kind == "adopt":
        out("next: cogfleet list; cogfleet render; cogfleet lint (see the README, "
            "'Adopting an existing repo')")
