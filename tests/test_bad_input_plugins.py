"""The bad-input suite, plugins inside a step: a broken fuzz-input hook is the plugin's
error (exit 2 naming it), never a failed check of the model (exit 1)."""

from __future__ import annotations

import json

import pytest

from tests.test_bad_input import CONFIG

FUZZ_CONFIG = "model: {{ model }}\npredict:\n  fuzz: {iterations: 2}\n"
HOOK = ("from cogfleet import hookimpl\n\n\n@hookimpl(tryfirst=True)\n"
        "def cogfleet_fuzz_inputs(ctx, schema, kind, count, fixed_inputs, disabled_inputs, "
        "prompt):\n    {body}\n")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise RuntimeError('fuzz boom')",
         "error: plugins/fuzzer.py:6: plugin 'fuzzer': cogfleet_fuzz_inputs raised "
         "RuntimeError: fuzz boom"),
        ("return 'nope'",
         "error: plugin fuzzer (plugins/fuzzer.py): cogfleet_fuzz_inputs returned str 'nope', "
         "expected a list of input mappings"),
        ("return [{'prompt': 'a'}, 5]",
         "error: plugin fuzzer (plugins/fuzzer.py): cogfleet_fuzz_inputs returned list "
         "[{'prompt': 'a'}, 5], expected a list of input mappings"),
    ],
)
def test_a_broken_fuzz_hook_names_the_plugin(push_broken, body, error):
    """The hook is asked on the schema derived from the source before the push: a broken
    one is found there, and nothing is pushed."""
    result, root = push_broken({CONFIG: FUZZ_CONFIG,
                                "plugins/fuzzer.py": HOOK.format(body=body)})
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines()[-1] == error
    assert "Traceback" not in result.err
    run = _run(root / "report.json")
    assert not run["pushed"] and run["test_version"] is None
    assert [(s["name"], s["status"]) for s in run["steps"] if s["status"] != "skipped"] == [
        ("lint", "failed")]


COUNTING_HOOK = HOOK.format(
    body="open(__file__ + '.calls', 'a').write(kind + '\\n')\n"
         "    return [{'prompt': 'p' + str(i)} for i in range(count)]")


def test_the_fuzz_inputs_proposed_before_the_push_are_the_ones_run(push_broken):
    """No double work: the answer given on the source's schema is the fuzz step's."""
    result, root = push_broken({CONFIG: FUZZ_CONFIG, "plugins/fuzzer.py": COUNTING_HOOK})
    assert result.code == 0, (result.out, result.err)
    assert (root / "plugins" / "fuzzer.py.calls").read_text() == "predict\n"
    run = _run(root / "report.json")
    assert sorted(c["inputs"]["prompt"] for c in run["cases"] if c["kind"] == "fuzz") == [
        "p0", "p1"]


def _run(report_path) -> dict:
    report = json.loads(report_path.read_text())
    (run,) = report["runs"] if "runs" in report else [report]
    return run


RAISES_BEFORE_PUSH = {
    "schema-lint": "@hookimpl\ndef cogfleet_schema_lint(schema, kind):\n"
                   "    raise RuntimeError('boom')\n",
    "judge": "@hookimpl(tryfirst=True)\ndef cogfleet_judge(ctx):\n"
             "    raise RuntimeError('boom')\n",
}


@pytest.mark.parametrize("hook", sorted(RAISES_BEFORE_PUSH))
def test_a_hook_that_raises_on_what_is_known_before_the_push_stops_it_there(push_broken, hook):
    """Schema lint runs on the schema derived from the source and the judge is made before
    the push: a plugin raising there is exit 2 naming it, and nothing is pushed."""
    plugin = "from cogfleet import hookimpl\n\n\n" + RAISES_BEFORE_PUSH[hook]
    result, root = push_broken({"plugins/bad.py": plugin})
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines()[-1] == (
        f"error: plugins/bad.py:6: plugin 'bad': cogfleet_{hook.replace('-', '_')} raised "
        "RuntimeError: boom")
    run = _run(root / "report.json")
    assert not run["pushed"] and run["test_version"] is None
    assert [(s["name"], s["status"]) for s in run["steps"] if s["status"] != "skipped"] == [
        ("lint", "failed")]


@pytest.mark.parametrize(("code", "what"), [
    ("async def cogfleet_progress(event):\n    pass\n", "an async def"),
    ("def cogfleet_progress(event):\n    yield\n",
     "a generator (it yields) without wrapper=True"),
])
def test_a_hook_that_cannot_answer_is_refused_at_load(make_repo, cli, code, what):
    root = make_repo({"plugins/bad.py": f"from cogfleet import hookimpl\n\n\n@hookimpl\n{code}"})
    result = cli("push", "alpha", cwd=root)
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines() == [
        f"error: plugins/bad.py:4: plugin 'bad': cogfleet_progress is {what}; a hook is a "
        "plain function"]
    assert not (root / ".cogfleet" / "local").exists()  # no server was started


PROGRESS = ("from cogfleet import hookimpl\n\n\n@hookimpl\ndef cogfleet_progress(event):\n"
            "    step = event.step.name if event.step else None\n"
            "    if event.kind == {kind!r} and step in (None, 'test-cases'):\n"
            "        raise RuntimeError('boom')\n")


@pytest.mark.slow
def test_a_progress_hook_raising_after_the_checks_stops_before_promotion(push_broken):
    result, root = push_broken({"plugins/bad.py": PROGRESS.format(kind="step-done")})
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip().splitlines()[-1] == (
        "error: plugins/bad.py:8: plugin 'bad': cogfleet_progress raised RuntimeError: boom")
    run = _run(root / "report.json")
    steps = {s["name"]: s["status"] for s in run["steps"]}
    assert (steps["test-cases"], steps["promote"]) == ("passed", "skipped")
    assert run["result"] == "failed" and not run["pushed"] and run["version"] is None


@pytest.mark.slow
def test_a_progress_hook_raising_once_promoted_says_the_model_was(push_broken):
    result, root = push_broken({"plugins/bad.py": PROGRESS.format(kind="run-done")})
    assert result.code == 2, (result.out, result.err)
    run = _run(root / "report.json")  # the report is written all the same
    assert run["pushed"] and run["version"]
    assert result.err.strip().splitlines()[-1] == (
        "error: plugins/bad.py:8: plugin 'bad': cogfleet_progress raised RuntimeError: boom "
        f"(acme/alpha promoted to {run['version'][:12]})")
