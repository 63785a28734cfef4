"""Diff a manifest against the recorded state: ``make_plan(manifest, state) -> Plan``.

Pure: no file, network, clock, environment or randomness. Secret values are compared with
the salted fingerprints in the state (``fingerprint.secret_matches``), never stored.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deployer.errors import StateError
from deployer.fingerprint import secret_matches
from deployer.kinds.registry import binding_kind
from deployer.models import (
    Action,
    Binding,
    Change,
    DeployedBinding,
    Manifest,
    NamespaceState,
    Plan,
    Reason,
    ResourceType,
    Script,
    ScriptState,
    State,
)


@dataclass(frozen=True, slots=True)
class RemoteScript:
    """A script as the account's script list shows it (``plan --refresh``)."""

    name: str
    etag: str | None = None
    modified_on: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteSnapshot:
    """What ``--refresh`` read from Cloudflare: every script and every namespace id."""

    scripts: Mapping[str, RemoteScript]
    namespace_ids: frozenset[str]


def make_plan(manifest: Manifest, state: State, remote: RemoteSnapshot | None = None) -> Plan:
    """Plan every namespace (by key) and every script (by name) in manifest and state.

    Changes are ordered namespaces first, then scripts, each sorted by name, so the same
    inputs always give the same plan. No-ops are included. Raises StateError when the state
    was recorded for another account or zone.
    """
    check_same_target(manifest, state)
    namespace_changes = _plan_namespaces(manifest, state, remote)
    known_ids = {
        change.name: change.namespace_id
        for change in namespace_changes
        if change.action is not Action.CREATE and change.namespace_id
    }
    wanted = {script.name: script for script in manifest.scripts}
    names = sorted(wanted.keys() | {s.name for s in state.scripts})
    script_changes = [
        _plan_script(name, wanted.get(name), state.script(name), known_ids, remote) for name in names
    ]
    return Plan(
        changes=(*namespace_changes, *script_changes),
        lineage=state.lineage,
        serial=state.serial,
        environment=manifest.environment,
    )


def check_same_target(manifest: Manifest, state: State) -> None:
    """Raise StateError when ``state`` was recorded for another account or zone."""
    if not (state.scripts or state.kv_namespaces):
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


def _plan_namespaces(manifest: Manifest, state: State, remote: RemoteSnapshot | None) -> list[Change]:
    changes = []
    declared = {ns.key for ns in manifest.kv_namespaces}
    for ns in manifest.kv_namespaces:
        recorded = state.namespace(ns.key)
        if recorded is None or (remote is not None and recorded.id not in remote.namespace_ids):
            # Missing remotely too: create (or adopt by title) again.
            reasons = (Reason.DRIFT,) if recorded is not None else ()
            changes.append(_namespace_change(ns.key, Action.CREATE, ns.title, None, reasons))
        elif recorded.title != ns.title:
            changes.append(_namespace_change(ns.key, Action.UPDATE, ns.title, recorded.id, ()))
        else:
            changes.append(_namespace_change(ns.key, Action.NO_OP, ns.title, recorded.id, ()))
    for recorded in state.kv_namespaces:
        if recorded.key not in declared:
            changes.append(_forget(recorded))
    return sorted(changes, key=lambda change: change.name)


def _namespace_change(
    key: str, action: Action, title: str, namespace_id: str | None, reasons: tuple[Reason, ...]
) -> Change:
    return Change(
        type=ResourceType.KV_NAMESPACE,
        name=key,
        action=action,
        reasons=reasons,
        title=title,
        namespace_id=namespace_id,
    )


def _forget(recorded: NamespaceState) -> Change:
    # Never deleted: the namespace's data would go with it.
    return _namespace_change(recorded.key, Action.FORGET, recorded.title, recorded.id, ())


def _plan_script(
    name: str,
    script: Script | None,
    recorded: ScriptState | None,
    known_ids: Mapping[str, str | None],
    remote: RemoteSnapshot | None,
) -> Change:
    if script is None:
        assert recorded is not None
        return Change(ResourceType.SCRIPT, name, Action.DELETE, previous_bindings=recorded.bindings)
    bindings = tuple(deployed_binding(b, known_ids) for b in script.bindings)
    if recorded is None:
        # Not in the state but in the account: this upload would replace someone's script.
        overwrites = remote is not None and name in remote.scripts
        return Change(ResourceType.SCRIPT, name, Action.CREATE, bindings=bindings, overwrites_remote=overwrites)
    if remote is not None and name not in remote.scripts:
        # Deleted outside the deployer: upload it again from scratch.
        return Change(
            ResourceType.SCRIPT, name, Action.CREATE, (Reason.DRIFT,), bindings, recorded.bindings
        )
    reasons = _reasons(script, recorded, bindings, remote)
    kept_secrets = {b.name for b in script.bindings if b.secret is not None}
    removed_secrets = tuple(
        b.name for b in recorded.bindings if is_secret(b) and b.name not in kept_secrets
    )
    return Change(
        type=ResourceType.SCRIPT,
        name=name,
        action=Action.UPDATE if reasons else Action.NO_OP,
        reasons=reasons,
        bindings=bindings,
        previous_bindings=recorded.bindings,
        removed_secrets=removed_secrets,
    )


def _reasons(
    script: Script,
    recorded: ScriptState,
    bindings: tuple[DeployedBinding, ...],
    remote: RemoteSnapshot | None,
) -> tuple[Reason, ...]:
    reasons = []
    if script.content_sha256 != recorded.content_sha256:
        reasons.append(Reason.CONTENT)
    if _binding_set(bindings) != _binding_set(recorded.bindings):
        reasons.append(Reason.BINDINGS)
    if _secret_changed(script, recorded):
        reasons.append(Reason.SECRET)
    if remote is not None and _drifted(recorded, remote.scripts[script.name]):
        reasons.append(Reason.DRIFT)
    return tuple(reasons)


def _binding_set(bindings: tuple[DeployedBinding, ...]) -> object:
    # Order in the upload carries no meaning; an id known only after apply (None) always differs.
    if not all(b.known for b in bindings):
        return None
    return sorted(bindings, key=lambda b: b.name)


def _secret_changed(script: Script, recorded: ScriptState) -> bool:
    recorded_secrets = {b.name for b in recorded.bindings if is_secret(b)}
    for binding in script.bindings:
        if binding.secret is not None and binding.name in recorded_secrets:
            # A secret new to this script already counts as a bindings change.
            fingerprint = recorded.fingerprint_of(binding.name)
            if fingerprint is None:
                return True  # imported: its value was never seen, so send it to be sure
            if not secret_matches(binding.secret.value, fingerprint):
                return True
    return False


def _drifted(recorded: ScriptState, remote: RemoteScript) -> bool:
    if recorded.etag is not None and remote.etag is not None:
        return recorded.etag != remote.etag
    if recorded.modified_on is not None and remote.modified_on is not None:
        return recorded.modified_on != remote.modified_on
    return False


def is_secret(binding: DeployedBinding) -> bool:
    """Whether a recorded binding is a script secret (deleted explicitly when removed)."""
    return binding_kind(binding.type).secret is not None


def deployed_binding(binding: Binding, known_ids: Mapping[str, str | None]) -> DeployedBinding:
    """The binding as it will be recorded: no secret value; a reference resolved to what it
    sends when the resource already exists (None: known after apply)."""
    return binding_kind(binding.type).deployed(binding, lambda section, key: known_ids.get(key))
