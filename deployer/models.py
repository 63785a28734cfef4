"""Frozen data shared by every stage: the manifest, the recorded state and the plan.

No I/O and no behaviour beyond small properties; tuples instead of lists so that values
compare with ``==`` and cannot change in place.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from deployer.redact import register as register_secret


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. Its repr and str are masked so it cannot leak into output or logs."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        # Registered as it is read, so text from outside is scrubbed of it (deployer.redact).
        register_secret(self.value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


# --- the manifest -------------------------------------------------------------------------


Value = object
"""A binding field's value: a JSON value (str, bool, number, None, or a ``JsonValue``)."""


@dataclass(frozen=True, slots=True)
class JsonValue:
    """Any JSON value, kept as canonical text so that bindings stay hashable and comparable."""

    text: str


@dataclass(frozen=True, slots=True)
class Binding:
    """A binding as the manifest declares it, values filled in. ``values`` holds every key its
    kind declares besides type and name, in the kind's order (None: not given); the one secret
    value of a kind that has it is in ``secret``. Which keys exist is the kind's business
    (``deployer/kinds``); the core never looks inside."""

    type: str
    name: str
    values: tuple[tuple[str, Value], ...] = ()
    secret: Secret | None = None

    def get(self, key: str) -> Value:
        return next((value for name, value in self.values if name == key), None)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Something attached to a script: a route, a custom domain, its cron set, its workers.dev
    switch, a queue consumer (``type`` names the kind, ``deployer/kinds``). ``name`` identifies
    it among its kind (a route's pattern, a hostname, the script for crons, ``queue:script``
    for a consumer); ``values`` are the kind's fields (in the manifest what is wanted, in the
    state what was set); ``id`` is Cloudflare's id for it, once known (None for crons)."""

    type: str
    name: str
    script: str
    values: tuple[tuple[str, Value], ...] = ()
    id: str | None = None

    def get(self, key: str) -> Value:
        return next((value for name, value in self.values if name == key), None)


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource the project owns (a KV namespace, an R2 bucket, ...: ``type`` names its kind),
    created by ``name`` when missing, adopted when it exists; ``key`` is its manifest key."""

    type: str
    key: str
    name: str


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
class MigrationStep:
    """One Durable Object migration step of a script (``durable_objects.migrations``): its tag
    and what it does to the script's classes, in Cloudflare's words. ``renamed_classes`` are
    ``(from, to)``, ``transferred_classes`` ``(from, from_script, to)``."""

    tag: str
    new_classes: tuple[str, ...] = ()
    new_sqlite_classes: tuple[str, ...] = ()
    renamed_classes: tuple[tuple[str, str], ...] = ()
    deleted_classes: tuple[str, ...] = ()
    transferred_classes: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AssetFile:
    """One static asset: ``path`` as Cloudflare serves it (``/css/site.css``), ``file`` the
    absolute file, ``hash`` the 32 hex characters Cloudflare expects (``kinds/assets.py``)."""

    path: str
    file: Path
    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class Assets:
    """A script's static assets (``assets:``): every file to serve, sorted by path, the
    ``config`` sent with them (canonical JSON), and ``manifest_sha256``, the sha256 of the
    upload session's manifest as deployer writes it (``kinds/assets.py``)."""

    directory: Path
    files: tuple[AssetFile, ...]
    config: JsonValue
    manifest_sha256: str


@dataclass(frozen=True, slots=True)
class Script:
    """One Worker script. ``path`` (the entry file) and every module path are absolute and
    inside the manifest's directory; ``path`` is None for a script that only serves ``assets``.
    ``content_sha256`` covers what the upload carries besides bindings: for a plain
    service-worker script the sha256 of its file, otherwise a digest of every part (name,
    content type, bytes) and the compatibility settings (``upload.py``). ``settings`` are the upload settings it sets (``deployer/kinds/settings.py``) as written,
    ``migrations`` its Durable Object migration steps in order, ``assets`` its static assets."""

    name: str
    path: Path | None
    content_sha256: str
    bindings: tuple[Binding, ...] = ()
    format: ScriptFormat = ScriptFormat.SERVICE_WORKER
    modules: tuple[Module, ...] = ()
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    build: Build | None = None
    attachments: tuple[Attachment, ...] = ()  # triggers and consumers, in the manifest's order
    key: str = ""  # its key under scripts: (the name without an environment's name_suffix); "" = name
    settings: tuple[tuple[str, JsonValue], ...] = ()
    migrations: tuple[MigrationStep, ...] = ()
    size: int = 0  # bytes of every part together (entry and modules), as read when hashed
    assets: Assets | None = None

    @property
    def manifest_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest with every ``${VAR}`` filled in. Exactly one of account_id/zone_id
    addresses the scripts (zone_id: the legacy single-script API)."""

    path: Path
    account_id: str | None
    zone_id: str | None
    resources: tuple[Resource, ...] = ()
    scripts: tuple[Script, ...] = ()
    environment: str | None = None
    project: str | None = None  # the top-level ``project:`` key: ownership tag and state identity
    environments: tuple[str, ...] = ()  # every environment the manifest declares under environments:

    def resources_of(self, resource_type: str) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.type == resource_type)

    def require_account(self, what: str) -> str:
        """The account_id, or a DeployerError saying that ``what`` needs one: the legacy zone
        API (zone_id) has no account-level endpoints (lists, secrets, settings, resources)."""
        if self.account_id is None:
            from deployer.errors import DeployerError

            raise DeployerError(f"{what} needs account_id: the legacy zone API (zone_id) has no account-level "
                                "endpoints (script lists, secrets, settings, owned resources)")
        return self.account_id


# --- the recorded state -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployedBinding:
    """A binding as uploaded, minus any secret value: ``values`` are the fields Cloudflare
    receives besides type and name, in the kind's order. In a plan, a value that refers to a
    resource created by the same apply is None: known after apply."""

    type: str
    name: str
    values: tuple[tuple[str, Value], ...] = ()

    def get(self, key: str) -> Value:
        return next((value for name, value in self.values if name == key), None)

    @property
    def known(self) -> bool:
        """False while a value is known only after apply."""
        return all(value is not None for _, value in self.values)


@dataclass(frozen=True, slots=True)
class VersionShare:
    """One version of a script's live deployment and its share of traffic, in percent."""

    version_id: str
    percentage: int


@dataclass(frozen=True, slots=True)
class AssetsState:
    """A script's static assets as last uploaded: the manifest's digest, its file count and
    the digest of the config sent (the file list itself is kept beside the state, by digest:
    ``state/asset_lists.py``)."""

    manifest_sha256: str
    files: int
    config_sha256: str


@dataclass(frozen=True, slots=True)
class ScriptState:
    """What was deployed for one script. ``secret_fingerprints`` pairs each secret binding name
    with a salted scrypt fingerprint of its value (never the value). ``settings_sha256`` pairs
    each upload setting sent with a digest of its value. ``migration_tag`` is the script's
    Durable Object migration tag when deployer knows it (None: unknown, read at apply), and
    ``migrations`` the steps applied up to it, when known.

    Versions (``apply --gradual``; all absent otherwise): ``version_id`` is the Cloudflare
    version this entry describes, when known. While a gradual deployment is live, ``split`` is
    it (this entry's version first, then the one it shares traffic with) and ``previous`` what
    ran before (a rollback makes it the entry again). ``pending`` is a version uploaded by a
    gradual apply whose deployment was not made yet: the next gradual apply deploys it instead
    of uploading the same code again."""

    name: str
    content_sha256: str
    bindings: tuple[DeployedBinding, ...] = ()
    secret_fingerprints: tuple[tuple[str, str], ...] = ()
    etag: str | None = None
    modified_on: str | None = None
    settings_sha256: tuple[tuple[str, str], ...] = ()
    migration_tag: str | None = None
    migrations: tuple[MigrationStep, ...] = ()
    version_id: str | None = None
    split: tuple[VersionShare, ...] = ()
    previous: ScriptState | None = None
    pending: ScriptState | None = None
    assets: AssetsState | None = None  # None: the script serves no assets (or they are not known)

    def fingerprint_of(self, secret_name: str) -> str | None:
        return dict(self.secret_fingerprints).get(secret_name)


@dataclass(frozen=True, slots=True)
class ResourceState:
    """An owned resource as recorded: its kind, manifest key, name in Cloudflare and id."""

    type: str
    key: str
    name: str
    id: str


@dataclass(frozen=True, slots=True)
class State:
    """Everything deployed through one state file. ``lineage`` names the state's history
    (empty until first saved); ``serial`` grows with every save. ``project`` is the identity of
    the project that wrote it (``deployer.state.project``); None in states written before
    deployer recorded it."""

    lineage: str = ""
    serial: int = 0
    account_id: str | None = None
    zone_id: str | None = None
    scripts: tuple[ScriptState, ...] = ()
    resources: tuple[ResourceState, ...] = ()
    project: str | None = None
    attachments: tuple[Attachment, ...] = ()  # what was attached to scripts, by (type, name)
    # Built on the first script() call: a plan looks up every script, and a scan per lookup
    # made planning 5,000 scripts quadratic (benchmarks/README.md, growth).
    _by_name: dict[str, ScriptState] | None = field(default=None, init=False, repr=False, compare=False)

    def script(self, name: str) -> ScriptState | None:
        index = self._by_name
        if index is None:
            index = {s.name: s for s in self.scripts}
            object.__setattr__(self, "_by_name", index)  # a cache of immutable data, not a change
        return index.get(name)

    def resource(self, resource_type: str, key: str) -> ResourceState | None:
        return next((r for r in self.resources if r.type == resource_type and r.key == key), None)

    def resources_of(self, resource_type: str) -> tuple[ResourceState, ...]:
        return tuple(r for r in self.resources if r.type == resource_type)

    def attachment(self, attachment_type: str, name: str) -> Attachment | None:
        return next((a for a in self.attachments if a.type == attachment_type and a.name == name), None)


# --- the plan -----------------------------------------------------------------------------


SCRIPT = "script"
"""The ``type`` of a script's change; the other types are the kinds' (``deployer/kinds``)."""


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_OP = "no-op"
    FORGET = "forget"  # owned resources only: dropped from the state, never deleted remotely
    ADOPT = "adopt"  # owned resources only: --refresh saw the name exists, so apply takes it over


class Reason(enum.Enum):
    CONTENT = "content"
    BINDINGS = "bindings"
    SECRET = "secret"
    DRIFT = "drift"
    SETTINGS = "settings"  # an upload setting (placement, limits, ...) was added, changed or removed
    MIGRATIONS = "migrations"  # Durable Object migration steps are pending
    # Attachments (routes, custom domains, crons, workers.dev, queue consumers):
    SCRIPT = "script"  # attached to another script
    ZONE = "zone"
    CRONS = "crons"
    ENABLED = "enabled"
    ASSETS = "assets"  # static asset files were added, changed or removed, or their config changed


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One upload setting of a script in a plan: ``value`` is what will be sent (None when it
    is removed); the state keeps only a digest, so the previous value is not known."""

    name: str
    action: Action
    value: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class PendingMigrations:
    """The migration steps an upload will send: after ``old_tag`` when the state knows the
    script's tag (``old_tag_known``), else every step, less those Cloudflare already has
    (its tag is read at apply)."""

    old_tag: str | None
    new_tag: str
    steps: tuple[MigrationStep, ...]
    old_tag_known: bool = True


class DriftKind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Drift:
    """One thing ``--refresh`` found changed outside deployer. ``what``: ``binding`` (``name``,
    with the ``recorded`` and ``deployed`` forms, either None when absent), ``content`` (the
    code), ``etag`` (a new version whose code and bindings are as recorded), or the change's own
    type (``script``, ``kv_namespace``, ...: deleted outside)."""

    what: str
    change: DriftKind = DriftKind.CHANGED
    name: str | None = None
    recorded: DeployedBinding | None = None
    deployed: DeployedBinding | None = None


@dataclass(frozen=True, slots=True)
class Rollout:
    """How ``apply --gradual`` deploys a script's update: a new version at ``percentage`` of
    the traffic beside the current one, or (``percentage`` None) the usual upload, at 100% at
    once, ``because`` the versions API cannot take this change."""

    percentage: int | None
    because: str = ""


@dataclass(frozen=True, slots=True)
class AssetsChange:
    """What an upload does to a script's static assets. ``files``: how many it will serve
    (0: assets removed); ``added``/``changed``/``removed``: counts against the files last
    uploaded, None when that list is not at hand (only its digest is in the state);
    ``config_changed``: the config sent differs; ``unchanged``: nothing to send (no request)."""

    files: int
    added: int | None = None
    changed: int | None = None
    removed: int | None = None
    config_changed: bool = False
    unchanged: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One planned step. For scripts, ``bindings``/``previous_bindings`` are what will be and
    what is deployed (the state's record, or what ``--refresh`` read; no secret values),
    ``removed_secrets`` the secret bindings to delete remotely and ``changed_secrets`` those
    whose value will change. ``content_sha256``/``size``: the code uploaded, for a create or a
    content change. For an owned resource, its ``resource_name`` and ``resource_id`` if known.
    ``settings`` each upload setting sent or dropped, ``migrations`` the Durable Object
    migration steps the upload will send (None: none). For an attachment, ``attachment`` is
    what it will be and ``previous_attachment`` what the state recorded.

    ``overwrites_remote``: a script created by this plan already exists in Cloudflare without
    being in the state (seen with ``--refresh``); apply refuses it without ``--allow-overwrite``.
    ``drift``: what ``--refresh`` found changed outside deployer.
    ``rollout``: how a ``--gradual`` plan deploys a script's update (None: not planned with
    ``--gradual``); ``live_split``: the gradual deployment the state records for the script
    (apply refuses to change it until it is promoted or rolled back)."""

    type: str
    name: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    bindings: tuple[DeployedBinding, ...] = ()
    previous_bindings: tuple[DeployedBinding, ...] = ()
    removed_secrets: tuple[str, ...] = ()
    resource_name: str | None = None
    resource_id: str | None = None
    overwrites_remote: bool = False
    settings: tuple[SettingChange, ...] = ()
    migrations: PendingMigrations | None = None
    attachment: Attachment | None = None
    previous_attachment: Attachment | None = None
    changed_secrets: tuple[str, ...] = ()
    content_sha256: str | None = None
    size: int | None = None
    drift: tuple[Drift, ...] = ()
    rollout: Rollout | None = None
    live_split: tuple[VersionShare, ...] = ()
    assets: AssetsChange | None = None  # scripts with assets now or before


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered changes (owned resources, then scripts by name, then attachments), planned against state
    ``lineage``/``serial``."""

    changes: tuple[Change, ...]
    lineage: str = ""
    serial: int = 0
    environment: str | None = None

    def summary(self) -> dict[str, int]:
        counts = Counter(change.action for change in self.changes)
        keys = [Action.CREATE, Action.UPDATE, Action.DELETE, Action.NO_OP]
        # Only when there are some, so a summary stays what round one wrote.
        keys += [action for action in (Action.FORGET, Action.ADOPT) if counts[action]]
        return {action.value: counts[action] for action in keys}

    @property
    def has_changes(self) -> bool:
        return any(change.action is not Action.NO_OP for change in self.changes)

    @property
    def has_drift(self) -> bool:
        """Whether ``--refresh`` found Cloudflare different from the state."""
        return any(Reason.DRIFT in change.reasons or change.overwrites_remote for change in self.changes)
