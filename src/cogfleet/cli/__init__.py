"""The ``cogfleet`` command line: one module per command group, shared helpers in ``_common``.

- ``_main``: the entry point (:func:`main`; :func:`run` is the program), the parser, exit codes.
- ``_monorepo``: ``list``, ``render``, ``lint``, ``plugins``, ``select``.
- ``_schema``: ``schema``, ``schema-diff``.
- ``_serve``: ``serve``.
- ``_push``: ``push``, ``test``, ``safe-push``.
- ``_report``: ``report`` (a JSON report drawn again as HTML).
- ``_ci``: ``matrix``, ``affected``, ``canary``.

A new command group is a module with a ``COMMANDS`` list of
:class:`~cogfleet.cli._common.Command`, added to ``_main.COMMANDS``. Command modules
import only the standard library, :mod:`cogfleet._errors` and ``_common`` at module
level (``tests/test_layers.py`` checks what ``cogfleet --help`` imports).
"""

from cogfleet._extras import skip_unused_extras

skip_unused_extras()  # before anything imports httpx or anthropic

from cogfleet.cli._main import build_parser, main, run  # noqa: E402

__all__ = ["build_parser", "main", "run"]
