"""The bad-input suite, model source: Python that the pinned Cog's build refuses (a
syntax error, a NUL byte) stops every command that lints, builds or pushes with one
line naming the file and line the user wrote (exit 2), before anything is built or
pushed; not as a failed lint check (exit 1) or a build that goes ahead."""

from __future__ import annotations

import pytest

SOURCES = {
    "syntax": (b"from cog import BasePredictor, Input\n\n\nclass Predictor(BasePredictor):\n"
               b"    def predict(self, prompt: str = Input(description='p')) -> str\n"
               b"        return prompt\n", 5, "expected ':'"),
    "nul": (b"from cog import BasePredictor, Input\n\x00\n\nclass Predictor(BasePredictor):\n"
            b"    def predict(self, prompt: str = Input(description='p')) -> str:\n"
            b"        return prompt\n", 2, "source code string cannot contain null bytes"),
}


@pytest.mark.parametrize("command", ["lint", "build", "test", "push"])
@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_source_cog_refuses_is_exit_2_at_its_line(make_repo, cli, command, kind):
    source, line, what = SOURCES[kind]
    root = make_repo({"models/fam/predict.py": source})
    result = cli(command, "alpha", cwd=root)
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines() == [
        f"error: models/fam/predict.py:{line}: failed to parse Python source: {what}"]
    assert result.out == ""
    # nothing built, rendered into a build folder or started
    assert not (root / ".cogfleet" / "build").exists()
    assert not (root / ".cogfleet" / "local").exists()


def test_a_module_that_is_not_utf8_is_named_at_its_line(make_repo, cli):
    """Not "file not found": Python refuses to import it, at the byte it cannot decode."""
    source = SOURCES["syntax"][0].replace(b") -> str\n", b") -> str:  # caf\xe9\n")
    root = make_repo({"models/fam/predict.py": source})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines() == [
        "error: models/fam/predict.py:5: failed to parse Python source: not utf-8: byte 0xe9 "
        "cannot be decoded"]
