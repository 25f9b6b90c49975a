"""The ``image_size`` test-case checker of this repository.

``image_size: 256x144`` passes when the prediction returned at least one file and
every returned file is an image of exactly that width and height. It shows how a
repository adds its own checker: cogfleet loads every ``plugins/*.py`` module.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from cogfleet import hookimpl
from cogfleet._checks import CheckContext, Checker, CheckResult

_SIZE = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")


def parse_size(value: Any) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` into ``(width, height)``; ``ValueError`` otherwise."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected WIDTHxHEIGHT, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def validate_image_size(value: Any) -> None:
    """Reject a malformed ``image_size`` value when the config is loaded."""
    parse_size(value)


def check_image_size(ctx: CheckContext) -> CheckResult:
    """Pass when every output file is an image of the expected size."""
    # Imported here, not with the module: cogfleet loads every plugin before a command
    # starts, and Pillow's 50 ms would be paid by commands that check no image.
    from PIL import Image, UnidentifiedImageError

    width, height = parse_size(ctx.expected)
    files = ctx.output_files()
    if not files:
        return CheckResult(False, f"expected {width}x{height} images, but the output has no files")
    for index, file in enumerate(files):
        try:
            with Image.open(io.BytesIO(file.data)) as image:
                size = image.size
        except UnidentifiedImageError:
            return CheckResult(False, f"output file {index} ({file.content_type}) is not an image")
        if size != (width, height):
            return CheckResult(
                False, f"output file {index} is {size[0]}x{size[1]}, expected {width}x{height}"
            )
    return CheckResult(True, f"{len(files)} image(s) of {width}x{height}")


@hookimpl
def cogfleet_register_checkers(register: Callable[[Checker], None]) -> None:
    """Register the ``image_size`` checker."""
    register(
        Checker(
            name="image_size",
            check=check_image_size,
            validate=validate_image_size,
            description="every output file is an image of WIDTHxHEIGHT pixels",
        )
    )
