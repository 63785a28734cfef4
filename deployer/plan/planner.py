"""Diff a manifest against the recorded state: ``make_plan(manifest, state) -> Plan``.

Pure: no file, network, clock, environment or randomness. Secret values are compared with
the salted fingerprints in the state (``fingerprint.secret_matches``), never stored.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from deployer.errors import DeployerError, StateError
from deployer.fingerprint import secret_matches
from deployer.kinds import assets as assets_kind
from deployer.kinds.binding import Resolve
from deployer.kinds.migrations import pending_migrations
from deployer.kinds.registry import ATTACHMENT_KINDS, RESOURCE_KINDS, binding_kind
from deployer.kinds.settings import deployed_settings, setting_changes
from deployer.plan.rollout import with_versions
from deployer.models import (
    SCRIPT,
    Action,
    Attachment,
    Binding,
    Change,
    DeployedBinding,
    Drift,
    DriftKind,
    Manifest,
    Plan,
    Reason,
    Resource,
    ResourceState,
    Script,
    ScriptState,
    State,
)


@dataclass(frozen=True, slots=True)
class RemoteScript:
    """A script as the account's script list shows it (``plan --refresh``). For a script whose
    etag differs from the state, also what its settings and code say (else None): its
    ``bindings`` (secrets without values), the ``content_sha256`` of its code, and the bindings
    of types deployer does not manage (``unmanaged``: name, type)."""

    name: str
    etag: str | None = None
    modified_on: str | None = None
    bindings: tuple[DeployedBinding, ...] | None = None
    content_sha256: str | None = None
    unmanaged: tuple[tuple[str, str], ...] = ()

    @property
    def read(self) -> bool:
        """Whether its settings and code were read (not only the list)."""
        return self.bindings is not None and self.content_sha256 is not None


@dataclass(frozen=True, slots=True)
class RemoteSnapshot:
    """What ``--refresh`` read from Cloudflare: every script, the ids and names of every owned
    resource kind it listed (by kind; a kind not listed is taken as unchanged), and what
    Cloudflare has for each recorded attachment, by (type, name) (None: gone; one not read is
    taken as unchanged)."""

    scripts: Mapping[str, RemoteScript]
    resource_ids: Mapping[str, frozenset[str]]
    resource_names: Mapping[str, frozenset[str]] = field(default_factory=dict)
    attachments: Mapping[tuple[str, str], Attachment | None] = field(default_factory=dict)

    def resource_gone(self, recorded: ResourceState) -> bool:
        ids = self.resource_ids.get(recorded.type)
        return ids is not None and recorded.id not in ids

    def resource_exists(self, resource_type: str, name: str) -> bool:
        return name in self.resource_names.get(resource_type, frozenset())


def make_plan(manifest: Manifest, state: State, remote: RemoteSnapshot | None = None, *,
              shared: frozenset[tuple[str, str]] = frozenset(), gradual: int | None = None,
              asset_lists: Mapping[str, Mapping[str, str]] | None = None) -> Plan:
    """Plan every owned resource (by kind and key) and every script (by name) in manifest and
    state.

    Changes are ordered resources first (by kind, then key), then scripts by name, so the same
    inputs always give the same plan. No-ops are included. ``shared``: ``(type, id)`` of the
    resources another environment's state records; one of them whose name changed here is not
    renamed (that would rename theirs) but replaced by a new one. ``asset_lists``: the asset files
    (path -> hash) of uploads the state records, by manifest digest, where they are at hand (a
    plan then counts the files added, changed and removed). The caller has checked that the
    state describes the manifest's account or zone (``check_same_target``), before any request.
    Raises DeployerError when a Durable Object migration step the state records as applied was
    edited or removed, or when a script would be deleted while another script of the manifest
    still binds it by name. ``gradual`` (``apply --gradual PERCENT``): each script change says
    whether it goes as a new version at that share of the traffic (``deployer.plan.rollout``).
    """
    resource_changes = _plan_resources(manifest, state, remote, shared)
    resolve = resolver((ResourceState(c.type, c.name, c.resource_name or "", c.resource_id or "")
                        for c in resource_changes if _known_before_apply(c)), manifest.scripts)
    wanted = {script.name: script for script in manifest.scripts}
    names = sorted(wanted.keys() | {s.name for s in state.scripts})
    lists = asset_lists or {}
    script_changes = [
        _plan_script(name, wanted.get(name), state.script(name), resolve, remote, lists) for name in names
    ]
    _refuse_deleting_bound_scripts(script_changes)
    script_changes = [with_versions(c, wanted.get(c.name), state.script(c.name), manifest, gradual)
                      for c in script_changes]
    return Plan(
        changes=(*resource_changes, *script_changes, *_plan_attachments(manifest, state, remote)),
        lineage=state.lineage,
        serial=state.serial,
        environment=manifest.environment,
    )


def _known_before_apply(change: Change) -> bool:
    """Whether a binding's reference to this resource resolves now: it exists with its id, or
    its kind is addressed by name (a bucket or queue to be created already has its name)."""
    if change.action is Action.FORGET:
        return False
    if change.action in (Action.CREATE, Action.ADOPT):
        return RESOURCE_KINDS[change.type].reference == "name"
    return bool(change.resource_id)


def check_same_target(manifest: Manifest, state: State) -> None:
    """Raise StateError when ``state`` was recorded for another account or zone."""
    if not (state.scripts or state.resources):
        return
    recorded = (state.account_id, state.zone_id)
    if recorded != (manifest.account_id, manifest.zone_id):
        raise StateError(
            f"the state records {_target(*recorded)}, but the manifest targets "
            f"{_target(manifest.account_id, manifest.zone_id)}; deploy another account or zone with its "
            "own state (--env or --state)"
        )


def _target(account_id: str | None, zone_id: str | None) -> str:
    parts = [f"{name} {value}" for name, value in (("account_id", account_id), ("zone_id", zone_id)) if value]
    return " and ".join(parts) or "no account_id or zone_id"


def resolver(resources: Iterable[ResourceState], scripts: Iterable[Script] = ()) -> Resolve:
    """What a binding's reference to ``section.key`` sends: the resource's id (or its name, for
    kinds addressed by name), a script's name (with the environment's suffix) for ``scripts``,
    or None while it is known only after apply."""
    sent: dict[tuple[str, str], str] = {("scripts", script.manifest_key): script.name for script in scripts}
    for resource in resources:
        kind = RESOURCE_KINDS[resource.type]
        sent[kind.section, resource.key] = resource.name if kind.reference == "name" else resource.id

    def resolve(section: str, key: str) -> str | None:
        return sent.get((section, key))

    return resolve


def _plan_resources(manifest: Manifest, state: State, remote: RemoteSnapshot | None,
                    shared: frozenset[tuple[str, str]]) -> list[Change]:
    changes = []
    declared = {(r.type, r.key) for r in manifest.resources}
    for resource in manifest.resources:
        kind = RESOURCE_KINDS[resource.type]
        recorded = state.resource(resource.type, resource.key)
        if recorded is None or (remote is not None and remote.resource_gone(recorded)):
            # Missing remotely too: create (or adopt by name) again.
            reasons = (Reason.DRIFT,) if recorded is not None else ()
            changes.append(_resource_change(resource.type, resource.key, _create_or_adopt(resource, remote),
                                            resource.name, None, reasons))
        elif recorded.name != resource.name and kind.renamable and (recorded.type, recorded.id) not in shared:
            changes.append(_resource_change(resource.type, resource.key, Action.UPDATE, resource.name, recorded.id))
        elif recorded.name != resource.name:
            # Not renamable (or another environment's too): another name is another resource (the
            # old one keeps its data).
            changes.append(_resource_change(resource.type, resource.key, _create_or_adopt(resource, remote),
                                            resource.name, None))
        else:
            changes.append(_resource_change(resource.type, resource.key, Action.NO_OP, resource.name, recorded.id))
    for recorded in state.resources:
        if (recorded.type, recorded.key) not in declared:
            # Never deleted: the resource's data would go with it.
            changes.append(_resource_change(recorded.type, recorded.key, Action.FORGET, recorded.name, recorded.id))
    order = list(RESOURCE_KINDS)
    return sorted(changes, key=lambda change: (order.index(change.type), change.name))


def _create_or_adopt(resource: Resource, remote: RemoteSnapshot | None) -> Action:
    """ADOPT when ``--refresh`` saw the name taken in Cloudflare (apply takes it over), else CREATE."""
    return Action.ADOPT if remote is not None and remote.resource_exists(resource.type, resource.name) else Action.CREATE


def _refuse_deleting_bound_scripts(changes: list[Change]) -> None:
    """A script that leaves the manifest while a remaining one still sends its name (a literal
    ``service:`` or ``script_name:``) cannot be deleted: Cloudflare refuses it, or the binder breaks."""
    deleted = {c.name for c in changes if c.action is Action.DELETE}
    if not deleted:
        return
    problems = []
    for change in changes:
        for binding in change.bindings if change.action is not Action.DELETE else ():
            kind = binding_kind(binding.type)
            for name in sorted(kind.scripts_named(binding) & deleted):
                fills = kind.reference.fills if kind.reference is not None else "name"
                problems.append(f"script {name!r} is no longer in the manifest, but script {change.name!r} still "
                                f"binds it (binding {binding.name} sends {fills} {name!r}): remove or change that "
                                f"binding in the same change, or keep {name!r} in the manifest")
    if problems:
        raise DeployerError("\n".join(problems))


def _plan_attachments(manifest: Manifest, state: State, remote: RemoteSnapshot | None) -> list[Change]:
    """Each attachment of the manifest and the state, by kind then name. One the manifest no
    longer has is deleted (with its script, or before its script is deleted), or only dropped
    from the state for kinds an absent key leaves alone (crons, workers.dev)."""
    wanted = {(a.type, a.name): a for script in manifest.scripts for a in script.attachments}
    recorded = {(a.type, a.name): a for a in state.attachments}
    scripts = {script.name for script in manifest.scripts}
    order = list(ATTACHMENT_KINDS)
    changes = []
    for key in sorted(wanted.keys() | recorded.keys(), key=lambda k: (order.index(k[0]), k[1])):
        kind = ATTACHMENT_KINDS[key[0]]
        want, have = wanted.get(key), recorded.get(key)
        if want is None:
            assert have is not None
            leave = kind.absent_leaves_alone and have.script in scripts
            changes.append(Change(key[0], key[1], Action.FORGET if leave else Action.DELETE, previous_attachment=have))
            continue
        if have is None:
            changes.append(Change(key[0], key[1], Action.CREATE, attachment=want))
            continue
        want = dataclasses.replace(want, id=have.id)
        seen = remote.attachments.get(key, have) if remote is not None else have
        if seen is None:  # removed outside deployer: attach it again
            changes.append(Change(key[0], key[1], Action.CREATE, (Reason.DRIFT,), attachment=want,
                                  previous_attachment=have))
            continue
        reasons = kind.differences(want, have)
        if kind.drifted(seen, have):
            reasons = (*reasons, Reason.DRIFT)
        changes.append(Change(key[0], key[1], Action.UPDATE if reasons else Action.NO_OP, reasons,
                              attachment=want, previous_attachment=have))
    return changes


def _resource_change(
    resource_type: str, key: str, action: Action, name: str, resource_id: str | None,
    reasons: tuple[Reason, ...] = (),
) -> Change:
    drift = (Drift(resource_type, DriftKind.REMOVED),) if Reason.DRIFT in reasons else ()
    return Change(resource_type, key, action, reasons, resource_name=name, resource_id=resource_id, drift=drift)


def _plan_script(
    name: str,
    script: Script | None,
    recorded: ScriptState | None,
    resolve: Resolve,
    remote: RemoteSnapshot | None,
    asset_lists: Mapping[str, Mapping[str, str]],
) -> Change:
    if script is None:
        assert recorded is not None
        return Change(SCRIPT, name, Action.DELETE, previous_bindings=recorded.bindings)
    bindings = tuple(deployed_binding(b, resolve) for b in script.bindings)
    settings = deployed_settings(script.settings, resolve)
    if recorded is None:
        # Not in the state but in the account: this upload would replace someone's script.
        overwrites = remote is not None and name in remote.scripts
        return Change(SCRIPT, name, Action.CREATE, bindings=bindings, overwrites_remote=overwrites,
                      settings=setting_changes(settings, ()),
                      migrations=pending_migrations(name, script.migrations, None),
                      content_sha256=script.content_sha256, size=script.size,
                      assets=assets_kind.assets_change(script.assets, None, None))
    if remote is not None and name not in remote.scripts:
        # Deleted outside the deployer: upload it again from scratch.
        return Change(SCRIPT, name, Action.CREATE, (Reason.DRIFT,), bindings, recorded.bindings,
                      drift=(Drift(SCRIPT, DriftKind.REMOVED),), content_sha256=script.content_sha256,
                      size=script.size, settings=setting_changes(settings, ()),
                      migrations=pending_migrations(name, script.migrations, None),
                      assets=assets_kind.assets_change(script.assets, None, None))
    drift: tuple[Drift, ...] = ()
    seen = remote.scripts[name] if remote is not None else None
    if seen is not None and _drifted(recorded, seen):
        # Compare the manifest with what is deployed, as far as Cloudflare told us.
        drift = script_drift(recorded, seen)
        recorded = refreshed(recorded, seen)
    changed_settings = setting_changes(settings, recorded.settings_sha256)
    migrations = pending_migrations(name, script.migrations, recorded)
    reasons = _reasons(script, recorded, bindings)
    if any(setting.action is not Action.NO_OP for setting in changed_settings):
        reasons += (Reason.SETTINGS,)
    if migrations is not None:
        reasons += (Reason.MIGRATIONS,)
    if drift:
        reasons += (Reason.DRIFT,)
    # --refresh cannot read assets back (Cloudflare lists no files): they are compared with the state.
    previous_list = asset_lists.get(recorded.assets.manifest_sha256) if recorded.assets is not None else None
    assets = assets_kind.assets_change(script.assets, recorded.assets, previous_list)
    if assets_kind.differs(assets):
        reasons += (Reason.ASSETS,)
    kept_secrets = {b.name for b in script.bindings if b.secret is not None}
    removed_secrets = tuple(
        b.name for b in recorded.bindings if is_secret(b) and b.name not in kept_secrets
    )
    return Change(
        type=SCRIPT,
        name=name,
        action=Action.UPDATE if reasons else Action.NO_OP,
        reasons=reasons,
        bindings=bindings,
        previous_bindings=recorded.bindings,
        removed_secrets=removed_secrets,
        settings=changed_settings,
        migrations=migrations,
        changed_secrets=_changed_secrets(script, recorded),
        drift=drift,
        content_sha256=script.content_sha256 if Reason.CONTENT in reasons else None,
        size=script.size if Reason.CONTENT in reasons else None,
        assets=assets,
    )


def _reasons(script: Script, recorded: ScriptState, bindings: tuple[DeployedBinding, ...]) -> tuple[Reason, ...]:
    reasons = []
    if script.content_sha256 != recorded.content_sha256:
        reasons.append(Reason.CONTENT)
    if _binding_set(bindings) != _binding_set(recorded.bindings):
        reasons.append(Reason.BINDINGS)
    if _changed_secrets(script, recorded):
        reasons.append(Reason.SECRET)
    return tuple(reasons)


def refreshed(recorded: ScriptState, remote: RemoteScript) -> ScriptState:
    """``recorded`` made to say what Cloudflare has (``deployer refresh``, and what a plan with
    ``--refresh`` compares the manifest with): the remote's etag, and when its settings and code
    were read, its bindings and code hash. Cloudflare never returns a secret's value, so a
    script changed outside keeps no secret fingerprint: the next apply sends the manifest's
    secrets again, as after ``deployer import``."""
    if not remote.read:
        return dataclasses.replace(recorded, etag=remote.etag, modified_on=remote.modified_on)
    assert remote.bindings is not None and remote.content_sha256 is not None
    return dataclasses.replace(recorded, etag=remote.etag, modified_on=remote.modified_on,
                               bindings=remote.bindings, content_sha256=remote.content_sha256,
                               secret_fingerprints=())


def script_drift(recorded: ScriptState, remote: RemoteScript) -> tuple[Drift, ...]:
    """What changed outside deployer in a script whose etag differs from the state: each
    binding added, removed or changed, and the code; ``etag`` alone when its settings and code
    match the record (or were not read)."""
    found: list[Drift] = []
    if remote.read:
        assert remote.bindings is not None
        before = {b.name: b for b in recorded.bindings}
        after = {b.name: b for b in remote.bindings}
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name), after.get(name)
            if old is None:
                found.append(Drift("binding", DriftKind.ADDED, name, deployed=new))
            elif new is None:
                found.append(Drift("binding", DriftKind.REMOVED, name, recorded=old))
            elif old != new:
                found.append(Drift("binding", DriftKind.CHANGED, name, old, new))
        for name, binding_type in remote.unmanaged:
            # Not recorded (deployer does not manage its type): the next upload drops it.
            found.append(Drift("binding", DriftKind.ADDED, name, deployed=DeployedBinding(binding_type, name)))
        if remote.content_sha256 != recorded.content_sha256:
            found.append(Drift("content"))
    return tuple(found) or (Drift("etag"),)


def _binding_set(bindings: tuple[DeployedBinding, ...]) -> object:
    # Order in the upload carries no meaning; an id known only after apply (None) always differs.
    if not all(b.known for b in bindings):
        return None
    return sorted(bindings, key=lambda b: b.name)


def _changed_secrets(script: Script, recorded: ScriptState) -> tuple[str, ...]:
    """The secrets the script had and keeps whose value will change (a secret new to the
    script already counts as a bindings change)."""
    recorded_secrets = {b.name for b in recorded.bindings if is_secret(b)}
    changed = []
    for binding in script.bindings:
        if binding.secret is not None and binding.name in recorded_secrets:
            fingerprint = recorded.fingerprint_of(binding.name)
            # No fingerprint: imported or changed outside, its value never seen; send it to be sure.
            if fingerprint is None or not secret_matches(binding.secret.value, fingerprint):
                changed.append(binding.name)
    return tuple(changed)


def _drifted(recorded: ScriptState, remote: RemoteScript) -> bool:
    if recorded.etag is not None and remote.etag is not None:
        # In a gradual deployment either version may be the one Cloudflare lists.
        previous = recorded.previous.etag if recorded.split and recorded.previous is not None else None
        return remote.etag not in (recorded.etag, previous)
    if recorded.modified_on is not None and remote.modified_on is not None:
        return recorded.modified_on != remote.modified_on
    return False


def is_secret(binding: DeployedBinding) -> bool:
    """Whether a recorded binding is a script secret (deleted explicitly when removed)."""
    return binding_kind(binding.type).secret is not None


def deployed_binding(binding: Binding, resolve: Resolve) -> DeployedBinding:
    """The binding as it will be recorded: no secret value; a reference resolved to what it
    sends when the resource already exists (None: known after apply)."""
    return binding_kind(binding.type).deployed(binding, resolve)
