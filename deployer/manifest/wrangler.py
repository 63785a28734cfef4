"""``deployer init --from-wrangler``: wrangler configs (``wrangler.toml``, ``wrangler.json``,
``wrangler.jsonc``) in, one ``workers.yaml`` text out, with a warning naming the file and line
of everything that could not be carried over (nothing is dropped silently).

Pure: config texts in (and a reader for the entry files, to tell the script format and find the
modules they import), text out. Bindings and settings are ``wrangler_bindings``'s; reading a
config and the lines of its keys ``wrangler_lines``'s.
"""
from __future__ import annotations

import datetime
import posixpath
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from deployer.errors import DeployerError
from deployer.manifest.entry_exports import has_default_export, imported_modules
from deployer.manifest.validate import json_path
from deployer.manifest.wrangler_bindings import (
    BINDING_KEYS,
    SETTING_KEYS,
    Context,
    Path,
    Placeholder,
    convert_bindings,
    convert_settings,
)
from deployer.manifest.wrangler_lines import line_of, read_config

ReadSource = Callable[[str], "str | None"]
"""``read_source(path)``: the text of a file (a path relative to the manifest), or None."""

# Keys an [env.NAME] table inherits from the top level when it does not set them; every other
# key (vars, every binding) it must repeat (wrangler's config documentation, "inheritable").
INHERITABLE = frozenset({
    "name", "account_id", "compatibility_date", "compatibility_flags", "main", "find_additional_modules",
    "preserve_file_names", "base_dir", "workers_dev", "preview_urls", "routes", "route", "tsconfig", "jsx_factory",
    "jsx_fragment", "migrations", "exports", "triggers", "limits", "rules", "build", "no_bundle", "minify",
    "keep_names", "first_party_worker", "logfwdr", "logpush", "upload_source_maps", "placement", "assets",
    "observability", "access", "cache", "compliance_region", "python_modules", "previews", "usage_model",
    "node_compat",
})
_BUNDLING = "a bundling option of wrangler; deployer uploads files as they are (bundle them in a build command)"
_MODULE_RULES = "wrangler's module rules are not carried over; the modules the entry imports are listed under modules"
_NOT_CARRIED = {
    "assets": "static assets are not uploaded by deployer",
    "site": "Workers Sites are not uploaded by deployer",
    "unsafe": "unsafe bindings and metadata are not carried over",
    **{key: "use format: modules and list the file under modules" for key in ("wasm_modules", "text_blobs",
                                                                              "data_blobs")},
    **{key: _BUNDLING for key in ("tsconfig", "jsx_factory", "jsx_fragment", "minify", "keep_names", "define",
                                  "alias", "node_compat", "upload_source_maps")},
    **{key: _MODULE_RULES for key in ("rules", "find_additional_modules", "base_dir", "preserve_file_names")},
    "usage_model": "Cloudflare no longer uses it",
    "preview_urls": "preview URLs are not managed by deployer", "previews": "previews are not managed by deployer",
    "dev": "used by wrangler dev only", "send_metrics": "a setting of wrangler itself",
    "keep_vars": "deployer uploads exactly the manifest's bindings",
    "legacy_env": "service environments are not supported; [env.X] becomes environments.X with name_suffix -X",
}
_NOT_SUPPORTED_BINDINGS = ("workflows", "containers", "cloudchamber", "images", "media", "stream", "pipelines",
                           "ai_search_namespaces", "ai_search", "agent_memory", "websearch", "artifacts", "flagship",
                           "ratelimits", "worker_loaders", "vpc_services", "vpc_networks", "logfwdr", "connect",
                           "unsafe_hello_world", "streaming_tail_consumers")
_CODE_KEYS = frozenset({"main", "build", "no_bundle", "compatibility_date", "compatibility_flags"})
_SKIPPED = frozenset({"name", "account_id", "env", "$schema"})  # handled elsewhere, or editor metadata
_TYPESCRIPT = (".ts", ".tsx", ".mts", ".cts")
_RUNTIME_MODULES = ("cloudflare:", "node:", "__STATIC_CONTENT_MANIFEST")
ORDER = ("path", "format", "modules", "build", "compatibility_date", "compatibility_flags", "bindings",
         "durable_objects", "queue_consumers", "routes", "custom_domains", "crons", "workers_dev", "placement",
         "limits", "observability", "logpush", "tail_consumers")


@dataclass(frozen=True, slots=True)
class WranglerConfig:
    """One config file: ``file`` as messages name it, ``directory`` the file's directory
    relative to the manifest's (posix, "" when the same)."""

    file: str
    text: str
    directory: str = ""


@dataclass(frozen=True, slots=True)
class Conversion:
    text: str  # the workers.yaml
    warnings: tuple[str, ...]  # "wrangler.toml:12: assets: ...", in file and line order


def convert_wrangler(configs: Sequence[WranglerConfig], read_source: ReadSource) -> Conversion:
    """Convert ``configs`` (one Worker each) into one manifest.

    Raises DeployerError for a config that cannot be read, has no ``name`` or ``main``, or
    names a Worker another config names too.
    """
    workers = [_Worker(config, read_source) for config in configs]
    names: dict[str, str] = {}
    for worker in workers:
        first = names.setdefault(worker.name, worker.config.file)
        if first != worker.config.file:
            raise DeployerError(f"{worker.config.file}: Worker {worker.name!r} is also named in {first}; "
                                "each script of a manifest needs its own name")
    scripts = frozenset(names)
    accounts = [w.data["account_id"] for w in workers if isinstance(w.data.get("account_id"), str)]
    account = accounts[0] if accounts else Placeholder("${CLOUDFLARE_ACCOUNT_ID}")
    for worker in workers:
        found = worker.data.get("account_id")
        if isinstance(found, str) and found != account:
            worker.warn(("account_id",), f"account_id {found} differs from {account} (in {workers[0].config.file}); "
                                         "a manifest deploys to one account")
    document: dict[str, Any] = {"version": 1, "account_id": _escaped(account),
                                "scripts": {w.name: _styled(w.convert(scripts)) for w in workers}}
    environments: dict[str, Any] = {}
    for worker in workers:
        for env_name, changes in worker.environments(scripts).items():
            environment = environments.setdefault(env_name, {"name_suffix": f"-{env_name}"})
            own_account = changes.pop("account_id", account)
            if own_account != environment.setdefault("account_id", own_account):
                worker.warn(("env", env_name, "account_id"), "differs from another Worker's account in this "
                                                             "environment; a manifest environment has one account")
            if changes:
                environment.setdefault("scripts", {})[worker.name] = _styled(changes)
    for worker in workers:
        own = worker.data.get("env")
        absent = [name for name in environments if not isinstance(own, dict) or name not in own]
        if absent:
            worker.warn(("name",), f"no [env.{absent[0]}] here, yet the environment(s) {', '.join(absent)} of "
                                   f"other configs deploy this Worker too (as {worker.name}-{absent[0]}, ...) "
                                   "with the top-level settings")
    for environment in environments.values():
        if environment["account_id"] == account:
            del environment["account_id"]
    if environments:
        document["environments"] = environments
    warnings = sorted({w for worker in workers for w in worker.warnings})
    header = (f"# yaml-language-server: $schema=workers.schema.json\n"
              f"# Converted from {', '.join(w.config.file for w in workers)} by 'deployer init --from-wrangler'.\n")
    return Conversion(header + _dump(document), tuple(text for _, _, text in warnings))


class _Worker:
    """One wrangler config being converted; ``warnings`` are ``(file, line, text)``."""

    def __init__(self, config: WranglerConfig, read_source: ReadSource) -> None:
        self.config = config
        self.read_source = read_source
        self.data, self.lines = read_config(config.file, config.text)
        self.warnings: set[tuple[str, int, str]] = set()
        self.base: dict[str, Any] = {}  # the converted top level, once convert() ran
        name, main = self.data.get("name"), self.data.get("main")
        if not isinstance(name, str) or not name:
            raise DeployerError(f"{config.file}: no 'name': add the Worker's name (wrangler deploys it by name)")
        if not isinstance(main, str) or not main:
            raise DeployerError(f"{config.file}: no 'main' (the Worker's entry file); a Worker without code "
                                "(static assets only) cannot be converted")
        self.name = name

    def warn(self, path: Path, message: str) -> None:
        line = line_of(self.lines, path)
        where = f"{self.config.file}:{line}" if line else self.config.file
        self.warnings.add((self.config.file, line, f"{where}: {json_path(path)}: {message}"))

    def convert(self, scripts: frozenset[str]) -> dict[str, Any]:
        self.base = self._script(self.data, Context(lambda key: (key,), self.warn, scripts, None))
        return self.base

    def environments(self, scripts: frozenset[str]) -> dict[str, dict[str, Any]]:
        """Per ``[env.NAME]``: what differs from the base script (and ``account_id``)."""
        found: dict[str, dict[str, Any]] = {}
        envs = self.data.get("env")
        if envs is not None and not isinstance(envs, dict):
            self.warn(("env",), "env must be a table of environments; skipped")
        for env_name, body in (envs if isinstance(envs, dict) else {}).items():
            if not isinstance(body, dict):
                self.warn(("env", env_name), "an environment must be a table; skipped")
                continue
            effective = {k: v for k, v in self.data.items() if k in INHERITABLE}
            effective.update(body)

            def origin(key: str, body: Mapping[str, Any] = body, env_name: str = env_name) -> Path:
                return ("env", env_name, key) if key in body else (key,)

            converted = self._script(effective, Context(origin, self.warn, scripts, env_name))
            changes = self._difference(converted, env_name)
            own_name = body.get("name")
            if own_name is not None and own_name != f"{self.name}-{env_name}":
                self.warn(("env", env_name, "name"), f"{own_name!r} is not carried over: this environment's script "
                                                     f"is {self.name}-{env_name} (name_suffix -{env_name})")
            if isinstance(body.get("account_id"), str):
                changes["account_id"] = body["account_id"]
            found[env_name] = changes
        return found

    def _difference(self, converted: dict[str, Any], env_name: str) -> dict[str, Any]:
        """Only what ``converted`` changes in the base script, as an environment overlay."""
        base, out = self.base, {}
        base_bindings = {b["name"]: b for b in base.get("bindings", [])}
        env_bindings = converted.get("bindings", [])
        changed = [b for b in env_bindings if base_bindings.get(b["name"]) != b]
        if changed:
            out["bindings"] = changed
        missing = [name for name in base_bindings if name not in {b["name"] for b in env_bindings}]
        if missing:
            self.warn(("env", env_name), f"binding(s) {', '.join(missing)} of the top level are not repeated here, so "
                                         "wrangler gives this environment none of them, but a deployer environment "
                                         "keeps the base's bindings; check that they belong there")
        for key in ORDER:
            if key == "bindings" or converted.get(key) == base.get(key):
                continue
            if key in converted:
                value, before = converted[key], base.get(key)
                if isinstance(value, dict) and isinstance(before, dict) and set(before) - set(value):
                    kept = ", ".join(sorted(set(before) - set(value)))
                    self.warn(("env", env_name, key), f"{key} keys {kept} of the top level stay in this environment "
                                                      "(a deployer environment merges mappings key by key)")
                out[key] = value
            elif isinstance(base[key], list):
                out[key] = []  # not inherited by wrangler: the environment has none
            else:
                self.warn(("env", env_name), f"{key} of the top level stays in this environment")
        return out

    # --- one script ---------------------------------------------------------------------

    def _script(self, body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        script = self._code(body, ctx)
        if "compatibility_date" in body:
            script["compatibility_date"] = _text(body["compatibility_date"])
        if isinstance(body.get("compatibility_flags"), list):
            script["compatibility_flags"] = list(body["compatibility_flags"])
        elif "compatibility_flags" in body:
            ctx.warn(ctx.at("compatibility_flags"), "must be a list of flags; skipped")
        bindings = convert_bindings(body, ctx)
        if bindings:
            script["bindings"] = bindings
        script.update(convert_settings(body, ctx))
        for key in body:
            if key in _SKIPPED or key in _CODE_KEYS or key in BINDING_KEYS or key in SETTING_KEYS:
                continue
            if key == "legacy_env" and body[key] is not False:
                continue  # true is wrangler's default and what name_suffix does
            if key in _NOT_SUPPORTED_BINDINGS:
                ctx.warn(ctx.at(key), "not carried over: deployer does not support these bindings")
            elif key in _NOT_CARRIED:
                ctx.warn(ctx.at(key), f"not carried over: {_NOT_CARRIED[key]}")
            else:
                ctx.warn(ctx.at(key), "not a wrangler setting deployer knows; not carried over")
        return script

    def _code(self, body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        """path, format, modules and build: the entry wrangler would upload, and how it is made."""
        main = _join(self.config.directory, str(body["main"]))
        custom = self._custom_build(body, ctx)
        source = self.read_source(main)
        is_modules = True if source is None else has_default_export(source)
        if source is None:
            ctx.warn(ctx.at("main"), f"cannot read {main}{' (made by the build command?)' if custom else ''}: "
                                     "format: modules assumed; check it")
        packages = [m for m in imported_modules(source or "")
                    if not m.startswith(("./", "../", "/", *_RUNTIME_MODULES))]
        reason = "is TypeScript" if main.endswith(_TYPESCRIPT) else (
            f"imports package(s) {', '.join(packages)}" if packages and body.get("no_bundle") is not True else None)
        out: dict[str, Any] = {}
        command = custom
        if reason is not None:
            path = _join(self.config.directory, f"dist/{PurePosixPath(main).stem}.js")
            esbuild = (f"npx esbuild {shlex.quote(main)} --bundle --format={'esm' if is_modules else 'iife'} "
                       f"--outfile={shlex.quote(path)}")
            if custom is not None and custom.startswith("cd "):
                custom = f"({custom})"  # esbuild's paths are relative to the manifest
            command = esbuild if custom is None else f"{custom} && {esbuild}"
            ctx.warn(ctx.at("main"), f"{main} {reason}, which wrangler bundles with esbuild: converted to a build "
                                     f"command that does the same ({esbuild}) and path {path}; check it")
            modules: list[str] = []
        else:
            path = main
            modules = self._modules(main, source, ctx) if is_modules and source is not None else []
        out["path"] = path
        if is_modules:
            out["format"] = "modules"
        if modules:
            out["modules"] = modules
        if command is not None:
            out["build"] = {"command": Placeholder(command)}  # the shell fills its $VARs, not deployer
        return out

    def _custom_build(self, body: Mapping[str, Any], ctx: Context) -> str | None:
        build = body.get("build")
        if build is None:
            return None
        if not isinstance(build, dict):
            ctx.warn(ctx.at("build"), "build must be a table; skipped")
            return None
        for key in build:
            if key == "watch_dir":
                ctx.warn(ctx.at("build", key), "not carried over: wrangler dev rebuilds when these change; "
                                               "deployer builds once per plan or apply")
            elif key not in ("command", "cwd"):
                ctx.warn(ctx.at("build", key), "not carried over")
        command = build.get("command")
        if not isinstance(command, str) or not command.strip():
            return None
        directory = _join(self.config.directory, str(build.get("cwd") or "."))
        return command if directory == "." else f"cd {shlex.quote(directory)} && {command}"

    def _modules(self, main: str, source: str, ctx: Context) -> list[str]:
        """The files the entry imports by relative path, and theirs, which must be in the
        entry's directory (a module's part name is its path relative to it)."""
        entry_dir = posixpath.dirname(main)
        found: list[str] = []
        pending, seen = [(main, source)], {main}
        while pending:
            current, text = pending.pop(0)
            for specifier in imported_modules(text):
                if not specifier.startswith(("./", "../")):
                    continue
                target = _join(posixpath.dirname(current), specifier)
                if target in seen:
                    continue
                seen.add(target)
                if posixpath.relpath(target, entry_dir or ".").startswith(".."):
                    ctx.warn(ctx.at("main"), f"{current} imports {specifier!r}, outside {entry_dir or '.'}/ (the "
                                             "entry's directory, where every module must be): not carried over")
                    continue
                imported = self.read_source(target)
                if imported is None:
                    ctx.warn(ctx.at("main"), f"{current} imports {specifier!r}, but {target} cannot be read (wrangler "
                                             "resolves and bundles it): list the file under modules yourself")
                    continue
                found.append(target)
                if target.endswith((".js", ".mjs")):
                    pending.append((target, imported))
        return found


def _join(directory: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(directory, path))


def _text(value: object) -> str:
    """A TOML date (``compatibility_date = 2024-09-23`` unquoted) as the string wrangler reads."""
    return value.isoformat() if isinstance(value, (datetime.date, datetime.time)) else str(value)


# --- writing the manifest ----------------------------------------------------------------------


class _Flow(dict[str, Any]):
    """A mapping written on one line: ``{type: kv_namespace, name: CACHE, ...}``."""


class _FlowList(list[Any]):
    """A list written on one line: ``[nodejs_compat]``."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(Placeholder, yaml.representer.SafeRepresenter.represent_str)
_FLOW_ITEMS = frozenset({"bindings", "routes", "custom_domains", "tail_consumers", "queue_consumers"})
_FLOW_VALUES = frozenset({"build", "placement", "limits", "observability", "compatibility_flags", "crons"})


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6)


def _styled(script: Mapping[str, Any]) -> dict[str, Any]:
    """One script for writing: one-line forms for bindings, routes and small settings."""
    out: dict[str, Any] = {}
    for key, value in _escaped(script).items():
        if key in _FLOW_ITEMS:
            value = [_Flow(item) for item in value]
        elif key == "durable_objects":
            value = {"migrations": [_Flow(step) for step in value["migrations"]]}
        elif key in _FLOW_VALUES:
            value = _Flow(value) if isinstance(value, dict) else _FlowList(value)
        out[key] = value
    return out


def _escaped(value: Any) -> Any:
    """Every string from wrangler with ``${`` escaped (the manifest would fill it in), except
    the placeholders the converter means."""
    if isinstance(value, Placeholder):
        return value
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value
