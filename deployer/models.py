"""Frozen data shared by every stage: the manifest, the recorded state and the plan.

No I/O and no behaviour beyond small properties; tuples instead of lists so that values
compare with ``==`` and cannot change in place.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


class BindingType(enum.Enum):
    KV_NAMESPACE = "kv_namespace"
    PLAIN_TEXT = "plain_text"
    SECRET_TEXT = "secret_text"


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. Its repr and str are masked so it cannot leak into output or logs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


# --- the manifest -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KvNamespaceBinding:
    """Binds the JS global ``name`` to a namespace: a literal ``namespace_id``, or ``namespace``,
    the key of a namespace declared in the manifest (its id is resolved at apply)."""

    name: str
    namespace_id: str | None = None
    namespace: str | None = None

    type = BindingType.KV_NAMESPACE


@dataclass(frozen=True, slots=True)
class PlainTextBinding:
    name: str
    text: str

    type = BindingType.PLAIN_TEXT


@dataclass(frozen=True, slots=True)
class SecretTextBinding:
    name: str
    text: Secret

    type = BindingType.SECRET_TEXT


Binding = KvNamespaceBinding | PlainTextBinding | SecretTextBinding


@dataclass(frozen=True, slots=True)
class KvNamespace:
    """A namespace the project owns, created by ``title`` when missing; ``key`` is its manifest key."""

    key: str
    title: str


class ScriptFormat(enum.Enum):
    SERVICE_WORKER = "service-worker"  # one file, uploaded as the part "script" (body_part)
    MODULES = "modules"  # ES modules: the entry part is named by main_module


@dataclass(frozen=True, slots=True)
class Module:
    """An extra part of a modules script: ``name`` is its path relative to the entry file's
    directory (how the entry imports it), ``path`` the absolute file."""

    name: str
    path: Path
    content_type: str


@dataclass(frozen=True, slots=True)
class Build:
    """``build: {command: ...}``: the shell command that makes a script's files, as written
    (no ``${VAR}`` filled in: the shell expands variables)."""

    command: str


@dataclass(frozen=True, slots=True)
class Script:
    """One Worker script. ``path`` (the entry file) and every module path are absolute and
    inside the manifest's directory. ``content_sha256`` covers what the upload carries besides
    bindings: for a plain service-worker script the sha256 of its file, otherwise a digest of
    every part (name, content type, bytes) and the compatibility settings (``upload.py``)."""

    name: str
    path: Path
    content_sha256: str
    bindings: tuple[Binding, ...] = ()
    format: ScriptFormat = ScriptFormat.SERVICE_WORKER
    modules: tuple[Module, ...] = ()
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    build: Build | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest with every ``${VAR}`` filled in. Exactly one of account_id/zone_id
    addresses the scripts (zone_id: the legacy single-script API)."""

    path: Path
    account_id: str | None
    zone_id: str | None
    kv_namespaces: tuple[KvNamespace, ...] = ()
    scripts: tuple[Script, ...] = ()
    environment: str | None = None


# --- the recorded state -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployedBinding:
    """A binding as uploaded, minus any secret value: ``text`` is kept for plain_text only.

    In a plan, a kv_namespace binding whose namespace is created by the same apply has
    ``namespace_id`` None: known after apply.
    """

    type: BindingType
    name: str
    namespace_id: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ScriptState:
    """What was deployed for one script. ``secret_fingerprints`` pairs each secret binding name
    with a salted scrypt fingerprint of its value (never the value)."""

    name: str
    content_sha256: str
    bindings: tuple[DeployedBinding, ...] = ()
    secret_fingerprints: tuple[tuple[str, str], ...] = ()
    etag: str | None = None
    modified_on: str | None = None

    def fingerprint_of(self, secret_name: str) -> str | None:
        return dict(self.secret_fingerprints).get(secret_name)


@dataclass(frozen=True, slots=True)
class NamespaceState:
    key: str
    title: str
    id: str


@dataclass(frozen=True, slots=True)
class State:
    """Everything deployed through one state file. ``lineage`` names the state's history
    (empty until first saved); ``serial`` grows with every save."""

    lineage: str = ""
    serial: int = 0
    account_id: str | None = None
    zone_id: str | None = None
    scripts: tuple[ScriptState, ...] = ()
    kv_namespaces: tuple[NamespaceState, ...] = ()
    # Built on the first script() call: a plan looks up every script, and a scan per lookup
    # made planning 5,000 scripts quadratic (benchmarks/README.md, growth).
    _by_name: dict[str, ScriptState] | None = field(default=None, init=False, repr=False, compare=False)

    def script(self, name: str) -> ScriptState | None:
        index = self._by_name
        if index is None:
            index = {s.name: s for s in self.scripts}
            object.__setattr__(self, "_by_name", index)  # a cache of immutable data, not a change
        return index.get(name)

    def namespace(self, key: str) -> NamespaceState | None:
        return next((n for n in self.kv_namespaces if n.key == key), None)


# --- the plan -----------------------------------------------------------------------------


class ResourceType(enum.Enum):
    KV_NAMESPACE = "kv_namespace"
    SCRIPT = "script"


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_OP = "no-op"
    FORGET = "forget"  # namespaces only: dropped from the state, never deleted remotely


class Reason(enum.Enum):
    CONTENT = "content"
    BINDINGS = "bindings"
    SECRET = "secret"
    DRIFT = "drift"


@dataclass(frozen=True, slots=True)
class Change:
    """One planned step. For scripts, ``bindings``/``previous_bindings`` are what will be and
    what was deployed (no secret values), and ``removed_secrets`` the secret bindings to
    delete remotely. For namespaces, ``title`` and the ``namespace_id`` if known.

    ``overwrites_remote``: a script created by this plan already exists in Cloudflare without
    being in the state (seen with ``--refresh``); apply refuses it without ``--allow-overwrite``."""

    type: ResourceType
    name: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    bindings: tuple[DeployedBinding, ...] = ()
    previous_bindings: tuple[DeployedBinding, ...] = ()
    removed_secrets: tuple[str, ...] = ()
    title: str | None = None
    namespace_id: str | None = None
    overwrites_remote: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered changes (namespaces, then scripts by name), planned against state
    ``lineage``/``serial``."""

    changes: tuple[Change, ...]
    lineage: str = ""
    serial: int = 0
    environment: str | None = None

    def summary(self) -> dict[str, int]:
        counts = Counter(change.action for change in self.changes)
        keys = [Action.CREATE, Action.UPDATE, Action.DELETE, Action.NO_OP]
        if counts[Action.FORGET]:
            keys.append(Action.FORGET)
        return {action.value: counts[action] for action in keys}

    @property
    def has_changes(self) -> bool:
        return any(change.action is not Action.NO_OP for change in self.changes)

    @property
    def has_drift(self) -> bool:
        """Whether ``--refresh`` found Cloudflare different from the state."""
        return any(Reason.DRIFT in change.reasons or change.overwrites_remote for change in self.changes)
