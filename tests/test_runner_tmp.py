"""Each runner has a /tmp of its own and its build folder at /src, its working folder,
as each version's container has on Replicate."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest

from cogfleet.server._runner import RunnerPool
from tests.conftest import container_view_here

pytestmark = pytest.mark.slow

PREDICTOR = '''
import os
from pathlib import Path

from cog import BasePredictor

# Cog's image copies the model to /src, its working folder; real models open files there.
TAG = open("/src/tag.txt").read()


class Predictor(BasePredictor):
    def predict(self, name: str) -> str:
        shared = Path("/tmp") / name
        before = shared.read_text() if shared.exists() else "nothing"
        shared.write_text(TAG)
        Path("written.txt").write_text(TAG)
        return f"{before} -> {TAG} in {os.getcwd()} from {__file__}"
'''


COG_YAML = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mount namespaces are Linux's")
def test_two_versions_see_their_own_tmp_and_src(tmp_path: Path) -> None:
    if not container_view_here():
        pytest.skip("this system lets no process mount a /tmp or a /src of its own")
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
    where = " in /src from /src/predict.py"
    assert outputs == [f"nothing -> live{where}", f"nothing -> test{where}", f"live -> live{where}"]
    # What a model writes relative to its working folder lands in its build folder.
    assert [(builds[tag] / "written.txt").read_text() for tag in ("live", "test")] == [
        "live", "test"
    ]
    # The host has no /src of the models'.
    assert not Path("/src/tag.txt").exists()
    # Nothing the models wrote reached the host's /tmp.
    assert not (Path("/tmp") / name).exists()
