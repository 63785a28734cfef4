"""The state document (``state.json``) and journal record formats, parsed field by field, and
the in-memory working copy that both state backends fold records into. No I/O here."""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from deployer.errors import StateError
from deployer.models import BindingType, DeployedBinding, NamespaceState, ScriptState, State

STATE_FORMAT_VERSION = 1


# --- the on-disk document -----------------------------------------------------------------


def state_to_json(state: State) -> dict[str, Any]:
    """The state file's document. A secret_text binding is written without any text; ``project``
    only once known, so a state without it is written exactly as before."""
    doc = {
        "format_version": STATE_FORMAT_VERSION,
        "lineage": state.lineage,
        "serial": state.serial,
        "account_id": state.account_id,
        "zone_id": state.zone_id,
        "kv_namespaces": {ns.key: {"title": ns.title, "id": ns.id} for ns in state.kv_namespaces},
        "scripts": {script.name: script_to_json(script) for script in state.scripts},
    }
    if state.project is not None:
        doc["project"] = state.project
    return doc


def state_from_json(doc: object, source: str) -> State:
    """Validate every field of a state document; StateError names ``source`` and the field."""
    check_format_version(doc, source, "state")
    try:
        return parse_state(doc)
    except Invalid as exc:
        raise StateError(f"{source}: {exc}") from None


def script_to_json(script: ScriptState) -> dict[str, Any]:
    return {
        "content_sha256": script.content_sha256,
        "bindings": [_binding_to_json(binding) for binding in script.bindings],
        "secret_fingerprints": dict(script.secret_fingerprints),
        "etag": script.etag,
        "modified_on": script.modified_on,
    }


def _binding_to_json(binding: DeployedBinding) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": binding.type.value, "name": binding.name}
    match binding.type:
        case BindingType.KV_NAMESPACE:
            doc["namespace_id"] = binding.namespace_id
        case BindingType.PLAIN_TEXT:
            doc["text"] = binding.text
        case BindingType.SECRET_TEXT:
            pass  # the value is never stored; its fingerprint is in secret_fingerprints
    return doc


class Invalid(Exception):
    """A field of a state document or journal record is wrong."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def check_format_version(doc: object, source: str, kind: str) -> None:
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > STATE_FORMAT_VERSION:
        raise StateError(
            f"{source} was written by a newer deployer ({kind} format_version {version}; this one "
            f"reads {STATE_FORMAT_VERSION}): upgrade deployer to use it"
        )


def parse_state(doc: object) -> State:
    fields = _object(doc, "", ("format_version", "lineage", "serial", "account_id", "zone_id",
                               "kv_namespaces", "scripts"), optional=("project",))
    _version(fields["format_version"], "format_version")
    return State(
        lineage=_string(fields["lineage"], "lineage", empty=True),
        serial=_count(fields["serial"], "serial"),
        account_id=_optional_string(fields["account_id"], "account_id"),
        zone_id=_optional_string(fields["zone_id"], "zone_id"),
        scripts=_parse_scripts(fields["scripts"], "scripts"),
        kv_namespaces=_parse_namespaces(fields["kv_namespaces"], "kv_namespaces"),
        project=_optional_string(fields.get("project"), "project"),
    )


def _parse_scripts(doc: object, where: str) -> tuple[ScriptState, ...]:
    scripts = _object(doc, where)
    return tuple(_parse_script(name, scripts[name], _join(where, name)) for name in sorted(scripts))


def _parse_script(name: str, doc: object, where: str) -> ScriptState:
    fields = _object(doc, where, ("content_sha256", "bindings", "secret_fingerprints"),
                     optional=("etag", "modified_on"))
    bindings = _array(fields["bindings"], _join(where, "bindings"))
    fingerprints = _object(fields["secret_fingerprints"], _join(where, "secret_fingerprints"))
    return ScriptState(
        name=_string(name, where),
        content_sha256=_string(fields["content_sha256"], _join(where, "content_sha256")),
        bindings=tuple(
            _parse_binding(binding, f"{where}.bindings[{index}]") for index, binding in enumerate(bindings)
        ),
        secret_fingerprints=tuple(
            (secret, _string(fingerprints[secret], _join(where, f"secret_fingerprints.{secret}")))
            for secret in sorted(fingerprints)
        ),
        etag=_optional_string(fields.get("etag"), _join(where, "etag")),
        modified_on=_optional_string(fields.get("modified_on"), _join(where, "modified_on")),
    )


def _parse_binding(doc: object, where: str) -> DeployedBinding:
    raw_type = _object(doc, where, optional=("type", "name", "namespace_id", "text")).get("type")
    try:
        binding_type = BindingType(_string(raw_type, _join(where, "type")))
    except ValueError:
        known = ", ".join(t.value for t in BindingType)
        raise Invalid(_join(where, "type"), f"unknown binding type {raw_type!r} (expected {known})") from None
    match binding_type:
        case BindingType.KV_NAMESPACE:
            fields = _object(doc, where, ("type", "name", "namespace_id"))
            namespace_id = _string(fields["namespace_id"], _join(where, "namespace_id"))
            return DeployedBinding(binding_type, _string(fields["name"], _join(where, "name")), namespace_id)
        case BindingType.PLAIN_TEXT:
            fields = _object(doc, where, ("type", "name", "text"))
            text = _string(fields["text"], _join(where, "text"), empty=True)
            return DeployedBinding(binding_type, _string(fields["name"], _join(where, "name")), text=text)
        case BindingType.SECRET_TEXT:
            if isinstance(doc, dict) and "text" in doc:
                raise Invalid(_join(where, "text"), "a secret_text binding must not store its value")
            fields = _object(doc, where, ("type", "name"))
            return DeployedBinding(binding_type, _string(fields["name"], _join(where, "name")))


def _parse_namespaces(doc: object, where: str) -> tuple[NamespaceState, ...]:
    namespaces = _object(doc, where)
    parsed = []
    for key in sorted(namespaces):
        at = _join(where, key)
        fields = _object(namespaces[key], at, ("title", "id"))
        parsed.append(NamespaceState(key, _string(fields["title"], _join(at, "title")),
                                     _string(fields["id"], _join(at, "id"))))
    return tuple(parsed)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _json_kind(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return f"the number {value!r}"
        case str():
            return "a string"
        case list():
            return "an array"
        case _:
            return "an object"


def _object(value: object, where: str, required: tuple[str, ...] = (),
            optional: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A JSON object with ``required`` keys; with ``optional`` given, no keys beyond both."""
    if not isinstance(value, dict):
        raise Invalid(where, f"expected an object, got {_json_kind(value)}")
    for key in required:
        if key not in value:
            raise Invalid(_join(where, key), "missing")
    if optional is not None or required:
        allowed = set(required) | set(optional or ())
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise Invalid(_join(where, unknown[0]), "unknown field")
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(where, f"expected an array, got {_json_kind(value)}")
    return value


def _string(value: object, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(where, f"expected a string, got {_json_kind(value)}")
    if not value and not empty:
        raise Invalid(where, "must not be empty")
    return value


def _optional_string(value: object, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Invalid(where, f"expected a whole number >= 0, got {_json_kind(value)}")
    return value


def _version(value: object, where: str) -> None:
    if _count(value, where) != STATE_FORMAT_VERSION:
        raise Invalid(where, f"expected {STATE_FORMAT_VERSION}, got {value!r}")


def refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {key!r}")
        doc[key] = value
    return doc


# --- journal records ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One ``record()`` call: applied over the state whose serial is ``serial - 1``."""

    lineage: str
    base_serial: int  # serial of state.json when the journal was started
    serial: int
    scripts: tuple[ScriptState, ...]
    removed_scripts: tuple[str, ...]
    namespaces: tuple[NamespaceState, ...]
    forgotten_namespaces: tuple[str, ...]
    account_id: str | None
    zone_id: str | None
    project: str | None = None


def parse_record(doc: object, where: str) -> Record:
    fields = _object(doc, where, ("format_version", "lineage", "base_serial", "serial"),
                     optional=("scripts", "removed_scripts", "kv_namespaces", "forgotten_namespaces",
                               "account_id", "zone_id", "project"))
    _version(fields["format_version"], _join(where, "format_version"))
    return Record(
        lineage=_string(fields["lineage"], _join(where, "lineage")),
        base_serial=_count(fields["base_serial"], _join(where, "base_serial")),
        serial=_count(fields["serial"], _join(where, "serial")),
        scripts=_parse_scripts(fields.get("scripts", {}), _join(where, "scripts")),
        removed_scripts=_names(fields.get("removed_scripts", []), _join(where, "removed_scripts")),
        namespaces=_parse_namespaces(fields.get("kv_namespaces", {}), _join(where, "kv_namespaces")),
        forgotten_namespaces=_names(fields.get("forgotten_namespaces", []),
                                    _join(where, "forgotten_namespaces")),
        account_id=_optional_string(fields.get("account_id"), _join(where, "account_id")),
        zone_id=_optional_string(fields.get("zone_id"), _join(where, "zone_id")),
        project=_optional_string(fields.get("project"), _join(where, "project")),
    )


def _names(value: object, where: str) -> tuple[str, ...]:
    return tuple(_string(name, f"{where}[{index}]") for index, name in enumerate(_array(value, where)))


# --- the working copy ---------------------------------------------------------------------


_Item = TypeVar("_Item")


class _ByName(Generic[_Item]):
    """Items by name, kept in name order as they change, so that a record costs O(log N) plus a
    memmove and a snapshot one C-level pass, never a re-sort of thousands of scripts."""

    def __init__(self, items: Iterable[tuple[str, _Item]]) -> None:
        self._items = dict(items)
        self._names = sorted(self._items)

    def put(self, name: str, item: _Item) -> None:
        if name not in self._items:
            bisect.insort(self._names, name)
        self._items[name] = item

    def drop(self, name: str) -> None:
        if self._items.pop(name, None) is not None:
            del self._names[bisect.bisect_left(self._names, name)]

    def values(self) -> tuple[_Item, ...]:
        return tuple(map(self._items.__getitem__, self._names))



def make_record(
    *,
    lineage: str,
    base_serial: int,
    serial: int,
    scripts: tuple[ScriptState, ...] = (),
    removed_scripts: tuple[str, ...] = (),
    namespaces: tuple[NamespaceState, ...] = (),
    forgotten_namespaces: tuple[str, ...] = (),
    account_id: str | None = None,
    zone_id: str | None = None,
    project: str | None = None,
) -> tuple[dict[str, Any], Record]:
    """One record as its JSON document and parsed back exactly as a later load would read it,
    so memory and storage agree. ValueError for a record that cannot be stored (a bug)."""
    both = {s.name for s in scripts} & set(removed_scripts)
    both |= {ns.key for ns in namespaces} & set(forgotten_namespaces)
    if both:
        raise ValueError(f"cannot record {sorted(both)} as both changed and removed")
    doc: dict[str, Any] = {"format_version": STATE_FORMAT_VERSION, "lineage": lineage,
                           "base_serial": base_serial, "serial": serial}
    optional: dict[str, Any] = {
        "scripts": {script.name: script_to_json(script) for script in scripts},
        "removed_scripts": list(removed_scripts),
        "kv_namespaces": {ns.key: {"title": ns.title, "id": ns.id} for ns in namespaces},
        "forgotten_namespaces": list(forgotten_namespaces),
        "account_id": account_id,
        "zone_id": zone_id,
        "project": project,
    }
    doc.update((key, value) for key, value in optional.items() if value)
    try:
        return doc, parse_record(doc, "")
    except Invalid as exc:
        raise ValueError(f"cannot record an invalid state: {exc}") from None


class WorkingState:
    """A State kept as parts, so that applying a record does not rebuild it all; ``snapshot()``
    builds the frozen State once per change."""

    def __init__(self) -> None:
        self._cached: State | None = None
        self.reset(State())

    @property
    def lineage(self) -> str:
        return self._lineage

    @lineage.setter
    def lineage(self, lineage: str) -> None:
        self._lineage = lineage
        self._cached = None

    @property
    def serial(self) -> int:
        return self._serial

    def reset(self, state: State) -> None:
        self._lineage, self._serial = state.lineage, state.serial
        self._account_id, self._zone_id, self._project = state.account_id, state.zone_id, state.project
        self._scripts = _ByName((script.name, script) for script in state.scripts)
        self._namespaces = _ByName((ns.key, ns) for ns in state.kv_namespaces)
        self._cached = state

    def apply(self, record: Record) -> None:
        for script in record.scripts:
            self._scripts.put(script.name, script)
        for name in record.removed_scripts:
            self._scripts.drop(name)
        for ns in record.namespaces:
            self._namespaces.put(ns.key, ns)
        for key in record.forgotten_namespaces:
            self._namespaces.drop(key)
        if record.account_id is not None:
            self._account_id = record.account_id
        if record.zone_id is not None:
            self._zone_id = record.zone_id
        if record.project is not None:
            self._project = record.project
        self._lineage = record.lineage
        self._serial = record.serial
        self._cached = None

    def snapshot(self) -> State:
        if self._cached is None:
            self._cached = State(
                lineage=self._lineage,
                serial=self._serial,
                account_id=self._account_id,
                zone_id=self._zone_id,
                scripts=self._scripts.values(),
                kv_namespaces=self._namespaces.values(),
                project=self._project,
            )
        return self._cached
