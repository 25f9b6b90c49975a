"""Built-in AI plugin: the Anthropic judge and the Claude fuzz-input proposer.

Both answer only when ``ANTHROPIC_API_KEY`` is set; otherwise other plugins (or the
built-in generator) decide. The key is never printed or reported.
"""

from __future__ import annotations

from typing import Any

from cogfleet import hookimpl
from cogfleet._checks import Judge
from cogfleet._errors import RemoteError
from cogfleet._steps import PushContext


@hookimpl(trylast=True)
def cogfleet_judge(ctx: PushContext) -> Judge | None:
    from cogfleet._judge import judge_from_env
    from cogfleet._judge_process import running

    return judge_from_env(process=running())  # the command's judge process, if it runs one


@hookimpl
def cogfleet_fuzz_inputs(
    ctx: PushContext,
    schema: dict[str, Any],
    kind: str,
    count: int,
    fixed_inputs: dict[str, Any],
    disabled_inputs: list[str],
    prompt: str | None,
) -> list[dict[str, Any]] | None:
    """Claude proposes the whole batch in one request, when an AI judge can propose."""
    from cogfleet.schema import fuzz_prompt, parse_ai_batch

    propose = getattr(ctx.judge, "propose", None)
    if propose is None:
        return None
    options: dict[str, Any] = {
        "iterations": count,
        "fixed_inputs": fixed_inputs,
        "disabled_inputs": disabled_inputs,
        "kind": kind,
    }
    try:
        answer = propose(fuzz_prompt(schema, user_prompt=prompt, **options))
        return parse_ai_batch(answer, schema, **options)
    except (ValueError, RemoteError):
        return None  # no usable answer: the built-in generator takes over
