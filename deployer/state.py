"""The state file: what was deployed through one manifest, the journal of deploys since the last
save, and the per-state-file lock that names its holder. Only this module writes state.

Files beside ``state.json``: ``state.json.journal`` (one JSON line per record), ``state.json.backup``
(the previous copy) and ``state.json.lock`` (flock'd; holds the holder as JSON while taken).
"""
from __future__ import annotations

import bisect
import contextlib
import fcntl
import getpass
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from deployer.errors import LockHeldError, StateError
from deployer.models import BindingType, DeployedBinding, NamespaceState, ScriptState, State

STATE_FORMAT_VERSION = 1

_LOCK_POLL_SECONDS = 0.1
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CONFLICT_MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)


def default_state_path(manifest_path: Path, environment: str | None) -> Path:
    """``<manifest dir>/.deployer/state.json``, or ``state.<environment>.json`` with ``--env``."""
    name = "state.json"
    if environment is not None:
        if not _ENVIRONMENT_NAME.fullmatch(environment):
            raise StateError(
                f"--env {environment!r} cannot name a state file: use letters, digits, '_', '-' or '.'"
            )
        name = f"state.{environment}.json"
    return manifest_path.parent / ".deployer" / name


# --- the on-disk document -----------------------------------------------------------------


def state_to_json(state: State) -> dict[str, Any]:
    """The state file's document. A secret_text binding is written without any text."""
    return {
        "format_version": STATE_FORMAT_VERSION,
        "lineage": state.lineage,
        "serial": state.serial,
        "account_id": state.account_id,
        "zone_id": state.zone_id,
        "kv_namespaces": {ns.key: {"title": ns.title, "id": ns.id} for ns in state.kv_namespaces},
        "scripts": {script.name: _script_to_json(script) for script in state.scripts},
    }


def state_from_json(doc: object, source: str) -> State:
    """Validate every field of a state document; StateError names ``source`` and the field."""
    _check_format_version(doc, source, "state")
    try:
        return _parse_state(doc)
    except _Invalid as exc:
        raise StateError(f"{source}: {exc}") from None


def _script_to_json(script: ScriptState) -> dict[str, Any]:
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


class _Invalid(Exception):
    """A field of a state document or journal record is wrong."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def _check_format_version(doc: object, source: str, kind: str) -> None:
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > STATE_FORMAT_VERSION:
        raise StateError(
            f"{source} was written by a newer deployer ({kind} format_version {version}; this one "
            f"reads {STATE_FORMAT_VERSION}): upgrade deployer to use it"
        )


def _parse_state(doc: object) -> State:
    fields = _object(doc, "", ("format_version", "lineage", "serial", "account_id", "zone_id",
                               "kv_namespaces", "scripts"))
    _version(fields["format_version"], "format_version")
    return State(
        lineage=_string(fields["lineage"], "lineage", empty=True),
        serial=_count(fields["serial"], "serial"),
        account_id=_optional_string(fields["account_id"], "account_id"),
        zone_id=_optional_string(fields["zone_id"], "zone_id"),
        scripts=_parse_scripts(fields["scripts"], "scripts"),
        kv_namespaces=_parse_namespaces(fields["kv_namespaces"], "kv_namespaces"),
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
        raise _Invalid(_join(where, "type"), f"unknown binding type {raw_type!r} (expected {known})") from None
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
                raise _Invalid(_join(where, "text"), "a secret_text binding must not store its value")
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
        raise _Invalid(where, f"expected an object, got {_json_kind(value)}")
    for key in required:
        if key not in value:
            raise _Invalid(_join(where, key), "missing")
    if optional is not None or required:
        allowed = set(required) | set(optional or ())
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _Invalid(_join(where, unknown[0]), "unknown field")
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(where, f"expected an array, got {_json_kind(value)}")
    return value


def _string(value: object, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid(where, f"expected a string, got {_json_kind(value)}")
    if not value and not empty:
        raise _Invalid(where, "must not be empty")
    return value


def _optional_string(value: object, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid(where, f"expected a whole number >= 0, got {_json_kind(value)}")
    return value


def _version(value: object, where: str) -> None:
    if _count(value, where) != STATE_FORMAT_VERSION:
        raise _Invalid(where, f"expected {STATE_FORMAT_VERSION}, got {value!r}")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {key!r}")
        doc[key] = value
    return doc


# --- journal records ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
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


def _parse_record(doc: object, where: str) -> _Record:
    fields = _object(doc, where, ("format_version", "lineage", "base_serial", "serial"),
                     optional=("scripts", "removed_scripts", "kv_namespaces", "forgotten_namespaces",
                               "account_id", "zone_id"))
    _version(fields["format_version"], _join(where, "format_version"))
    return _Record(
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
    )


def _names(value: object, where: str) -> tuple[str, ...]:
    return tuple(_string(name, f"{where}[{index}]") for index, name in enumerate(_array(value, where)))


# --- the store ----------------------------------------------------------------------------


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


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class StateStore:
    """Reads and writes one state file.

    ``load()`` only reads. Writing needs ``with store.lock(command=...)``: each ``record()`` then
    appends one fsync'd line to the journal (an apply of N scripts writes O(N) bytes), and
    ``commit()`` folds the journal into ``state.json`` atomically, keeping ``state.json.backup``.
    A journal left by a killed run is replayed by ``load()`` and folded when the next lock is
    taken. Leaving the lock does not commit: call ``commit()`` at the end of a successful run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.RLock()  # the executor may record from several threads
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self._journal_base: int | None = None  # base_serial of the journal on disk, if any
        self._journal_broken = False
        self._loaded = False
        self._disk_lineage = ""
        self._disk_serial = 0
        # The in-memory state, kept as parts so that a record does not rebuild it all.
        self._lineage = ""
        self._serial = 0
        self._account_id: str | None = None
        self._zone_id: str | None = None
        self._scripts: _ByName[ScriptState] = _ByName(())
        self._namespaces: _ByName[NamespaceState] = _ByName(())
        self._cached: State | None = State()

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def state(self) -> State:
        """The current state: the last ``load()`` plus every ``record()`` since."""
        with self._mutex:
            if not self._loaded:
                return self.load()
            return self._snapshot()

    # -- reading --

    def load(self) -> State:
        """Read state.json (a missing file is an empty State) and replay the journal over it.

        Never writes. Raises StateError naming the file and what is wrong.
        """
        with self._mutex:
            # The journal is read first: a commit running meanwhile replaces state.json before
            # it deletes the journal, so records are either still here or already folded.
            self._loaded = False  # until the whole read succeeds: no half-replayed state
            records = self._read_journal()
            base = self._read_state_file()
            self._reset(base)
            self._disk_lineage, self._disk_serial = base.lineage, base.serial
            self._journal_base = records[0].base_serial if records else None
            self._replay(records)
            self._loaded = True
            return self._snapshot()

    def _read_state_file(self) -> State:
        shown = _shown(self.path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(f"cannot read {shown}: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys)
        except ValueError as exc:
            if _CONFLICT_MARKER.search(raw):
                raise StateError(
                    f"{shown} holds unresolved git merge conflict markers (<<<<<<< ... >>>>>>>): two "
                    f"applies recorded different deploys; keep the side with the higher serial, or "
                    f"restore {_shown(self.backup_path)}, and run plan to check"
                ) from None
            raise StateError(f"{shown} is not valid JSON ({exc}){self._restore_hint()}") from None
        _check_format_version(doc, shown, "state")
        try:
            return _parse_state(doc)
        except _Invalid as exc:
            raise StateError(f"{shown}: {exc}{self._restore_hint()}") from None

    def _restore_hint(self) -> str:
        backup = _shown(self.backup_path)
        if self.backup_path.is_file():
            return f"; fix it by hand or restore the previous copy from {backup}"
        return f"; fix it by hand (there is no {backup} to restore from)"

    def _read_journal(self) -> list[_Record]:
        journal = _shown(self.journal_path)
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"cannot read {journal}: {exc.strerror or exc}") from exc
        *lines, torn_tail = raw.split(b"\n")  # a last line without its newline never finished
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        records = []
        for index, (number, line) in enumerate(numbered):
            try:
                doc = json.loads(line.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys)
            except ValueError as exc:
                if index == len(numbered) - 1 and not torn_tail.strip():
                    break  # the last line was cut off by a crash: that record never completed
                raise StateError(
                    f"{journal}: line {number} is not a journal record ({exc}); repair it, or move "
                    f"the journal away to drop the deploys it records (the next apply redoes them)"
                ) from None
            _check_format_version(doc, journal, "journal")
            try:
                records.append(_parse_record(doc, ""))
            except _Invalid as exc:
                raise StateError(f"{journal}: line {number}: {exc}") from None
        return records

    def _replay(self, records: list[_Record]) -> None:
        if not records:
            return
        journal, state_file = _shown(self.journal_path), _shown(self.path)
        first = records[0]
        if self._lineage and first.lineage != self._lineage:
            raise StateError(
                f"{journal} belongs to another state (lineage {first.lineage}, but {state_file} has "
                f"lineage {self._lineage}); move the journal away if {state_file} is the one to keep"
            )
        if not self._lineage and first.base_serial != 0:
            raise StateError(
                f"{journal} continues serial {first.base_serial} of a state file {state_file} that "
                f"is missing; restore {state_file} (or its .backup) before running deployer"
            )
        if first.base_serial > self._serial:
            raise StateError(
                f"{journal} continues serial {first.base_serial}, newer than {state_file} (serial "
                f"{self._serial}); was {state_file} restored from a backup? Restore the newer copy, "
                f"or move the journal away to drop the deploys it records"
            )
        expected = first.base_serial + 1
        for record in records:
            if (record.lineage, record.base_serial, record.serial) != (first.lineage, first.base_serial,
                                                                       expected):
                raise StateError(
                    f"{journal}: record with serial {record.serial} (lineage {record.lineage}, base "
                    f"{record.base_serial}) does not follow serial {expected - 1} of lineage "
                    f"{first.lineage}; the journal was edited or mixed up with another one"
                )
            expected += 1
            if record.serial > self._serial:  # records up to state.json's serial are folded already
                self._lineage = record.lineage
                self._apply(record)

    # -- writing --

    def record(
        self,
        *,
        scripts: Iterable[ScriptState] = (),
        removed_scripts: Iterable[str] = (),
        namespaces: Iterable[NamespaceState] = (),
        forgotten_namespaces: Iterable[str] = (),
        account_id: str | None = None,
        zone_id: str | None = None,
    ) -> State:
        """Record what one successful request changed; durable (fsync'd) before it returns.

        One call is one journal line and bumps the serial by one. ``account_id``/``zone_id``
        of None leave them unchanged. Needs the lock (a RuntimeError otherwise: that is a bug).
        """
        with self._mutex:
            self._require_lock("record")
            if self._journal_broken:
                raise StateError(f"an earlier write to {_shown(self.journal_path)} failed; "
                                 f"nothing more is recorded in this run")
            scripts, removed_scripts = tuple(scripts), tuple(removed_scripts)
            namespaces, forgotten_namespaces = tuple(namespaces), tuple(forgotten_namespaces)
            both = {s.name for s in scripts} & set(removed_scripts)
            both |= {ns.key for ns in namespaces} & set(forgotten_namespaces)
            if both:
                raise ValueError(f"cannot record {sorted(both)} as both changed and removed")
            lineage = self._lineage or str(uuid.uuid4())  # a state's lineage starts at its first write
            base = self._journal_base if self._journal_base is not None else self._serial
            doc: dict[str, Any] = {"format_version": STATE_FORMAT_VERSION, "lineage": lineage,
                                   "base_serial": base, "serial": self._serial + 1}
            optional: dict[str, Any] = {
                "scripts": {script.name: _script_to_json(script) for script in scripts},
                "removed_scripts": list(removed_scripts),
                "kv_namespaces": {ns.key: {"title": ns.title, "id": ns.id} for ns in namespaces},
                "forgotten_namespaces": list(forgotten_namespaces),
                "account_id": account_id,
                "zone_id": zone_id,
            }
            doc.update((key, value) for key, value in optional.items() if value)
            try:
                # Parsed back exactly as a later load() would, so memory and disk agree.
                parsed = _parse_record(doc, "")
            except _Invalid as exc:
                raise ValueError(f"cannot record an invalid state: {exc}") from None
            line = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
            self._append_to_journal(line.encode("utf-8"))
            self._journal_base = base
            self._lineage = lineage
            self._apply(parsed)
            return self._snapshot()

    def commit(self) -> State:
        """Fold the journal into state.json atomically and delete the journal; the serial stays.

        temp file + fsync, previous state.json copied to state.json.backup, os.replace, directory
        fsync. Needs the lock.
        """
        with self._mutex:
            self._require_lock("commit")
            state = self._snapshot()
            if (state.lineage, state.serial) != (self._disk_lineage, self._disk_serial):
                self._write_state_file(state)
            self._close_journal()
            try:
                self.journal_path.unlink(missing_ok=True)
            except OSError as exc:
                raise StateError(f"cannot remove {_shown(self.journal_path)}: {exc.strerror or exc}") from exc
            self._journal_base = None
            self._journal_broken = False
            return state

    def _append_to_journal(self, line: bytes) -> None:
        journal = self.journal_path
        created = False
        try:
            if self._journal_fd is None:
                created = not journal.exists()
                self._journal_fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                           0o644)
        except OSError as exc:
            raise StateError(f"cannot open {_shown(journal)}: {exc.strerror or exc}") from exc
        fd = self._journal_fd
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
            if created:
                _fsync_directory(journal.parent)  # so the new journal's name survives a crash
        except OSError as exc:
            try:
                os.ftruncate(fd, start)  # take back a partial line so later lines stay readable
            except OSError:
                self._journal_broken = True
            raise StateError(f"cannot write {_shown(journal)}: {exc.strerror or exc}") from exc

    def _write_state_file(self, state: State) -> None:
        text = json.dumps(state_to_json(state), indent=2, sort_keys=True) + "\n"
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with _temporary_file(directory, self.path.name) as (temp, handle):
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
                if self.path.exists():
                    self._copy_to_backup()
                os.replace(temp, self.path)
            _fsync_directory(directory)
        except OSError as exc:
            raise StateError(f"cannot write {_shown(self.path)}: {exc.strerror or exc}") from exc
        self._disk_lineage, self._disk_serial = state.lineage, state.serial

    def _copy_to_backup(self) -> None:
        with _temporary_file(self.path.parent, self.backup_path.name) as (temp, handle):
            with open(self.path, "rb") as source:
                shutil.copyfileobj(source, handle)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temp, self.backup_path)

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            fd, self._journal_fd = self._journal_fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- in-memory state --

    def _reset(self, state: State) -> None:
        self._lineage, self._serial = state.lineage, state.serial
        self._account_id, self._zone_id = state.account_id, state.zone_id
        self._scripts = _ByName((script.name, script) for script in state.scripts)
        self._namespaces = _ByName((ns.key, ns) for ns in state.kv_namespaces)
        self._cached = state

    def _apply(self, record: _Record) -> None:
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
        self._serial = record.serial
        self._cached = None

    def _snapshot(self) -> State:
        if self._cached is None:
            self._cached = State(
                lineage=self._lineage,
                serial=self._serial,
                account_id=self._account_id,
                zone_id=self._zone_id,
                scripts=self._scripts.values(),
                kv_namespaces=self._namespaces.values(),
            )
        return self._cached

    # -- the lock --

    @contextlib.contextmanager
    def lock(
        self, *, command: str, timeout: float = 0.0, warn: Callable[[str], None] = _warn_on_stderr
    ) -> Iterator[None]:
        """Hold the state file's lock for one session, then (re)load the state.

        Fails at once with LockHeldError naming the holder, or after polling for ``timeout``
        seconds. A lock whose holder died is taken over with ``warn(...)``. A journal left by a
        killed run is folded into state.json first. The lock file is never deleted: on leaving
        (even by an exception) it is emptied and unlocked.
        """
        with self._mutex:
            if self._lock_fd is not None:
                raise RuntimeError("this StateStore already holds its lock")
            fd = self._acquire(command, timeout, warn)
            self._lock_fd = fd
        try:
            self.load()
            if self.journal_path.exists():
                self.commit()
            yield
        finally:
            with self._mutex:
                self._close_journal()
                self._lock_fd = None
                _release(fd)

    def _require_lock(self, what: str) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"StateStore.{what}() called without the lock: use 'with store.lock(...)'")

    def _acquire(self, command: str, timeout: float, warn: Callable[[str], None]) -> int:
        lock_file = _shown(self.lock_path)
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot open the lock file {lock_file}: {exc.strerror or exc}") from exc
        try:
            deadline = time.monotonic() + max(timeout, 0.0)
            while not _try_flock(fd):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockHeldError(self._held_message(os.pread(fd, 65536, 0), timeout))
                time.sleep(min(_LOCK_POLL_SECONDS, remaining))
            # We hold the flock. A holder record still in the file means its writer died before
            # releasing (release empties the file first); the kernel dropped its flock for us.
            previous = os.pread(fd, 65536, 0)
            if previous.strip():
                warn(_stale_message(previous, lock_file))
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_record(command), 0)
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot take the lock {lock_file}: {exc.strerror or exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _held_message(self, raw: bytes, timeout: float) -> str:
        holder = _parse_holder(raw)
        if holder is None:
            who = "another process (its holder record is empty or unreadable)"
        else:
            who = (f"pid {holder['pid']} on host {holder['host']} (user {holder['user']}) since "
                   f"{holder['started']}, running {holder['command']!r}")
        state = _shown(self.path)
        if timeout > 0:
            return (f"state {state} is still locked after {timeout:g} s by {who}; wait for it to "
                    f"finish or pass a longer --lock-timeout SECONDS")
        return f"state {state} is locked by {who}; wait for it to finish or pass --lock-timeout SECONDS"


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release(fd: int) -> None:
    # Never unlink the lock file: another process may already be waiting on this inode, and an
    # unlink + re-create would let two holders in. Emptying it marks a clean release.
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # if this fails, the next run merely warns about a stale lock
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder_record(command: str) -> bytes:
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (some containers)
        user = str(os.getuid())
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": user,
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
    }
    return (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8")


def _parse_holder(raw: bytes) -> dict[str, Any] | None:
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    keys = ("pid", "host", "user", "started", "command")
    if not isinstance(holder, dict) or any(key not in holder for key in keys):
        return None
    return holder


def _stale_message(raw: bytes, lock_file: str) -> str:
    holder = _parse_holder(raw)
    if holder is None:
        return f"took over a stale lock {lock_file} with an unreadable holder record, whose process is gone"
    return (f"took over a stale lock left by pid {holder['pid']} on host {holder['host']} "
            f"(started {holder['started']}), whose process is gone")


@contextlib.contextmanager
def _temporary_file(directory: Path, name: str) -> Iterator[tuple[str, Any]]:
    """A temp file beside ``name`` (same directory, so os.replace is atomic); removed unless
    the caller moved it into place."""
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    handle = os.fdopen(fd, "wb")
    try:
        yield temp, handle
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, as users typed it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)
