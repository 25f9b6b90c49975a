"""The plugin manager: loading order, safety checks, and the typed facade the core calls.

Order: cogfleet's built-ins (entry points in group ``cogfleet`` whose module is part of
cogfleet), then third-party entry points, then the repo's ``plugins/*.py``.
``COGFLEET_DISABLE_PLUGINS=a,b`` blocks plugins by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from cogfleet import PROJECT_NAME, hookspecs
from cogfleet._checks import Checker
from cogfleet._errors import CogfleetError, PluginError, UsageError
from cogfleet._files import check_readable

if TYPE_CHECKING:  # annotations only: rendering and linting never load the step machinery
    from cogfleet._checks import Judge
    from cogfleet._repo import Variant
    from cogfleet._result import RunResult
    from cogfleet._steps import ProgressEvent, PushContext, Step
    from cogfleet.runtime import CogPin

DISABLE_ENV = "COGFLEET_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str
    hooks: tuple[str, ...]



def is_cogfleet_plugin(path: Path) -> bool:
    """Whether ``plugins/<name>.py`` is a cogfleet plugin: one names cogfleet (its
    ``hookimpl`` comes from ``cogfleet`` or a ``HookimplMarker("cogfleet")``), so a
    module that never does is the model's own code in a folder of that name."""
    try:
        return b"cogfleet" in path.read_bytes()
    except OSError:
        return True  # unreadable: importing it reports the problem by name

class Plugins:
    """Typed access to every hook; the core never calls ``pm.hook`` directly."""

    def __init__(self, repo_root: Path | None = None, *, disabled: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._sources: dict[str, str] = {}
        self._checkers: dict[str, Checker] | None = None
        from_env = disabled is None
        if disabled is None:
            disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        self.disabled = disabled
        for name in disabled:
            self.pm.set_blocked(name)
        self._names: set[str] = set()  # every plugin found, loaded or blocked
        self._load_entry_points()
        if repo_root is not None:
            self._load_repo_plugins(repo_root)
            unknown = sorted(disabled - self._names) if from_env else []
            if unknown:  # a typo would leave the plugin it meant running
                raise UsageError(
                    f"{DISABLE_ENV}: no plugin named {unknown[0]!r} "
                    f"(plugins: {', '.join(sorted(self._names))})"
                )
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or "?"
            raise PluginError(
                self._sources.get(name, name), f"plugin {name!r}: {exc}"
            ) from None
        self._check_functions()

    def _check_functions(self) -> None:
        """A hook implementation that pluggy would call to get a coroutine or a generator
        back (``async def``, or ``yield`` without ``wrapper=True``) is an error at load,
        naming it, instead of a wrong answer in the middle of a push."""
        import inspect

        for caller in vars(self.pm.hook).values():
            if not isinstance(caller, pluggy.HookCaller):
                continue
            for impl in caller.get_hookimpls():
                func = impl.function
                if impl.wrapper or impl.hookwrapper:
                    continue
                if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
                    what = "an async def"
                elif inspect.isgeneratorfunction(func):
                    what = "a generator (it yields) without wrapper=True"
                else:
                    continue
                name = impl.plugin_name
                code = getattr(func, "__code__", None)
                raise PluginError(
                    self._sources.get(name, name),
                    f"plugin {name!r}: {caller.name} is {what}; a hook is a plain function",
                    code.co_firstlineno if code is not None else None,
                )

    # -- loading ---------------------------------------------------------------------

    def _register(self, module: ModuleType | object, name: str, source: str) -> None:
        if self.pm.is_blocked(name):
            return
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(source, f"plugin {name!r}: {exc}") from None
        except ValueError as exc:
            raise PluginError(source, f"plugin {name!r}: {exc}") from None
        self._sources[name] = source

    def _load_entry_points(self) -> None:
        eps = sorted(
            entry_points(group=PROJECT_NAME),
            key=lambda ep: (not ep.value.startswith(f"{PROJECT_NAME}."), ep.name),
        )
        for ep in eps:
            self._names.add(ep.name)
            if self.pm.is_blocked(ep.name):
                continue
            if ep.value.startswith(f"{PROJECT_NAME}."):
                source = "builtin"
            else:  # the distribution's name is read from its metadata file: only here
                source = f"entry point ({ep.dist.name if ep.dist is not None else '?'})"
            try:
                module = ep.load()
            except BaseException as exc:  # any import failure is reported by name
                if isinstance(exc, KeyboardInterrupt | GeneratorExit):
                    raise
                raise PluginError(
                    None, f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}"
                ) from None
            self._register(module, ep.name, source)

    def _load_repo_plugins(self, root: Path) -> None:
        """The repo's ``plugins/*.py``; in a repo adopted in place, only those that are
        cogfleet plugins (see :func:`is_cogfleet_plugin`)."""
        folder = root / "plugins"
        if not folder.is_dir():
            return
        # in an adopted repo (no models/<family>/) plugins/ may hold the model's own code
        native = any((root / "models").glob("*/variants.yaml"))
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or not (native or is_cogfleet_plugin(path)):
                continue
            name = path.stem
            rel = f"plugins/{path.name}"
            check_readable(path, rel, root)
            self._names.add(name)
            if self.pm.is_blocked(name):
                continue
            mod_name = f"cogfleet_repo_plugins.{name}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException as exc:  # sys.exit() or a BaseException at import too
                if isinstance(exc, KeyboardInterrupt | GeneratorExit):
                    raise
                sys.modules.pop(mod_name, None)
                line = _error_line(exc, path)
                raise PluginError(
                    rel, f"plugin {name!r} failed to import: {type(exc).__name__}: {exc}", line
                ) from None
            self._register(module, name, rel)

    # -- calling hooks -----------------------------------------------------------------

    def _call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook``; a plugin raising anything but a cogfleet error is a PluginError."""
        return self._guard(getattr(self.pm.hook, hook), hook, **kwargs)

    def _guard(self, func: Callable[..., Any], hook: str, **kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except CogfleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin code: name the plugin, no traceback
            raise self._blame(hook, exc) from None

    def _blame(self, hook: str, exc: BaseException) -> PluginError:
        """The plugin (and its file and line) in whose code ``exc`` was raised."""
        files: dict[str, str] = {}
        for name in self._sources:
            module_file = getattr(self.pm.get_plugin(name), "__file__", None)
            if module_file:
                files[str(Path(module_file).resolve())] = name
        name, line, where = "?", None, None
        tb = exc.__traceback__
        while tb is not None:
            found = files.get(str(Path(tb.tb_frame.f_code.co_filename).resolve()))
            if found is not None:
                name, line = found, tb.tb_lineno
                source = self._sources[found]
                where = source if source.startswith("plugins/") else tb.tb_frame.f_code.co_filename
            tb = tb.tb_next
        return PluginError(
            where, f"plugin {name!r}: {hook} raised {type(exc).__name__}: {exc}", line
        )

    def _check_answers(
        self, hook: str, answers: list[Any], fits: Callable[[Any], bool], expected: str,
        **kwargs: Any,
    ) -> None:
        """A PluginError naming the plugin whose answer to ``hook`` is not ``expected``.

        pluggy drops ``None`` answers, so the plugin is found by asking each one again
        (only when an answer is wrong: the error path).
        """
        wrong = next((a for a in answers if a is not None and not fits(a)), _FITS)
        if wrong is _FITS:
            return
        owner = "?"
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                continue
            answer = self._guard(impl.function, hook,
                                 **{k: v for k, v in kwargs.items() if k in impl.argnames})
            if answer is not None and not fits(answer):
                owner = self.source_of(impl.plugin)
                break
        shown = repr(wrong)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise PluginError(
            None, f"plugin {owner}: {hook} returned {type(wrong).__name__} {shown}, "
            f"expected {expected}"
        )

    # -- introspection -----------------------------------------------------------------

    def describe(self) -> list[PluginInfo]:
        """Every loaded plugin, where it came from, and the hooks it implements."""
        out = []
        for name, source in self._sources.items():
            plugin = self.pm.get_plugin(name)
            hooks = tuple(
                sorted(
                    caller.name
                    for caller in self.pm.get_hookcallers(plugin) or []
                )
            )
            out.append(PluginInfo(name=name, source=source, hooks=hooks))
        return out

    def source_of(self, plugin: object) -> str:
        name = self.pm.get_name(plugin) or "?"
        return f"{name} ({self._sources.get(name, '?')})"

    # -- configure ---------------------------------------------------------------------

    def checkers(self) -> dict[str, Checker]:
        """Every registered checker by key; two plugins claiming one key is an error."""
        if self._checkers is None:
            found: dict[str, tuple[Checker, str]] = {}
            for impl in self.pm.hook.cogfleet_register_checkers.get_hookimpls():
                owner = self.source_of(impl.plugin)

                def register(checker: Checker, _owner: str = owner) -> None:
                    if not isinstance(checker, Checker):
                        raise PluginError(None, f"plugin {_owner} registered a non-Checker")
                    if checker.name in found:
                        raise PluginError(
                            None,
                            f"checker {checker.name!r} is registered by both "
                            f"{found[checker.name][1]} and {_owner}",
                        )
                    found[checker.name] = (checker, _owner)

                self._guard(impl.function, "cogfleet_register_checkers", register=register)
            self._checkers = {k: v[0] for k, v in sorted(found.items())}
        return self._checkers

    # -- render ------------------------------------------------------------------------

    def template_variables(self, variant: Variant) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        answers = self._call("cogfleet_template_variables", variant=variant)
        self._check_answers("cogfleet_template_variables", answers, _is_variables,
                            "a dict of variable names (str) to values", variant=variant)
        # pluggy calls the last registered first; reverse so later plugins win
        for answer in reversed(answers):
            if answer:
                merged.update(answer)
        return merged

    def template_filters(self) -> dict[str, Callable[..., Any]]:
        filters: dict[str, Callable[..., Any]] = {}

        def register(name: str, func: Callable[..., Any]) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise TypeError(f"a filter's name must be an identifier, got {name!r}")
            if not callable(func):
                raise TypeError(f"filter {name!r} is not callable: {func!r}")
            filters[name] = func

        self._call("cogfleet_template_filters", register=register)
        return filters

    # -- lint --------------------------------------------------------------------------

    def lint(
        self, variant: Variant, build_dir: Path, cog_pin: CogPin | None = None
    ) -> list[str]:
        """Every plugin's lint answers (:class:`~cogfleet.LintWarning` ones fail nothing)."""
        from cogfleet.runtime import installed_pin

        problems: list[str] = []
        pin = cog_pin or installed_pin()
        answers = self._call("cogfleet_lint", variant=variant, build_dir=build_dir, cog_pin=pin)
        self._check_answers("cogfleet_lint", answers, _is_texts, "a list of str",
                            variant=variant, build_dir=build_dir, cog_pin=pin)
        for answer in reversed(answers):
            problems.extend(answer or [])
        return problems

    # -- push / check / promote ------------------------------------------------------------

    def steps(self) -> list[Step]:
        """Every registered pipeline step. A step the pipeline could not run (a phase it
        does not have, a ``run`` that is not callable, the name of a step cogfleet runs
        itself) or two plugins registering one name is an error naming the plugin."""
        from cogfleet._steps import PHASES

        steps: dict[str, tuple[Step, str]] = {}
        # in pluggy's own call order (the last registered first), as a hook call would
        for impl in reversed(self.pm.hook.cogfleet_register_steps.get_hookimpls()):
            owner = self.source_of(impl.plugin)

            def register(step: Step, _owner: str = owner) -> None:
                problem = _step_problem(step, PHASES)
                if problem is not None:  # raised in the plugin's call: named at its line
                    raise TypeError(problem)
                if step.name in steps:
                    raise PluginError(None, f"plugins {steps[step.name][1]} and {_owner} both "
                                      f"register the pipeline step {step.name!r}")
                steps[step.name] = (step, _owner)

            self._guard(impl.function, "cogfleet_register_steps",
                        **({"register": register} if "register" in impl.argnames else {}))
        return [step for step, _ in steps.values()]

    def schema_lint(self, schema: dict[str, Any], kind: str) -> list[str]:
        problems: list[str] = []
        answers = self._call("cogfleet_schema_lint", schema=schema, kind=kind)
        self._check_answers("cogfleet_schema_lint", answers, _is_texts, "a list of str",
                            schema=schema, kind=kind)
        for answer in reversed(answers):
            problems.extend(answer or [])
        return problems

    def judge(self, ctx: PushContext) -> Judge | None:
        judge: Judge | None = self._call("cogfleet_judge", ctx=ctx)
        return judge

    def fuzz_inputs(
        self,
        ctx: PushContext,
        schema: dict[str, Any],
        kind: str,
        count: int,
        fixed_inputs: dict[str, Any],
        disabled_inputs: list[str],
        prompt: str | None,
    ) -> list[dict[str, Any]]:
        kwargs = {"ctx": ctx, "schema": schema, "kind": kind, "count": count,
                  "fixed_inputs": fixed_inputs, "disabled_inputs": disabled_inputs,
                  "prompt": prompt}
        inputs: list[dict[str, Any]] = self._call("cogfleet_fuzz_inputs", **kwargs)
        self._check_answers("cogfleet_fuzz_inputs", [inputs], _is_input_list,
                            "a list of input mappings", **kwargs)
        return inputs

    def progress(self, event: ProgressEvent) -> None:
        self._call("cogfleet_progress", event=event)

    # -- report ------------------------------------------------------------------------

    def report(self, results: list[RunResult], options: dict[str, Any]) -> None:
        """Every reporter writes its report, even when one called before it fails;
        then the first failure is raised (naming the plugin)."""
        caller = self.pm.hook.cogfleet_report
        impls = caller.get_hookimpls()
        if any(impl.hookwrapper or impl.wrapper for impl in impls):
            self._call("cogfleet_report", results=results, options=options)
            return
        kwargs = {"results": results, "options": options}
        errors: list[CogfleetError] = []
        for impl in reversed(impls):  # pluggy's own call order
            try:
                self._guard(impl.function, "cogfleet_report",
                            **{k: v for k, v in kwargs.items() if k in impl.argnames})
            except CogfleetError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _error_line(exc: BaseException, path: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_FITS = object()
_CORE_STEPS = ("lint", "push-test")  # run by the pipeline itself, before every plugin step


def _step_problem(step: Any, phases: tuple[str, ...]) -> str | None:
    """What keeps the pipeline from running ``step`` (registered by a plugin), or None."""
    from cogfleet._steps import Step

    if not isinstance(step, Step):
        return f"registered {type(step).__name__} {_short(step)}, not a Step"
    if not isinstance(step.name, str) or not step.name.strip():
        return f"registered a step named {_short(step.name)}; a name is a non-empty string"
    if step.name in _CORE_STEPS:
        return f"registered the step {step.name!r}, which cogfleet runs itself"
    if step.phase not in phases:
        return (f"registered the step {step.name!r} in phase {_short(step.phase)}; the phases "
                f"are {', '.join(phases)}")
    if not callable(step.run):
        return f"registered the step {step.name!r} with a run that is not callable"
    if step.prefetch is not None and not callable(step.prefetch):
        return f"registered the step {step.name!r} with a prefetch that is not callable"
    if not isinstance(step.order, int) or isinstance(step.order, bool):
        return f"registered the step {step.name!r} with order {_short(step.order)}, not an int"
    return None


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _is_texts(answer: Any) -> bool:
    return isinstance(answer, list | tuple) and all(isinstance(a, str) for a in answer)


def _is_input_list(answer: Any) -> bool:
    return isinstance(answer, list) and all(
        isinstance(a, Mapping) and all(isinstance(k, str) for k in a) for a in answer
    )


def _is_variables(answer: Any) -> bool:
    return isinstance(answer, Mapping) and all(isinstance(k, str) for k in answer)
