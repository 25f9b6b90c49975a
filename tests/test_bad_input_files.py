"""The bad-input suite, special files: what is not a plain file of the repository.

A FIFO where a YAML file, template or plugin should be would make the read wait
forever, ``/dev/zero`` never ends, a dangling link is no file, and a link out of the
repository would read (and copy into the build folder) a file no build context
holds. Each is exit 2 naming the file, with nothing written or pushed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.test_bad_input import CONFIG, PARTIAL, VARIANTS, assert_rejected

PREDICT = "models/fam/predict.py"


def fifo(path: Path) -> None:
    os.mkfifo(path)


def link_to(target: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.symlink_to(target)
    return make


CASES = [
    pytest.param(VARIANTS, fifo, "is a FIFO, not a file", id="variants-fifo"),
    pytest.param(CONFIG, fifo, "is a FIFO, not a file", id="config-fifo"),
    pytest.param(PARTIAL, link_to("/dev/zero"), "is a character device, not a file",
                 id="partial-dev-zero"),
    pytest.param(CONFIG, link_to("/etc/hostname"), "is a link to /etc/hostname, outside the "
                 "repository", id="config-link-out"),
    pytest.param(PREDICT, link_to("/etc/hostname"), "is a link to /etc/hostname, outside the "
                 "repository", id="family-file-link-out"),
    pytest.param(PREDICT, link_to("/nonexistent/predict.py"), "is a link to "
                 "/nonexistent/predict.py, which does not exist", id="family-file-dangling"),
    pytest.param(PREDICT, fifo, "is a FIFO, not a file", id="family-file-fifo"),
    pytest.param("plugins/extra.py", fifo, "is a FIFO, not a file", id="plugin-fifo"),
]


@pytest.mark.parametrize(("rel", "make", "what"), CASES)
def test_special_files_are_refused_by_name(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult],
    rel: str, make: Callable[[Path], None], what: str,
) -> None:
    root = make_repo()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    make(path)
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert_rejected(result, root, f"{rel}: {what}")


def test_a_link_inside_the_repository_is_read_through(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_repo()
    (root / "shared").mkdir()
    (root / PREDICT).rename(root / "shared/predict.py")
    (root / PREDICT).symlink_to(root / "shared/predict.py")
    result = cli("render", "alpha", cwd=root)
    assert result.code == 0, result.err
    assert (root / ".cogfleet/build/alpha/predict.py").read_text().startswith("from cog import")


def test_a_fifo_after_a_render_is_refused_not_waited_on(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    # the up-to-date check reads every input of the last render again
    root = make_repo()
    assert cli("render", "alpha", cwd=root).code == 0
    (root / PARTIAL).unlink()
    os.mkfifo(root / PARTIAL)
    result = cli("render", "alpha", cwd=root)
    assert result.code == 2
    assert result.err == f"error: {PARTIAL}: is a FIFO, not a file\n"


@pytest.mark.parametrize("rel", [".cogfleet", ".cogfleet/build", ".cogfleet/build/alpha"])
def test_a_file_where_cogfleet_keeps_its_state_is_named(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult], rel: str
) -> None:
    root = make_repo()
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("not a folder\n")
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert result.code == 2
    assert result.err == (f"error: {rel}: is a file, not a folder: cogfleet keeps its build "
                          "folders and state there; remove it\n")
    assert (root / rel).read_text() == "not a folder\n"
    assert not (root / "report.json").exists()
