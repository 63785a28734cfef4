"""The state file: what was deployed through one manifest, the journal of deploys since the last
save, and its lock (``deployer.state.lock``). Only this module writes a state file.

Files beside ``state.json``: ``state.json.journal`` (one JSON line per record), ``state.json.backup``
(the previous copy) and ``state.json.lock`` (flock'd; holds the holder as JSON while taken).
The document and record formats live in ``deployer.state.document``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Unpack

from deployer.errors import StateError
from deployer.files import fsync_directory, open_regular, parse_json, read_regular, refuse_odd_file, write_atomically
from deployer.state.lock import FileLock, shown_path, warn_on_stderr
from deployer.models import State
from deployer.state.fields import Invalid
from deployer.state.document import (
    Changes,
    STATE_FORMAT_VERSION,
    Record,
    WorkingState,
    check_format_version,
    make_record,
    parse_record,
    parse_state,
    refuse_duplicate_keys,
    state_from_json,
    state_to_json,
)

__all__ = ["STATE_FORMAT_VERSION", "StateStore", "default_state_path", "state_from_json", "state_to_json"]

_ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CONFLICT_MARKER = re.compile(rb"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)
# 5,000 scripts make a state of about 5 MB: far above any real one, far below the memory limit.
MAX_STATE_BYTES = 64 * 1024 * 1024


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
        self._lock = FileLock(self.lock_path, _shown(path))
        self._journal_fd: int | None = None
        self._journal_base: int | None = None  # base_serial of the journal on disk, if any
        self._journal_broken = False
        self._loaded = False
        self._disk_lineage = ""
        self._disk_serial = 0
        self._work = WorkingState()  # the in-memory state

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
    def description(self) -> str:
        return str(self.path)

    @property
    def state(self) -> State:
        """The current state: the last ``load()`` plus every ``record()`` since."""
        with self._mutex:
            if not self._loaded:
                return self.load()
            return self._work.snapshot()

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
            self._work.reset(base)
            self._disk_lineage, self._disk_serial = base.lineage, base.serial
            self._journal_base = records[0].base_serial if records else None
            self._replay(records)
            self._loaded = True
            return self._work.snapshot()

    def _read_state_file(self) -> State:
        shown = _shown(self.path)
        raw = read_regular(self.path, shown, StateError, max_bytes=MAX_STATE_BYTES)
        if raw is None:
            return State()
        try:
            doc = parse_json(raw, pairs_hook=refuse_duplicate_keys)
        except ValueError as exc:
            if _CONFLICT_MARKER.search(raw):
                raise StateError(
                    f"{shown} holds unresolved git merge conflict markers (<<<<<<< ... >>>>>>>): two "
                    f"applies recorded different deploys; keep the side with the higher serial, or "
                    f"restore {_shown(self.backup_path)}, and run plan to check"
                ) from None
            raise StateError(f"{shown} is not valid JSON ({exc}){self._restore_hint()}") from None
        check_format_version(doc, shown, "state")
        try:
            return parse_state(doc)
        except Invalid as exc:
            raise StateError(f"{shown}: {exc}{self._restore_hint()}") from None

    def _restore_hint(self) -> str:
        backup = _shown(self.backup_path)
        if self.backup_path.is_file():
            return f"; fix it by hand or restore the previous copy from {backup}"
        return f"; fix it by hand (there is no {backup} to restore from)"

    def _read_journal(self) -> list[Record]:
        journal = _shown(self.journal_path)
        raw = read_regular(self.journal_path, journal, StateError, max_bytes=MAX_STATE_BYTES)
        if raw is None:
            return []
        *lines, torn_tail = raw.split(b"\n")  # a last line without its newline never finished
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        records = []
        for index, (number, line) in enumerate(numbered):
            try:
                doc = parse_json(line, pairs_hook=refuse_duplicate_keys)
            except ValueError as exc:
                if index == len(numbered) - 1 and not torn_tail.strip():
                    break  # the last line was cut off by a crash: that record never completed
                raise StateError(
                    f"{journal}: line {number} is not a journal record ({exc}); repair it, or move "
                    f"the journal away to drop the deploys it records (the next apply redoes them)"
                ) from None
            check_format_version(doc, journal, "journal")
            try:
                records.append(parse_record(doc, ""))
            except Invalid as exc:
                raise StateError(f"{journal}: line {number}: {exc}") from None
        return records

    def _replay(self, records: list[Record]) -> None:
        if not records:
            return
        journal, state_file = _shown(self.journal_path), _shown(self.path)
        first = records[0]
        lineage, serial = self._work.lineage, self._work.serial
        if lineage and first.lineage != lineage:
            raise StateError(
                f"{journal} belongs to another state (lineage {first.lineage}, but {state_file} has "
                f"lineage {lineage}); move the journal away if {state_file} is the one to keep"
            )
        if not lineage and first.base_serial != 0:
            raise StateError(
                f"{journal} continues serial {first.base_serial} of a state file {state_file} that "
                f"is missing; restore {state_file} (or its .backup) before running deployer"
            )
        if first.base_serial > serial:
            raise StateError(
                f"{journal} continues serial {first.base_serial}, newer than {state_file} (serial "
                f"{serial}); was {state_file} restored from a backup? Restore the newer copy, "
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
            if record.serial > serial:  # records up to state.json's serial are folded already
                self._work.apply(record)

    # -- writing --

    def record(self, **changes: Unpack[Changes]) -> State:
        """Record what one successful request changed; durable (fsync'd) before it returns.

        One call is one journal line and bumps the serial by one. ``account_id``/``zone_id``/``project``
        of None leave them unchanged. Needs the lock (a RuntimeError otherwise: that is a bug).
        """
        with self._mutex:
            self._require_lock("record")
            if self._journal_broken:
                raise StateError(f"an earlier write to {_shown(self.journal_path)} failed; "
                                 f"nothing more is recorded in this run")
            lineage = self._work.lineage or str(uuid.uuid4())  # a state's lineage starts at its first write
            base = self._journal_base if self._journal_base is not None else self._work.serial
            doc, parsed = make_record(
                lineage=lineage, base_serial=base, serial=self._work.serial + 1,
                **changes,
            )
            line = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
            self._append_to_journal(line.encode("utf-8"))
            self._journal_base = base
            self._work.apply(parsed)
            return self._work.snapshot()

    def commit(self) -> State:
        """Fold the journal into state.json atomically and delete the journal; the serial stays.

        temp file + fsync, previous state.json copied to state.json.backup, os.replace, directory
        fsync. Needs the lock.
        """
        with self._mutex:
            self._require_lock("commit")
            state = self._work.snapshot()
            if (state.lineage, state.serial) != (self._disk_lineage, self._disk_serial):
                self._write_state_file(state)
            self._drop_journal()
            return state

    def replace(self, state: State, *, note: str = "") -> State:
        """Write ``state`` whole (lineage and serial as given) and drop the journal: what
        ``deployer state pull`` saves. Same atomic write as commit(). Needs the lock."""
        with self._mutex:
            self._require_lock("replace")
            self._write_state_file(state)
            self._drop_journal()
            self._work.reset(state)
            return state

    def _drop_journal(self) -> None:
        """Close and delete the journal once state.json holds everything it recorded."""
        self._close_journal()
        try:
            self.journal_path.unlink(missing_ok=True)
        except OSError as exc:
            raise StateError(f"cannot remove {_shown(self.journal_path)}: {exc.strerror or exc}") from exc
        self._journal_base = None
        self._journal_broken = False

    def _append_to_journal(self, line: bytes) -> None:
        journal = self.journal_path
        created = False
        if self._journal_fd is None:
            created = not refuse_odd_file(journal, _shown(journal), StateError)
            self._journal_fd = open_regular(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _shown(journal),
                                            StateError)
        assert self._journal_fd is not None  # O_CREAT: a missing file was created
        fd = self._journal_fd
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            # fdatasync flushes the line and the file's new size (what a reader needs) without the
            # timestamps: ~0.1 ms here against ~5 ms for fsync, paid once per recorded success.
            _sync_data(fd)
            if created:
                fsync_directory(journal.parent)  # so the new journal's name survives a crash
        except OSError as exc:
            try:
                os.ftruncate(fd, start)  # take back a partial line so later lines stay readable
            except OSError:
                self._journal_broken = True
            raise StateError(f"cannot write {_shown(journal)}: {exc.strerror or exc}") from exc

    def _write_state_file(self, state: State) -> None:
        text = json.dumps(state_to_json(state), indent=2, sort_keys=True) + "\n"
        write_atomically(self.path, text.encode("utf-8"), _shown(self.path), StateError,
                         backup=self.backup_path, backup_shown=_shown(self.backup_path))
        self._disk_lineage, self._disk_serial = state.lineage, state.serial

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            fd, self._journal_fd = self._journal_fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the lock --

    @contextlib.contextmanager
    def lock(
        self, *, command: str, timeout: float = 0.0, warn: Callable[[str], None] = warn_on_stderr
    ) -> Iterator[None]:
        """Hold the state file's lock for one session, then (re)load the state.

        Fails at once with LockHeldError naming the holder, or after polling for ``timeout``
        seconds. A lock whose holder died is taken over with ``warn(...)``. A journal left by a
        killed run is folded into state.json first. The lock file is never deleted: on leaving
        (even by an exception) it is emptied and unlocked.
        """
        with self._mutex:
            if self._lock.held:
                raise RuntimeError("this StateStore already holds its lock")
            self._lock.acquire(command, timeout, warn)
        try:
            # Refuse a symlink or device in the place of any file this run may write, before
            # the run changes anything in Cloudflare that it then could not record.
            for path in (self.path, self.journal_path, self.backup_path):
                refuse_odd_file(path, _shown(path), StateError)
            self.load()
            if self.journal_path.exists():
                self.commit()
            yield
        finally:
            with self._mutex:
                self._close_journal()
                self._lock.release()

    def _require_lock(self, what: str) -> None:
        if not self._lock.held:
            raise RuntimeError(f"StateStore.{what}() called without the lock: use 'with store.lock(...)'")


def _shown(path: Path) -> str:
    return shown_path(path)


def _sync_data(fd: int) -> None:
    # macOS has no fdatasync; fsync is the durable fallback.
    getattr(os, "fdatasync", os.fsync)(fd)
