"""User code runs without cogfleet's credentials (one helper, used by every runner)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import replicate

from cogfleet._credentials import looks_like_credential, without_credentials
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

SECRET = "sekrit-value-that-must-not-leak"

CREDENTIALS = {
    "REPLICATE_API_TOKEN": f"r8_{SECRET}",
    "ANTHROPIC_API_KEY": f"sk-ant-{SECRET}",
    "COGFLEET_OFFICIAL_MODEL_API_KEY": f"official-{SECRET}",
    "COGFLEET_LOCAL_TOKEN": f"local-{SECRET}",
    "AWS_SECRET_ACCESS_KEY": f"aws-{SECRET}",
    "DB_PASSWORD": f"db-{SECRET}",
    "github_token": f"gh-{SECRET}",
    "SSH_PRIVATE_KEY_FILE": f"/keys/{SECRET}",
    "GOOGLE_APPLICATION_CREDENTIALS": f"/creds/{SECRET}.json",
    "REPLICATE_BASE_URL": "http://127.0.0.1:9/cogfleet-only",
}


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_credential_names_are_recognised(name):
    assert looks_like_credential(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "PYTHONPATH", "COG_LOG_LEVEL", "TZ"])
def test_ordinary_names_are_kept(name):
    assert not looks_like_credential(name)
    assert without_credentials({name: "x"}) == {name: "x"}


def test_drop_prefixes():
    env = {"COG_X": "1", "PATH": "/bin", "MY_TOKEN": "t"}
    assert without_credentials(env, drop_prefixes=("COG_",)) == {"PATH": "/bin"}


def test_a_checker_message_never_carries_a_credential(tmp_path, monkeypatch):
    # a plugin's checker (or a query of the environment) may quote what it read
    from cogfleet._result import CaseResult
    from tests.test_mutation_pins import _bare_ctx

    monkeypatch.setenv("DB_PASSWORD", f"db-{SECRET}")
    ctx = _bare_ctx(tmp_path)
    case = ctx.add_case(CaseResult(kind="test-case", index=0, inputs={}, checker="mine",
                                   status="passed", message=f"saw db-{SECRET} in the output"))
    assert case.message == "saw *** in the output"
    assert ctx.result.cases[0].message == "saw *** in the output"


PREDICT_PY = '''\
import json
import os

from cog import BasePredictor

WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "CREDENTIAL", "REPLICATE", "ANTHROPIC")


class Predictor(BasePredictor):
    def predict(self) -> str:
        names = sorted(k for k in os.environ if any(w in k.upper() for w in WORDS))
        with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
        leaked = "sekrit-value-" + "that-must-not-leak" in raw
        return json.dumps({"names": names, "leaked": leaked,
                           "given": os.environ.get("MODEL_API_KEY")})
'''


@pytest.mark.slow
def test_predictor_sees_no_credentials_but_what_cog_yaml_gives(tmp_path, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    build = tmp_path / "build"
    build.mkdir()
    (build / "predict.py").write_text(PREDICT_PY)
    (build / "cog.yaml").write_text(textwrap.dedent("""\
        build:
          python_version: "3.11"
        predict: "predict.py:Predictor"
        environment:
          - MODEL_API_KEY=given-on-purpose
        """))
    with LocalServer(state_dir=tmp_path / "state") as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="acme", name="env", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "env", build)
        prediction = client.predictions.create(version=version["id"], input={}, wait=60)
        prediction.wait()
        assert prediction.status == "succeeded", prediction.error
        seen = json.loads(prediction.output)
    assert seen == {"names": ["MODEL_API_KEY"], "leaked": False, "given": "given-on-purpose"}
    state_files = [p for p in Path(tmp_path / "state").rglob("*") if p.is_file()]
    assert state_files
    for path in state_files:  # nor in anything the server wrote (logs included)
        assert SECRET.encode() not in path.read_bytes(), path
