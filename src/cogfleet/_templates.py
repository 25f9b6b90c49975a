"""The Jinja side of rendering: an environment per variant that records what it read.

Templates are found on the variant's search path (its family folder, ``templates/``,
the configs folder, the repository root). The loader records every file read, with
the digest of the bytes rendered, and what each template name resolved to (misses
included), which is what the up-to-date check of a build folder compares. Compiled
templates are shared by every render of a repository, in memory and under
``.cogfleet/cache/jinja/``. Every piece of rendered text keeps the template file and
line it was written on, so an error found later in the rendered text names the line
the user wrote; an error while rendering names the template, line, variable and
variant. Undefined variables are errors (``StrictUndefined``), also inside filters.
Templates run sandboxed and bounded in size and steps (:mod:`cogfleet._template_limits`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import posixpath
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2

from cogfleet._errors import ConfigError, TemplateError
from cogfleet._files import check_readable, ensure_state_dir, write_atomic
from cogfleet._repo import STATE_DIR, TEMPLATES_DIR, Repo, Variant
from cogfleet._template_limits import CACHE_SALT, BoundedEnvironment, TemplateLimit, counted

_UNDEFINED_RE = re.compile(r"'([^']+)' is undefined")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_template(searchpath: list[str], template: str) -> str | None:
    """The file ``template`` resolves to on ``searchpath`` (Jinja's FileSystemLoader rule;
    anything there but a folder counts, so a FIFO or a dangling link is named as such
    when it is read instead of being "not found")."""
    pieces = jinja2.loaders.split_template_path(template)
    for folder in searchpath:
        filename = posixpath.join(folder, *pieces)
        if os.path.lexists(filename) and not os.path.isdir(filename):
            return filename
    return None


class RecordingLoader(jinja2.FileSystemLoader):
    """A file-system loader that remembers what a render read.

    Besides the files (with the digest of the bytes that were rendered), it records
    what every template name resolved to, misses included: a file added earlier on the
    search path changes what a render would read, and the up-to-date check sees it.
    """

    def __init__(self, searchpath: list[Path], root: Path) -> None:
        super().__init__([str(p) for p in searchpath])
        self.root = root
        self.reads: set[str] = set()
        self.files: dict[str, str] = {}  # absolute filename -> repo-relative path
        self.digests: dict[str, str] = {}  # repo-relative path -> sha256 of its bytes
        self.resolved: dict[str, str | None] = {}  # template name -> repo-relative path
        self.sources: dict[str, str] = {}  # absolute filename -> the text rendered

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        found = find_template(self.searchpath, template)
        if found is None:
            self.resolved[template] = None
            return super().get_source(environment, template)  # raises TemplateNotFound
        check_readable(Path(found), rel_path(Path(found), self.root), self.root)
        # Read the bytes once: the digest must be of exactly what was rendered.
        with open(found, "rb") as f:
            raw = f.read()
        # decoded as FileSystemLoader does (text mode: universal newlines)
        try:
            source = io.TextIOWrapper(io.BytesIO(raw), encoding=self.encoding).read()
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise TemplateError(
                rel_path(Path(found), self.root),
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                line=line,
            ) from None
        mtime = os.path.getmtime(found)
        filename = os.path.normpath(found)
        rel = rel_path(Path(filename), self.root)
        self.reads.add(rel)
        self.files[filename] = rel
        self.digests[rel] = digest(raw)
        self.resolved[template] = rel
        self.sources[filename] = source

        def uptodate() -> bool:
            try:
                return os.path.getmtime(found) == mtime
            except OSError:
                return False

        return source, filename, uptodate


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates shared by every render of one repo, in memory and on disk.

    Each variant renders with its own environment (its family folder is on the search
    path), so without a shared cache every variant lexes, parses and compiles the
    same templates again: 200 variants spent about 2.5 of their 4 s of rendering
    there. Entries are keyed by template name and file (tracebacks must point at the
    right file) and checked against the source's checksum by Jinja, so an edited
    template is compiled afresh. The disk copy under ``.cogfleet/cache/jinja/`` makes
    a second ``cogfleet render`` skip compilation altogether; failing to read or
    write it only costs a compile.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir  # marked ignored by git before a file is written in it
        self.directory = state_dir / "cache" / "jinja"
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.cache"

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return super().get_cache_key(f"{CACHE_SALT}:{name}", filename)

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with self._lock:
            data = self._memory.get(bucket.key)
        if data is None:
            try:
                data = self._path(bucket.key).read_bytes()
            except OSError:
                return
        try:
            bucket.bytecode_from_string(data)  # a stale checksum leaves the bucket empty
        except Exception:  # noqa: BLE001 - a damaged file fails in pickle or marshal, any way
            bucket.reset()  # compile again

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        data = bucket.bytecode_to_string()
        with self._lock:
            self._memory[bucket.key] = data
        path = self._path(bucket.key)
        # a read-only checkout still renders; it compiles again next time
        with contextlib.suppress(OSError):
            ensure_state_dir(self.state_dir)
            write_atomic(path, data)


_CACHES: dict[Path, _CompiledTemplates] = {}
_CACHES_LOCK = threading.Lock()


def _compiled_templates(root: Path) -> _CompiledTemplates:
    with _CACHES_LOCK:
        cache = _CACHES.get(root)
        if cache is None:
            cache = _CACHES[root] = _CompiledTemplates(root / STATE_DIR)
        return cache


def rel_path(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return str(path)


def search_path(repo: Repo, variant: Variant) -> list[Path]:
    paths = [variant.family_dir, repo.root / TEMPLATES_DIR, repo.configs_dir, repo.root]
    return list(dict.fromkeys(paths))


class _Chunk(str):
    """A piece of rendered text that knows the template line it was written on."""

    origin: tuple[str, int, bool]  # template filename, line, verbatim template text


def _tracked(
    template: jinja2.Template, render: Callable[[Any], Iterator[str]]
) -> Callable[[Any], Iterator[str]]:
    """Wrap a compiled render function so each chunk it yields carries its origin.

    Chunks coming out of an ``{% include %}`` or a block already carry the included
    template's origin and pass through unchanged. The line of a chunk is read from the
    suspended generator's frame through the template's debug information.
    """

    def run(context: Any) -> Iterator[str]:
        gen = render(context)
        try:
            for chunk in gen:
                if type(chunk) is not _Chunk:
                    frame = gen.gi_frame  # type: ignore[attr-defined]
                    line = 1
                    literal = False
                    if frame is not None:
                        line = template.get_corresponding_lineno(frame.f_lineno)
                        literal = any(
                            type(c) is str and c == chunk for c in frame.f_code.co_consts
                        )
                    tagged = _Chunk(chunk)
                    tagged.origin = (template.filename or template.name or "?", line, literal)
                    chunk = tagged
                yield chunk
        finally:
            gen.close()  # type: ignore[attr-defined]

    return run


class _TrackedTemplate(jinja2.Template):
    """A template whose render functions report where each piece of output came from."""

    @classmethod
    def _from_namespace(
        cls, environment: jinja2.Environment, namespace: Any, globals: Any
    ) -> Any:
        template = super()._from_namespace(environment, namespace, globals)
        template.root_render_func = _tracked(template, template.root_render_func)
        template.blocks = {k: _tracked(template, f) for k, f in template.blocks.items()}
        return template


def _strict_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that fails on an undefined argument with the variable's name.

    Without this, ``{{ use_gpu | tojson }}`` with ``use_gpu`` undefined fails inside
    the filter with a TypeError about ``StrictUndefined`` that names no variable.
    """

    @functools.wraps(func)  # keeps jinja's pass_context/pass_environment marks
    def strict(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
        return func(*args, **kwargs)

    return strict


# filters whose point is to accept an undefined value
_UNDEFINED_AWARE_FILTERS = {"default", "d"}


def template_environment(
    repo: Repo, variant: Variant, filters: dict[str, Any], options: dict[str, bool] | None = None
) -> jinja2.Environment:
    """The Jinja environment ``variant``'s templates render in (see the module doc).

    ``options``: Jinja's lexer options other than ours (``jinja:`` in variants.yaml, as an
    adopted select script rendered its templates); they change the compiled code, so such
    an environment shares no compiled templates.
    """
    loader = RecordingLoader(search_path(repo, variant), repo.root)
    env = BoundedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        bytecode_cache=None if options else _compiled_templates(repo.root),
        **{"keep_trailing_newline": True, **(options or {})},
    )
    env.template_class = _TrackedTemplate
    env.filters.update(filters)
    env.filters = {
        name: func if name in _UNDEFINED_AWARE_FILTERS else _strict_filter(func)
        for name, func in env.filters.items()
    }
    return env


def _template_error(
    exc: Exception, template_rel: str, variant: Variant, known: dict[str, str]
) -> TemplateError:
    """Name the template file and line where rendering failed, the variable and the variant."""
    line = getattr(exc, "lineno", None)
    where = template_rel
    filename = getattr(exc, "filename", None)
    if filename:
        where = known.get(filename, filename)
    tb = exc.__traceback__
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if fname in known:
            where, line = known[fname], tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED_RE.search(str(exc))
        what = f"undefined variable {match.group(1)!r}" if match else str(exc)
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        what = f"template syntax error: {exc.message}"
    elif isinstance(exc, jinja2.TemplateNotFound):
        what = f"included template not found: {exc.name}"
    elif isinstance(exc, RecursionError):
        what = "templates include or call each other without end"
    elif isinstance(exc, TemplateLimit):
        what = str(exc)
        origin = getattr(exc, "origin", None)  # the size: the piece that went beyond it
        if origin is not None:
            where, line = known.get(origin[0], origin[0]), origin[1]
    else:
        what = f"{type(exc).__name__}: {exc}"
    return TemplateError(where, f"{what} (variant {variant.name!r})", line=line)


def _line_origins(
    env: jinja2.Environment, chunks: list[str], loader: RecordingLoader, display: str
) -> list[tuple[str, int]]:
    """For each line of the joined ``chunks``, the (repo-relative file, line) it came from.

    A line's origin is that of its first non-blank piece. A template's debug
    information gives the line of the construct before a piece of verbatim text, so
    verbatim text is located in the template's lexed source: each of its lines then
    gets its own line number.
    """
    tokens: dict[str, list[tuple[int, str]]] = {}
    origins: list[tuple[str, int] | None] = [None]
    blank = [True]
    for chunk in chunks:
        filename, line, literal = getattr(chunk, "origin", (display, 1, False))
        start = line
        if literal:
            if filename not in tokens:
                source = loader.sources.get(filename, "")
                tokens[filename] = [
                    (ln, value) for ln, kind, value in env.lex(source) if kind == "data"
                ]
            # Constant expressions are folded into the text around them, so a chunk
            # starts with the text as lexed: the longest such text, then the nearest.
            found = [(len(text), -ln) for ln, text in tokens[filename]
                     if text and ln >= line and chunk.startswith(text)]
            start = -max(found)[1] if found else line
        where = loader.files.get(filename, filename)
        for offset, piece in enumerate(chunk.split("\n")):
            if offset:
                origins.append(None)
                blank.append(True)
            here = (where, start + offset if literal else start)
            if origins[-1] is None or (blank[-1] and piece.strip()):
                origins[-1] = here
            if piece.strip():
                blank[-1] = False
    return [o or (display, 1) for o in origins]


def render_one(
    env: jinja2.Environment,
    name: str,
    display: str,
    context: dict[str, Any],
    variant: Variant,
) -> tuple[str, list[tuple[str, int]]]:
    """Render one template: its text and, per line, the source file and line."""
    loader = env.loader
    assert isinstance(loader, RecordingLoader)
    try:
        template = env.get_template(name)
        try:
            chunks = list(counted(template.root_render_func(template.new_context(context))))
        except Exception:  # noqa: BLE001 - as Template.render: rewrite the traceback
            env.handle_exception()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - filters are plugin code; any error is the template's
        raise _template_error(exc, display, variant, loader.files) from None
    return "".join(chunks), _line_origins(env, chunks, loader, display)
