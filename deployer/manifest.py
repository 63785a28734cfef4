"""Read ``workers.yaml`` into a ``Manifest``: YAML with positions, variables, paths, script hashes.

``load_manifest`` reports every problem at once as a ``ManifestError``: YAML it cannot read,
duplicate keys, unset variables, schema and semantic errors (``validate``), script paths that
leave the manifest's directory or do not exist. ``--env`` overlays are merged on the YAML
nodes (``environments``), so every problem keeps the line and column where it was written.
"""
from __future__ import annotations

import codecs
import contextlib
import gc
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from deployer import environments, validate
from deployer.environments import Overlay
from deployer.errors import DeployerError, Diagnostic, ManifestError
from deployer.models import (
    Binding,
    KvNamespace,
    KvNamespaceBinding,
    Manifest,
    Module,
    PlainTextBinding,
    Script,
    ScriptFormat,
    Secret,
    SecretTextBinding,
)
from deployer.upload import content_digest, entry_part, module_type
from deployer.validate import (
    BindingDraft,
    Field,
    JsonPath,
    ManifestDraft,
    ModuleDraft,
    NamespaceDraft,
    ScriptDraft,
)

# libyaml is ~8x faster than the pure-Python parser; both give the same nodes.
LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_MANIFEST_BYTES = 10 * 1024 * 1024
MAX_NODES = 1_000_000  # counted with every alias expanded: refuses "billion laughs" documents
MAX_DEPTH = 100  # a manifest needs about 6 levels
HASH_CHUNK = 1024 * 1024

_TAG = "tag:yaml.org,2002:"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_SCALARS = {
    _TAG + "int": _CONSTRUCTOR.construct_yaml_int,
    _TAG + "float": _CONSTRUCTOR.construct_yaml_float,
    _TAG + "bool": _CONSTRUCTOR.construct_yaml_bool,
    _TAG + "null": _CONSTRUCTOR.construct_yaml_null,
}
_PLACEHOLDER = re.compile(
    r"\$\$\{"  # $${ is a literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{[^}]*\}?"  # anything else that opens ${ is a mistake
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
        kv_namespaces=tuple(KvNamespace(_text(n.key), _text(n.title)) for n in draft.kv_namespaces),
        scripts=tuple(_script(s, files[s.name.raw], suffix) for s in draft.scripts),
        environment=environment,
    )


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What ``check_manifest`` looked at: counts of the base manifest and the environments."""

    scripts: int
    kv_namespaces: int
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
    return ManifestSummary(len(base.scripts), len(base.kv_namespaces), tuple(checked), zone_mode)


class _Document:
    """One manifest file, read once and checked for one or more environments; every problem
    found along the way is collected in ``diagnostics`` (duplicates dropped at the end)."""

    def __init__(self, path: Path, environ: Mapping[str, str], *, allow_unset: bool = False) -> None:
        self.file = str(path)
        self.base = path.parent.resolve()
        self.parser = _Parser(self.file, environ, allow_unset=allow_unset)
        root, data = self.parser.parse(_read_text(path, self.file))
        self.diagnostics = self.parser.diagnostics
        if root is None:
            raise ManifestError(self.diagnostics)
        if not isinstance(root, MappingNode):  # the schema says what it should be
            self.diagnostics += validate.check_schema(data, lambda at, key: _locate(root, at, key), self.file)
            raise ManifestError(self.diagnostics)
        self.root = root
        self.names = environments.environment_names(root)
        self._overlays: list[Overlay] = []
        section = data.get(environments.ENVIRONMENTS)
        if section is not None:
            self.diagnostics += validate.check_schema(
                section, lambda at, key: _locate(root, at, key), self.file,
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
            data, lambda at, key: _locate(overlay.root, at, key), self.file, source=overlay.source_path
        )
        draft = _draft(overlay, self.parser.filled)
        self.diagnostics += validate.check_semantics(draft, self.file)
        files = {s.name.raw: self._files(s) for s in draft.scripts}
        return draft, files

    def _files(self, script: ScriptDraft) -> _Files:
        entry = _script_file(script.path, self.base, self.file, self.diagnostics)
        digest = _script_digest(script.path, entry, self.file, self.diagnostics) if entry is not None else None
        if script.format != ScriptFormat.MODULES.value or entry is None or script.path is None:
            return _Files(entry, (), digest)
        modules = _modules(script, script.path, entry, self.base, self.file, self.diagnostics)
        return _Files(entry, modules, digest)

    def raise_problems(self) -> None:
        if self.diagnostics:
            raise ManifestError(sorted(set(self.diagnostics)))


@dataclass(frozen=True, slots=True)
class _Files:
    entry: Path | None
    modules: tuple[Module, ...]
    entry_sha256: str | None  # None: unreadable or not UTF-8 text (a diagnostic says so)


# --- reading and parsing ------------------------------------------------------------------


def _read_text(path: Path, file: str) -> str:
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_MANIFEST_BYTES:
                raise ManifestError([Diagnostic(
                    file, 0, 0, "", f"the manifest is {size} bytes; at most 10 MiB is accepted")])
            raw = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise DeployerError(f"manifest not found: {file} (pass -f/--file to point at another)") from None
    except IsADirectoryError:
        raise DeployerError(f"manifest {file} is a directory (pass -f/--file to point at a file)") from None
    except OSError as exc:
        raise DeployerError(f"cannot read manifest {file}: {exc.strerror}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:  # it grew while we looked
        raise ManifestError([Diagnostic(file, 0, 0, "", "the manifest is larger than 10 MiB")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"the manifest is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"
        raise ManifestError([Diagnostic(file, line, col, "", message)]) from exc


class _Stop(Exception):
    """Conversion cannot go on (too many nodes, too deep, a cycle); the diagnostic is recorded."""


class _Parser:
    """YAML text -> (root node, plain data) plus diagnostics and the filled-in strings.

    ``filled`` maps ``id(node)`` of every string scalar (key or value) holding a ``$`` to its
    text with variables filled in, or None when a variable is unset; ``fill`` fills the nodes
    of one environment's manifest (a variable used only by another environment need not be
    set). Aliased nodes are converted once and shared, while ``MAX_NODES`` counts them as if
    expanded.
    """

    def __init__(self, file: str, environ: Mapping[str, str], *, allow_unset: bool = False) -> None:
        self.file = file
        self.environ = environ
        self.allow_unset = allow_unset
        self.diagnostics: list[Diagnostic] = []
        self.filled: dict[int, str | None] = {}
        self._converted: dict[int, tuple[Any, int]] = {}  # id(node) -> (data, expanded size)
        self._open: set[int] = set()  # collections being converted, to catch recursive aliases
        self._count = 0

    def parse(self, text: str) -> tuple[Node | None, Any]:
        try:
            loader = LOADER(text)
            try:
                root = loader.get_single_node()
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            self._syntax_error(exc, text)
            return None, None
        except yaml.reader.ReaderError as exc:
            self._reader_error(exc, text)
            return None, None
        except yaml.YAMLError as exc:
            self._report(0, 0, (), f"invalid YAML: {exc}")
            return None, None
        except RecursionError:
            self._report(0, 0, (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            return None, None
        if root is None:
            self._report(1, 1, (), "the manifest is empty (it needs at least 'version: 1' and 'scripts')")
            return None, None
        try:
            return root, self._convert(root, (), 0)
        except _Stop:
            return None, None
        except RecursionError:
            self._report(*_mark(root), (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            return None, None

    def convert_again(self, node: Node) -> Any:
        """Plain data for a node tree made of nodes ``parse`` converted already (an overlay):
        their problems were reported then, so none is reported twice."""
        reported, self._count = len(self.diagnostics), 0
        try:
            return self._convert(node, (), 0)
        finally:
            del self.diagnostics[reported:]

    def fill(self, node: Node, source: Callable[[JsonPath], JsonPath]) -> None:
        """Fill every ``${VAR}`` under ``node`` (each node once); ``source`` maps a path to
        where it was written, for the messages."""
        seen: set[int] = set()

        def walk(node: Node, path: JsonPath) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            if isinstance(node, ScalarNode):
                if node.tag == _TAG + "str" and "$" in node.value:
                    self._fill(node, source(path))
            elif isinstance(node, MappingNode):
                for key, value in node.value:
                    if isinstance(key, ScalarNode):
                        if "$" in key.value:
                            self._fill(key, source((*path, key.value)))
                        walk(value, (*path, key.value))
            elif isinstance(node, SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, (*path, index))

        walk(node, ())

    def _report(self, line: int, col: int, path: JsonPath, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.file, line, col, validate.json_path(path), message))

    def _syntax_error(self, exc: yaml.MarkedYAMLError, text: str) -> None:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "unreadable"
        if mark and _char_at(text, mark.line, mark.column) == "\t":
            problem = "a tab character here: YAML indentation must use spaces"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.problem and exc.context_mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        self._report(line, col, (), message)

    def _reader_error(self, exc: yaml.reader.ReaderError, text: str) -> None:
        position = min(exc.position, len(text))
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        character = text[position] if position < len(text) else ""
        code = f"U+{ord(character):04X}" if character else "a character"
        self._report(line, col, (), f"invalid YAML: {code} is a control character, which YAML does not allow")

    def _grow(self, size: int, node: Node, path: JsonPath) -> None:
        self._count += size
        if self._count > MAX_NODES:
            message = f"the manifest expands to more than {MAX_NODES} values (aliases repeated too often?)"
            self._report(*_mark(node), path, message)
            raise _Stop

    def _convert(self, node: Node, path: JsonPath, depth: int) -> Any:
        key = id(node)
        done = self._converted.get(key)
        if done is not None:
            self._grow(done[1], node, path)
            return done[0]
        if key in self._open:
            self._report(*_mark(node), path, "an alias here refers to a value that contains it")
            raise _Stop
        if depth > MAX_DEPTH:
            self._report(*_mark(node), (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            raise _Stop
        before = self._count
        self._grow(1, node, path)
        value: Any
        if isinstance(node, ScalarNode):
            value = self._scalar(node, path)
        else:
            self._open.add(key)
            if isinstance(node, MappingNode):
                value = self._mapping(node, path, depth)
            else:
                assert isinstance(node, SequenceNode)
                value = self._sequence(node, path, depth)
            self._open.discard(key)
        self._converted[key] = (value, self._count - before)
        return value

    def _scalar(self, node: ScalarNode, path: JsonPath) -> Any:
        if node.tag == _TAG + "str":
            return node.value
        construct = _SCALARS.get(node.tag)
        if construct is not None:
            return construct(node)
        if node.tag == _TAG + "timestamp":
            return node.value  # a date-like string is still just a string here
        self._report(*_mark(node), path, f"unsupported YAML tag {node.tag!r}")
        return node.value

    def _sequence(self, node: SequenceNode, path: JsonPath, depth: int) -> list[Any]:
        if node.tag != _TAG + "seq":
            self._report(*_mark(node), path, f"unsupported YAML tag {node.tag!r}")
        return [self._convert(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]

    def _mapping(self, node: MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self._report(*_mark(node), path, f"unsupported YAML tag {node.tag!r}")
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._report(*_mark(key_node), path, "a key must be a plain string, not a list or mapping")
                continue
            if key_node.tag == _TAG + "merge":
                self._report(*_mark(key_node), path,
                             "merge keys ('<<') are not supported; use an alias for the whole value")
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in first_line:
                self._report(*_mark(key_node), key_path,
                             f"duplicate key {key!r} (first at line {first_line[key]})")
            else:
                first_line[key] = key_node.start_mark.line + 1
            result[key] = self._convert(value_node, key_path, depth + 1)
        return result

    def _fill(self, node: ScalarNode, path: JsonPath) -> None:
        """Fill ``${VAR}`` / ``${VAR:-default}`` in one scalar; ``$${`` stays a literal ``${``."""
        if id(node) in self.filled:
            return
        problems: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group("name")
            if match.group(0) == "$${":
                return "${"
            if name is None:
                problems.append(
                    f"{match.group(0)!r} is not a valid placeholder; write ${{NAME}} or ${{NAME:-default}}"
                )
                return ""
            default = match.group("default")
            value = self.environ.get(name)
            if default is not None:
                return value or default  # like the shell's :- an empty value takes the default
            if value is None:
                unset.append(name)
                return ""
            return value

        unset: list[str] = []
        filled = _PLACEHOLDER.sub(replace, node.value)
        if not self.allow_unset:
            problems += [f"environment variable {name} is not set (export it, or write ${{{name}:-default}})"
                         for name in unset]
        for message in problems:
            self._report(*_mark(node), path, message)
        self.filled[id(node)] = None if problems or unset else filled


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line + 1)
    if line < len(lines) and column < len(lines[line]):
        return lines[line][column]
    return ""


def _locate(root: Node, path: JsonPath, at_key: bool) -> tuple[int, int]:
    """The position of the value at ``path`` (or of its key), or of the deepest part that exists."""
    node, key_node = root, None
    for part in path:
        if isinstance(node, MappingNode):
            # The last of duplicate keys wins, as in the converted data.
            found = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not found:
                break
            key_node, node = found[-1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            key_node, node = None, node.value[part]
        else:
            break
    return _mark(key_node if at_key and key_node is not None else node)


# --- the draft the semantic checks read -----------------------------------------------------


def _entries(node: Node | None) -> dict[str, tuple[ScalarNode, Node]]:
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: (k, v) for k, v in node.value if isinstance(k, ScalarNode)}


Render = Callable[[JsonPath], str]


def _field(node: Node, path: JsonPath, filled: Mapping[int, str | None], render: Render, *,
           key: bool = False) -> Field:
    """A Field for a key or value; its ``value`` is None unless it is a string (keys always are)."""
    line, col = _mark(node)
    if not isinstance(node, ScalarNode):
        return Field(render(path), line, col, "", None)
    # A date-like scalar (2024-09-23) is a YAML timestamp; the manifest reads it as a string.
    usable = key or node.tag in (_TAG + "str", _TAG + "timestamp")
    value = filled.get(id(node), node.value) if usable else None
    return Field(render(path), line, col, node.value, value)


def _draft(overlay: Overlay, filled: Mapping[int, str | None]) -> ManifestDraft:
    root = overlay.root
    top = _entries(root)

    def render(path: JsonPath) -> str:
        return validate.json_path(overlay.source_path(path))

    def top_field(name: str) -> Field | None:
        entry = top.get(name)
        return _field(entry[1], (name,), filled, render) if entry else None

    namespaces: list[NamespaceDraft] = []
    kv_entry = top.get("kv_namespaces")
    for key, (key_node, value) in _entries(kv_entry[1] if kv_entry else None).items():
        path = ("kv_namespaces", key)
        title = _entries(value).get("title")
        title_field = _field(title[1], (*path, "title"), filled, render) if title else None
        namespaces.append(NamespaceDraft(_field(key_node, path, filled, render, key=True), title_field))

    scripts_entry = top.get("scripts")
    scripts = [
        _script_draft(value, ("scripts", name), _field(key_node, ("scripts", name), filled, render, key=True),
                      filled, render)
        for name, (key_node, value) in _entries(scripts_entry[1] if scripts_entry else None).items()
    ]
    suffix = overlay.name_suffix
    scripts_given = scripts_entry is not None and isinstance(scripts_entry[1], MappingNode)
    return ManifestDraft(
        account_id=top_field("account_id"),
        zone_id=top_field("zone_id"),
        kv_namespaces_at=_mark(kv_entry[0]) if kv_entry else None,
        kv_namespaces=tuple(namespaces),
        scripts_at=_mark(scripts_entry[0]) if scripts_entry and scripts_given else None,
        scripts=tuple(scripts),
        name_suffix=_field(suffix, (environments.NAME_SUFFIX,), filled,
                           lambda _: f"environments.{overlay.environment}.name_suffix") if suffix else None,
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

    def field(name: str) -> Field | None:
        entry = body.get(name)
        return _field(entry[1], (*path, name), filled, render) if entry else None

    type_field = field("type")
    return BindingDraft(
        render(path), *_mark(node),
        type=type_field.value if type_field else None,
        name=field("name"),
        namespace_id=field("namespace_id"),
        namespace=field("namespace"),
        text=field("text"),
    )


# --- script files -------------------------------------------------------------------------


def _script_file(field: Field | None, base: Path, file: str, diagnostics: list[Diagnostic]) -> Path | None:
    """Resolve a script's ``path`` (or a module's) inside ``base`` (the manifest's resolved directory)."""
    if field is None or field.value is None:
        return None

    def refuse(message: str) -> None:
        diagnostics.append(Diagnostic(file, field.line, field.col, field.path, message))

    if not field.value:  # a literal "" is the schema's to report
        if field.filled_in:
            refuse(f"{field.raw!r} expands to an empty path")
        return None

    relative = PurePath(field.value)
    if relative.is_absolute() or relative.anchor:
        refuse(f"{field.raw!r} is an absolute path; give it relative to the manifest's directory")
        return None
    if os.path.normpath(relative).split(os.sep, 1)[0] == os.pardir:
        refuse(f"{field.raw!r} leads outside the manifest's directory")
        return None
    try:
        resolved = (base / relative).resolve()
        if not resolved.is_relative_to(base):
            refuse(f"{field.raw!r} resolves through a symlink to a file outside the manifest's directory")
            return None
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        refuse(f"script file {field.raw!r} does not exist in {base}")
        return None
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        refuse(f"cannot read script file {field.raw!r}: {getattr(exc, 'strerror', None) or exc}")
        return None
    if not stat.S_ISREG(mode):
        refuse(f"{field.raw!r} is not a regular file")
        return None
    return resolved


def _script_digest(field: Field | None, path: Path | None, file: str, diagnostics: list[Diagnostic]) -> str | None:
    """The script's sha256, or None (with a diagnostic) when it is not UTF-8 text: the
    script is uploaded as service-worker JavaScript source, which Cloudflare reads as UTF-8."""
    assert field is not None and path is not None
    try:
        digest, bad_offset = _hash_and_check_utf8(path)
    except DeployerError as exc:
        diagnostics.append(Diagnostic(file, field.line, field.col, field.path, str(exc)))
        return None
    if bad_offset is not None:
        diagnostics.append(Diagnostic(
            file, field.line, field.col, field.path,
            f"script file {field.raw!r} is not UTF-8 text (byte offset {bad_offset}): a service-worker "
            "script is uploaded as JavaScript source; is it a binary or a differently encoded file?",
        ))
        return None
    return digest


def _hash_and_check_utf8(path: Path) -> tuple[str, int | None]:
    """Hex sha256 of the file and the offset of its first byte that is not UTF-8 (or None),
    in one pass of 1 MiB chunks."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    bad_offset: int | None = None
    offset = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
                if bad_offset is None:
                    pending = len(decoder.getstate()[0])
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        bad_offset = offset - pending + exc.start
                offset += len(chunk)
            if bad_offset is None:
                pending = len(decoder.getstate()[0])  # a character cut off by the end of the file
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    bad_offset = offset - pending
    except OSError as exc:
        raise DeployerError(f"cannot read script file {path}: {exc.strerror}") from exc
    return digest.hexdigest(), bad_offset


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (never the whole file in memory)."""
    return _hash_and_check_utf8(path)[0]


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
        resolved = _script_file(field, base, file, diagnostics)
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
    match draft.type:
        case "kv_namespace":
            return KvNamespaceBinding(
                _text(draft.name), namespace_id=_value(draft.namespace_id), namespace=_value(draft.namespace)
            )
        case "plain_text":
            return PlainTextBinding(_text(draft.name), _text(draft.text))
        case "secret_text":
            return SecretTextBinding(_text(draft.name), Secret(_text(draft.text)))
        case _:
            raise AssertionError(f"binding type {draft.type!r} passed validation")
