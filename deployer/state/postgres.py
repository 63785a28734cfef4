"""The PostgreSQL state backend: states by name in one schema (default ``deployer``), one small
journal row per record, a history row per saved version, and a session-level advisory lock per
name whose holder is kept in a table beside it. Only this module talks to PostgreSQL.

Tables (created on the first write, never by a read):
  states  (name, lineage, serial, base_serial, written_*)  the head: compare-and-swap on serial
  history (name, serial, lineage, document, saved_at, ...)  every saved whole version; append-only
  journal (name, serial, record, saved_at, ...)             one row per record, kept as the audit
  locks   (name, backend_pid, pid, host, os_user, ...)      who holds the advisory lock

The current state is the history row at ``base_serial`` plus the journal rows after it. A record
is one transaction (update the head's serial where it still is what we saw, insert one journal
row), so an apply of N scripts writes O(N) bytes; ``commit()`` writes one history row.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, Unpack

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from deployer.state.backend import PgTarget
from deployer.errors import LockHeldError, StateError
from deployer.state.lock import LOCK_POLL_SECONDS, current_holder, current_user, held_message, warn_on_stderr
from deployer.models import State
from deployer.state.fields import Invalid
from deployer.redact import scrub
from deployer.state.document import (
    Changes,
    WorkingState,
    make_record,
    parse_record,
    state_from_json,
    state_to_json,
)

TABLES = ("states", "history", "journal", "locks")
_HOLDER_PATIENCE_SECONDS = 3.0

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.states (
    name         text PRIMARY KEY,
    lineage      text NOT NULL,
    serial       bigint NOT NULL,
    base_serial  bigint NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    written_host text NOT NULL,
    written_user text NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.history (
    name     text NOT NULL,
    serial   bigint NOT NULL,
    lineage  text NOT NULL,
    document jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    host     text NOT NULL,
    os_user  text NOT NULL,
    db_user  text NOT NULL DEFAULT session_user,
    records  integer NOT NULL,
    note     text NOT NULL,
    PRIMARY KEY (name, serial)
);
CREATE TABLE IF NOT EXISTS {schema}.journal (
    name     text NOT NULL,
    serial   bigint NOT NULL,
    record   jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    host     text NOT NULL,
    os_user  text NOT NULL,
    PRIMARY KEY (name, serial)
);
CREATE TABLE IF NOT EXISTS {schema}.locks (
    name        text PRIMARY KEY,
    backend_pid integer NOT NULL,
    pid         integer NOT NULL,
    host        text NOT NULL,
    os_user     text NOT NULL,
    started     text NOT NULL,
    command     text NOT NULL
);
"""

# libpq settings we add unless the URL sets them: the client notices a vanished server within
# about a minute (the lock's session sets the same on the server's side).
_CONNECT_DEFAULTS = {
    "application_name": "deployer",
    "connect_timeout": "15",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


# No statement waits for ever on a lock another session holds on our tables (a LOCK TABLE, a
# long migration): it fails naming the cause. Settings given in the URL's options, PGOPTIONS
# or the role's defaults win (only a 0 = "wait for ever" is replaced).
LOCK_TIMEOUT = "15s"
STATEMENT_TIMEOUT = "120s"
_TIMEOUTS = """
    SELECT set_config('lock_timeout', CASE current_setting('lock_timeout') WHEN '0' THEN %(lock)s
                                           ELSE current_setting('lock_timeout') END, false),
           set_config('statement_timeout', CASE current_setting('statement_timeout') WHEN '0' THEN %(statement)s
                                                ELSE current_setting('statement_timeout') END, false)"""


@dataclasses.dataclass(frozen=True, slots=True)
class Version:
    """One line of ``deployer state history``."""

    serial: int
    lineage: str
    saved_at: str  # UTC, ISO 8601
    host: str
    user: str
    records: int  # records folded into this version (0 for push, pull and rollback)
    note: str


def lock_key(schema: str, name: str) -> int:
    """The advisory lock key of one state: 64 bits of a hash, so names never share a lock."""
    digest = hashlib.sha256(f"deployer-state\0{schema}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _schema_key(schema: str) -> int:
    digest = hashlib.sha256(f"deployer-schema\0{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Conflict(Exception):
    """The head row was not where this store last saw it."""


class PgStateStore:
    """One named state in PostgreSQL; the same contract as the file's StateStore.

    ``load()`` reads in one statement and never writes (missing tables read as an empty state).
    ``lock()`` opens the connection every write of the session uses and takes the advisory lock
    on it; PostgreSQL drops the lock when that connection ends, so a killed runner leaves none.
    Every write is a compare-and-swap on the serial: a state changed behind our back is never
    overwritten, the apply stops with a StateError naming the serial and host that wrote it.
    """

    def __init__(self, target: PgTarget, name: str, *, former_name: str | None = None) -> None:
        self.target = target
        self.name = name
        self.former_name = former_name  # this state's default name before names came from the project
        self._mutex = threading.RLock()  # the executor may record from several threads
        self._conn: psycopg.Connection[Any] | None = None  # the lock's session, while held
        self._work = WorkingState()
        self._loaded = False
        self._row_exists = False
        self._db_lineage = ""
        self._db_serial = 0  # the head's serial as this store last read or wrote it
        self._base_serial = 0  # the saved version the journal rows after it build on
        self._conflict: StateError | None = None
        self._sql = {key: sql.SQL(text).format(schema=sql.Identifier(target.schema))
                     for key, text in _STATEMENTS.items()}

    @property
    def description(self) -> str:
        return f"{self.name!r} in {self.target.shown}"

    @property
    def state(self) -> State:
        with self._mutex:
            if not self._loaded:
                return self.load()
            return self._work.snapshot()

    # -- connections and errors --

    def _connect(self) -> psycopg.Connection[Any]:
        with self._errors("connect"):
            params = conninfo_to_dict(self.target.conninfo)
            for key, value in _CONNECT_DEFAULTS.items():
                params.setdefault(key, value)
            conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
            try:
                conn.execute(_TIMEOUTS, {"lock": LOCK_TIMEOUT, "statement": STATEMENT_TIMEOUT})
            except BaseException:
                conn.close()
                raise
            return conn

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The lock's connection while held, else a short one of our own."""
        if self._conn is not None:
            yield self._conn
            return
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            detail = scrub(self.target.scrub(" ".join(str(exc).split()) or type(exc).__name__))
            if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
                detail += (" (another session holds a lock on deployer's tables, or the database is "
                           "overloaded: look at pg_locks and pg_stat_activity; the waits are bounded by "
                           "lock_timeout and statement_timeout, which the URL's options can set)")
            error = StateError(f"PostgreSQL state {self.description}: cannot {what}: {detail}")
            if scrub(self.target.scrub(str(exc))) != str(exc):
                raise error from None  # the driver's own text holds the password: not even --debug shows it
            raise error from exc

    def _tables_exist(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            [self.target.schema, list(TABLES)],
        ).fetchone()
        return row is not None and row[0] == len(TABLES)

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and tables once; two runners doing it at once queue on a
        transaction-level advisory lock. Nothing is created when it all exists already, so a
        user with only the grants from the README never needs CREATE."""
        if self._tables_exist(conn):
            return
        schema = sql.Identifier(self.target.schema)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_schema_key(self.target.schema)])
            exists = conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s",
                                  [self.target.schema]).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL(_DDL).format(schema=schema))

    # -- reading --

    def load(self) -> State:
        """The head's saved version plus the journal rows after it, read in one statement.

        Never writes; missing tables or a missing name read as an empty State.
        """
        with self._mutex, self._errors("read the state"), self._session() as conn:
            self._loaded = False
            row = self._sql_read(conn)
            self._work.reset(State())
            self._row_exists, self._db_lineage, self._db_serial, self._base_serial = False, "", 0, 0
            if row is not None:
                lineage, serial, base_serial, document, records = row
                self._replay(lineage, serial, base_serial, document, records)
                self._row_exists, self._db_lineage, self._db_serial = True, lineage, serial
                self._base_serial = base_serial
            self._loaded = True
            return self._work.snapshot()

    def _sql_read(self, conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        if not self._tables_exist(conn):
            return None
        return conn.execute(self._sql["read"], {"name": self.name}).fetchone()

    def _replay(self, lineage: str, serial: int, base_serial: int, document: object, records: list[Any]) -> None:
        where = f"PostgreSQL state {self.description}"
        if document is not None:
            base = state_from_json(document, f"{where}, version {base_serial}")
        elif base_serial == 0:
            base = State(lineage=lineage)
        else:
            raise StateError(f"{where}: the saved version {base_serial} is missing from the history table; "
                             f"restore it, or roll back to another version")
        if (base.lineage, base.serial) != (lineage, base_serial):
            raise StateError(f"{where}: the saved version {base_serial} has lineage {base.lineage} and serial "
                             f"{base.serial}; the history table was edited")
        self._work.reset(base)
        for expected, doc in enumerate(records, base_serial + 1):
            try:
                record = parse_record(doc, "")
            except Invalid as exc:
                raise StateError(f"{where}: journal row {expected}: {exc}") from None
            if (record.lineage, record.serial) != (lineage, expected):
                raise StateError(f"{where}: journal row with serial {record.serial} (lineage {record.lineage}) "
                                 f"does not follow serial {expected - 1} of lineage {lineage}")
            self._work.apply(record)
        if self._work.serial != serial:
            raise StateError(f"{where}: the head is at serial {serial} but the journal ends at serial "
                             f"{self._work.serial}; journal rows are missing")

    def former_state_hint(self) -> str | None:
        """When this state does not exist yet but one under ``former_name`` does: how to keep
        using that one. Read after ``load()``; never writes."""
        if self.former_name is None or self._row_exists:
            return None
        with self._mutex, self._errors("read the state"), self._session() as conn:
            if not self._tables_exist(conn):
                return None
            row = conn.execute(self._sql["head"], {"name": self.former_name}).fetchone()
        if row is None:
            return None
        old = self.former_name
        return (f"state {self.description} does not exist yet, but state {old!r} (named after the manifest "
                f"directory, the default before states were named after their project) does, at serial "
                f"{row[1]}. If it is this project's state, keep using it with --state-name {old} (the next apply "
                f"records this project in it), or move it: 'deployer state pull --state-name {old} FILE', then "
                f"'deployer state push FILE'")

    def history(self) -> list[Version]:
        """Every saved version, oldest first, then one line for records not yet folded (an
        apply that was cut off or is running). Never writes."""
        with self._mutex, self._errors("read the history"), self._session() as conn:
            if not self._tables_exist(conn):
                return []
            rows = conn.execute(self._sql["history"], {"name": self.name}).fetchall()
            pending = conn.execute(self._sql["pending"], {"name": self.name}).fetchone()
        versions = [Version(serial, lineage, _utc(at), host, user, records, note)
                    for serial, lineage, at, host, user, records, note in rows]
        if pending is not None and pending[0]:
            count, last, lineage, at, host, user = pending
            versions.append(Version(last, lineage, _utc(at), host, user, count, "records not yet folded"))
        return versions

    def version(self, serial: int) -> State | None:
        """The state as it was at ``serial``: the last saved version at or before it plus the
        journal rows up to it; None when no version had that serial."""
        with self._mutex, self._errors("read the history"), self._session() as conn:
            if not self._tables_exist(conn):
                return None
            base = conn.execute(self._sql["version"], {"name": self.name, "serial": serial}).fetchone()
            after = base[0] if base is not None else 0
            records = conn.execute(self._sql["records"], {"name": self.name, "after": after,
                                                          "serial": serial}).fetchall()
        work = WorkingState()
        if base is not None:
            work.reset(state_from_json(base[1], f"PostgreSQL state {self.description}, version {after}"))
        for (doc,) in records:
            try:
                record = parse_record(doc, "")
            except Invalid:
                return None
            if record.serial != work.serial + 1 or (work.lineage and record.lineage != work.lineage):
                return None
            work.apply(record)
        return work.snapshot() if work.serial == serial and work.lineage else None

    # -- writing --

    def record(self, **changes: Unpack[Changes]) -> State:
        """Save what one successful request changed: one transaction that moves the head from
        the serial we saw to the next one and inserts one journal row. Needs the lock."""
        with self._mutex:
            conn = self._writable("record")
            lineage = self._work.lineage or str(uuid.uuid4())  # a state's lineage starts at its first write
            serial = self._work.serial + 1
            doc, parsed = make_record(
                lineage=lineage, base_serial=self._base_serial, serial=serial,
                **changes,
            )
            with self._cas(conn, "save a record"):
                self._move_head(conn, lineage, serial, self._base_serial)
                conn.execute(self._sql["journal"], {**self._who(), "serial": serial, "record": Jsonb(doc)})
            self._row_exists, self._db_lineage, self._db_serial = True, lineage, serial
            self._work.apply(parsed)
            return self._work.snapshot()

    def commit(self) -> State:
        """Save the records of this run as one version in the history. Needs the lock."""
        return self._fold("apply")

    def replace(self, state: State, *, note: str = "") -> State:
        """Save ``state`` whole as a new version (push, rollback); its serial must be higher than
        the current one, so history stays append-only. Needs the lock."""
        with self._mutex:
            conn = self._writable("replace")
            if state.serial <= self._db_serial or not state.lineage:
                raise ValueError(f"replace() needs a lineage and a serial above {self._db_serial}")
            with self._cas(conn, "save the state"):
                self._move_head(conn, state.lineage, state.serial, state.serial)
                self._insert_version(conn, state, 0, note)
            self._row_exists, self._db_lineage, self._db_serial = True, state.lineage, state.serial
            self._base_serial = state.serial
            self._work.reset(state)
            return state

    def _fold(self, note: str) -> State:
        with self._mutex:
            conn = self._writable("commit")
            state = self._work.snapshot()
            if state.serial == self._base_serial:
                return state
            with self._cas(conn, "save the state"):
                self._move_head(conn, state.lineage, state.serial, state.serial)
                self._insert_version(conn, state, state.serial - self._base_serial, note)
            self._base_serial = state.serial
            return state

    def _writable(self, what: str) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError(f"PgStateStore.{what}() called without the lock: use 'with store.lock(...)'")
        if self._conflict is not None:
            raise self._conflict
        return self._conn

    def _move_head(self, conn: psycopg.Connection[Any], lineage: str, serial: int, base_serial: int) -> None:
        """The compare-and-swap: the head moves only from exactly what this store last saw."""
        params = {**self._who(), "lineage": lineage, "serial": serial, "base_serial": base_serial,
                  "seen_lineage": self._db_lineage, "seen_serial": self._db_serial}
        statement = self._sql["move_head"] if self._row_exists else self._sql["insert_head"]
        if conn.execute(statement, params).rowcount != 1:
            raise _Conflict()

    def _insert_version(self, conn: psycopg.Connection[Any], state: State, records: int, note: str) -> None:
        conn.execute(self._sql["insert_version"], {
            **self._who(), "serial": state.serial, "lineage": state.lineage,
            "document": Jsonb(state_to_json(state)), "records": records, "note": note,
        })

    @contextlib.contextmanager
    def _cas(self, conn: psycopg.Connection[Any], what: str) -> Iterator[None]:
        try:
            with self._errors(what), conn.transaction():
                yield
        except _Conflict:
            self._conflict = self._conflict_error(conn)
            raise self._conflict from None

    def _conflict_error(self, conn: psycopg.Connection[Any]) -> StateError:
        seen = f"serial {self._db_serial}" if self._row_exists else "no state"
        with self._errors("read the state"):
            row = conn.execute(self._sql["head"], {"name": self.name}).fetchone()
        if row is None:
            now = "was deleted"
        else:
            lineage, serial, at, host, user = row
            other = "" if lineage == self._db_lineage else f" of another lineage ({lineage})"
            now = f"is now at serial {serial}{other}, written by {user} on host {host} at {_utc(at)}"
        return StateError(
            f"PostgreSQL state {self.description} changed behind this run's back: it {now}, but this "
            f"run last saw {seen}. Nothing was overwritten and this run stopped; run plan again "
            f"against the new state (and find out which writer did not take the lock)"
        )

    def _who(self) -> dict[str, Any]:
        return {"name": self.name, "host": socket.gethostname(), "os_user": current_user()}

    # -- the lock --

    @contextlib.contextmanager
    def lock(
        self, *, command: str, timeout: float = 0.0, warn: Callable[[str], None] = warn_on_stderr
    ) -> Iterator[None]:
        """Hold this state's advisory lock on a connection of our own for one session, then
        (re)load the state and fold records that a cut-off run left behind.

        Fails at once with LockHeldError naming the holder, or after polling for ``timeout``
        seconds. Creates the schema and tables when they are missing (the first write).
        """
        with self._mutex:
            if self._conn is not None:
                raise RuntimeError("this PgStateStore already holds its lock")
            conn = self._connect()
            try:
                with self._errors("take the lock"):
                    self._acquire(conn, command, timeout)
            except BaseException:
                conn.close()
                raise
            self._conn, self._conflict = conn, None
        try:
            self.load()
            if self._work.serial > self._base_serial:
                self._fold("finished saving a run that was cut off")
            yield
        finally:
            with self._mutex:
                self._conn = None
                self._release(conn)

    def _acquire(self, conn: psycopg.Connection[Any], command: str, timeout: float) -> None:
        key = lock_key(self.target.schema, self.name)
        # The server's side of the keepalives: it frees the lock of a runner whose host vanished
        # without closing its connection within about a minute, not the OS default two hours.
        conn.execute("SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3")
        deadline = time.monotonic() + max(timeout, 0.0)
        # A holder records itself just after taking the lock (and after creating the tables on
        # the very first run): give a holder that has no record yet a moment to write it.
        patience = time.monotonic() + _HOLDER_PATIENCE_SECONDS
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]:  # type: ignore[index]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder = self._holder(conn, key)
                if holder is not None or time.monotonic() >= patience:
                    raise LockHeldError(held_message(self.description, holder, timeout))
            time.sleep(LOCK_POLL_SECONDS if remaining <= 0 else min(LOCK_POLL_SECONDS, remaining))
        self._ensure_schema(conn)
        conn.execute(self._sql["take_lock"], {"name": self.name, **current_holder(command)})

    def _holder(self, conn: psycopg.Connection[Any], key: int) -> dict[str, Any] | None:
        """The holder record, if it belongs to the session that holds the advisory lock now."""
        if not self._tables_exist(conn):
            return None
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(self._sql["holder"], {"name": self.name, "high": unsigned >> 32,
                                                 "low": unsigned & 0xFFFF_FFFF}).fetchone()
        if row is None:
            return None
        return dict(zip(("pid", "host", "user", "started", "command"), row))

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        # Closing the session frees the advisory lock whatever happens before it.
        try:
            with contextlib.suppress(psycopg.Error):
                conn.execute(self._sql["drop_lock"], {"name": self.name})
                conn.execute("SELECT pg_advisory_unlock(%s)", [lock_key(self.target.schema, self.name)])
        finally:
            conn.close()


def _utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_STATEMENTS = {
    "read": """
        SELECT s.lineage, s.serial, s.base_serial, h.document,
               coalesce((SELECT jsonb_agg(j.record ORDER BY j.serial) FROM {schema}.journal j
                         WHERE j.name = s.name AND j.serial > s.base_serial), '[]'::jsonb)
        FROM {schema}.states s
        LEFT JOIN {schema}.history h ON h.name = s.name AND h.serial = s.base_serial
        WHERE s.name = %(name)s""",
    "head": """
        SELECT lineage, serial, written_at, written_host, written_user FROM {schema}.states
        WHERE name = %(name)s""",
    "insert_head": """
        INSERT INTO {schema}.states (name, lineage, serial, base_serial, written_host, written_user)
        VALUES (%(name)s, %(lineage)s, %(serial)s, %(base_serial)s, %(host)s, %(os_user)s)
        ON CONFLICT (name) DO NOTHING""",
    "move_head": """
        UPDATE {schema}.states
        SET lineage = %(lineage)s, serial = %(serial)s, base_serial = %(base_serial)s,
            written_at = now(), written_host = %(host)s, written_user = %(os_user)s
        WHERE name = %(name)s AND lineage = %(seen_lineage)s AND serial = %(seen_serial)s""",
    "journal": """
        INSERT INTO {schema}.journal (name, serial, record, host, os_user)
        VALUES (%(name)s, %(serial)s, %(record)s, %(host)s, %(os_user)s)""",
    "insert_version": """
        INSERT INTO {schema}.history (name, serial, lineage, document, host, os_user, records, note)
        VALUES (%(name)s, %(serial)s, %(lineage)s, %(document)s, %(host)s, %(os_user)s, %(records)s, %(note)s)""",
    "history": """
        SELECT serial, lineage, saved_at, host, os_user, records, note FROM {schema}.history
        WHERE name = %(name)s ORDER BY serial""",
    "pending": """
        SELECT count(*), max(j.serial), max(s.lineage), max(j.saved_at), max(j.host), max(j.os_user)
        FROM {schema}.journal j JOIN {schema}.states s ON s.name = j.name
        WHERE j.name = %(name)s AND j.serial > s.base_serial""",
    "version": """
        SELECT serial, document FROM {schema}.history
        WHERE name = %(name)s AND serial <= %(serial)s ORDER BY serial DESC LIMIT 1""",
    "records": """
        SELECT record FROM {schema}.journal
        WHERE name = %(name)s AND serial > %(after)s AND serial <= %(serial)s ORDER BY serial""",
    "take_lock": """
        INSERT INTO {schema}.locks (name, backend_pid, pid, host, os_user, started, command)
        VALUES (%(name)s, pg_backend_pid(), %(pid)s, %(host)s, %(user)s, %(started)s, %(command)s)
        ON CONFLICT (name) DO UPDATE SET backend_pid = excluded.backend_pid, pid = excluded.pid,
            host = excluded.host, os_user = excluded.os_user, started = excluded.started,
            command = excluded.command""",
    "holder": """
        SELECT l.pid, l.host, l.os_user, l.started, l.command FROM {schema}.locks l
        WHERE l.name = %(name)s AND EXISTS (
            SELECT 1 FROM pg_catalog.pg_locks p
            WHERE p.locktype = 'advisory' AND p.granted AND p.pid = l.backend_pid
              AND p.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
              AND p.classid = %(high)s::bigint::oid AND p.objid = %(low)s::bigint::oid AND p.objsubid = 1)""",
    "drop_lock": "DELETE FROM {schema}.locks WHERE name = %(name)s AND backend_pid = pg_backend_pid()",
}
