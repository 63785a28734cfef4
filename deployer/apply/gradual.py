"""Gradual deployments (CONTRACT.md, "Versions, gradual deployments and rollback"; reference
§7.5): ``apply --gradual`` uploads a script's update as a version and deploys it at a share of
the traffic beside the current one; ``promote`` and ``rollback`` end such a deployment with one
more deployment at 100%. The state records the versions and the split (``ScriptState``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from deployer.apply.upload import UploadPart, read_parts, upload_metadata
from deployer.errors import CloudflareApiError, DeployerError
from deployer.fingerprint import secret_matches
from deployer.kinds.binding import Resolve
from deployer.kinds.registry import binding_kind
from deployer.kinds.settings import deployed_settings, setting_digests, version_metadata
from deployer.models import SCRIPT, Action, Binding, Manifest, Plan, Script, ScriptState, State, VersionShare
from deployer.plan.planner import deployed_binding
from deployer.plan.render import describe_split, short_id

_SECRETS_CHANGED = 10220  # rolling back to a version whose secrets changed since (reference §7.5)

Fingerprints = Callable[[tuple[Binding, ...], ScriptState | None], tuple[tuple[str, str], ...]]


class VersionsClient(Protocol):
    """The part of CloudflareClient gradual deployments use (tests pass an in-memory fake)."""

    def upload_version(self, account_id: str, name: str, metadata: dict[str, Any],
                       parts: Sequence[UploadPart]) -> dict[str, Any]: ...
    def create_deployment(self, account_id: str, name: str, split: Sequence[tuple[str, int]],
                          message: str | None = None, *, force: bool = False) -> dict[str, Any]: ...
    def list_deployments(self, account_id: str, name: str) -> list[dict[str, Any]]: ...


def refuse_changing_gradual(plan: Plan) -> None:
    """Raise DeployerError when ``plan`` would upload or delete a script that is in a gradual
    deployment: which version gets the traffic would be anyone's guess. Called before any request."""
    problems = [
        f"script {c.name} is in a gradual deployment ({describe_split(c.live_split)}), and this apply would "
        f"{'delete' if c.action is Action.DELETE else 'upload'} it: first run 'deployer promote {c.name}' (all "
        f"traffic to the new version) or 'deployer rollback {c.name}' (all traffic back to the previous one)"
        for c in plan.changes if c.type == SCRIPT and c.live_split and c.action is not Action.NO_OP
    ]
    if problems:
        raise DeployerError("\n".join([*problems, "nothing was changed"]))


class GradualUpload:
    """One script's update as a gradual deployment, in two steps that the executor runs as two
    jobs, recording each: ``upload_version`` (the state then holds the version as ``pending``)
    and ``deploy`` (the state then describes the new version, with the split and ``previous``).
    An apply cut off between them deploys the pending version on its next run, without
    uploading it again."""

    def __init__(self, percentage: int, script: Script, recorded: ScriptState, manifest: Manifest,
                 client: VersionsClient, resolve: Resolve, annotations: Mapping[str, str],
                 fingerprints: Fingerprints) -> None:
        self._percentage = percentage
        self._script = script
        self._recorded = recorded
        self._account = manifest.require_account("a gradual deployment")
        self._client = client
        self._resolve = resolve
        self._annotations = dict(annotations)
        self._fingerprints = fingerprints
        self._bindings = tuple(deployed_binding(b, resolve) for b in script.bindings)
        self._settings = deployed_settings(script.settings, resolve)
        self._current: str | None = None
        self._version: ScriptState | None = None

    def upload_version(self) -> tuple[ScriptState, str]:
        """Find the version serving the script now, then upload the new one (or take the one an
        earlier apply uploaded). Returns the state entry to record and a progress note."""
        name = self._script.name
        self._current = self._current_version()
        reused = self._pending_version()
        if reused is not None:
            self._version = reused
            note = f"script {name}: deploying version {short_id(reused.version_id or '')} that an earlier apply " \
                   "uploaded (not uploaded again)"
        else:
            self._version = self._upload()
            note = f"script {name}: uploaded version {short_id(self._version.version_id or '')} (not deployed yet)"
        return dataclasses.replace(self._recorded, version_id=self._current, pending=self._version), note

    def deploy(self) -> tuple[ScriptState, str]:
        """Deploy the new version at its share beside the current one; returns the state entry
        to record and what was done."""
        assert self._version is not None and self._version.version_id is not None and self._current is not None
        split = (VersionShare(self._version.version_id, self._percentage),
                 VersionShare(self._current, 100 - self._percentage))
        self._client.create_deployment(self._account, self._script.name,
                                       [(share.version_id, share.percentage) for share in split])
        before = dataclasses.replace(self._recorded, version_id=self._current, pending=None)
        after = dataclasses.replace(self._version, split=split, previous=before)
        return after, f"deployed script {self._script.name} gradually: {describe_split(split)}"

    def _current_version(self) -> str:
        """The version all traffic goes to now. A live split is refused, unless it is the very
        deployment an earlier apply made of its pending version (its answer was lost)."""
        name = self._script.name
        deployments = self._client.list_deployments(self._account, name)
        if not deployments:
            raise DeployerError(f"script {name} has no deployment in Cloudflare, so there is no current version "
                                "to share the traffic with; apply without --gradual")
        split = deployments[0]["versions"]
        ids = [str(share["version_id"]) for share in split]
        pending = self._recorded.pending.version_id if self._recorded.pending is not None else None
        if len(ids) == 1:
            return ids[0]
        if len(ids) == 2 and pending in ids:
            return next(i for i in ids if i != pending)
        shares = ", ".join(f"version {short_id(str(s['version_id']))} at {s['percentage']}%" for s in split)
        raise DeployerError(f"script {name} is already in a gradual deployment that this state does not record "
                            f"({shares}); finish it where it was started (the dashboard or 'wrangler versions "
                            "deploy'), then apply again")

    def _pending_version(self) -> ScriptState | None:
        """The version an earlier gradual apply uploaded but did not deploy, if it holds exactly
        what would be uploaded now (code, bindings, settings and secret values)."""
        pending = self._recorded.pending
        if pending is None or pending.version_id is None or pending.version_id == self._current:
            return None
        if (pending.content_sha256, pending.bindings, pending.settings_sha256) != (
                self._script.content_sha256, self._bindings, setting_digests(self._settings)):
            return None
        for binding in self._script.bindings:
            if binding.secret is not None:
                fingerprint = pending.fingerprint_of(binding.name)
                if fingerprint is None or not secret_matches(binding.secret.value, fingerprint):
                    return None
        return pending

    def _upload(self) -> ScriptState:
        script = self._script
        parts = read_parts(script)
        # Only what a version may carry: migrations are pending in none of these scripts (the
        # plan sends those the usual way), and tags, logpush and tail consumers stay the script's.
        metadata = upload_metadata(script, [binding_kind(b.type).metadata(b, self._resolve) for b in script.bindings],
                                   settings=version_metadata(self._settings))
        if self._annotations:
            metadata["annotations"] = dict(self._annotations)
        answer = self._client.upload_version(self._account, script.name, metadata, parts)
        resources = answer.get("resources")
        code = resources.get("script") if isinstance(resources, dict) else None
        etag = code.get("etag") if isinstance(code, dict) else None
        return ScriptState(
            name=script.name,
            content_sha256=script.content_sha256,
            bindings=self._bindings,
            secret_fingerprints=self._fingerprints(script.bindings, self._recorded),
            etag=etag if isinstance(etag, str) else None,
            settings_sha256=setting_digests(self._settings),
            migration_tag=script.migrations[-1].tag if script.migrations else None,
            migrations=script.migrations,
            version_id=str(answer["id"]),
        )


# --- promote and rollback ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ending:
    """How one script's gradual deployment ends: ``version_id`` gets all the traffic, and the
    state then records ``after``."""

    name: str
    split: tuple[VersionShare, ...]
    version_id: str
    after: ScriptState

    def describe(self) -> str:
        return f"script {self.name}: {describe_split(self.split)} -> version {short_id(self.version_id)} at 100%"


def plan_endings(state: State, names: Iterable[str], *, promote: bool) -> list[Ending]:
    """The scripts ``promote`` (or ``rollback``) ends: those named, or every script in a gradual
    deployment. DeployerError naming each named script that is in none."""
    in_split = [script for script in state.scripts if script.split]
    wanted = list(dict.fromkeys(names))
    if wanted:
        known = {script.name for script in in_split}
        missing = [name for name in wanted if name not in known]
        if missing:
            listed = ", ".join(sorted(known)) or "none"
            raise DeployerError(f"not in a gradual deployment according to the state: {', '.join(missing)} (scripts "
                                f"in one: {listed}); 'deployer plan' shows them")
        in_split = [script for script in in_split if script.name in wanted]
    return [_promoted(script) if promote else _rolled_back(script) for script in in_split]


def _promoted(recorded: ScriptState) -> Ending:
    assert recorded.version_id is not None
    return Ending(recorded.name, recorded.split, recorded.version_id,
                  dataclasses.replace(recorded, split=(), previous=None, pending=None))


def _rolled_back(recorded: ScriptState) -> Ending:
    # The state describes what runs again, so the next plan shows the manifest's update again.
    assert recorded.previous is not None and recorded.previous.version_id is not None
    return Ending(recorded.name, recorded.split, recorded.previous.version_id,
                  dataclasses.replace(recorded.previous, split=(), previous=None, pending=None))


def end_gradual(ending: Ending, account_id: str, client: VersionsClient, *, message: str | None = None,
                force: bool = False) -> str:
    """Deploy ``ending.version_id`` at 100% (one POST), after checking that the live deployment
    is still the split the state records; returns what was done. When it already serves 100%
    of that version (an earlier run's answer was lost), nothing is sent."""
    deployments = client.list_deployments(account_id, ending.name)
    live = {(str(s["version_id"]), float(s["percentage"])) for s in deployments[0]["versions"]} if deployments else set()
    if live == {(ending.version_id, 100.0)}:
        return f"script {ending.name}: version {short_id(ending.version_id)} already gets all the traffic"
    if live != {(share.version_id, float(share.percentage)) for share in ending.split}:
        shown = ", ".join(f"version {short_id(v)} at {p:g}%" for v, p in sorted(live)) or "no deployment"
        raise DeployerError(f"script {ending.name}: Cloudflare serves {shown}, not the gradual deployment the state "
                            f"records ({describe_split(ending.split)}); it was changed outside deployer. 'deployer "
                            f"versions {ending.name}' shows what is live")
    try:
        client.create_deployment(account_id, ending.name, [(ending.version_id, 100)], message, force=force)
    except CloudflareApiError as exc:
        if _SECRETS_CHANGED in exc.codes and not force:
            raise DeployerError(f"{exc}\nscript {ending.name}: its secrets changed since version "
                                f"{short_id(ending.version_id)}; pass --force to deploy that version with the "
                                "current secrets") from exc
        raise
    return f"script {ending.name}: version {short_id(ending.version_id)} now gets all the traffic"
