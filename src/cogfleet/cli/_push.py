"""The safe push: ``push``, ``test`` and ``safe-push``; and ``build``, what a push runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet._errors import ConfigError, UsageError
from cogfleet._limits import MAX_FUZZ_ITERATIONS, MAX_PARALLEL, MAX_PREDICT_TIMEOUT
from cogfleet.cli._common import Command, add_target_flags, load_plugins, load_repo
from cogfleet.cli._preflight import (
    check_destinations,
    check_environment,
    check_local_url,
    check_secret,
    int_at_least,
    owner_name,
    python_version,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cogfleet._checks import Checker
    from cogfleet._config import SafePushConfig, TestCase
    from cogfleet._render import Rendered
    from cogfleet._run import RunSettings
    from cogfleet._steps import PushOptions
    from cogfleet.runtime import EnvStore
    from cogfleet.schema import ModelCodeNeeded

HELP_CONFIG = """\
model: <owner>/<name>
test_model: <owner>/<name>-test     # default: <model>-test
test_hardware: cpu
parallel: 4
ignore_schema_compatibility: false
official_model: <owner>/<name>      # used with --push-official-model
deployment:
  owner: <owner>
  name: <name>
  hardware: cpu
predict:
  compare_outputs: true
  predict_timeout: 300
  test_cases:
    - inputs: {prompt: a cat}
      exact_string: <exact output>
    - inputs: {prompt: a cat}
      match_url: <URL or repo-relative path of a reference output file>
    - inputs: {prompt: a cat}
      match_prompt: <what the output should be, e.g. 'a 1024x1024px jpg image of a cat'>
    - inputs: {prompt: a cat}
      jq_query: <jq query that must be truthy on JSON output>
    - inputs: {prompt: ""}
      error_contains: <text the error must contain>
  fuzz:
    fixed_inputs: {}
    disabled_inputs: []
    iterations: 10
    prompt: <extra guidance for AI-proposed inputs>
train:
  destination: <owner>/<name>        # default: <test_model>-dest
  destination_hardware: cpu
  train_timeout: 300
  test_cases: []
"""


def _value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        with contextlib.suppress(ValueError):  # not this type; try the next
            return cast(text)
    return text


def parse_pairs(text: str) -> dict[str, Any]:
    """``k=v;k=v`` with cog-safe-push's value typing (bool, int, float, else string)."""
    out: dict[str, Any] = {}
    for pair in (p for p in text.split(";") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"invalid input {pair!r} (expected key=value)")
        out[key.strip()] = _value(value)
    return out


def parse_test_case(text: str) -> TestCase:
    """cog-safe-push's ``--test-case``: ``k=v;k=v`` then ``==exact|==https://url|~=prompt``."""
    from cogfleet._config import TestCase

    if not text.strip():
        raise argparse.ArgumentTypeError("expected k=v;k=v[==exact|==https://url|~=AI prompt]")
    parts = re.split(r"(==|~=)", text, maxsplit=1)
    case = TestCase(inputs=parse_pairs(parts[0]))
    if len(parts) == 3:
        op, expected = parts[1], parts[2]
        if op == "~=":
            key = "match_prompt"
        elif expected.startswith(("http://", "https://")):
            key = "match_url"
        else:
            key = "exact_string"
        case = TestCase.model_validate({"inputs": case.inputs, key: expected})
    return case


def add_common_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target and reports")
    add_target_flags(g)
    g.add_argument("--report-json", metavar="PATH", help="write the JSON report")
    g.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report")
    g.add_argument("--html", metavar="PATH",
                   help="write the HTML report (one self-contained page)")
    g.add_argument("--markdown", metavar="PATH",
                   help="append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set)")
    g.add_argument("--fuzz-seed", type=int, default=0, help="seed of the built-in fuzz generator")
    g.add_argument("--offline", action="store_true",
                   help="fail cases that need a URL off this machine at once (no fetching)")
    g.add_argument("--separate-weights", action="store_true",
                   help="cog push --separate-weights (replicate target)")
    g.add_argument("--secret", dest="secrets", action="append", default=[], metavar="SPEC",
                   help="cog push --secret id=NAME,src=PATH (replicate target; repeatable)")
    add_environment_flags(p, env=True)
    o = p.add_argument_group("cog-safe-push overrides")
    o.add_argument("--test-model", type=owner_name, default=argparse.SUPPRESS)
    o.add_argument("--test-hardware", default=argparse.SUPPRESS)
    o.add_argument("--no-compare-outputs", dest="compare_outputs", action="store_false",
                   default=argparse.SUPPRESS)
    o.add_argument("--predict-timeout", type=int_at_least(1, MAX_PREDICT_TIMEOUT),
                   default=argparse.SUPPRESS)
    o.add_argument("--fast-push", action="store_true", default=argparse.SUPPRESS,
                   help="accepted for compatibility (cog >= 0.17 has no fast push)")
    o.add_argument("--test-case", dest="test_cases", action="append", type=parse_test_case,
                   default=argparse.SUPPRESS, metavar="CASE",
                   help="k=v;k=v[==exact|==https://url|~=AI prompt] (repeatable)")
    o.add_argument("--fuzz-fixed-inputs", type=parse_pairs, default=argparse.SUPPRESS,
                   metavar="K=V;...")
    o.add_argument("--fuzz-disabled-inputs", type=lambda s: [x for x in s.split(";") if x],
                   default=argparse.SUPPRESS, metavar="K;...")
    o.add_argument("--fuzz-iterations", type=int_at_least(0, MAX_FUZZ_ITERATIONS),
                   default=argparse.SUPPRESS)
    o.add_argument("--fuzz-prompt", default=argparse.SUPPRESS)
    o.add_argument("--parallel", type=int_at_least(1, MAX_PARALLEL), default=argparse.SUPPRESS)
    o.add_argument("--ignore-schema-compatibility", action="store_true",
                   default=argparse.SUPPRESS)
    o.add_argument("--push-official-model", action="store_true",
                   help="also push the tested build to official_model")


def add_environment_flags(p: argparse.ArgumentParser, *, env: bool) -> None:
    """How the local target runs a version: ``--env``, ``--python``, ``--run-build-commands``."""
    e = p.add_argument_group("environment (local target)")
    if env:
        e.add_argument(
            "--env", dest="environment", choices=["isolated", "current"], default="isolated",
            help="isolated (default): an environment built from cog.yaml with the pinned Cog; "
            "current: cogfleet's own interpreter (fast, not what Cog builds)",
        )
    e.add_argument("--python", metavar="X.Y", type=python_version,
                   help="Python to use when cog.yaml's python_version is not installed (warned)")
    e.add_argument("--run-build-commands", action="store_true",
                   help="run cog.yaml's build.run commands in the environment's folder")


def _python_flag(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)?", value):
        raise UsageError(f"--python: expected a version like 3.11, got {value!r}")
    return value


def apply_overrides(
    config: SafePushConfig, ns: argparse.Namespace,
    checkers: Mapping[str, Checker] | None = None, root: Path | None = None,
) -> SafePushConfig:
    """Command-line flags win over the config file (as in cog-safe-push).

    The result is checked as a config file is: ``--test-case`` values by ``checkers``
    (with files read from ``root``), and ``--test-model`` must name a model of its own.
    """
    from cogfleet._config import model_clash

    merged = _merge_overrides(config, ns)
    clash = model_clash(merged)
    if "test_model" in ns and clash is not None:
        problem = ("must differ from the model" if clash[0] == "test_model"
                   else f"the same model as {clash[0]}")
        raise UsageError(f"--test-model {merged.test_model}: {problem}")
    if checkers is not None:
        from cogfleet._config import case_problem

        for case in getattr(ns, "test_cases", []):
            found = case_problem(case, checkers, root)
            if found is not None:
                key, problem = found
                raise UsageError(f"--test-case: {key + ': ' if key else ''}{problem}")
    return merged


def override_flags(ns: argparse.Namespace) -> dict[tuple[str | int, ...], str]:
    """The parts of the config that flags given on the command line set, by flag."""
    flags: dict[tuple[str | int, ...], str] = {
             ("predict", "test_cases"): "--test-case",
             ("predict", "fuzz", "fixed_inputs"): "--fuzz-fixed-inputs",
             ("predict", "fuzz", "disabled_inputs"): "--fuzz-disabled-inputs"}
    given = {"--test-case": "test_cases", "--fuzz-fixed-inputs": "fuzz_fixed_inputs",
             "--fuzz-disabled-inputs": "fuzz_disabled_inputs"}
    return {loc: flag for loc, flag in flags.items() if hasattr(ns, given[flag])}


def _merge_overrides(config: SafePushConfig, ns: argparse.Namespace) -> SafePushConfig:
    from pydantic import ValidationError

    from cogfleet._config import FuzzConfig, PredictConfig, SafePushConfig

    top: dict[str, Any] = {}
    for key in ("test_model", "test_hardware", "parallel", "fast_push",
                "ignore_schema_compatibility"):
        if hasattr(ns, key):
            top[key] = getattr(ns, key)
    predict_keys = ("compare_outputs", "predict_timeout", "test_cases")
    fuzz_map = {"fuzz_fixed_inputs": "fixed_inputs", "fuzz_disabled_inputs": "disabled_inputs",
                "fuzz_iterations": "iterations", "fuzz_prompt": "prompt"}
    predict_update = {k: getattr(ns, k) for k in predict_keys if hasattr(ns, k)}
    fuzz_update = {v: getattr(ns, k) for k, v in fuzz_map.items() if hasattr(ns, k)}
    if predict_update or fuzz_update:
        predict = config.predict or PredictConfig()
        if fuzz_update:
            fuzz = predict.fuzz or FuzzConfig()
            predict_update["fuzz"] = fuzz.model_dump() | fuzz_update
        # as plain data, so the flags' values are validated with the rest (model_copy
        # would take --fuzz-iterations 99999999999 as it is)
        top["predict"] = predict.model_dump() | predict_update
    if not top:
        return config
    try:
        return SafePushConfig.model_validate(config.model_dump() | top)
    except ValidationError as exc:  # a flag value the config model rejects: name the flag
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"] if isinstance(p, str)]
        name = {"fixed_inputs": "fuzz-fixed-inputs", "disabled_inputs": "fuzz-disabled-inputs",
                "iterations": "fuzz-iterations", "prompt": "fuzz-prompt"}.get(
                    loc[-1] if loc else "", (loc[-1] if loc else "?").replace("_", "-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise UsageError(f"--{name}: {msg}") from None


def _settings(ns: argparse.Namespace) -> RunSettings:
    """The run's settings, checked before anything is rendered, pushed or started."""
    from cogfleet._run import RunSettings

    if ns.target == "replicate":  # flags of the local target would be silently unused
        local_only = [flag for flag, given in (
            ("--local-url", ns.local_url), ("--env", ns.environment != "isolated"),
            ("--python", ns.python), ("--run-build-commands", ns.run_build_commands),
        ) if given]
        if local_only:
            raise UsageError(f"{local_only[0]}: only for --target local (Replicate builds "
                             "with the cog CLI); leave it out")
    check_environment(ns.target)
    check_destinations([("--report-json", ns.report_json), ("--junit-xml", ns.junit_xml),
                        ("--markdown", ns.markdown), ("--html", ns.html)])
    for spec in ns.secrets:
        check_secret(spec)
    local_url = ns.local_url
    if local_url and ns.target == "local":
        local_url = check_local_url(local_url)
    return RunSettings(
        target=ns.target, local_url=local_url, report_json=ns.report_json,
        junit_xml=ns.junit_xml, markdown=ns.markdown, html=ns.html,
    )


def spare_inputs(ns: argparse.Namespace, root: Path, reads: set[str]) -> None:
    """A report must not overwrite a file the run is built from (``reads``: paths
    relative to ``root``), nor a plugin or the project file."""
    for flag, value in (("--report-json", ns.report_json), ("--junit-xml", ns.junit_xml),
                        ("--markdown", ns.markdown), ("--html", ns.html)):
        if not value or not Path(value).is_file():
            continue
        try:
            rel = Path(value).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue  # outside the repository
        if rel in reads or rel == "pyproject.toml" or (
            rel.startswith("plugins/") and rel.endswith(".py")
        ):
            raise UsageError(f"{flag} {value}: is a file this run is built from; the report "
                             "would overwrite it, give another path")


def _options(ns: argparse.Namespace, *, no_push: bool) -> PushOptions:
    from cogfleet._steps import PushOptions

    return PushOptions(
        no_push=no_push, push_official_model=ns.push_official_model,
        fuzz_seed=ns.fuzz_seed, verbose=ns.verbose, offline=ns.offline,
        separate_weights=ns.separate_weights, secrets=list(ns.secrets),
        environment=ns.environment, python=_python_flag(ns.python),
        run_build_commands=ns.run_build_commands,
    )


def cmd_push(ns: argparse.Namespace, *, no_push: bool | None = None) -> int:
    """Safe push of monorepo variants (``test`` = without promotion)."""
    from cogfleet._judge_process import judge_process

    with judge_process():  # first: the AI client loads in its own process meanwhile
        return _push(ns, no_push=no_push)


def _push(ns: argparse.Namespace, *, no_push: bool | None) -> int:
    from cogfleet._config_inputs import Unchecked, deferred_check, rendered_text
    from cogfleet._render_folder import render_variants
    from cogfleet._run import Job, run_jobs

    repo = load_repo(ns)
    variants = repo.select(ns.variants)
    settings = _settings(ns)
    plugins = load_plugins(repo.root)
    plugins.steps()  # a plugin that cannot register its steps fails before any render
    configs: dict[str, SafePushConfig] = {}
    warnings: list[str] = []
    needs_code: dict[str, ModelCodeNeeded] = {}
    unchecked: set[str] = set()  # variants whose inputs wait for the pushed schema

    def noted(name: str, found: list[str]) -> list[str]:
        if any(isinstance(w, Unchecked) for w in found):
            unchecked.add(name)
        return [f"warning: {name}: {w}\n" for w in found]

    def overridden(r: Rendered) -> None:  # flags checked before any build folder is written
        from cogfleet._config_inputs import check_rendered

        config = apply_overrides(r.config, ns, plugins.checkers(), repo.root)
        pending: list[ModelCodeNeeded] = []
        warnings.extend(noted(r.variant.name, check_rendered(
            r, config, repo.pin_for(r.variant).version, root=repo.root,
            flags=override_flags(ns), needs_code=pending,
        )))
        configs[r.variant.name] = config
        if pending:
            needs_code[r.variant.name] = pending[0]
        spare_inputs(ns, repo.root, r.reads | {repo.rel(r.variant.variants_file)})

    rendered = render_variants(repo, variants, plugins, check=overridden)
    by_name = {r.variant.name: r for r in rendered}
    if needs_code:  # the SDK's document, in the environment the push then runs it in
        found = _sdk_checks(
            [(by_name[name], configs[name], reason) for name, reason in needs_code.items()],
            ns, settings, repo.root, lambda r: repo.pin_for(r.variant).version,
        )
        for name, found_warnings in zip(needs_code, found, strict=True):
            warnings += noted(name, found_warnings)
    sys.stderr.writelines(warnings)  # once every variant rendered: an error comes alone

    def deferred(r: Rendered) -> Callable[[dict[str, Any]], list[str]] | None:
        if r.variant.name not in unchecked:
            return None
        return deferred_check(configs[r.variant.name], rendered_text(r), root=repo.root,
                              flags=override_flags(ns))  # fmt: skip

    jobs = [
        Job(name=r.variant.name, build_dir=r.build_dir, config=configs[r.variant.name],
            variant=r.variant, cog_pin=repo.pin_for(r.variant), check_inputs=deferred(r))
        for r in rendered
    ]
    skip_push = ns.no_push if no_push is None else no_push
    return run_jobs(jobs, settings, plugins, _options(ns, no_push=skip_push), repo.root)


def _sdk_store(settings: RunSettings, state: Path) -> EnvStore | None:
    """The environments the push's target runs versions in, when they are this
    machine's (the embedded local server); ``None`` when the target builds its own."""
    from cogfleet._build import LOCAL_STATE
    from cogfleet.runtime import EnvStore

    if settings.target != "local" or settings.local_url:
        return None
    return EnvStore.for_state(state / LOCAL_STATE)


def _sdk_checks(
    pending: list[tuple[Rendered, SafePushConfig, ModelCodeNeeded]], ns: argparse.Namespace,
    settings: RunSettings, root: Path, version: Callable[[Rendered], str],
) -> list[list[str]]:  # fmt: skip
    """Each variant's config checked against the document its pinned SDK writes (their
    environments built at once); each one's warnings. ``ConfigError`` for the first that
    fails."""
    from concurrent.futures import ThreadPoolExecutor

    from cogfleet._config_inputs import check_with_sdk, rendered_text
    from cogfleet.runtime import RuntimeOptions

    store = _sdk_store(settings, root)

    def check(item: tuple[Rendered, SafePushConfig, ModelCodeNeeded]) -> list[str]:
        r, config, reason = item
        options = RuntimeOptions(
            cog_version=version(r), environment=ns.environment, python=_python_flag(ns.python),
            run_build_commands=ns.run_build_commands,
        )
        return check_with_sdk(
            r.build_dir, reason, options, store, config, rendered_text(r), root=root,
            flags=override_flags(ns),
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, min(len(pending), os.cpu_count() or 1))) as pool:
        return list(pool.map(check, pending))


def cmd_test(ns: argparse.Namespace) -> int:
    return cmd_push(ns, no_push=True)


def cmd_build(ns: argparse.Namespace) -> int:
    """Build what a push of each variant would run: its environment, or its image."""
    from cogfleet._build import LOCAL_STATE, BuildJob, build_images, build_local
    from cogfleet._config_inputs import check_rendered
    from cogfleet._render_folder import render_variants

    check_environment(ns.target, api=False)  # a local build: no API is asked
    repo = load_repo(ns)

    def buildable(r: Rendered) -> None:  # a source Cog's build refuses: exit 2, nothing built
        check_rendered(r, None, repo.pin_for(r.variant).version, strict=True)

    rendered = render_variants(
        repo, repo.select(ns.variants), load_plugins(repo.root), check=buildable
    )
    jobs = [
        BuildJob(r.variant.name, r.build_dir, r.config, repo.pin_for(r.variant)) for r in rendered
    ]
    if ns.target == "replicate":
        return build_images(jobs)
    return build_local(
        jobs, repo.root / LOCAL_STATE, python=_python_flag(ns.python),
        run_build_commands=ns.run_build_commands,
    )  # fmt: skip


def cmd_safe_push(ns: argparse.Namespace) -> int:
    """Drop-in for cog-safe-push, run inside a single Cog folder."""
    if ns.help_config:
        sys.stdout.write(HELP_CONFIG)
        return 0
    from cogfleet._judge_process import judge_process

    with judge_process():  # first: the AI client loads in its own process meanwhile
        return _safe_push(ns)


def _safe_push(ns: argparse.Namespace) -> int:
    import yaml

    from cogfleet._config import parse_config
    from cogfleet._run import Job, run_jobs
    from cogfleet._yaml import load_yaml_text

    folder = Path.cwd()
    if not (folder / "cog.yaml").is_file():
        raise UsageError("safe-push runs in a Cog folder: no cog.yaml here")
    settings = _settings(ns)
    plugins = load_plugins(folder if (folder / "plugins").is_dir() else None)
    plugins.steps()  # a plugin that cannot register its steps fails before any push
    config_path = Path(ns.config) if ns.config else folder / "cog-safe-push.yaml"
    if ns.config and not config_path.is_file():
        raise UsageError(f"--config {ns.config}: no such file")
    shown = "<command line>"
    if config_path.is_file():
        text = original = config_path.read_text(encoding="utf-8")
        shown = str(config_path.name if not ns.config else ns.config)
        if ns.model:
            data = load_yaml_text(text, ns.config or config_path.name) or {}
            if not isinstance(data, dict):
                raise ConfigError(ns.config or config_path.name,
                                  "expected a mapping at the top level")
            data["model"] = ns.model
            text = yaml.safe_dump(data, sort_keys=False)
        config = parse_config(text, shown, plugins.checkers())
    else:
        original = ""
        if not ns.model:
            raise UsageError("give MODEL (owner/name) or a cog-safe-push.yaml")
        config = parse_config(
            yaml.safe_dump({"model": ns.model, "predict": {"fuzz": {}}}), "<command line>",
            plugins.checkers(),
        )
    config = apply_overrides(config, ns, plugins.checkers(), folder)
    spare_inputs(ns, folder, {"cog.yaml", "requirements.txt", *(
        p.name for p in folder.glob("*.py")), *(
        [config_path.resolve().relative_to(folder.resolve()).as_posix()]
        if config_path.is_file() and folder.resolve() in config_path.resolve().parents
        else [])})
    if config.effective_test_model == config.model:
        raise ConfigError(None, "test_model must differ from model")
    from cogfleet._settings import load_settings
    from cogfleet.runtime import cli_pin, installed_pin

    if ns.cog_version:
        pin = cli_pin(ns.cog_version)
    else:
        pin = load_settings(folder).cog_pin or installed_pin()
    from cogfleet._config_inputs import (
        ConfigText,
        Unchecked,
        check_folder,
        check_with_sdk,
        deferred_check,
    )

    config_text = ConfigText(original, shown)
    pending: list[ModelCodeNeeded] = []
    warnings = check_folder(folder, config, pin.version, config_text, flags=override_flags(ns),
                            needs_code=pending)  # fmt: skip
    if pending:  # the SDK's document, in the environment the push then runs it in
        from cogfleet.runtime import RuntimeOptions

        options = RuntimeOptions(
            cog_version=pin.version, environment=ns.environment,
            python=_python_flag(ns.python), run_build_commands=ns.run_build_commands,
        )  # fmt: skip
        warnings += check_with_sdk(folder, pending[0], options, _sdk_store(settings, folder),
                                   config, config_text, root=folder,
                                   flags=override_flags(ns))  # fmt: skip
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")
    job = Job(name=config.model.split("/")[1], build_dir=folder, config=config, cog_pin=pin)
    if any(isinstance(w, Unchecked) for w in warnings):  # against the pushed version's schema
        job.check_inputs = deferred_check(config, config_text, root=folder,
                                          flags=override_flags(ns))  # fmt: skip
    return run_jobs([job], settings, plugins, _options(ns, no_push=ns.no_push), folder)


def _push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")
    p.add_argument("--no-push", action="store_true", help="test only; never touch the model")
    add_common_flags(p)


def _test_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")
    add_common_flags(p)


def _safe_push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL", help="owner/name")
    p.add_argument("--config", help="config file (default: ./cog-safe-push.yaml if present)")
    p.add_argument("--help-config", action="store_true", help="print an example config")
    p.add_argument("--no-push", action="store_true", help="test only; never touch the model")
    p.add_argument("--cog-version", metavar="X.Y.Z",
                   help="the Cog version to build and run with (default: [tool.cogfleet] "
                        "cog-version of ./pyproject.toml, else the installed Cog SDK)")
    add_common_flags(p)


def _build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")
    p.add_argument("--target", choices=["local", "replicate"],
                   default=os.environ.get("COGFLEET_TARGET") or "local",
                   help="local: the environment; replicate: the image (default: local, or "
                        "$COGFLEET_TARGET)")
    add_environment_flags(p, env=False)


COMMANDS = [
    Command("push", "safe push: test, then promote", cmd_push, _push_arguments,
            "Render, push to <model>-test, check, then promote."),
    Command("test", "safe push without promotion", cmd_test, _test_arguments,
            "Same as `push --no-push`."),
    Command("safe-push", "drop-in for cog-safe-push", cmd_safe_push, _safe_push_arguments,
            "Run cog-safe-push's pipeline in a single Cog folder."),
    Command("build", "build what a push would run (environment or image)", cmd_build,
            _build_arguments,
            "Render, then build each variant's isolated environment (local target; a later "
            "push only uploads) or, with --target replicate, its image with "
            "`cog build -t r8.im/<model>`."),
]
