"""The AI judge behind ``match_prompt``: what the prompt's facts leave open, asked of Claude.

What a prompt states that needs no AI (file type, pixel size, number of outputs) is
verified first, on the files, by :func:`cogfleet._judge_facts.check_facts`.
:class:`AnthropicJudge` asks the Anthropic Messages API (official ``anthropic`` client)
the rest, as a majority of ``votes`` answers, attaching images as base64 blocks plus one
metadata line per file, so the model reads format and size from facts rather than
guessing them from pixels.

:func:`judge_from_env` builds a judge from ``ANTHROPIC_API_KEY`` (and optional
``ANTHROPIC_BASE_URL``, ``COGFLEET_JUDGE_MODEL``, ``COGFLEET_JUDGE_VOTES``).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from cogfleet import _images
from cogfleet._checks import CheckResult, OutputFile, iter_file_refs
from cogfleet._errors import RemoteError, UsageError
from cogfleet._extras import skip_unused_extras

if TYPE_CHECKING:
    import anthropic

#: Model used when neither the caller nor ``COGFLEET_JUDGE_MODEL`` names one.
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_VOTES = 3

_ANSWER_FORMAT = (
    "Answer with exactly one JSON object and nothing else: "
    '{"verdict": "yes" or "no", "reason": "<one short sentence>"}'
)

_SYSTEM = (
    "You are the judge in an automated test of a machine learning model. You decide "
    "whether a model's output satisfies a description written by the model's developer. "
    "Your answer is read by a program. " + _ANSWER_FORMAT
)

_MATCH_INSTRUCTIONS = """\
Does the model output below satisfy the description?

Judge only what the description asks for; anything it does not mention may be anything.
For file type, pixel size and number of files trust the metadata lines, not the look of
the pixels. A vague description ("an image") is satisfied by any output of that kind; a
specific one ("a red car") needs that content to be clearly present.

Description: {prompt}
"""

_COMPARE_INSTRUCTIONS = """\
The same model was run twice with the same inputs but no fixed random seed, producing
output A and output B. Would a user consider them equivalent results of those inputs:
the same kind, structure, format and size, similar subject and comparable quality, even
if details differ as they do between random samples? Answer "no" if one is broken,
empty, of a different type or format, or clearly about something else.
"""

#: Images attached per side of one request; further files are described only.
MAX_IMAGES = 20
_TEXT_LIMIT = 20_000
_TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/yaml")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_output(output: Any, label: str) -> str:
    """The output as JSON text, each file reference replaced by ``[<label> file N]``."""
    refs = list(iter_file_refs(output))
    index = {ref: n for n, ref in reversed(list(enumerate(refs, start=1)))}

    def replace(value: Any) -> Any:
        if isinstance(value, str) and value in index:
            return f"[{label}file {index[value]}]"
        if isinstance(value, list):
            return [replace(v) for v in value]
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        return value

    text = json.dumps(replace(output), ensure_ascii=False, default=str)
    if len(text) > _TEXT_LIMIT:
        text = text[:_TEXT_LIMIT] + f"… ({len(text)} characters in all)"
    return text


def _file_blocks(files: list[OutputFile], label: str) -> list[dict[str, Any]]:
    """Content blocks for ``files``: a metadata line each, then the image or text itself."""
    blocks: list[dict[str, Any]] = []
    attached = 0
    for n, f in enumerate(files, start=1):
        info = _images.image_info(f.data)
        meta = (
            f"[{label}file {n}] name: {f.name}; content type: {f.content_type}; "
            f"size: {len(f.data)} bytes"
        )
        if info is not None:
            meta += f"; image format: {info.format}; dimensions: {info.size} pixels"
        api_image = _images.to_api_image(f.data) if info is not None else None
        if api_image is not None and attached < MAX_IMAGES:
            attached += 1
            blocks.append({"type": "text", "text": meta + " (image follows)"})
            media_type, data = api_image
            blocks.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": media_type,
                        "data": base64.b64encode(data).decode("ascii"),
                    },
                }
            )
        elif f.content_type.startswith(_TEXT_TYPES):
            body = f.data[:_TEXT_LIMIT].decode("utf-8", errors="replace")
            blocks.append({"type": "text", "text": f"{meta}; content:\n{body}"})
        else:
            blocks.append({"type": "text", "text": meta + " (content not attached)"})
    return blocks


_VERDICT_RE = re.compile(r'"verdict"\s*:\s*"(yes|no)"', re.IGNORECASE)


def parse_verdict(text: str) -> tuple[bool, str] | None:
    """Read a yes/no verdict and its reason from a model answer; ``None`` if there is none.

    Accepts the requested JSON object, the same inside code fences or prose, and a
    bare leading YES/NO as a last resort.
    """
    stripped = text.strip()
    for match in re.finditer(r"\{.*?\}", stripped, re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            verdict = str(obj.get("verdict", "")).strip().lower()
            if verdict in ("yes", "no"):
                return verdict == "yes", _one_line(obj.get("reason", ""))
    found = _VERDICT_RE.search(stripped)
    if found:
        return found.group(1).lower() == "yes", ""
    bare = re.match(r"^\W*(yes|no)\b[\s.:,-]*(.*)", stripped, re.IGNORECASE | re.DOTALL)
    if bare:
        return bare.group(1).lower() == "yes", _one_line(bare.group(2))
    return None


class Messages(Protocol):
    """Where a judge's Messages API requests go (this process, or a judge process)."""

    def create(
        self, *, model: str, max_tokens: int, content: str | list[dict[str, Any]],
        system: str | None,
    ) -> str: ...

    def close(self) -> None: ...


class MessagesProcess(Protocol):
    """Sends a judge's requests: a :class:`~cogfleet._judge_process.JudgeProcess`."""

    def messages(self, client: Mapping[str, Any]) -> Messages: ...


class AnthropicMessages:
    """The Messages API through the official ``anthropic`` client, in this process.

    Failures become :class:`~cogfleet._errors.RemoteError` with a one-line message.
    """

    def __init__(
        self, *, api_key: str, base_url: str | None, timeout: float, max_retries: int
    ) -> None:
        # Imported here, not at module level: the client takes 1.5-2 s to import, and
        # every command that loads the checkers (render, lint, push) would pay it.
        skip_unused_extras()
        import anthropic

        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def create(
        self, *, model: str, max_tokens: int, content: str | list[dict[str, Any]],
        system: str | None,
    ) -> str:
        """One request; the concatenated text of the answer."""
        import anthropic  # already loaded by __init__

        kwargs: dict[str, Any] = {}
        if system is not None:
            kwargs["system"] = system
        messages: list[Any] = [{"role": "user", "content": content}]
        try:
            message = self._client.messages.create(
                model=model, max_tokens=max_tokens, messages=messages, **kwargs
            )
        except anthropic.APIStatusError as exc:
            raise RemoteError(f"AI judge: {_status_message(exc)}") from None
        except anthropic.APIConnectionError as exc:
            raise RemoteError(
                f"AI judge: cannot reach {self._client.base_url}: {_one_line(str(exc))}"
            ) from None
        return "".join(getattr(block, "text", "") for block in message.content)

    def close(self) -> None:
        self._client.close()


class AnthropicJudge:
    """Judges outputs with Claude through the official ``anthropic`` client.

    ``votes`` answers are asked one after another until a majority agrees (two
    of three by default). The client retries overloads and rate limits itself;
    what still fails becomes :class:`~cogfleet._errors.RemoteError`. Safe to call
    from several threads at once. With ``process`` (a running
    :class:`~cogfleet._judge_process.JudgeProcess`) the requests are sent from that
    process; otherwise this one imports the client.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        votes: int = DEFAULT_VOTES,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_tokens: int = 1024,
        process: MessagesProcess | None = None,
    ) -> None:
        if votes < 1:
            raise ValueError(f"votes must be at least 1, got {votes}")
        if not api_key:
            raise ValueError("api_key is empty")
        self.model = model
        self.votes = votes
        self.max_tokens = max_tokens
        client: dict[str, Any] = {
            "api_key": api_key, "base_url": base_url, "timeout": timeout,
            "max_retries": max_retries,
        }  # fmt: skip
        self._messages: Messages = (
            process.messages(client) if process is not None else AnthropicMessages(**client)
        )

    def __repr__(self) -> str:
        # The key stays out of reprs, logs and tracebacks.
        return f"AnthropicJudge(model={self.model!r}, votes={self.votes})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._messages.close()

    def __enter__(self) -> AnthropicJudge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests --

    def _request(
        self, content: str | list[dict[str, Any]], *, system: str | None, max_tokens: int
    ) -> str:
        """One Messages API call; the concatenated text of the answer."""
        return self._messages.create(
            model=self.model, max_tokens=max_tokens, content=content, system=system
        )

    def _vote(self, blocks: list[dict[str, Any]], subject: str) -> CheckResult:
        """Ask until a majority of ``votes`` agrees; unreadable answers are asked again."""
        majority = self.votes // 2 + 1
        yes: list[str] = []
        no: list[str] = []
        unreadable = 0
        while len(yes) < majority and len(no) < majority:
            answer = self._request(blocks, system=_SYSTEM, max_tokens=self.max_tokens)
            verdict = parse_verdict(answer)
            if verdict is None:
                unreadable += 1
                # Re-asking is cheap; a model that never answers in format is an error.
                if unreadable > self.votes:
                    raise RemoteError(
                        f"AI judge: answer is not a yes/no verdict: {_one_line(answer, 120)}"
                    )
                continue
            (yes if verdict[0] else no).append(verdict[1])
        tally = f"{len(yes)} yes, {len(no)} no"
        if len(yes) >= majority:
            reason = next((r for r in yes if r), "")
            return CheckResult(True, _one_line(f"AI judge: {subject} ({tally}). {reason}"))
        reason = next((r for r in no if r), "")
        return CheckResult(
            False, _one_line(f"AI judge: {subject} not met ({tally}). {reason}", 500)
        )

    def __call__(self, prompt: str, output: Any, files: list[OutputFile]) -> CheckResult:
        """Whether ``output`` (with its fetched ``files``) satisfies ``prompt``."""
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": _MATCH_INSTRUCTIONS.format(prompt=prompt)},
            {"type": "text", "text": "Model output: " + _describe_output(output, "")},
            *_file_blocks(files, ""),
            {"type": "text", "text": _ANSWER_FORMAT},
        ]
        return self._vote(blocks, f"description {_one_line(prompt, 120)!r}")

    def compare(
        self,
        a_output: Any,
        b_output: Any,
        a_files: list[OutputFile],
        b_files: list[OutputFile],
    ) -> CheckResult:
        """Whether two unseeded runs of the same inputs gave equivalent outputs."""
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": _COMPARE_INSTRUCTIONS},
            {"type": "text", "text": "Output A: " + _describe_output(a_output, "A ")},
            *_file_blocks(a_files, "A "),
            {"type": "text", "text": "Output B: " + _describe_output(b_output, "B ")},
            *_file_blocks(b_files, "B "),
            {"type": "text", "text": _ANSWER_FORMAT},
        ]
        return self._vote(blocks, "outputs equivalent")

    def propose(self, prompt: str) -> str:
        """Send ``prompt`` as one request and return the answer's text (used for fuzzing)."""
        return self._request(prompt, system=None, max_tokens=4096)


def _status_message(exc: anthropic.APIStatusError) -> str:
    """``<status> <error type>: <message>`` from an API error body, on one line."""
    detail = ""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            detail = f"{err.get('type', '')}: {err.get('message', '')}".strip(": ")
    return _one_line(f"HTTP {exc.status_code} {detail or exc.message}")


def judge_from_env(
    *,
    model: str | None = None,
    votes: int | None = None,
    environ: Mapping[str, str] | None = None,
    process: MessagesProcess | None = None,
) -> AnthropicJudge | None:
    """An :class:`AnthropicJudge` configured from the environment, or ``None`` without a key.

    Reads ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``, ``COGFLEET_JUDGE_MODEL`` and
    ``COGFLEET_JUDGE_VOTES``; explicit ``model``/``votes`` win over the variables.
    ``environ`` replaces ``os.environ`` for callers that carry their own. With
    ``process`` (the command's judge process), the judge sends its requests from there.
    """
    env = dict(environ) if environ is not None else dict(os.environ)
    key = env.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        return None
    if votes is None:
        raw = env.get("COGFLEET_JUDGE_VOTES", "").strip()
        if raw:
            try:
                votes = int(raw)
            except ValueError:
                votes = 0
            if votes < 1:
                raise UsageError(f"COGFLEET_JUDGE_VOTES must be a positive integer, got {raw!r}")
    return AnthropicJudge(
        api_key=key,
        model=model or env.get("COGFLEET_JUDGE_MODEL", "").strip() or DEFAULT_MODEL,
        votes=votes if votes is not None else DEFAULT_VOTES,
        base_url=env.get("ANTHROPIC_BASE_URL", "").strip() or None,
        process=process,
    )
