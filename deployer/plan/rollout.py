"""Which way ``apply --gradual`` deploys each script: a new version at a share of the traffic
(Cloudflare's Versions and Deployments API), or the usual upload when that API cannot take the
change. Pure, like the planner that calls it (CONTRACT.md, "Versions, gradual deployments and
rollback"; reference §7.5)."""
from __future__ import annotations

import dataclasses

from deployer.kinds.settings import not_in_versions
from deployer.models import SCRIPT, Action, Change, Manifest, Rollout, Script, ScriptFormat, ScriptState


def with_versions(change: Change, script: Script | None, recorded: ScriptState | None, manifest: Manifest,
                  gradual: int | None) -> Change:
    """``change`` with the gradual deployment the state records for its script, and (with
    ``gradual``, a percentage) how apply deploys it."""
    if change.type != SCRIPT:
        return change
    live_split = recorded.split if recorded is not None else ()
    rollout = None
    if gradual is not None and script is not None and change.action in (Action.CREATE, Action.UPDATE):
        because = _why_not_a_version(change, script, manifest)
        rollout = Rollout(None, because) if because else Rollout(gradual)
    if not live_split and rollout is None:
        return change
    return dataclasses.replace(change, rollout=rollout, live_split=live_split)


def _why_not_a_version(change: Change, script: Script, manifest: Manifest) -> str:
    """Why this change must be a script upload (the versions API refuses it), or ""."""
    if change.action is Action.CREATE:
        return "a new script has no current version to share the traffic with"
    if script.format is not ScriptFormat.MODULES:
        return "a service-worker script cannot be uploaded as a version (ES modules only)"
    if manifest.account_id is None:
        return "the legacy zone API (zone_id) has no versions"
    if change.migrations is not None:
        return "Durable Object migrations are pending, and a version cannot carry them"
    script_only = not_in_versions(change.settings)
    if script_only:
        return f"setting(s) {', '.join(script_only)} changed, and only a script upload can change them"
    if change.removed_secrets:
        # Deleting a secret deploys the script at once, which would end the split.
        return f"secret(s) {', '.join(change.removed_secrets)} are deleted, which deploys the script at once"
    return ""
