"""Read ``workers.yaml`` into a ``Manifest``: YAML with positions, variables, paths, script hashes.

``load_manifest`` reports every problem at once as a ``ManifestError``: YAML it cannot read,
duplicate keys, unset variables, schema and semantic errors (``validate``), script paths that
leave the manifest's directory or do not exist. ``--env`` overlays are merged on the YAML
nodes (``environments``), so every problem keeps the line and column where it was written.
"""
from __future__ import annotations

import contextlib
import enum
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from deployer.manifest import environments, rules, validate
from deployer.manifest.build import BuildStep, build_steps
from deployer.manifest.entry_exports import has_default_export
from deployer.manifest.yaml_nodes import TAG, Parser, locate, mark, plain_value, read_text
from deployer.manifest.script_files import (  # noqa: F401  (sha256_file: re-exported for tests)
    MAX_FILE_BYTES,
    script_digest,
    script_file,
    sha256_and_size,
    sha256_file,
)
from deployer.manifest.asset_files import hash_assets, scan_assets
from deployer.manifest.environments import Overlay
from deployer.manifest.nodes import MappingNode, Node, ScalarNode, SequenceNode
from deployer.errors import DeployerError, Diagnostic, ManifestError
from deployer.kinds import assets as assets_kind, migrations
from deployer.kinds.registry import ATTACHMENT_KINDS, RESOURCE_KINDS, SETTING_KINDS, binding_kind
from deployer.kinds.settings import frozen
from deployer.models import Assets, Attachment, Binding, Build, Manifest, Module, Resource, Script, ScriptFormat
from deployer.apply.upload import content_digest, entry_part, module_type
from deployer.manifest.validate import (
    AttachmentDraft,
    BindingDraft,
    Field,
    JsonPath,
    ManifestDraft,
    ModuleDraft,
    ResourceDraft,
    ScriptDraft,
    ValueDraft,
    Tree,
)

Builder = Callable[[Sequence[BuildStep]], None]
Warn = Callable[[str], None]


def load_manifest(
    path: Path,
    environ: Mapping[str, str],
    *,
    environment: str | None = None,
    build: Builder | None = None,
    warn: Warn | None = None,
) -> Manifest:
    """Read, check and build the manifest at ``path`` for ``environment`` (None: the base),
    filling ``${VAR}`` from ``environ``.

    With ``build``, the scripts' build commands are handed to it once the manifest is found
    valid and before any script file is read (``plan``, ``apply``); without it a file a build
    command makes must exist already. ``warn`` receives what is suspicious but not wrong (an
    entry whose exports do not match its format), one ``file:line:col: path: text`` each.

    Raises ``ManifestError`` with every problem found, sorted by position, or a plain
    ``DeployerError`` when the file cannot be read at all, a build fails or ``environment`` is
    not one the manifest declares under ``environments:`` (without that map it only names a
    state file).
    """
    with _without_cycle_collection():
        return _load(path, environ, environment, build, warn)


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while the manifest's nodes and values are built.

    A load allocates tens of objects per script and frees none, which makes the collector walk
    the growing heap again and again: 30% of the time at 1,000 scripts and more per script at
    5,000 (benchmarks/README.md, growth). Nothing built here forms a cycle; reference counting
    still frees everything, and cycles made elsewhere meanwhile wait for the next collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(path: Path, environ: Mapping[str, str], environment: str | None, build: Builder | None,
          warn: Warn | None) -> Manifest:
    document = _Document(path, environ, stage=_Stage.RUN if build else _Stage.SKIP, builder=build)
    checked = document.check(environment, last=True)
    document.raise_problems()
    document.show_warnings(warn)
    draft, files = checked
    suffix = _value(draft.name_suffix) or ""
    resources = tuple(Resource(r.type, _text(r.key), r.full_name(suffix) or "") for r in draft.resources)
    # A queue consumer may name a queue of the manifest by its key: what it is called in Cloudflare.
    names = {(RESOURCE_KINDS[r.type].section, r.key): r.name for r in resources}
    return Manifest(
        path=path,
        account_id=_value(draft.account_id),
        zone_id=_value(draft.zone_id),
        resources=resources,
        scripts=tuple(_script(s, files[s.name.raw], suffix, lambda section, key: names.get((section, key)))
                      for s in draft.scripts),
        environment=environment,
        project=_value(draft.project),
        environments=document.names or (),
    )


def manifest_project(path: Path, environ: Mapping[str, str]) -> str | None:
    """The manifest's ``project:`` key, variables filled in, without checking the rest (the
    ``deployer state`` commands name a PostgreSQL state after it). None when the manifest does
    not exist or sets no project; a ManifestError when the key cannot be read."""
    if not path.exists():
        return None
    parser = Parser(str(path), environ)
    root, _ = parser.parse(read_text(path, str(path)))
    entry = _entries(root).get("project") if root is not None else None
    if entry is None or not isinstance(entry[1], ScalarNode):
        if parser.diagnostics:
            raise ManifestError(parser.diagnostics)
        return None
    parser.fill(entry[1], lambda _: ("project",))
    if parser.diagnostics:
        raise ManifestError(parser.diagnostics)
    value = parser.filled.get(id(entry[1]), entry[1].value)
    if value is None or not rules.PROJECT.accepts(value):
        line, col = mark(entry[1])
        raise ManifestError([Diagnostic(str(path), line, col, "project",
                                        f"{entry[1].value!r} is not {rules.PROJECT.words}")])
    return value


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What ``check_manifest`` looked at: counts of the base manifest and the environments."""

    scripts: int
    resources: Mapping[str, int]  # owned resources by kind
    environments: tuple[str, ...]
    zone_mode: bool


def check_manifest(
    path: Path, environ: Mapping[str, str], *, environment: str | None = None, allow_unset: bool = False,
    warn: Warn | None = None,
) -> ManifestSummary:
    """Check the manifest without building it: the base and every environment, or only
    ``environment`` when given. With ``allow_unset``, an unset ``${VAR}`` is not a problem (the
    values that depend on it are not checked). Build commands are not run: a file one of them
    makes may be missing (``warn`` says so). Raises like ``load_manifest``."""
    document = _Document(path, environ, allow_unset=allow_unset, stage=_Stage.CHECK)
    names = document.names or ()
    targets = [environment] if environment is not None else [None, *names]
    drafts = [document.check(target, last=index == len(targets) - 1)[0] for index, target in enumerate(targets)]
    document.warnings.update(validate.claimed_twice(list(zip(targets, drafts)), document.file))
    document.raise_problems()
    document.show_warnings(warn)
    base = drafts[0]
    checked = names if environment is None else ((environment,) if environment in names else ())
    zone_mode = any(d.zone_id is not None and d.account_id is None for d in drafts)
    resources = {kind: sum(r.type == kind for r in base.resources) for kind in RESOURCE_KINDS}
    return ManifestSummary(len(base.scripts), resources, tuple(checked), zone_mode)


class _Stage(enum.Enum):
    """What has become of the scripts' build commands when their files are looked for."""

    CHECK = "validate: not run; a file they make may be missing"
    SKIP = "not run: the files must exist"
    RUN = "run before the files are read"


_UNBUILT = {
    _Stage.SKIP: "; it is made by the script's build command, which only plan and apply run (not with --no-build)",
    _Stage.RUN: "; the script's build command ran but did not make it",
}
_EXPORT_CHECK_LIMIT = 10 * 1024 * 1024  # a larger entry's text is not kept just for a warning


def _is_build_command(path: JsonPath) -> bool:
    # Passed to the shell as written: its $VARs are the shell's, never filled in (or shown) by us.
    return len(path) == 4 and path[0] == "scripts" and path[2:] == ("build", "command")


class _Document:
    """One manifest file, read once and checked for one or more environments; every problem
    found along the way is collected in ``diagnostics`` (duplicates dropped at the end), every
    warning in ``warnings``."""

    def __init__(self, path: Path, environ: Mapping[str, str], *, allow_unset: bool = False,
                 stage: _Stage = _Stage.SKIP, builder: Builder | None = None) -> None:
        self.file = str(path)
        self.base = path.parent.resolve()
        self.stage, self.builder = stage, builder
        self.warnings: set[Diagnostic] = set()
        self.parser = Parser(self.file, environ, allow_unset=allow_unset, verbatim=_is_build_command)
        root, data = self.parser.parse(read_text(path, self.file))
        self.diagnostics = self.parser.diagnostics
        if root is None:
            raise ManifestError(self.diagnostics)
        if not isinstance(root, MappingNode):  # the schema says what it should be
            self.diagnostics += validate.check_schema(data, lambda at, key: locate(root, at, key), self.file)
            raise ManifestError(self.diagnostics)
        self.root: MappingNode | None = root  # None after the last check()
        self.names = environments.environment_names(root)
        self._overlays: list[Overlay] = []
        # Every environment shares the base's nodes for the scripts it leaves alone: each such
        # script is schema-checked, drafted and hashed once, not once per environment, so 500
        # scripts x 500 environments stay near-linear (their diagnostics would be the same).
        self._schema_checked: set[tuple[str, int]] = set()
        self._drafts: dict[tuple[int, int, str], ScriptDraft] = {}
        self._semantics_checked: validate.ScriptChecks = {}
        self._known_dirs: set[str] = set()  # directories under base that are not symlinks (script_file)
        self._files_done: dict[tuple[Field | None, str | None, tuple[ModuleDraft, ...], Field | None, int], _Files] = {}
        section = data.get(environments.ENVIRONMENTS)
        if section is not None:
            self.diagnostics += validate.check_schema(
                section, lambda at, key: locate(root, at, key), self.file,
                definition="environments", at=(environments.ENVIRONMENTS,),
            )

    def check(self, environment: str | None, *, last: bool = False) -> tuple[ManifestDraft, dict[str, _Files]]:
        """The draft of ``environment`` (None: the base) and its scripts' files. With ``last`` (no
        other environment will be checked) the YAML nodes and the data converted from them are
        let go as soon as they have served: together with the drafts they were the peak memory
        of a large manifest."""
        assert self.root is not None, "check() after the last check()"
        if environment is not None and self.names is not None and environment not in self.names:
            known = ", ".join(self.names) or "none"
            raise DeployerError(
                f"unknown environment {environment!r}: {self.file} declares {known} under 'environments:'"
            )
        overlay = environments.overlay(self.root, environment)
        # The parser caches by id(node): keep every overlay's new nodes alive so that no id
        # is reused by the next environment's.
        self._overlays.append(overlay)
        self.parser.fill(overlay.root, overlay.source_path)
        data = self.parser.convert_again(overlay.root)
        self.diagnostics += validate.check_schema(
            self._not_yet_checked(data), lambda at, key: locate(overlay.root, at, key), self.file,
            source=overlay.source_path,
        )
        del data
        if last:
            self.parser.forget_conversions()
        draft = _draft(overlay, self.parser.filled, self._drafts)
        if last:  # the drafts hold no node: the tree goes (ids may then be reused, so nothing keyed by them stays)
            del overlay
            self.root = None
            self._overlays.clear()
            self._drafts.clear()
            self.parser.filled.clear()
        self.diagnostics += validate.check_semantics(draft, self.file, self._semantics_checked)
        self._build(draft)
        files = {s.name.raw: self._files(s) for s in draft.scripts}
        return draft, files

    def _not_yet_checked(self, data: Any) -> Any:
        """``data`` without the scripts whose very value (shared with an environment checked
        before) the schema has seen under the same name; one is kept so ``scripts`` stays as
        the schema expects it."""
        scripts = data.get("scripts") if isinstance(data, dict) else None
        if not isinstance(scripts, dict) or not scripts:
            return data
        fresh = {}
        for name, value in scripts.items():
            key = (name, id(value))
            if key not in self._schema_checked:
                self._schema_checked.add(key)
                fresh[name] = value
        if len(fresh) == len(scripts):
            return data
        if not fresh:
            first = next(iter(scripts))
            fresh[first] = scripts[first]
        return {**data, "scripts": fresh}

    def _build(self, draft: ManifestDraft) -> None:
        """Hand the build commands to the builder, once the manifest is known to be valid."""
        commands = [(s.name, s.build.raw) for s in draft.scripts if s.build is not None and s.build.value is not None]
        if self.builder is None or not commands:
            return
        self.raise_problems()  # a manifest with problems builds nothing
        suffix = _value(draft.name_suffix) or ""
        self.builder(build_steps([(_text(name) + suffix, command) for name, command in commands], self.base))

    def _files(self, script: ScriptDraft) -> _Files:
        # The assets draft by identity: it is unhashable, and kept alive with the script's draft.
        key = (script.path, script.format, script.modules, script.build, id(script.assets))
        done = self._files_done.get(key)
        if done is None:
            done = self._files_done[key] = self._find_files(script)
        return done

    def _find_files(self, script: ScriptDraft) -> _Files:
        built = script.build is not None

        def resolve(field: Field | None) -> Path | None:
            on_missing = self._unbuilt if built and self.stage is _Stage.CHECK else None
            hint = _UNBUILT.get(self.stage, "") if built else ""
            return script_file(field, self.base, self.file, self.diagnostics, missing_hint=hint, on_missing=on_missing,
                               known_dirs=self._known_dirs)

        entry = resolve(script.path)
        hashed = (script_digest(script.path, entry, self.file, self.diagnostics, text_up_to=_EXPORT_CHECK_LIMIT)
                  if entry is not None else None)
        digest, size, text = hashed if hashed is not None else (None, 0, None)
        if text is not None and script.path is not None:
            self._check_exports(script, script.path, text)
        assets = self._assets(script.assets, built) if script.assets is not None else None
        if script.format != ScriptFormat.MODULES.value or entry is None or script.path is None:
            return _Files(entry, (), digest, size, assets)
        modules = _modules(script, script.path, entry, resolve, self.file, self.diagnostics)
        _check_upload_size(script.path, entry, modules, self.file, self.diagnostics)
        return _Files(entry, modules, digest, size, assets)

    def _assets(self, draft: ValueDraft, built: bool) -> Assets | None:
        """The script's assets, hashed (not when validating: their files are only listed and
        checked against Cloudflare's limits); None with a diagnostic when they cannot be used."""
        field = draft.fields.get(("directory",))
        if not isinstance(draft.value, dict) or field is None:
            return None  # the schema reports it
        on_missing = self._unbuilt if built and self.stage is _Stage.CHECK else None
        directory = script_file(field, self.base, self.file, self.diagnostics, directory=True, on_missing=on_missing,
                                known_dirs=self._known_dirs,
                                missing_hint=_UNBUILT.get(self.stage, "") if built else "")
        if directory is None:
            return None
        scan = scan_assets(directory, self.base, field.raw.rstrip("/"))

        def diagnostic(message: str) -> Diagnostic:
            return Diagnostic(self.file, field.line, field.col, field.path, message)

        self.diagnostics += [diagnostic(problem) for problem in scan.problems]
        self.warnings.update(diagnostic(warning) for warning in scan.warnings)
        if scan.problems or self.stage is _Stage.CHECK:
            return None
        try:
            files = hash_assets(scan, directory, self.base)
        except DeployerError as exc:
            self.diagnostics.append(diagnostic(str(exc)))
            return None
        return assets_kind.make_assets(directory, files, draft.value, scan.config_files)

    def _unbuilt(self, field: Field) -> None:
        self.warnings.add(Diagnostic(self.file, field.line, field.col, field.path,
                                     f"{field.raw!r} does not exist yet: the script's build command makes it, and "
                                     "plan and apply run that command first (validate does not)"))

    def _check_exports(self, script: ScriptDraft, field: Field, source: str) -> None:
        """Warn when the entry's exports do not fit its format (CONTRACT.md, issue 15 part 4)."""
        exports = has_default_export(source)
        if script.format == ScriptFormat.MODULES.value and not exports:
            message = (f"{field.raw!r} has no 'export default', but the script has 'format: modules': Cloudflare "
                       "calls a module Worker's default export (fine if it only exports Durable Object classes; a "
                       "service-worker script needs no format)")
        elif script.format != ScriptFormat.MODULES.value and exports:
            message = (f"{field.raw!r} exports a default handler, but the script has no 'format: modules', so it "
                       "is uploaded as a service worker and that handler is never called: add 'format: modules'")
        else:
            return
        self.warnings.add(Diagnostic(self.file, field.line, field.col, field.path, message))

    def raise_problems(self) -> None:
        if self.diagnostics:
            raise ManifestError(sorted(set(self.diagnostics)))

    def show_warnings(self, warn: Warn | None) -> None:
        for warning in sorted(self.warnings):
            if warn is not None:
                warn(str(warning))


@dataclass(frozen=True, slots=True)
class _Files:
    entry: Path | None
    modules: tuple[Module, ...]
    entry_sha256: str | None  # None: unreadable or not UTF-8 text (a diagnostic says so)
    entry_size: int = 0
    assets: Assets | None = None


# --- the draft the semantic checks read -----------------------------------------------------


def _entries(node: Node | None) -> dict[str, tuple[ScalarNode, Node]]:
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: (k, v) for k, v in node.value if isinstance(k, ScalarNode)}


class Render:
    """Paths of one overlay as messages show them (``scripts.api.bindings[0].name``), through
    ``source``: where a path of the merged manifest was written."""

    def __init__(self, source: Callable[[JsonPath], JsonPath]) -> None:
        self._source = source
        self._written: dict[JsonPath, str] = {}  # paths of the mappings and lists holding Fields

    def __call__(self, path: JsonPath) -> str:
        return validate.json_path(self._source(path))

    def place(self, path: JsonPath) -> tuple[str, str | int | None]:
        """A Field's ``at`` and ``key``: the text of the path holding it (one string shared by
        its neighbours: a large manifest has a path for every value) and its key, or its own
        path's text when it was written elsewhere (an environment's value)."""
        source = self._source(path)
        if not path or source != path:
            return validate.json_path(source), None
        holder = path[:-1]
        text = self._written.get(holder)
        if text is None:
            text = self._written[holder] = validate.json_path(holder)
        return text, path[-1]


def _field(node: Node, path: JsonPath, filled: Mapping[int, str | None], render: Render, *,
           key: bool = False) -> Field:
    """A Field for a key or value; its ``value`` is None unless it is a string (keys always are)."""
    line, col = mark(node)
    at, last = render.place(path)
    if not isinstance(node, ScalarNode):
        return Field(at, line, col, "", None, last)
    # A date-like scalar (2024-09-23) is a YAML timestamp; the manifest reads it as a string.
    usable = key or node.tag in (TAG + "str", TAG + "timestamp")
    value = filled.get(id(node), node.value) if usable else None
    return Field(at, line, col, node.value, value, last)


def _draft(overlay: Overlay, filled: Mapping[int, str | None],
           drafts: dict[tuple[int, int, str], ScriptDraft]) -> ManifestDraft:
    """The draft of one overlay; ``drafts`` keeps each script's draft by its nodes and where it
    is written, for the next environment that shares them."""
    root = overlay.root
    top = _entries(root)

    render = Render(overlay.source_path)

    def top_field(name: str) -> Field | None:
        entry = top.get(name)
        return _field(entry[1], (name,), filled, render) if entry else None

    resources: list[ResourceDraft] = []
    sections_at: dict[str, tuple[int, int]] = {}
    for kind in RESOURCE_KINDS.values():
        entry = top.get(kind.section)
        if entry is not None:
            sections_at[kind.section] = mark(entry[0])
        for key, (key_node, value) in _entries(entry[1] if entry else None).items():
            where = (kind.section, key)
            given = _entries(value).get(kind.name_key)
            name_field = _field(given[1], (*where, kind.name_key), filled, render) if given else None
            # A name written in the base gets the environment's name_suffix; one the environment
            # writes itself is used as it is.
            inherited = overlay.name_suffix is not None and (
                overlay.source_path((*where, kind.name_key))[:1] != (environments.ENVIRONMENTS,))
            resources.append(ResourceDraft(kind.type, _field(key_node, where, filled, render, key=True), name_field,
                                           inherited))

    scripts_entry = top.get("scripts")
    scripts = []
    for name, (key_node, value) in _entries(scripts_entry[1] if scripts_entry else None).items():
        path = ("scripts", name)
        cached = (id(key_node), id(value), render(path))
        draft = drafts.get(cached)
        if draft is None:
            draft = drafts[cached] = _script_draft(value, path, _field(key_node, path, filled, render, key=True),
                                                filled, render)
        scripts.append(draft)
    suffix = overlay.name_suffix
    scripts_given = scripts_entry is not None and isinstance(scripts_entry[1], MappingNode)
    return ManifestDraft(
        account_id=top_field("account_id"),
        zone_id=top_field("zone_id"),
        sections_at=sections_at,
        resources=tuple(resources),
        scripts_at=mark(scripts_entry[0]) if scripts_entry and scripts_given else None,
        scripts=tuple(scripts),
        name_suffix=_field(suffix, (environments.NAME_SUFFIX,), filled,
                           Render(lambda _: (environments.ENVIRONMENTS, overlay.environment or "",
                                             environments.NAME_SUFFIX))) if suffix else None,
        project=top_field("project"),
    )


def _script_draft(node: Node, path: JsonPath, name: Field, filled: Mapping[int, str | None],
                  render: Render) -> ScriptDraft:
    body = _entries(node)

    def field(key: str) -> Field | None:
        entry = body.get(key)
        return _field(entry[1], (*path, key), filled, render) if entry else None

    def items(key: str) -> list[tuple[int, Node]]:
        entry = body.get(key)
        return list(enumerate(entry[1].value)) if entry and isinstance(entry[1], SequenceNode) else []

    script_format = body.get("format")
    modules = body.get("modules")
    build = body.get("build")
    command = _entries(build[1]).get("command") if build else None
    return ScriptDraft(
        name,
        field("path"),
        tuple(_binding(item, (*path, "bindings", index), filled, render) for index, item in items("bindings")
              if isinstance(item, MappingNode)),
        format=script_format[1].value if script_format and isinstance(script_format[1], ScalarNode) else None,
        modules_key=_field(modules[0], (*path, "modules"), filled, render, key=True) if modules else None,
        modules=tuple(module for index, item in items("modules")
                      if (module := _module_draft(item, (*path, "modules", index), filled, render)) is not None),
        compatibility_date=field("compatibility_date"),
        compatibility_flags=tuple(_field(item, (*path, "compatibility_flags", index), filled, render)
                                  for index, item in items("compatibility_flags")),
        build=_field(command[1], (*path, "build", "command"), filled, render) if command else None,
        settings={key: _value_draft(*body[key], (*path, key), filled, render) for key in SETTING_KINDS if key in body},
        durable_objects=(_value_draft(*body[migrations.KEY], (*path, migrations.KEY), filled, render)
                         if migrations.KEY in body else None),
        attachments=tuple(
            AttachmentDraft(kind.type, _field(entry[0], (*path, kind.manifest_key), filled, render, key=True),
                            _tree(entry[1], (*path, kind.manifest_key), filled, render))
            for kind in ATTACHMENT_KINDS.values() if (entry := body.get(kind.manifest_key)) is not None),
        assets=_value_draft(*body[assets_kind.KEY], (*path, assets_kind.KEY), filled, render)
        if assets_kind.KEY in body else None,
    )


def _value_draft(key: ScalarNode, node: Node, path: JsonPath, filled: Mapping[int, str | None],
                 render: Render) -> ValueDraft:
    fields: dict[JsonPath, Field] = {}

    def walk(item: Node, below: JsonPath) -> None:
        if below:  # every string, and every mapping or list item for its position
            fields[below] = _field(item, (*path, *below), filled, render)
        if isinstance(item, MappingNode):
            for k, v in item.value:
                if isinstance(k, ScalarNode):
                    walk(v, (*below, k.value))
        elif isinstance(item, SequenceNode):
            for index, v in enumerate(item.value):
                walk(v, (*below, index))

    walk(node, ())
    return ValueDraft(_field(key, path, filled, render, key=True), plain_value(node, filled), fields)


def _tree(node: Node, path: JsonPath, filled: Mapping[int, str | None], render: Render) -> Tree:
    """A value with the position of every part of it (what attachment kinds check)."""
    at = _field(node, path, filled, render)
    if isinstance(node, SequenceNode):
        return Tree(at, plain_value(node, filled),
                    items=tuple(_tree(item, (*path, index), filled, render) for index, item in enumerate(node.value)))
    if isinstance(node, MappingNode):
        entries = {key: (_field(key_node, (*path, key), filled, render, key=True),
                         _tree(value, (*path, key), filled, render))
                   for key, (key_node, value) in _entries(node).items()}
        return Tree(at, plain_value(node, filled), entries=entries)
    return Tree(at, plain_value(node, filled))


def _module_draft(node: Node, path: JsonPath, filled: Mapping[int, str | None], render: Render) -> ModuleDraft | None:
    if isinstance(node, ScalarNode):
        return ModuleDraft(_field(node, path, filled, render))
    body = _entries(node)
    module_path, module_type = body.get("path"), body.get("type")
    if module_path is None:
        return None  # the schema reports it
    kind = module_type[1].value if module_type and isinstance(module_type[1], ScalarNode) else None
    return ModuleDraft(_field(module_path[1], (*path, "path"), filled, render), kind)


def _binding(node: MappingNode, path: JsonPath, filled: Mapping[int, str | None], render: Render) -> BindingDraft:
    body = _entries(node)
    fields = {key: _field(value, (*path, key), filled, render) for key, (_, value) in body.items()}
    type_field = fields.pop("type", None)
    return BindingDraft(
        render(path), *mark(node),
        type=type_field.value if type_field else None,
        name=fields.pop("name", None),
        fields=fields,
        values={key: plain_value(value, filled) for key, (_, value) in body.items()},
    )


# --- building the Manifest ------------------------------------------------------------------


def _value(field: Field | None) -> str | None:
    return field.value if field is not None else None


def _text(field: Field | None) -> str:
    assert field is not None and field.value is not None, "checked before building"
    return field.value


def _modules(
    script: ScriptDraft,
    entry_field: Field,
    entry: Path,
    resolve: Callable[[Field | None], Path | None],
    file: str,
    diagnostics: list[Diagnostic],
) -> tuple[Module, ...]:
    """Resolve a modules script's extra files; each part is named by its path relative to the
    entry file's directory, where it must be (that is how the entry imports it)."""
    if entry_field.value is None:
        return ()
    entry_dir = PurePosixPath(os.path.normpath(entry_field.value)).parent
    where = f"{entry_dir.as_posix()}/" if entry_dir != PurePosixPath(".") else "the manifest's directory"
    entry_name = entry_part(ScriptFormat.MODULES, entry)[0]
    names: dict[str, Field] = {entry_name: entry_field}
    if (problem := _part_name_problem(entry_name)) is not None:
        diagnostics.append(Diagnostic(file, entry_field.line, entry_field.col, entry_field.path,
                                      f"{entry_field.raw!r}: the entry module's part {problem}"))
    modules = []
    for module in script.modules:
        field = module.path
        resolved = resolve(field)
        if resolved is None or field is None or field.value is None:
            continue
        written = PurePosixPath(os.path.normpath(field.value))
        try:
            name = written.relative_to(entry_dir).as_posix()
        except ValueError:
            diagnostics.append(Diagnostic(file, field.line, field.col, field.path,
                                          f"{field.raw!r} is outside {where}, the directory of the entry module "
                                          f"{entry_field.raw!r}: module names are relative to it"))
            continue
        if (problem := _part_name_problem(name)) is not None:
            diagnostics.append(Diagnostic(file, field.line, field.col, field.path, f"{field.raw!r}: its part {problem}"))
            continue
        first = names.setdefault(name, field)
        if first is not field:
            diagnostics.append(Diagnostic(file, field.line, field.col, field.path,
                                          f"{field.raw!r} is the same module as line {first.line} ({name!r})"))
            continue
        modules.append(Module(name, resolved, module.type or module_type(name)))
    return tuple(modules)


def _part_name_problem(name: str) -> str | None:
    """Why Cloudflare would refuse ``name`` as the name of an upload part, or None."""
    if name == "metadata":
        return "would be named 'metadata', which is the upload's metadata part: rename the file"
    if any(char in name for char in '"\r\n'):
        return "name would hold a '\"', CR or LF, which a multipart part name cannot carry: rename the file"
    return None


def _check_upload_size(field: Field, entry: Path, modules: tuple[Module, ...], file: str,
                       diagnostics: list[Diagnostic]) -> None:
    """Refuse a script whose parts together exceed what one upload carries: apply would hold
    them all in memory only for Cloudflare to refuse them."""
    try:
        total = entry.stat().st_size + sum(module.path.stat().st_size for module in modules)
    except OSError:
        return  # a file that vanished is reported when it is hashed
    if total > MAX_FILE_BYTES:
        diagnostics.append(Diagnostic(
            file, field.line, field.col, field.path,
            f"script {field.raw!r} and its {len(modules)} module(s) are {total} bytes together; one upload "
            f"to Cloudflare carries at most 100 MB (and a Worker at most 10 MB after gzip)"))


def _script(draft: ScriptDraft, files: _Files, suffix: str, names: Callable[[str, str], str | None]) -> Script:
    assert (files.entry is None) == (draft.path is None), "checked before building"
    script_format = ScriptFormat(draft.format or ScriptFormat.SERVICE_WORKER.value)
    date = _value(draft.compatibility_date)
    flags = tuple(_text(flag) for flag in draft.compatibility_flags)
    parts = []
    if files.entry is not None:  # None: a script that only serves assets
        assert files.entry_sha256 is not None, "checked before building"
        parts.append((*entry_part(script_format, files.entry), files.entry_sha256))
    size = files.entry_size
    for module in files.modules:
        digest, module_size = sha256_and_size(module.path)
        parts.append((module.name, module.content_type, digest))
        size += module_size
    bindings = tuple(_build_binding(b) for b in draft.bindings)
    assets_value = draft.assets.value if draft.assets is not None and isinstance(draft.assets.value, dict) else {}
    assets_binding = assets_kind.binding_name(assets_value)
    if assets_binding is not None:
        bindings += (assets_kind.KIND.build(assets_binding, {}),)
    return Script(
        name=_text(draft.name) + suffix,
        key=_text(draft.name) if suffix else "",
        path=files.entry,
        content_sha256=content_digest(script_format, parts, date, flags),
        bindings=bindings,
        format=script_format,
        modules=files.modules,
        compatibility_date=date,
        compatibility_flags=flags,
        build=Build(draft.build.raw) if draft.build is not None else None,
        settings=tuple((key, frozen(setting.value)) for key, setting in draft.settings.items()),
        migrations=(migrations.steps_from_manifest(draft.durable_objects.value)
                    if draft.durable_objects is not None and isinstance(draft.durable_objects.value, dict) else ()),
        attachments=_attachments(draft, _text(draft.name) + suffix, names),
        size=size,
        assets=files.assets,
    )


def _attachments(draft: ScriptDraft, name: str, names: Callable[[str, str], str | None]) -> tuple[Attachment, ...]:
    return tuple(attachment for a in draft.attachments
                 for attachment in ATTACHMENT_KINDS[a.type].build(name, a.tree.value, names))


def _build_binding(draft: BindingDraft) -> Binding:
    return binding_kind(draft.type or "").build(_text(draft.name), draft.values)
