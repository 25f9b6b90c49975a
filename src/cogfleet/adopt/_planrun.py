"""Adopting a repo whose select script says what it writes only when it runs.

``envsubst < BASE > cog.yaml`` with variables the script sets per variant, a ``case``
that copies each variant's files by name, a cog.yaml generated with ``sed`` or a
heredoc, or a Python script rendering ``jinja2`` templates: the script runs once per
config in a scratch copy (:mod:`cogfleet.adopt._scriptrun`), and what it wrote becomes
each variant's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from cogfleet._render import CONFIG_NAME, shell_variables
from cogfleet._repo import VARIANTS_FILE
from cogfleet.adopt._derive import read_back
from cogfleet.adopt._generated import adopt_generated
from cogfleet.adopt._plancommon import (
    CONFIGS_WANTED,
    Plan,
    check_names,
    config_file,
    finish,
    scalar,
    where,
)
from cogfleet.adopt._read import ASSIGNED_RE, BASE_NAMES, LayoutError, Select, per_variant_files
from cogfleet.adopt._rendered import adopt_renders, flow, split_common
from cogfleet.adopt._scriptrun import Render, run_per_variant


def plan_by_running(root: Path, select: Select, config: str | None) -> Plan:
    """A repo whose select script says what it writes only when it runs.

    ``envsubst < BASE > cog.yaml`` with variables the script sets per variant, or a
    ``case`` that copies each variant's files by name: the script runs once per config
    in a scratch copy (see :mod:`cogfleet.adopt._scriptrun`). Each variant gets the values
    handed to its ``envsubst``, or as its template the file its cog.yaml is a copy of (or,
    for a cog.yaml the script generated, the template it reads back as, with
    ``replace:``), and as ``files:`` the other files the script copied for it.
    """
    base = select.base if select.envsubst else None
    found = [f"select script {select.script} "
             + (f"(envsubst < {base})" if base else "(run once per config to see what it writes)")]
    if base is not None and not (root / base).is_file():
        raise LayoutError(f"cannot adopt this repo: {select.script} substitutes {base}, "
                          "which does not exist")
    if config is None:
        known = select.python.names if select.python else []
        raise LayoutError(
            f"cannot adopt this repo: found {', '.join(found)}; missing one cog-safe-push "
            f"config per variant ({CONFIGS_WANTED})"
            + (f"; the script knows {len(known)} models: {', '.join(known)}" if known else "")
        )
    names = sorted(per_variant_files(root, config))
    found.append(f"{len(names)} configs {where(config)}")
    check_names(names, config)
    wanted: list[str] = []
    script_text = (root / select.script).read_text(encoding="utf-8", errors="replace")
    if base is not None:
        referenced = shell_variables((root / base).read_text(encoding="utf-8", errors="replace"))
        # only what the script sets: a $HOME in a run: line stays as written
        wanted = sorted(referenced & set(ASSIGNED_RE.findall(script_text)))
    command = select.python.command(select.script) if select.python else None
    if select.make is not None:
        target, variable = select.make

        def command(name: str) -> list[str]:
            if variable is None:  # a target per model: cog-yaml-{variant}
                return ["make", "-s", "-f", select.script, target.replace("{variant}", name)]
            return ["make", "-s", "-f", select.script, target, f"{variable}={name}"]
    runs = run_per_variant(root, select.script, names, wanted, command)
    plan = Plan(kind="adopt", found=found)
    problems: list[str] = []
    settings: dict[str, list[str]] = {}
    templates: dict[str, str] = {}
    generated: dict[str, bytes] = {}
    rendered: dict[str, dict[str, Render]] = {}
    files: dict[str, dict[str, str]] = {}
    written: dict[str, dict[str, bytes]] = {}  # generated files other than cog.yaml
    for name in names:
        run = runs[name]
        if run.error is not None:
            problems.append(f"{select.script} {name} did not finish ({run.error})")
            continue
        if "cog.yaml" in run.unstable:
            raise LayoutError(f"cannot adopt this repo: {select.script} {name} writes a "
                              f"cog.yaml that {run.unstable['cog.yaml']}; write "
                              f"{VARIANTS_FILE} by hand")
        for rel, why in sorted(run.unstable.items()):
            plan.notes.append(f"{name}: {select.script} writes {rel}, which {why}; cogfleet "
                              "leaves it out")
            run.rendered.pop(rel, None)
            run.written.pop(rel, None)
        own = settings[name] = []
        if base is not None:
            if run.envsubst is None:
                problems.append(f"{select.script} {name} did not run envsubst "
                                f"(exit {run.exit_code})")
                continue
            pairs = ", ".join(f"{k}: {json.dumps(v)}" for k, v in sorted(run.envsubst.items()))
            own += [f"envsubst: {{{pairs}}}"] if pairs else []
        elif "cog.yaml" in run.copies:
            templates[name] = run.copies["cog.yaml"]
        elif "cog.yaml" not in run.rendered:  # a rendered one is read with the others, below
            if select.keeps_cog and run.exit_code == 0 and "cog.yaml" not in run.other:
                templates[name] = "cog.yaml"  # the repo's own, as the script leaves it
            elif run.generated is not None:
                generated[name] = run.generated  # read back below: a template, text replaced
            else:
                said = f": {run.error_line}" if run.error_line else ""
                what = "failed" if select.keeps_cog else "did not write cog.yaml"
                problems.append(f"{select.script} {name} {what} (exit {run.exit_code}{said})")
                continue
        files[name] = {d: s for d, s in sorted(run.copies.items())
                       if d not in ("cog.yaml", CONFIG_NAME)}
        rendered[name] = {d: r for d, r in run.rendered.items() if d != CONFIG_NAME}
        plan.expected[name] = {d: r.output.encode("utf-8") for d, r in rendered[name].items()}
        for dest in run.other:
            if dest in ("cog.yaml", CONFIG_NAME):
                continue
            if run.written.get(dest):
                written.setdefault(name, {})[dest] = run.written[dest]
                plan.expected[name][dest] = run.written[dest]
            else:
                plan.notes.append(f"{name}: {select.script} writes {dest}, which is empty or "
                                  "too large to adopt; cogfleet leaves it out")
    if problems:  # every config must be a variant's
        raise LayoutError(
            f"cannot adopt this repo: {problems[0]}; a config {where(config)} is a "
            "variant only if the script selects it (remove the config or teach the script)"
        )
    replaced = _read_back(root, select, plan, generated, script_text, templates)
    jinja_lines = _jinja_lines(root, select.script, plan, (rendered, written), templates, files,
                               settings)
    if base is not None:
        header_what = [f"# {base} with the values {select.script} sets for it substituted (as its",
                       "# envsubst did), and its publishing config is "
                       f"{config_file(config, '<variant>')}."]
        defaults = [f"  template: {scalar(base)}"]
    else:
        pattern = _common_pattern(templates)
        header_what = [f"# the file {select.script} copies to the root for it, and its publishing",
                       f"# config is {config_file(config, '<variant>')}."]
        if select.keeps_cog:
            header_what[0] = (f"# the repo's cog.yaml ({select.script} leaves it as it is); "
                              "its publishing")
        if any(replaced):
            header_what[0] = (f"# the file {select.script} writes it from, with the text it "
                              "replaces (replace:); its publishing")
        if any("cog.yaml" in r for r in rendered.values()):
            header_what[0] = (f"# the template {select.script} renders it from with jinja2 "
                              "(jinja:, variables:); its publishing")
        if any(set(r) - {"cog.yaml"} for r in rendered.values()):
            header_what.append(f"# The other files {select.script} renders with jinja2 are "
                               "its files: (jinja:, variables:).")
        if any(written.values()):
            header_what.append(f"# The other files {select.script} generates are templates "
                               "init wrote from what it wrote (files:, jinja:).")
        defaults = [f"  template: {scalar(pattern)}"] if pattern else []
        if not pattern:
            for name, template in templates.items():
                settings[name].insert(0, f"template: {json.dumps(template)}")
        defaults += _replace_lines(replaced, settings)
    defaults += jinja_lines
    header = ["# Written by `cogfleet init`: this repo's variants. Each variant's cog.yaml is",
              *header_what]
    return finish(root, plan, header, defaults, settings, config, {})


def _jinja_lines(
    root: Path, script: str, plan: Plan,
    outputs: tuple[dict[str, dict[str, Render]], dict[str, dict[str, bytes]]],
    templates: dict[str, str], files: dict[str, dict[str, str]], settings: dict[str, list[str]],
) -> list[str]:
    """The settings of the files the script rendered with jinja2 (and the files it
    copied): each variant's cog.yaml template into ``templates``, its ``files:`` and
    ``variables:`` into ``settings`` (what all variants share: the lines returned, for
    ``defaults``, with ``jinja:``)."""
    lines = []
    rendered, written = outputs
    adopted = adopt_renders(script, {n: r for n, r in rendered.items() if r})
    if isinstance(adopted, str):
        raise LayoutError(f"cannot adopt this repo: {adopted}; write {VARIANTS_FILE} by hand")
    for name, dests in adopted.templates.items():
        if "cog.yaml" in dests:
            templates[name] = dests.pop("cog.yaml")
        files[name] = {**files.get(name, {}), **dests}
    taken = {k for values in adopted.variables.values() for k in values} | set(plan.files)
    generated = adopt_generated(root, written, taken)
    if isinstance(generated, str):
        raise LayoutError(f"cannot adopt this repo: {script} {generated}; write "
                          f"{VARIANTS_FILE} by hand")
    plan.files.update(generated.files)
    for name, dests in generated.sources.items():
        files[name] = {**files.get(name, {}), **dests}
        adopted.variables[name] = {**adopted.variables.get(name, {}),
                                   **generated.variables.get(name, {})}
    adopted.jinja_files += generated.templates
    if generated.files:
        made = sorted({d for dests in generated.sources.values() for d in dests})
        plan.found.append(f"files it generates: {', '.join(made)} (written as "
                          f"{', '.join(sorted(generated.files))})")
    # a plain copy per variant stays with its variant unless templates are shared anyway
    shared = adopted.jinja_files or generated.files
    common_files, own_files = split_common(files) if shared else ({}, files)
    common_values, own_values = split_common(adopted.variables)
    for name in settings:
        if own_files.get(name):
            settings[name].append(f"files: {flow(own_files[name])}")
        if own_values.get(name):
            settings[name].append(f"variables: {flow(own_values[name])}")
    if common_files:
        lines.append(f"  files: {flow(common_files)}")
    if common_values:
        lines.append(f"  variables: {flow(common_values)}")
    if adopted.jinja_files:
        lines.append("  jinja: " + flow({"templates": adopted.jinja_files, **adopted.options}))
        plan.found.append(f"templates it renders with jinja2: {', '.join(adopted.jinja_files)}")
    return lines


def _read_back(
    root: Path, select: Select, plan: Plan, generated: dict[str, bytes], script_text: str,
    templates: dict[str, str],
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """The cog.yaml files the script generated, as a template and text replaced in it
    (:mod:`cogfleet.adopt._derive`); ``templates`` receives each variant's template.
    Returns each variant's ``envsubst:`` and ``replace:`` values."""
    if not generated:
        return {}, {}
    new_name = next(n for n in (*BASE_NAMES, "cog.yaml.cogfleet") if not (root / n).exists())
    read = read_back(root, select.script, generated, set(ASSIGNED_RE.findall(script_text)),
                     new_name)
    if isinstance(read, str):
        raise LayoutError(f"cannot adopt this repo: {read}; write {VARIANTS_FILE} by hand "
                          "(a template and its replace: or envsubst: values)")
    templates.update(read.templates)
    if read.new_template is not None:
        plan.files[new_name] = read.new_template
        plan.found.append(f"its heredoc, written to {new_name} as the template")
    keys = sorted({k for mapping in read.replace.values() for k in mapping}
                  | {f"${k}" for mapping in read.envsubst.values() for k in mapping})
    plan.found.append(f"text it replaces: {', '.join(keys) or 'none'}")
    return read.envsubst, read.replace


def _replace_lines(
    read: tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]],
    settings: dict[str, list[str]],
) -> list[str]:
    """Each variant's ``envsubst:`` and ``replace:`` values (``read``: both, per variant);
    one every variant sets to its own name goes in ``defaults`` as ``{variant}`` (the
    lines returned)."""
    lines = []
    for key, values in zip(("envsubst", "replace"), read, strict=True):
        common = [k for k in sorted({k for m in values.values() for k in m}) if all(
            m.get(k) == name for name, m in values.items())]
        for name, mapping in values.items():
            own = {k: v for k, v in sorted(mapping.items()) if k not in common}
            if own:
                settings[name].append(f"{key}: {{" + ", ".join(
                    f"{json.dumps(k)}: {json.dumps(v)}" for k, v in own.items()) + "}")
        if common:
            lines.append(f"  {key}: {{" + ", ".join(
                f'{json.dumps(k)}: "{{variant}}"' for k in common) + "}")
    return lines


def _common_pattern(templates: dict[str, str]) -> str | None:
    """``configs/{variant}/cog.yaml`` when every variant's template is named that way
    (or the one file when it is every variant's)."""
    if not templates:
        return None
    if len(set(templates.values())) == 1:
        return next(iter(templates.values()))
    name, first = next(iter(templates.items()))
    if first.count(name) != 1:
        return None
    pattern = first.replace(name, "{variant}")
    ok = all(pattern.replace("{variant}", n) == t for n, t in templates.items())
    return pattern if ok else None

