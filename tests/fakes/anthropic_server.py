"""A local Anthropic Messages API (``POST /v1/messages``) for tests and benchmarks.

It speaks the wire protocol the official ``anthropic`` client expects: a key
(``x-api-key`` or ``Authorization: Bearer``) and ``anthropic-version`` are
required, the body is validated (``model``, ``max_tokens``, ``messages``, content
blocks, base64 images that must decode as the declared media type), answers and
errors have the API's JSON shapes, and overloads come back as ``529
overloaded_error``. What the "model" answers is
scripted by the test::

    with FakeAnthropic(responder=['{"verdict": "yes", "reason": "ok"}']) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url)
        ...
        assert len(fake.requests) == 1

``responder`` is a list of answer texts used in order, or a callable taking the
request body and returning the text; by default judge prompts get a "yes" verdict
and fuzzing prompts a JSON list of inputs built from the schema in the prompt.

As a script (for benchmarks)::

    python -m tests.fakes.anthropic_server --port 8766 --latency 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import io
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cogfleet.server._threaded import ThreadedServer

Responder = Callable[[dict[str, Any]], str]

IMAGE_MEDIA_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit",
    500: "Internal server error",
    529: "Overloaded",
}


@dataclass
class RecordedRequest:
    """One request the fake received: headers (lower-case names), body, answer status."""

    headers: dict[str, str]
    body: dict[str, Any] | None
    status: int
    answer: str | None = None

    def blocks(self) -> list[dict[str, Any]]:
        """Every content block of every message, strings turned into text blocks."""
        out: list[dict[str, Any]] = []
        for msg in (self.body or {}).get("messages", []):
            content = msg.get("content")
            if isinstance(content, str):
                out.append({"type": "text", "text": content})
            elif isinstance(content, list):
                out.extend(b for b in content if isinstance(b, dict))
        return out

    def text(self) -> str:
        """The system prompt and all text blocks, joined by newlines."""
        system = (self.body or {}).get("system", "")
        if isinstance(system, list):
            system = "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
        parts = [system] if system else []
        parts += [b.get("text", "") for b in self.blocks() if b.get("type") == "text"]
        return "\n".join(parts)

    def images(self) -> list[dict[str, Any]]:
        """The image blocks of the request, in order."""
        return [b for b in self.blocks() if b.get("type") == "image"]


class _BadRequest(Exception):
    """A request the real API would answer with 400 invalid_request_error."""


def _validate_block(block: Any, where: str) -> None:
    if not isinstance(block, dict):
        raise _BadRequest(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise _BadRequest(f"{where}.text: Field required")
        if not block["text"]:
            raise _BadRequest(f"{where}: text content blocks must be non-empty")
    elif kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") != "base64":
            raise _BadRequest(f"{where}.source: only base64 sources are supported by this fake")
        media_type = source.get("media_type")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _BadRequest(
                f"{where}.source.base64.media_type: Input should be 'image/jpeg', "
                "'image/png', 'image/gif' or 'image/webp'"
            )
        try:
            raw = base64.b64decode(str(source.get("data", "")), validate=True)
            with Image.open(io.BytesIO(raw)) as img:
                actual = img.format
        except (binascii.Error, ValueError):
            raise _BadRequest(f"{where}.source.base64.data: invalid base64 data") from None
        except (UnidentifiedImageError, OSError):
            raise _BadRequest(f"{where}.source.base64.data: Could not process image") from None
        if actual != IMAGE_MEDIA_TYPES[media_type]:
            raise _BadRequest(
                f"{where}.source.base64.data: Image does not match the provided media type "
                f"{media_type}"
            )
    else:
        raise _BadRequest(
            f"{where}: Input tag {kind!r} found using 'type' does not match any "
            "of the expected tags"
        )


def validate_body(body: Any) -> None:
    """Raise ``_BadRequest`` with the API's wording when ``body`` is not a valid request."""
    if not isinstance(body, dict):
        raise _BadRequest("Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise _BadRequest(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _BadRequest("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _BadRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise _BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if isinstance(content, str):
            if not content:
                raise _BadRequest(f"messages.{i}: user messages must have non-empty content")
        elif isinstance(content, list):
            for j, block in enumerate(content):
                _validate_block(block, f"messages.{i}.content.{j}")
        else:
            raise _BadRequest(f"messages.{i}.content: Field required")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _BadRequest("system: Input should be a valid string or list")
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 1
    ):
        raise _BadRequest("temperature: Input should be less than or equal to 1")


# --- the default "model" -------------------------------------------------------


def _find_input_schema(value: Any) -> dict[str, Any] | None:
    """The first JSON-schema object with ``properties`` inside ``value`` ("Input" first)."""
    if isinstance(value, dict):
        schemas = (
            value.get("components", {}).get("schemas", {})
            if isinstance(value.get("components"), dict)
            else {}
        )
        if isinstance(schemas, dict) and isinstance(schemas.get("Input"), dict):
            return schemas["Input"]
        if isinstance(value.get("properties"), dict):
            return value
        for item in value.values():
            found = _find_input_schema(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _find_input_schema(item)
            if found is not None:
                return found
    return None


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON object embedded in ``text``."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        found.append(obj)
        pos = text.find("{", end)
    return found


def _example_value(prop: dict[str, Any], n: int) -> Any:
    """A plausible value for a schema property; ``n`` varies it between input sets."""
    if "default" in prop and n == 0:
        return prop["default"]
    for key in ("enum", "examples"):
        if isinstance(prop.get(key), list) and prop[key]:
            return prop[key][n % len(prop[key])]
    all_of = prop.get("allOf")
    if isinstance(all_of, list) and all_of and isinstance(all_of[0], dict):
        return _example_value(all_of[0], n)
    kind = prop.get("type")
    low, high = prop.get("minimum"), prop.get("maximum")
    if kind == "integer":
        low = int(low) if low is not None else 1
        high = int(high) if high is not None else low + 10
        return low + n % (high - low + 1)
    if kind == "number":
        low = float(low) if low is not None else 0.0
        high = float(high) if high is not None else low + 1.0
        return round(low + (high - low) * ((n % 4) + 1) / 5, 3)
    if kind == "boolean":
        return n % 2 == 0
    if kind == "string" and prop.get("format") == "uri":
        return prop.get("default")
    if kind == "string":
        return ["a red bicycle", "a lighthouse at dusk", "a bowl of ramen"][n % 3]
    return prop.get("default")


def default_responder(body: dict[str, Any]) -> str:
    """Answer like a cooperative model: "yes" to judges, input sets to fuzz requests."""
    text = RecordedRequest(headers={}, body=body, status=200).text()
    if "verdict" in text:
        return json.dumps({"verdict": "yes", "reason": "the fake judge accepts every output"})
    schema = None
    for obj in _json_objects(text):
        schema = _find_input_schema(obj)
        if schema is not None:
            break
    if schema is not None:
        wanted = re.search(
            r"(\d+)\s+(?:\w+\s+){0,2}(?:inputs|input sets|sets|examples|cases)", text
        )
        count = min(int(wanted.group(1)), 50) if wanted else 3
        props = schema.get("properties", {})
        batch = []
        for n in range(count):
            inputs = {}
            for name, prop in props.items():
                if isinstance(prop, dict):
                    value = _example_value(prop, n)
                    if value is not None:
                        inputs[name] = value
            batch.append(inputs)
        return json.dumps(batch)
    return "yes"


# --- the server -------------------------------------------------------------------


def _error(status: int, message: str | None = None, **headers: str) -> JSONResponse:
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    return JSONResponse(
        {
            "type": "error",
            "error": {
                "type": _ERROR_TYPES.get(status, "api_error"),
                "message": message or _ERROR_MESSAGES.get(status, "error"),
            },
            "request_id": request_id,
        },
        status_code=status,
        headers={"request-id": request_id, **headers},
    )


@dataclass
class _State:
    api_key: str | None
    responder: Responder
    latency: float
    fail_first: int
    fail_status: int
    retry_after_ms: float | None
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures_left: int = 0
    in_flight: int = 0  # answers being waited for (``latency``)
    max_in_flight: int = 0


def create_app(state: _State) -> Starlette:
    """The Starlette app serving ``POST /v1/messages`` from ``state``."""

    async def messages(request: Request) -> JSONResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body: Any = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None

        def record(status: int, answer: str | None = None) -> None:
            with state.lock:
                state.requests.append(
                    RecordedRequest(
                        headers=headers,
                        body=body if isinstance(body, dict) else None,
                        status=status,
                        answer=answer,
                    )
                )

        # Older clients send the key as x-api-key, current ones as a bearer token.
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[len("bearer ") :].strip()
        if not key:
            record(401)
            return _error(401, "x-api-key header is required")
        if state.api_key is not None and key != state.api_key:
            record(401)
            return _error(401, "invalid x-api-key")
        if "anthropic-version" not in headers:
            record(400)
            return _error(400, "anthropic-version: header is required")
        with state.lock:
            fail = state.failures_left > 0
            if fail:
                state.failures_left -= 1
        if fail:
            record(state.fail_status)
            extra = {}
            if state.retry_after_ms is not None:
                extra["retry-after-ms"] = str(state.retry_after_ms)
            return _error(state.fail_status, **extra)
        if body is None:
            record(400)
            return _error(400, "The request body is not valid JSON")
        try:
            validate_body(body)
        except _BadRequest as exc:
            record(400)
            return _error(400, str(exc))
        if state.latency > 0:
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await asyncio.sleep(state.latency)  # simulated model time, not synchronisation
            finally:
                with state.lock:
                    state.in_flight -= 1
        try:
            text = state.responder(body)
        except IndexError:
            record(500)
            # Non-retryable so an under-scripted test fails at once with this message.
            return _error(500, "fake: no scripted answer left", **{"x-should-retry": "false"})
        record(200, text)
        return JSONResponse(
            {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": max(1, len(json.dumps(body)) // 4),
                    "output_tokens": max(1, len(text) // 4),
                },
            },
            headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"},
        )

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def _as_responder(responder: Responder | Sequence[str] | None) -> Responder:
    if responder is None:
        return default_responder
    if callable(responder):
        return responder
    queue = collections.deque(responder)
    lock = threading.Lock()

    def next_answer(_body: dict[str, Any]) -> str:
        with lock:
            return queue.popleft()  # IndexError when the script runs out

    return next_answer


_key_numbers = itertools.count(1)


class FakeAnthropic:
    """The fake Messages API on a free 127.0.0.1 port, served from a background thread.

    ``fail_first`` requests (after the key check) are answered with ``fail_status``
    (529 overloaded by default) before normal service; ``retry_after_ms`` adds the
    header the client honours to shorten its back-off. ``latency`` delays each answer.
    ``api_key=None`` accepts any non-empty key.
    """

    def __init__(
        self,
        responder: Responder | Sequence[str] | None = None,
        *,
        api_key: str | None = "",
        latency: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 529,
        retry_after_ms: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if api_key == "":
            api_key = f"sk-ant-fake-{next(_key_numbers):04d}"
        self.api_key = api_key
        self.host = host
        self.port = port
        self._state = _State(
            api_key=api_key,
            responder=_as_responder(responder),
            latency=latency,
            fail_first=fail_first,
            fail_status=fail_status,
            retry_after_ms=retry_after_ms,
            failures_left=fail_first,
        )
        self._http: ThreadedServer | None = None

    @property
    def base_url(self) -> str:
        """What ``ANTHROPIC_BASE_URL`` / ``anthropic.Anthropic(base_url=...)`` should be."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (failed ones included)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests that waited for their answer at once (with ``latency``)."""
        with self._state.lock:
            return self._state.max_in_flight

    @property
    def answered(self) -> list[RecordedRequest]:
        """The requests that got a 200 answer."""
        return [r for r in self.requests if r.status == 200]

    def start(self) -> FakeAnthropic:
        """Bind the port and serve; returns once connections are accepted."""
        self._http = ThreadedServer(
            create_app(self._state), name="fake-anthropic", host=self.host, port=self.port
        )
        self._http.start()
        self.port = self._http.port
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._http is not None:
            self._http.stop()
        self._http = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the fake in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--api-key", default=None, help="required key (default: any)")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=529)
    args = parser.parse_args(argv)
    state = _State(
        api_key=args.api_key,
        responder=default_responder,
        latency=args.latency,
        fail_first=args.fail_first,
        fail_status=args.fail_status,
        retry_after_ms=None,
        failures_left=args.fail_first,
    )
    print(f"fake Anthropic API on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_app(state), host=args.host, port=args.port, log_level="warning", lifespan="off"
    )


if __name__ == "__main__":
    main()
