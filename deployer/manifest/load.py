"""Read ``workers.yaml`` into a ``Manifest``: YAML with positions, variables, paths, script hashes.

``load_manifest`` reports every problem at once as a ``ManifestError``: YAML it cannot read,
duplicate keys, unset variables, schema and semantic errors (``validate``), script paths that
leave the manifest's directory or do not exist. ``--env`` overlays are merged on the YAML
nodes (``environments``), so every problem keeps the line and column where it was written.
"""
from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from deployer.manifest import environments, rules, validate
from deployer.manifest.yaml_nodes import TAG, Parser, locate, mark, plain_value, read_text
from deployer.manifest.script_files import MAX_FILE_BYTES, script_digest, script_file, sha256_file
from deployer.manifest.environments import Overlay
from deployer.errors import DeployerError, Diagnostic, ManifestError
from deployer.kinds.registry import RESOURCE_KINDS, binding_kind
from deployer.models import Binding, Manifest, Module, Resource, Script, ScriptFormat
from deployer.apply.upload import content_digest, entry_part, module_type
from deployer.manifest.validate import (
    BindingDraft,
    Field,
    JsonPath,
    ManifestDraft,
    ModuleDraft,
    ResourceDraft,
    ScriptDraft,
)

def load_manifest(path: Path, environ: Mapping[str, str], *, environment: str | None = None) -> Manifest:
    """Read, check and build the manifest at ``path`` for ``environment`` (None: the base),
    filling ``${VAR}`` from ``environ``.

    Raises ``ManifestError`` with every problem found, sorted by position, or a plain
    ``DeployerError`` when the file cannot be read at all or ``environment`` is not one the
    manifest declares under ``environments:`` (without that map it only names a state file).
    """
    with _without_cycle_collection():
        return _load(path, environ, environment)


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


def _load(path: Path, environ: Mapping[str, str], environment: str | None) -> Manifest:
    document = _Document(path, environ)
    checked = document.check(environment)
    document.raise_problems()
    draft, files = checked
    suffix = _value(draft.name_suffix) or ""
    return Manifest(
        path=path,
        account_id=_value(draft.account_id),
        zone_id=_value(draft.zone_id),
        resources=tuple(Resource(r.type, _text(r.key), _text(r.name)) for r in draft.resources),
        scripts=tuple(_script(s, files[s.name.raw], suffix) for s in draft.scripts),
        environment=environment,
        project=_value(draft.project),
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
    path: Path, environ: Mapping[str, str], *, environment: str | None = None, allow_unset: bool = False
) -> ManifestSummary:
    """Check the manifest without building it: the base and every environment, or only
    ``environment`` when given. With ``allow_unset``, an unset ``${VAR}`` is not a problem (the
    values that depend on it are not checked). Raises like ``load_manifest``."""
    document = _Document(path, environ, allow_unset=allow_unset)
    names = document.names or ()
    targets = [environment] if environment is not None else [None, *names]
    drafts = [document.check(target)[0] for target in targets]
    document.raise_problems()
    base = drafts[0]
    checked = names if environment is None else ((environment,) if environment in names else ())
    zone_mode = any(d.zone_id is not None and d.account_id is None for d in drafts)
    resources = {kind: sum(r.type == kind for r in base.resources) for kind in RESOURCE_KINDS}
    return ManifestSummary(len(base.scripts), resources, tuple(checked), zone_mode)


class _Document:
    """One manifest file, read once and checked for one or more environments; every problem
    found along the way is collected in ``diagnostics`` (duplicates dropped at the end)."""

    def __init__(self, path: Path, environ: Mapping[str, str], *, allow_unset: bool = False) -> None:
        self.file = str(path)
        self.base = path.parent.resolve()
        self.parser = Parser(self.file, environ, allow_unset=allow_unset)
        root, data = self.parser.parse(read_text(path, self.file))
        self.diagnostics = self.parser.diagnostics
        if root is None:
            raise ManifestError(self.diagnostics)
        if not isinstance(root, MappingNode):  # the schema says what it should be
            self.diagnostics += validate.check_schema(data, lambda at, key: locate(root, at, key), self.file)
            raise ManifestError(self.diagnostics)
        self.root = root
        self.names = environments.environment_names(root)
        self._overlays: list[Overlay] = []
        # Every environment shares the base's nodes for the scripts it leaves alone: each such
        # script is schema-checked, drafted and hashed once, not once per environment, so 500
        # scripts x 500 environments stay near-linear (their diagnostics would be the same).
        self._schema_checked: set[tuple[str, int]] = set()
        self._drafts: dict[tuple[int, int, str], ScriptDraft] = {}
        self._files_done: dict[tuple[Field | None, str | None, tuple[ModuleDraft, ...]], _Files] = {}
        section = data.get(environments.ENVIRONMENTS)
        if section is not None:
            self.diagnostics += validate.check_schema(
                section, lambda at, key: locate(root, at, key), self.file,
                definition="environments", at=(environments.ENVIRONMENTS,),
            )

    def check(self, environment: str | None) -> tuple[ManifestDraft, dict[str, _Files]]:
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
        draft = _draft(overlay, self.parser.filled, self._drafts)
        self.diagnostics += validate.check_semantics(draft, self.file)
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

    def _files(self, script: ScriptDraft) -> _Files:
        key = (script.path, script.format, script.modules)
        done = self._files_done.get(key)
        if done is None:
            done = self._files_done[key] = self._find_files(script)
        return done

    def _find_files(self, script: ScriptDraft) -> _Files:
        entry = script_file(script.path, self.base, self.file, self.diagnostics)
        digest = script_digest(script.path, entry, self.file, self.diagnostics) if entry is not None else None
        if script.format != ScriptFormat.MODULES.value or entry is None or script.path is None:
            return _Files(entry, (), digest)
        modules = _modules(script, script.path, entry, self.base, self.file, self.diagnostics)
        _check_upload_size(script.path, entry, modules, self.file, self.diagnostics)
        return _Files(entry, modules, digest)

    def raise_problems(self) -> None:
        if self.diagnostics:
            raise ManifestError(sorted(set(self.diagnostics)))


@dataclass(frozen=True, slots=True)
class _Files:
    entry: Path | None
    modules: tuple[Module, ...]
    entry_sha256: str | None  # None: unreadable or not UTF-8 text (a diagnostic says so)


# --- the draft the semantic checks read -----------------------------------------------------


def _entries(node: Node | None) -> dict[str, tuple[ScalarNode, Node]]:
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: (k, v) for k, v in node.value if isinstance(k, ScalarNode)}


Render = Callable[[JsonPath], str]


def _field(node: Node, path: JsonPath, filled: Mapping[int, str | None], render: Render, *,
           key: bool = False) -> Field:
    """A Field for a key or value; its ``value`` is None unless it is a string (keys always are)."""
    line, col = mark(node)
    if not isinstance(node, ScalarNode):
        return Field(render(path), line, col, "", None)
    # A date-like scalar (2024-09-23) is a YAML timestamp; the manifest reads it as a string.
    usable = key or node.tag in (TAG + "str", TAG + "timestamp")
    value = filled.get(id(node), node.value) if usable else None
    return Field(render(path), line, col, node.value, value)


def _draft(overlay: Overlay, filled: Mapping[int, str | None],
           drafts: dict[tuple[int, int, str], ScriptDraft]) -> ManifestDraft:
    """The draft of one overlay; ``drafts`` keeps each script's draft by its nodes and where it
    is written, for the next environment that shares them."""
    root = overlay.root
    top = _entries(root)

    def render(path: JsonPath) -> str:
        return validate.json_path(overlay.source_path(path))

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
            resources.append(ResourceDraft(kind.type, _field(key_node, where, filled, render, key=True), name_field))

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
                           lambda _: f"environments.{overlay.environment}.name_suffix") if suffix else None,
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
    )


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
    script: ScriptDraft, entry_field: Field, entry: Path, base: Path, file: str, diagnostics: list[Diagnostic]
) -> tuple[Module, ...]:
    """Resolve a modules script's extra files; each part is named by its path relative to the
    entry file's directory, where it must be (that is how the entry imports it)."""
    if entry_field.value is None:
        return ()
    entry_dir = PurePosixPath(os.path.normpath(entry_field.value)).parent
    where = f"{entry_dir.as_posix()}/" if entry_dir != PurePosixPath(".") else "the manifest's directory"
    names: dict[str, Field] = {entry_part(ScriptFormat.MODULES, entry)[0]: entry_field}
    modules = []
    for module in script.modules:
        field = module.path
        resolved = script_file(field, base, file, diagnostics)
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
        first = names.setdefault(name, field)
        if first is not field:
            diagnostics.append(Diagnostic(file, field.line, field.col, field.path,
                                          f"{field.raw!r} is the same module as line {first.line} ({name!r})"))
            continue
        modules.append(Module(name, resolved, module.type or module_type(name)))
    return tuple(modules)


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


def _script(draft: ScriptDraft, files: _Files, suffix: str) -> Script:
    assert files.entry is not None and files.entry_sha256 is not None, "checked before building"
    script_format = ScriptFormat(draft.format or ScriptFormat.SERVICE_WORKER.value)
    date = _value(draft.compatibility_date)
    flags = tuple(_text(flag) for flag in draft.compatibility_flags)
    parts = [(*entry_part(script_format, files.entry), files.entry_sha256)]
    parts += [(m.name, m.content_type, sha256_file(m.path)) for m in files.modules]
    return Script(
        name=_text(draft.name) + suffix,
        path=files.entry,
        content_sha256=content_digest(script_format, parts, date, flags),
        bindings=tuple(_build_binding(b) for b in draft.bindings),
        format=script_format,
        modules=files.modules,
        compatibility_date=date,
        compatibility_flags=flags,
    )


def _build_binding(draft: BindingDraft) -> Binding:
    return binding_kind(draft.type or "").build(_text(draft.name), draft.values)
