"""PgStateStore against a real, throwaway PostgreSQL (tests/pg_server.py): schema creation,
records and folding, history and versions, the advisory lock, and compare-and-swap saves."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.factories import namespace_state
from deployer.state.backend import parse_postgres_url
from deployer.errors import LockHeldError, StateError
from deployer.state.lock import current_user
from deployer.models import ScriptState
from deployer.state.postgres import PgStateStore
from tests.pg_server import USER, PostgresServer

REPO = Path(__file__).resolve().parents[1]


def script(name: str, sha: str = "a") -> ScriptState:
    return ScriptState(name=name, content_sha256=sha * 64)


def open_store(url: str, name: str = "shop") -> PgStateStore:
    return PgStateStore(parse_postgres_url(url), name)


def ignore(message: str) -> None:
    pass


def tables(server: PostgresServer, database: str, schema: str = "deployer") -> list[str]:
    with server.connect(database) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema]).fetchall()
    return [row[0] for row in rows]


def query(server: PostgresServer, database: str, text: str) -> list[tuple]:
    with server.connect(database) as conn:
        return conn.execute(text).fetchall()


# --- schema ---------------------------------------------------------------------------------


def test_reading_a_missing_state_is_empty_and_creates_nothing(
    pg_url: str, postgres_server: PostgresServer, pg_database: str
) -> None:
    store = open_store(pg_url)
    assert store.load().serial == 0 and store.load().lineage == ""
    assert store.history() == [] and store.version(1) is None
    assert query(postgres_server, pg_database, "SELECT 1 FROM pg_namespace WHERE nspname = 'deployer'") == []


def test_first_lock_creates_the_schema_named_in_the_url(postgres_server: PostgresServer, pg_database: str) -> None:
    store = open_store(postgres_server.url(pg_database, query="schema=team_a"))
    with store.lock(command="deployer apply", warn=ignore):
        pass
    assert tables(postgres_server, pg_database, "team_a") == ["history", "journal", "locks", "states"]
    assert tables(postgres_server, pg_database, "deployer") == []


def test_runners_creating_the_schema_at_once_all_succeed(pg_url: str, postgres_server: PostgresServer,
                                                         pg_database: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def take(name: str) -> None:
        try:
            start.wait()
            with open_store(pg_url, name).lock(command="deployer apply", warn=ignore):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(f"state-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert tables(postgres_server, pg_database) == ["history", "journal", "locks", "states"]


# --- records, folding, history --------------------------------------------------------------


def test_each_record_is_one_small_journal_row_and_commit_one_version(
    pg_url: str, postgres_server: PostgresServer, pg_database: str
) -> None:
    store = open_store(pg_url)
    with store.lock(command="deployer apply", warn=ignore):
        for n in range(200):
            store.record(scripts=[script(f"worker-{n:03}")])
        assert store.state.serial == 200
        sizes = query(postgres_server, pg_database, "SELECT min(length(record::text)), max(length(record::text)), "
                      "count(*) FROM deployer.journal")
        assert query(postgres_server, pg_database, "SELECT count(*) FROM deployer.history") == [(0,)]
        store.commit()
    smallest, largest, count = sizes[0]
    assert count == 200 and largest - smallest < 10  # a record's size does not grow with the state
    assert query(postgres_server, pg_database, "SELECT serial, records, note FROM deployer.history") == [
        (200, 200, "apply")
    ]
    assert len(open_store(pg_url).load().scripts) == 200


def test_states_are_kept_apart_by_name(pg_url: str) -> None:
    with open_store(pg_url, "shop").lock(command="deployer apply", warn=ignore):
        pass
    store = open_store(pg_url, "shop.staging")
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[script("only-in-staging")])
        store.commit()
    assert open_store(pg_url, "shop").load().scripts == ()
    assert [s.name for s in open_store(pg_url, "shop.staging").load().scripts] == ["only-in-staging"]


def test_records_of_a_cut_off_run_are_read_and_then_folded_by_the_next_lock(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock(command="deployer apply", warn=ignore):
        store.record(resources=[namespace_state("cache", "app-cache", "ns1")])
        store.record(scripts=[script("first")])
        # no commit(): the run was cut off here
    again = open_store(pg_url)
    assert [s.name for s in again.load().scripts] == ["first"] and again.load().serial == 2
    assert again.history()[-1].note == "records not yet folded"
    with again.lock(command="deployer apply", warn=ignore):
        again.record(scripts=[script("second")])
        again.commit()
    versions = again.history()
    assert [(v.serial, v.records, v.note) for v in versions] == [
        (2, 2, "finished saving a run that was cut off"), (3, 1, "apply")
    ]
    assert versions[0].host == socket.gethostname() and versions[0].user == current_user()
    assert open_store(pg_url).version(1).resources == (namespace_state("cache", "app-cache", "ns1"),)
    assert open_store(pg_url).version(1).scripts == ()


def test_record_and_commit_need_the_lock(pg_url: str) -> None:
    store = open_store(pg_url)
    with pytest.raises(RuntimeError, match="without the lock"):
        store.record(scripts=[script("x")])
    with pytest.raises(RuntimeError, match="without the lock"):
        store.commit()


# --- the lock -------------------------------------------------------------------------------


def test_second_lock_fails_at_once_naming_the_holder(pg_url: str) -> None:
    with open_store(pg_url).lock(command="deployer apply --auto-approve", warn=ignore):
        started = time.monotonic()
        with pytest.raises(LockHeldError) as raised:
            with open_store(pg_url).lock(command="deployer apply", warn=ignore):
                pytest.fail("two holders of one lock")
        assert time.monotonic() - started < 5
    message = str(raised.value)
    assert message.startswith("state 'shop' in postgresql://deployer:***@127.0.0.1:")
    assert (f"is locked by pid {os.getpid()} on host {socket.gethostname()} (user {current_user()}) since "
            in message)
    assert "running 'deployer apply --auto-approve'" in message
    assert "pass --lock-timeout SECONDS" in message


def test_lock_is_free_again_after_the_holder_leaves_even_by_an_exception(pg_url: str) -> None:
    with pytest.raises(ZeroDivisionError):
        with open_store(pg_url).lock(command="deployer apply", warn=ignore):
            1 / 0
    with open_store(pg_url).lock(command="deployer apply", warn=ignore):
        pass


def test_lock_timeout_waits_for_a_holder_that_releases(pg_url: str) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with open_store(pg_url).lock(command="deployer apply", warn=ignore):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(LockHeldError, match=r"still locked after 0\.2 s by pid"):
            with open_store(pg_url).lock(command="deployer apply", timeout=0.2, warn=ignore):
                pass
        threading.Timer(0.3, release.set).start()
        with open_store(pg_url).lock(command="deployer apply", timeout=30, warn=ignore):
            assert release.is_set()
    finally:
        release.set()
        holder.join()


CHILD = textwrap.dedent(
    """
    import sys, time
    from deployer.state.backend import parse_postgres_url
    from deployer.models import ScriptState
    from deployer.state.postgres import PgStateStore

    store = PgStateStore(parse_postgres_url(sys.argv[1]), "shop")
    with store.lock(command="deployer apply"):
        store.record(scripts=[ScriptState(name="from-child", content_sha256="c" * 64)])
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_lock_of_a_process_killed_with_sigkill_is_freed_and_its_records_kept(pg_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, pg_url], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"locked\n"
        with pytest.raises(LockHeldError, match=f"locked by pid {child.pid} on host"):
            with open_store(pg_url).lock(command="deployer apply", warn=ignore):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    store = open_store(pg_url)
    started = time.monotonic()
    # The server notices the closed connection at once; the timeout only absorbs scheduling.
    with store.lock(command="deployer apply", timeout=10, warn=ignore):
        assert time.monotonic() - started < 5
        assert store.state.script("from-child") is not None
    assert store.history()[-1].note == "finished saving a run that was cut off"


# --- compare-and-swap -----------------------------------------------------------------------


def _bypassing_writer(url: str, name: str = "shop") -> PgStateStore:
    """A writer that skips the advisory lock, as a buggy or hand-made tool would."""
    rogue = open_store(url, name)
    rogue._conn = rogue._connect()  # noqa: SLF001 - deliberately not taking the lock
    rogue.load()
    return rogue


def test_a_newer_state_written_behind_the_lock_is_never_overwritten(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[script("mine")])
        rogue = _bypassing_writer(pg_url)
        rogue.record(scripts=[script("theirs", "b")])
        rogue.record(scripts=[script("theirs", "c")])
        with pytest.raises(StateError) as raised:
            store.record(scripts=[script("mine", "d")])
        with pytest.raises(StateError) as again:
            store.commit()
        rogue._conn.close()  # noqa: SLF001
    message = str(raised.value)
    assert str(again.value) == message
    assert (f"changed behind this run's back: it is now at serial 3, written by {current_user()} on host "
            f"{socket.gethostname()} at ") in message
    assert "but this run last saw serial 1. Nothing was overwritten and this run stopped" in message
    after = open_store(pg_url).load()
    assert after.serial == 3 and after.script("theirs").content_sha256 == "c" * 64
    assert after.script("mine").content_sha256 == "a" * 64  # the rogue built on our first record


def test_a_state_created_behind_the_lock_is_never_overwritten(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock(command="deployer apply", warn=ignore):
        rogue = _bypassing_writer(pg_url)
        rogue.record(scripts=[script("theirs")])
        with pytest.raises(StateError, match="it is now at serial 1 .* but this run last saw no state"):
            store.record(scripts=[script("mine")])
        rogue._conn.close()  # noqa: SLF001
    assert [s.name for s in open_store(pg_url).load().scripts] == ["theirs"]


# --- versions and rollback ------------------------------------------------------------------


def test_rollback_saves_an_old_version_as_a_new_one_and_keeps_history(pg_url: str) -> None:
    from deployer.state.commands import rollback_state

    store = open_store(pg_url)
    for sha in "abc":
        with store.lock(command="deployer apply", warn=ignore):
            store.record(scripts=[script("worker", sha)])
            store.commit()
    before = [(v.serial, v.note) for v in store.history()]
    message = rollback_state(store, 1, timeout=0, warn=ignore)
    assert "the content of serial 1 is saved as serial 4" in message
    state = open_store(pg_url).load()
    assert state.serial == 4 and state.script("worker").content_sha256 == "a" * 64
    assert state.lineage == store.version(3).lineage
    assert [(v.serial, v.note) for v in store.history()] == before + [(4, "rollback to serial 1")]
    with pytest.raises(StateError, match="serial 9 was never saved: state 'shop' in .* is at serial 4; roll back"):
        rollback_state(store, 9, timeout=0, warn=ignore)
    with pytest.raises(StateError, match="serial 4 is the current one: state 'shop' in .* is at serial 4"):
        rollback_state(store, 4, timeout=0, warn=ignore)
    with store.lock(command="deployer state push", warn=ignore):  # a push may skip serials
        store.replace(dataclasses.replace(store.state, serial=10), note="push")
    assert store.version(7) is None
    with pytest.raises(StateError, match="serial 7 is not a saved version of state 'shop'"):
        rollback_state(store, 7, timeout=0, warn=ignore)


# --- the password ---------------------------------------------------------------------------


def test_a_wrong_password_is_a_state_error_that_never_shows_it(postgres_server: PostgresServer,
                                                                pg_database: str) -> None:
    url = postgres_server.url(pg_database, password="Wr0ng-Pa55word")
    with pytest.raises(StateError) as raised:
        open_store(url).load()
    message = str(raised.value)
    assert "Wr0ng-Pa55word" not in message
    assert "postgresql://deployer:***@127.0.0.1" in message and "password authentication failed" in message


def test_password_may_come_from_pgpassword(postgres_server: PostgresServer, pg_database: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres_server.user_password)
    store = open_store(f"postgresql://{USER}@127.0.0.1:{postgres_server.port}/{pg_database}")
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[script("w")])
        store.commit()


# --- the README's minimal grants ------------------------------------------------------------


def test_the_readme_grants_are_enough(postgres_server: PostgresServer) -> None:
    database, ci, plan = f"grants{os.getpid()}", f"ci{os.getpid()}", f"plan{os.getpid()}"
    with postgres_server.connect() as conn:
        conn.execute(f"CREATE DATABASE {database}")  # owned by the admin: no CREATE for the others
        conn.execute(f"CREATE ROLE {ci} LOGIN PASSWORD 'ci-pw'")
        conn.execute(f"CREATE ROLE {plan} LOGIN PASSWORD 'plan-pw'")
    with postgres_server.connect(database) as conn:
        conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        conn.execute(f"GRANT CONNECT ON DATABASE {database} TO {ci}, {plan}")
        conn.execute(f"CREATE SCHEMA deployer AUTHORIZATION {ci}")
        conn.execute(f"GRANT USAGE ON SCHEMA deployer TO {plan}")
        conn.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {ci} IN SCHEMA deployer GRANT SELECT ON TABLES TO {plan}")
    writer = open_store(postgres_server.url(database, user=ci, password="ci-pw"))
    with writer.lock(command="deployer apply", warn=ignore):
        writer.record(scripts=[script("w")])
        writer.commit()
    reader = open_store(postgres_server.url(database, user=plan, password="plan-pw"))
    assert [s.name for s in reader.load().scripts] == ["w"]
    assert [v.serial for v in reader.history()] == [1]
    with pytest.raises(StateError, match="permission denied"):
        with reader.lock(command="deployer apply", warn=ignore):
            pass


def test_the_lock_session_asks_the_server_to_notice_a_vanished_runner_within_a_minute(pg_url: str) -> None:
    store = open_store(pg_url)
    with store.lock(command="deployer apply", warn=ignore):
        conn = store._conn  # noqa: SLF001 - the session that holds the advisory lock
        assert conn is not None
        settings = [conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")]
    assert settings == ["30", "10", "3"]
