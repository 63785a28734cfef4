"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temp directory (as the
``postgres`` system user when running as root: initdb refuses root), listening on 127.0.0.1 at
a free port and on a socket in that directory, stopped and removed after the session.

Without server binaries the tests that need it are skipped with a message saying how to get
them; ``DEPLOYER_TEST_POSTGRES=require`` (set by .ci/run once it installed the server) turns
that skip into a failure, so CI can never pass without running them.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOW_TO_GET_ONE = (
    "install the PostgreSQL server (Debian/Ubuntu: 'apt-get install postgresql', which .ci/run does) "
    "or put its initdb and pg_ctl on PATH"
)
REQUIRED = os.environ.get("DEPLOYER_TEST_POSTGRES") == "require"  # read before any test edits the environment
USER = "deployer"  # an ordinary role that owns each test database (no superuser powers)


def _unavailable(why: str) -> None:
    message = f"PostgreSQL tests need a server: {why}; {HOW_TO_GET_ONE}"
    if REQUIRED:
        pytest.fail(f"{message} (DEPLOYER_TEST_POSTGRES=require)", pytrace=False)
    pytest.skip(message)


def _server_binaries() -> tuple[str, str] | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    # Debian keeps them out of PATH, one directory per major version.
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True):
        if os.access(f"{bindir}/initdb", os.X_OK) and os.access(f"{bindir}/pg_ctl", os.X_OK):
            return f"{bindir}/initdb", f"{bindir}/pg_ctl"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running cluster; ``database()`` makes a fresh database owned by ``USER``."""

    def __init__(self, directory: Path, port: int, superuser_password: str, user_password: str) -> None:
        self.directory = directory
        self.port = port
        self.superuser_password = superuser_password
        self.user_password = user_password
        self._names = itertools.count(1)

    def url(self, database: str, *, user: str = USER, password: str | None = None, query: str = "") -> str:
        secret = self.user_password if password is None else password
        auth = f"{user}:{secret}" if secret else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}{'?' + query if query else ''}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """A superuser connection (autocommit) for setting up and inspecting."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                               password=self.superuser_password, autocommit=True, **kwargs)

    def database(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{USER}"')
        return name


def _run(command: list[str], as_user: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {"user": as_user, "group": as_user, "extra_groups": []} if as_user else {}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, **extra)


def start_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg driver is missing (pip install -e '.[test]')")
    binaries = _server_binaries()
    if binaries is None:
        _unavailable("initdb and pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin")
        return
    initdb, pg_ctl = binaries
    as_user = None
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' system user to run initdb as")
            return
        as_user = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="deployer-pg-"))
    superuser_password, user_password = secrets.token_hex(12), secrets.token_hex(12)
    (directory / "pwfile").write_text(superuser_password + "\n")
    if as_user:
        for path in (directory, directory / "pwfile"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data, log = directory / "data", directory / "server.log"
    started = False
    try:
        done = _run([initdb, "-D", str(data), "-U", "postgres", f"--pwfile={directory / 'pwfile'}",
                     "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"], as_user, directory)
        if done.returncode != 0:
            _unavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-600:]}")
        for _attempt in range(3):  # a free port can be taken between choosing and binding it
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={directory} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
            done = _run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
                        as_user, directory)
            if done.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else done.stderr
            _unavailable(f"pg_ctl start failed: {tail.strip()}")
        server = PostgresServer(directory, port, superuser_password, user_password)
        with server.connect() as conn:
            conn.execute(f"CREATE ROLE \"{USER}\" LOGIN PASSWORD '{user_password}'")
        yield server
    finally:
        if started:
            _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], as_user, directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from start_server()


@pytest.fixture
def pg_database(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database for one test; libpq's PG* variables of the caller are removed."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    return postgres_server.database()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, pg_database: str) -> str:
    """``postgresql://deployer:PASSWORD@127.0.0.1:PORT/DB`` for a fresh database (default schema)."""
    return postgres_server.url(pg_database)
