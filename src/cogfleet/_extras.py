"""Optional parts of libraries that cogfleet never uses, kept from loading.

Two dependencies import optional extras eagerly when the packages those extras need
happen to be installed, and cogfleet's own dependencies install them:

- ``httpx`` loads its command-line client (``httpx._main``, which imports click,
  pygments and rich's console, syntax and progress modules) whenever click and rich
  are importable; uvicorn brings click. cogfleet uses httpx as a library only.
- ``anthropic`` loads its aiohttp transport (``anthropic._vendor.httpx_aiohttp``)
  whenever aiohttp is importable; the local server brings aiohttp. cogfleet's judge
  uses the SDK's default (synchronous) client only.

Measured on the 2-core machine: 50-60 ms of the start-up of every command that
talks to an API, and 0.1-0.15 s of the Anthropic import (which a push's fuzz
proposal waits for). A ``None`` entry in ``sys.modules`` makes the import of that
name raise ``ImportError``, which both libraries catch and fall back on: ``httpx.main``
then only says the CLI extras are missing, and ``anthropic.DefaultAioHttpClient``
says the aiohttp extra is missing.
"""

from __future__ import annotations

import sys

UNUSED = ("httpx._main", "anthropic._vendor.httpx_aiohttp")


def skip_unused_extras() -> None:
    """Keep the modules in :data:`UNUSED` from loading (no effect on loaded ones)."""
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
