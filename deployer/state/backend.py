"""Where state lives: a state file (the default) or PostgreSQL (``--state postgresql://...`` or
DEPLOYER_STATE_URL), behind one ``StateBackend`` protocol. Also the URL handling that keeps the
database password out of every message."""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TYPE_CHECKING, Unpack, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from deployer.errors import DeployerError, StateError
from deployer.state.document import Changes
from deployer.models import State
from deployer.redact import register as register_secret

if TYPE_CHECKING:
    from deployer.state.postgres import PgStateStore

STATE_URL_VARIABLE = "DEPLOYER_STATE_URL"
DEFAULT_SCHEMA = "deployer"
POSTGRES_SCHEMES = ("postgresql", "postgres")
MASK = "***"


class StateBackend(Protocol):
    """What plan, apply and the executor need from a state store (file or PostgreSQL)."""

    @property
    def description(self) -> str:
        """How messages name this state; never holds a password."""

    @property
    def state(self) -> State: ...

    def load(self) -> State:
        """Read the current state; never writes (a missing state is an empty State)."""

    def lock(
        self, *, command: str, timeout: float = 0.0, warn: Callable[[str], None] = ...
    ) -> AbstractContextManager[None]:
        """Hold the state's lock for one session (LockHeldError naming the holder), then load."""

    def record(self, **changes: Unpack[Changes]) -> State:
        """Durably save what one successful request changed; serial + 1. Needs the lock."""

    def commit(self) -> State:
        """Fold the records of this run into a saved version. Needs the lock."""

    def replace(self, state: State, *, note: str = "") -> State:
        """Save ``state`` whole, with its own lineage and serial (push, pull, rollback). Needs the lock."""


@dataclass(frozen=True, slots=True)
class PgTarget:
    """A parsed PostgreSQL URL: ``conninfo`` for libpq (without our ``schema`` parameter),
    the schema, and ``shown``, the URL with any password masked."""

    conninfo: str = field(repr=False)
    schema: str
    shown: str
    password: str | None = field(default=None, repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the password (raw or URL-encoded) and the raw URL replaced."""
        text = text.replace(self.conninfo, self.shown)
        if self.password:
            for form in {self.password, quote(self.password, safe=""), quote(self.password)}:
                text = text.replace(form, MASK)
        return text


def is_postgres_url(value: str) -> bool:
    return value.partition("://")[0].lower() in POSTGRES_SCHEMES and "://" in value


def parse_postgres_url(url: str) -> PgTarget:
    """Split off ``?schema=NAME`` (default ``deployer``); the rest goes to libpq unchanged, so
    a password may come from the URL, PGPASSWORD or ~/.pgpass as libpq users expect."""
    shown = mask_url(url)
    user, written, after = _userinfo(url)  # the password as written, even with an unencoded '/', '?' or '@'
    for secret in (written, unquote(written or "")):
        register_secret(secret or "")
    if written is not None and any(char in written for char in "/?#@"):
        # libpq would split such a password into host, port and path, and quote the pieces in
        # its errors; encoded, it reaches the server whole.
        url = f"{url.partition('://')[0]}://{user}:{quote(written, safe='%:')}@{after}"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StateError(f"cannot read the PostgreSQL URL {shown}: {exc}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not schema or len(schema.encode("utf-8")) > 63 or "\x00" in schema:
        raise StateError(f"the PostgreSQL URL {shown} names an invalid schema {schema!r}: use 1 to 63 characters")
    rest = [(key, value) for key, value in query if key != "schema"]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))
    passwords = [value for key, value in query if key == "password"]
    for secret in passwords:
        register_secret(secret)
    password = unquote(written) if written else (passwords[-1] if passwords else None)
    return PgTarget(conninfo=conninfo, schema=schema, shown=shown, password=password)


def _userinfo(url: str) -> tuple[str | None, str | None, str]:
    """``(user, password, rest after the '@')`` of a URL, reading generously: the user part ends
    at the last '@' before the first '?' (else at the last '@'), so a password with an
    unencoded '/', '?' or '@' is still all password. A user part without ':' has no password."""
    rest = url.partition("://")[2]
    head = rest.partition("?")[0]
    userinfo, at, _ = head.rpartition("@") if "@" in head else rest.rpartition("@")
    if not at:
        return None, None, rest
    after = rest[len(userinfo) + 1:]
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), after


def mask_url(url: str) -> str:
    """The URL with the password in its user part and any ``password=`` parameter masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    user, password, after = _userinfo(url)
    if password is not None:
        rest = f"{user}:{MASK}@{after}"
    at = len(rest) - len(after) if user is not None else 0  # the query is looked at after the user part
    netloc_end = min((i for i in (rest.find("/", at), rest.find("?", at)) if i >= 0), default=len(rest))
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    slash = tail[:1] if tail.startswith("/") else ""
    tail = tail[len(slash):]
    path, qmark, query = tail.partition("?")
    if qmark:
        query = "&".join(
            f"{item.split('=', 1)[0]}={MASK}" if item.split("=", 1)[0] == "password" else item
            for item in query.split("&")
        )
    return f"{scheme}{sep}{netloc}{slash}{path}{qmark}{query}"


def state_name(manifest_path: Path, environment: str | None, explicit: str | None, project: str | None = None) -> str:
    """``--state-name`` verbatim, else the manifest's project identity (``.ENV`` with --env):
    the ``project:`` key, else ``<repository>:<manifest path in it>`` (``deployer.state.project``),
    so two repositories with a ``deploy/`` folder never share a state."""
    if explicit is not None:
        if not explicit.strip():
            raise StateError("--state-name must not be empty")
        return explicit
    from deployer.state.project import project_identity

    identity = project_identity(manifest_path, project)
    return f"{identity}.{environment}" if environment else identity


def former_state_name(manifest_path: Path, environment: str | None) -> str | None:
    """The default state name before it was derived from the project (the manifest directory's
    name), to point a team at a state saved under it; None when there is no such name."""
    directory = manifest_path.absolute().parent
    if not directory.name:
        return None
    return f"{directory.name}.{environment}" if environment else directory.name


def open_store(
    manifest_path: Path,
    environment: str | None,
    state_option: str | None,
    state_name_option: str | None,
    environ: Mapping[str, str],
    project: str | None | Callable[[], str | None] = None,
) -> StateBackend:
    """The store ``--state`` names, else DEPLOYER_STATE_URL's, else the default state file.
    ``project`` is the manifest's ``project:`` key, or how to read it (only a PostgreSQL state
    without ``--state-name`` needs it: its default name is built from it)."""
    from deployer.state.store import StateStore, default_state_path

    location = state_option
    if location is None and environ.get(STATE_URL_VARIABLE):
        location = environ[STATE_URL_VARIABLE]
        if not is_postgres_url(location):
            raise StateError(f"{STATE_URL_VARIABLE} must be a postgresql:// URL, got {mask_url(location)!r}")
    if location is not None and is_postgres_url(location):
        key = project() if callable(project) and state_name_option is None else project
        name = state_name(manifest_path, environment, state_name_option, key if isinstance(key, str) else None)
        former = former_state_name(manifest_path, environment) if state_name_option is None else None
        return open_postgres(parse_postgres_url(location), name, former if former != name else None)
    if state_name_option is not None:
        raise StateError(
            "--state-name names a state in PostgreSQL: pass --state postgresql://... or set "
            f"{STATE_URL_VARIABLE}, or leave --state-name out for a state file"
        )
    return StateStore(Path(location) if location is not None else default_state_path(manifest_path, environment))


def open_postgres(target: PgTarget, name: str, former_name: str | None = None) -> PgStateStore:
    try:
        import psycopg  # noqa: F401  (only to tell a missing extra from other import errors)
    except ImportError:
        raise DeployerError(
            "a PostgreSQL state needs the psycopg driver: pip install 'deployer[postgres]'"
        ) from None
    from deployer.state.postgres import PgStateStore

    return PgStateStore(target, name, former_name=former_name)


def require_postgres(store: StateBackend, command: str) -> PgStateStore:
    pgstate = sys.modules.get("deployer.state.postgres")  # not imported: no PostgreSQL store exists
    if pgstate is None or not isinstance(store, pgstate.PgStateStore):
        raise StateError(
            f"'deployer {command}' works on a state in PostgreSQL: pass --state postgresql://... "
            f"or set {STATE_URL_VARIABLE} (a state file keeps only its previous copy, {store.description}.backup)"
        )
    return cast("PgStateStore", store)


def former_state_hint(store: StateBackend) -> str | None:
    """For a PostgreSQL state under its new default name that does not exist yet: a note naming
    the state saved under the former default name, if there is one (``PgStateStore``)."""
    pgstate = sys.modules.get("deployer.state.postgres")
    if pgstate is None or not isinstance(store, pgstate.PgStateStore):
        return None
    return cast("PgStateStore", store).former_state_hint()
