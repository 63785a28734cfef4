"""The state document (``state.json``) and journal record formats, parsed field by field, and
the in-memory working copy that both state backends fold records into. No I/O here."""
from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar, Unpack

from deployer.errors import StateError
from deployer.state.fields import Invalid, array, count, join, object_fields, optional_string, string
from deployer.kinds import assets, migrations
from deployer.kinds.registry import ATTACHMENT_KINDS, BINDING_KINDS, RESOURCE_KINDS
from deployer.models import Attachment, DeployedBinding, ResourceState, ScriptState, State, VersionShare

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
        **_resource_sections(state.resources, everywhere=True),
        "scripts": {script.name: script_to_json(script) for script in state.scripts},
    }
    if state.project is not None:
        doc["project"] = state.project
    if state.attachments:  # absent when empty: states without attachments stay as they were
        doc[ATTACHMENTS] = _attachments_to_json(state.attachments)
    return doc


ATTACHMENTS = "attachments"


def _attachments_to_json(attachments: Iterable[Attachment]) -> dict[str, Any]:
    """``{type: {name: {script, id?, ...fields}}}``: what was attached to scripts."""
    doc: dict[str, Any] = {}
    for attachment in attachments:
        doc.setdefault(attachment.type, {})[attachment.name] = ATTACHMENT_KINDS[attachment.type].to_state(attachment)
    return doc


def _parse_attachments(doc: object, where: str) -> tuple[Attachment, ...]:
    parsed = []
    sections = object_fields(doc, where)
    for attachment_type in sorted(sections):
        kind = ATTACHMENT_KINDS.get(attachment_type)
        at = join(where, attachment_type)
        if kind is None:
            raise Invalid(at, "unknown attachment type (written by a newer deployer?)")
        section = object_fields(sections[attachment_type], at)
        parsed += [kind.from_state(name, section[name], f"{at}[{json.dumps(name)}]") for name in sorted(section)]
    return tuple(parsed)


def _resource_sections(resources: Iterable[ResourceState], *, everywhere: bool) -> dict[str, Any]:
    """Owned resources by section (``kv_namespaces: {key: {title, id}}``); an empty section is
    left out unless ``everywhere`` and its kind was always written (files stay as they were)."""
    sections: dict[str, Any] = {}
    for kind in RESOURCE_KINDS.values():
        section = {r.key: kind.to_state(r.name, r.id) for r in resources if r.type == kind.type}
        if section or (everywhere and kind.always_in_state):
            sections[kind.section] = section
    return sections


def state_from_json(doc: object, source: str) -> State:
    """Validate every field of a state document; StateError names ``source`` and the field."""
    check_format_version(doc, source, "state")
    try:
        return parse_state(doc)
    except Invalid as exc:
        raise StateError(f"{source}: {exc}") from None


def script_to_json(script: ScriptState) -> dict[str, Any]:
    doc = {
        "content_sha256": script.content_sha256,
        "bindings": [_binding_to_json(binding) for binding in script.bindings],
        "secret_fingerprints": dict(script.secret_fingerprints),
        "etag": script.etag,
        "modified_on": script.modified_on,
    }
    # Only for scripts that have them, so every other entry is written exactly as before.
    if script.settings_sha256:
        doc["settings_sha256"] = dict(script.settings_sha256)
    if script.migration_tag is not None:
        doc["migration_tag"] = script.migration_tag
    if script.migrations:
        doc["migrations"] = [migrations.step_document(step) for step in script.migrations]
    # Versions (apply --gradual) likewise: absent for a script that never used them.
    if script.version_id is not None:
        doc["version_id"] = script.version_id
    if script.split:
        doc["split"] = [{"version_id": share.version_id, "percentage": share.percentage} for share in script.split]
    if script.previous is not None:
        doc["previous"] = script_to_json(script.previous)
    if script.pending is not None:
        doc["pending_version"] = script_to_json(script.pending)
    if script.assets is not None:
        doc["assets"] = assets.to_state(script.assets)
    return doc


def _binding_to_json(binding: DeployedBinding) -> dict[str, Any]:
    # A secret binding is written without any value; its fingerprint is in secret_fingerprints.
    return BINDING_KINDS[binding.type].to_state(binding)


def check_format_version(doc: object, source: str, kind: str) -> None:
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > STATE_FORMAT_VERSION:
        raise StateError(
            f"{source} was written by a newer deployer ({kind} format_version {version}; this one "
            f"reads {STATE_FORMAT_VERSION}): upgrade deployer to use it"
        )


def parse_state(doc: object) -> State:
    fields = object_fields(doc, "", ("format_version", "lineage", "serial", "account_id", "zone_id", "scripts",
                                     *_resource_section_names(True)),
                           optional=("project", ATTACHMENTS, *_resource_section_names(False)))
    _version(fields["format_version"], "format_version")
    return State(
        lineage=string(fields["lineage"], "lineage", empty=True),
        serial=count(fields["serial"], "serial"),
        account_id=optional_string(fields["account_id"], "account_id"),
        zone_id=optional_string(fields["zone_id"], "zone_id"),
        scripts=_parse_scripts(fields["scripts"], "scripts"),
        resources=_parse_resources(fields, ""),
        project=optional_string(fields.get("project"), "project"),
        attachments=_parse_attachments(fields.get(ATTACHMENTS, {}), ATTACHMENTS),
    )


def _parse_scripts(doc: object, where: str) -> tuple[ScriptState, ...]:
    scripts = object_fields(doc, where)
    return tuple(_parse_script(name, scripts[name], join(where, name)) for name in sorted(scripts))


def _parse_script(name: str, doc: object, where: str, *, nested: bool = False) -> ScriptState:
    # ``previous`` and ``pending_version`` are entries themselves, one level deep.
    versions = ("version_id",) if nested else ("version_id", "split", "previous", "pending_version")
    fields = object_fields(doc, where, ("content_sha256", "bindings", "secret_fingerprints"),
                     optional=("etag", "modified_on", "settings_sha256", "migration_tag", "migrations", "assets", *versions))
    bindings = array(fields["bindings"], join(where, "bindings"))
    fingerprints = object_fields(fields["secret_fingerprints"], join(where, "secret_fingerprints"))
    settings = object_fields(fields.get("settings_sha256", {}), join(where, "settings_sha256"))
    steps = array(fields.get("migrations", []), join(where, "migrations"))
    tag = optional_string(fields.get("migration_tag"), join(where, "migration_tag"))
    applied = tuple(migrations.step_from_state(step, f"{where}.migrations[{index}]") for index, step in enumerate(steps))
    if applied and applied[-1].tag != tag:
        raise Invalid(join(where, "migration_tag"), f"expected {applied[-1].tag!r}, the last applied step's tag")
    return ScriptState(
        name=string(name, where),
        content_sha256=string(fields["content_sha256"], join(where, "content_sha256")),
        bindings=tuple(
            _parse_binding(binding, f"{where}.bindings[{index}]") for index, binding in enumerate(bindings)
        ),
        secret_fingerprints=tuple(
            (secret, string(fingerprints[secret], join(where, f"secret_fingerprints.{secret}")))
            for secret in sorted(fingerprints)
        ),
        etag=optional_string(fields.get("etag"), join(where, "etag")),
        modified_on=optional_string(fields.get("modified_on"), join(where, "modified_on")),
        settings_sha256=tuple(
            (key, string(settings[key], join(where, f"settings_sha256.{key}"))) for key in sorted(settings)
        ),
        migration_tag=tag,
        migrations=applied,
        **_parse_versions(name, fields, where),
        assets=assets.from_state(fields["assets"], join(where, "assets")) if "assets" in fields else None,
    )


def _parse_versions(name: str, fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The version fields of a script entry (``apply --gradual``), checked against each other:
    a split is this entry's version and at most one other, shares summing to 100, and comes
    with the ``previous`` entry a rollback restores."""
    version_id = optional_string(fields.get("version_id"), join(where, "version_id"))
    split = []
    for index, item in enumerate(array(fields.get("split", []), join(where, "split"))):
        at = f"{where}.split[{index}]"
        share = object_fields(item, at, ("version_id", "percentage"), optional=())
        percentage = count(share["percentage"], join(at, "percentage"))
        if percentage > 100:
            raise Invalid(join(at, "percentage"), f"expected at most 100, got {percentage}")
        split.append(VersionShare(string(share["version_id"], join(at, "version_id")), percentage))
    previous = fields.get("previous")
    pending = fields.get("pending_version")
    if split:
        if len(split) > 2 or sum(share.percentage for share in split) != 100:
            raise Invalid(join(where, "split"), "expected one or two versions whose percentages sum to 100")
        if split[0].version_id != version_id:
            raise Invalid(join(where, "split"), "expected this entry's version_id first")
        if previous is None:
            raise Invalid(join(where, "previous"), "missing (a split records what ran before it)")
    elif previous is not None:
        raise Invalid(join(where, "previous"), "unexpected without a split")
    if isinstance(pending, dict) and "version_id" not in pending:
        raise Invalid(join(where, "pending_version.version_id"), "missing")
    return {
        "version_id": version_id,
        "split": tuple(split),
        "previous": None if previous is None else _parse_script(name, previous, join(where, "previous"), nested=True),
        "pending": None if pending is None else _parse_script(name, pending, join(where, "pending_version"),
                                                              nested=True),
    }


def _parse_binding(doc: object, where: str) -> DeployedBinding:
    raw_type = object_fields(doc, where).get("type")
    kind = BINDING_KINDS.get(string(raw_type, join(where, "type")))
    if kind is None:
        raise Invalid(join(where, "type"), f"unknown binding type {raw_type!r} (written by a newer deployer? "
                                           "'deployer schema' lists the types this one knows)")
    return kind.from_state(object_fields(doc, where), where)


def _parse_resources(doc: Mapping[str, Any], where: str) -> tuple[ResourceState, ...]:
    parsed = []
    for kind in RESOURCE_KINDS.values():
        at = join(where, kind.section)
        section = object_fields(doc.get(kind.section, {}), at)
        for key in sorted(section):
            fields = object_fields(section[key], join(at, key), (kind.name_key, "id"))
            parsed.append(ResourceState(kind.type, key, string(fields[kind.name_key], join(at, f"{key}.{kind.name_key}")),
                                        string(fields["id"], join(at, f"{key}.id"))))
    return tuple(sorted(parsed, key=lambda r: (r.type, r.key)))


def _resource_section_names(required: bool) -> tuple[str, ...]:
    return tuple(kind.section for kind in RESOURCE_KINDS.values() if kind.always_in_state is required)


def _version(value: object, where: str) -> None:
    if count(value, where) != STATE_FORMAT_VERSION:
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
    resources: tuple[ResourceState, ...]
    forgotten: tuple[tuple[str, str], ...]  # (type, key) of owned resources dropped from the state
    account_id: str | None
    zone_id: str | None
    project: str | None = None
    attachments: tuple[Attachment, ...] = ()
    removed_attachments: tuple[tuple[str, str], ...] = ()  # (type, name)


REMOVED_ATTACHMENTS = "removed_attachments"


def parse_record(doc: object, where: str) -> Record:
    forgotten_keys = {kind.journal_forgotten_key: kind.type for kind in RESOURCE_KINDS.values()}
    fields = object_fields(doc, where, ("format_version", "lineage", "base_serial", "serial"),
                           optional=("scripts", "removed_scripts", "account_id", "zone_id", "project", *forgotten_keys,
                                     ATTACHMENTS, REMOVED_ATTACHMENTS,
                                     *_resource_section_names(True), *_resource_section_names(False)))
    _version(fields["format_version"], join(where, "format_version"))
    return Record(
        lineage=string(fields["lineage"], join(where, "lineage")),
        base_serial=count(fields["base_serial"], join(where, "base_serial")),
        serial=count(fields["serial"], join(where, "serial")),
        scripts=_parse_scripts(fields.get("scripts", {}), join(where, "scripts")),
        removed_scripts=_names(fields.get("removed_scripts", []), join(where, "removed_scripts")),
        resources=_parse_resources(fields, where),
        forgotten=tuple((kind, key) for field, kind in forgotten_keys.items()
                        for key in _names(fields.get(field, []), join(where, field))),
        account_id=optional_string(fields.get("account_id"), join(where, "account_id")),
        zone_id=optional_string(fields.get("zone_id"), join(where, "zone_id")),
        project=optional_string(fields.get("project"), join(where, "project")),
        attachments=_parse_attachments(fields.get(ATTACHMENTS, {}), join(where, ATTACHMENTS)),
        removed_attachments=tuple(
            (kind, name) for kind, names in object_fields(fields.get(REMOVED_ATTACHMENTS, {}),
                                                          join(where, REMOVED_ATTACHMENTS)).items()
            for name in _names(names, join(where, f"{REMOVED_ATTACHMENTS}.{kind}"))),
    )


def _names(value: object, where: str) -> tuple[str, ...]:
    return tuple(string(name, f"{where}[{index}]") for index, name in enumerate(array(value, where)))


# --- the working copy ---------------------------------------------------------------------


_Item = TypeVar("_Item")
_Key = TypeVar("_Key", str, tuple[str, str])


class _ByName(Generic[_Key, _Item]):
    """Items by name, kept in name order as they change, so that a record costs O(log N) plus a
    memmove and a snapshot one C-level pass, never a re-sort of thousands of scripts."""

    def __init__(self, items: Iterable[tuple[_Key, _Item]]) -> None:
        self._items: dict[_Key, _Item] = dict(items)
        self._names: list[_Key] = sorted(self._items)

    def put(self, name: _Key, item: _Item) -> None:
        if name not in self._items:
            bisect.insort(self._names, name)
        self._items[name] = item

    def drop(self, name: _Key) -> None:
        if self._items.pop(name, None) is not None:
            del self._names[bisect.bisect_left(self._names, name)]

    def values(self) -> tuple[_Item, ...]:
        return tuple(map(self._items.__getitem__, self._names))



class Changes(TypedDict, total=False):
    """What one ``record()`` call saves (every state backend takes these keywords)."""

    scripts: Iterable[ScriptState]
    removed_scripts: Iterable[str]
    resources: Iterable[ResourceState]
    forgotten: Iterable[tuple[str, str]]  # (type, key) of owned resources dropped from the state
    account_id: str | None  # None: unchanged
    zone_id: str | None
    project: str | None  # the identity of the project writing the state
    attachments: Iterable[Attachment]  # attached (or changed) as recorded
    removed_attachments: Iterable[tuple[str, str]]  # (type, name) no longer attached


def make_record(*, lineage: str, base_serial: int, serial: int, **changes: Unpack[Changes]
                ) -> tuple[dict[str, Any], Record]:
    """One record as its JSON document and parsed back exactly as a later load would read it,
    so memory and storage agree. ValueError for a record that cannot be stored (a bug)."""
    scripts = tuple(changes.get("scripts", ()))
    removed_scripts = tuple(changes.get("removed_scripts", ()))
    resources = tuple(changes.get("resources", ()))
    forgotten = tuple(changes.get("forgotten", ()))
    attachments = tuple(changes.get("attachments", ()))
    removed_attachments = tuple(changes.get("removed_attachments", ()))
    both = sorted({s.name for s in scripts} & set(removed_scripts))
    both += sorted(f"{type_} {key}" for type_, key in {(r.type, r.key) for r in resources} & set(forgotten))
    both += sorted(f"{type_} {name}" for type_, name in {(a.type, a.name) for a in attachments}
                   & set(removed_attachments))
    if both:
        raise ValueError(f"cannot record {both} as both changed and removed")
    doc: dict[str, Any] = {"format_version": STATE_FORMAT_VERSION, "lineage": lineage,
                           "base_serial": base_serial, "serial": serial}
    optional: dict[str, Any] = {
        "scripts": {script.name: script_to_json(script) for script in scripts},
        "removed_scripts": list(removed_scripts),
        **_resource_sections(resources, everywhere=False),
        **{kind.journal_forgotten_key: [key for type_, key in forgotten if type_ == kind.type]
           for kind in RESOURCE_KINDS.values()},
        "account_id": changes.get("account_id"),
        "zone_id": changes.get("zone_id"),
        "project": changes.get("project"),
        ATTACHMENTS: _attachments_to_json(attachments),
        REMOVED_ATTACHMENTS: {type_: sorted(name for t, name in removed_attachments if t == type_)
                              for type_ in sorted({t for t, _ in removed_attachments})},
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
        self._resources = _ByName(((r.type, r.key), r) for r in state.resources)
        self._attachments = _ByName(((a.type, a.name), a) for a in state.attachments)
        self._cached = state

    def apply(self, record: Record) -> None:
        for script in record.scripts:
            self._scripts.put(script.name, script)
        for name in record.removed_scripts:
            self._scripts.drop(name)
        for resource in record.resources:
            self._resources.put((resource.type, resource.key), resource)
        for type_key in record.forgotten:
            self._resources.drop(type_key)
        for attachment in record.attachments:
            self._attachments.put((attachment.type, attachment.name), attachment)
        for type_name in record.removed_attachments:
            self._attachments.drop(type_name)
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
                resources=self._resources.values(),
                project=self._project,
                attachments=self._attachments.values(),
            )
        return self._cached
