"""Each runner has a /tmp of its own, as each version's container has on Replicate."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from cogfleet.server._runner import RunnerPool

pytestmark = pytest.mark.slow

PREDICTOR = '''
from pathlib import Path

from cog import BasePredictor

TAG = Path(__file__).with_name("tag.txt").read_text()


class Predictor(BasePredictor):
    def predict(self, name: str) -> str:
        shared = Path("/tmp") / name
        before = shared.read_text() if shared.exists() else "nothing"
        shared.write_text(TAG)
        return f"{before} -> {TAG}"
'''


COG_YAML = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'


def _private_tmp_here() -> bool:
    """Whether this system lets a process mount a /tmp of its own (root, or user
    namespaces), asked of util-linux's unshare, independently of cogfleet's code."""
    if shutil.which("unshare") is None:
        return False
    flags = ["-m"] if os.geteuid() == 0 else ["-U", "-m"]
    with tempfile.TemporaryDirectory() as scratch:
        script = (
            f"mount --make-rprivate / && mount -t tmpfs none {scratch} && "
            f"mkdir {scratch}/u {scratch}/w && mount -t overlay overlay "
            f"-o lowerdir=/tmp,upperdir={scratch}/u,workdir={scratch}/w /tmp"
        )
        probe = subprocess.run(["unshare", *flags, "sh", "-c", script], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mount namespaces are Linux's")
def test_two_versions_do_not_see_each_others_tmp_files(tmp_path: Path) -> None:
    if not _private_tmp_here():
        pytest.skip("this system lets no process mount a /tmp of its own")
    builds = {}
    for tag in ("live", "test"):
        build = tmp_path / tag
        build.mkdir()
        (build / "predict.py").write_text(PREDICTOR)
        (build / "tag.txt").write_text(tag)
        (build / "cog.yaml").write_text(COG_YAML)
        builds[tag] = build
    name = f"cogfleet-shared-{uuid.uuid4().hex}.txt"

    async def scenario() -> list[str]:
        pool = RunnerPool()
        try:
            outputs = []
            # One after the other, both runners alive: the second sees no file of the first.
            for n, tag in enumerate(("live", "test", "live")):
                result = await pool.run(
                    tag, builds[tag], mode="predict", prediction_id=f"p{n}", input={"name": name}
                )
                assert result["status"] == "succeeded", result
                outputs.append(result["output"])
            return outputs
        finally:
            await pool.close()

    outputs = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert outputs == ["nothing -> live", "nothing -> test", "live -> live"]
    # Nothing the models wrote reached the host's /tmp.
    assert not (Path("/tmp") / name).exists()
