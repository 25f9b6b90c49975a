"""Bounds on what one template may cost: a render ends in seconds, in bounded memory.

Templates render in Jinja's sandbox (no ``__class__``-style attribute walks; ``range``
at most 100,000 items), and within three limits per rendered file, all counted, none
timed, so whether a template renders never depends on the machine:

- **size**: the rendered text is at most :data:`MAX_RENDERED_CHARS`; a repetition
  (``'x' * n``, ``[0] * n``) or a padding filter (``center``, ``indent``) that would
  go beyond it is refused before the memory is taken;
- **steps**: loop iterations and calls together at most :data:`MAX_STEPS` (nested
  loops or recursive macros that output nothing are steps too);
- **numbers**: a power (``x ** y``) of at most :data:`MAX_POWER_BITS` bits.

Each limit is a :class:`TemplateLimit`, reported as a one-line error at the template
and line. Legitimate templates (a few kilobytes, loops over a variant's settings)
stay far below all three.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_RENDERED_CHARS = 8 * 1024 * 1024
MAX_STEPS = 250_000
MAX_POWER_BITS = 1 << 20
CACHE_SALT = "sandboxed-1"
"""Part of every compiled template's cache key: code compiled before the bounds
(loops without a step count) is never loaded."""

_STEPS_NAME = "__cogfleet_steps"
_PADDING_FILTERS = {"center": 1, "indent": 1}  # filter -> index of its width argument
_state = threading.local()


class TemplateLimit(Exception):
    """A template went beyond one of the bounds (the message says which)."""

    origin: tuple[str, int, bool] | None = None
    """For the size: where the piece of text that went beyond it was written."""


def _spend(count: int = 1) -> None:
    left: int | None = getattr(_state, "left", None)
    if left is None:  # outside :func:`counted_render` (compiling, a test)
        return
    left -= count
    _state.left = left
    if left < 0:
        raise TemplateLimit(
            f"the template takes more than {MAX_STEPS:,} loop steps and calls; "
            "loop over less (rendering must end)"
        )


def counted(chunks: Iterable[str]) -> Iterator[str]:
    """``chunks`` of one render, with the step budget set and the size bounded."""
    _state.left = MAX_STEPS
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                exc = TemplateLimit(
                    f"the rendered text is larger than {MAX_RENDERED_CHARS // (1024 * 1024)} MiB"
                )
                exc.origin = getattr(chunk, "origin", None)  # (template file, line, ...)
                raise exc
            yield chunk
    finally:
        _state.left = None


def _steps(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _spend()
        yield item


def _too_long(length: int) -> TemplateLimit:
    return TemplateLimit(
        f"the expression makes {length:,} items; at most {MAX_RENDERED_CHARS:,} are rendered"
    )


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            length = len(seq) * times
            if length > MAX_RENDERED_CHARS:
                raise _too_long(length)


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = abs(left).bit_length() * right
        if bits > MAX_POWER_BITS:
            raise TemplateLimit(f"{left} ** {right} is too large a number ({bits:,} bits)")


def _bounded_padding(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    index = _PADDING_FILTERS[name]

    @functools.wraps(func)
    def padded(*args: Any, **kwargs: Any) -> Any:
        width = kwargs.get("width", args[index] if len(args) > index else None)
        if isinstance(width, int) and width > MAX_RENDERED_CHARS:
            raise _too_long(width)
        if isinstance(width, str) and len(width) > MAX_RENDERED_CHARS:
            raise _too_long(len(width))
        return func(*args, **kwargs)

    return padded


class BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the bounds above (see the module doc)."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals[_STEPS_NAME] = _steps
        for name in _PADDING_FILTERS:
            self.filters[name] = _bounded_padding(name, self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _spend()
        return super().call(__context, __obj, *args, **kwargs)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):  # every iteration is a step
            loop.iter = nodes.Call(
                nodes.Name(_STEPS_NAME, "load", lineno=loop.lineno), [loop.iter], [], None, None,
                lineno=loop.lineno,
            )
        return tree
