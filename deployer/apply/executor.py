"""Carry out a Plan: namespaces first, then one upload per created/changed script (bounded
parallelism), each attachment (route, crons, ...) after its script's upload and before its
old script's delete, then deletes. Every success is recorded in the state store at once, so an apply
cut off at any point can be re-run and finishes without redoing what already succeeded."""
from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from deployer.apply.gradual import GradualUpload, VersionsClient
from deployer.apply.assets import AssetsClient, upload_assets
from deployer.apply.scheduler import Job, run_jobs
from deployer.apply.upload import UploadPart, read_parts, upload_metadata
from deployer.errors import DeployerError
from deployer.fingerprint import fingerprint_secret, secret_matches
from deployer.kinds.attachment import Session, TriggerClient
from deployer.kinds.assets import assets_state
from deployer.kinds.binding import Resolve
from deployer.kinds.migrations import migrations_metadata, steps_after
from deployer.kinds.registry import ATTACHMENT_KINDS, RESOURCE_KINDS, binding_kind
from deployer.kinds.settings import (
    deployed_settings,
    referenced_scripts,
    setting_digests,
    settings_metadata,
    settings_mismatches,
)
from deployer.models import (
    SCRIPT,
    Action,
    Attachment,
    Binding,
    Change,
    DeployedBinding,
    Manifest,
    Plan,
    ResourceState,
    Script,
    ScriptFormat,
    ScriptState,
)
from deployer.plan.planner import deployed_binding, resolver
from deployer.remote import binding_mismatches

if TYPE_CHECKING:
    from deployer.cloudflare.client import CloudflareClient
    from deployer.state.backend import StateBackend



class Step(enum.Enum):
    START = "start"  # a change's request begins
    DONE = "done"  # a change finished; the message says what was done
    FAILED = "failed"  # a change's request failed (the error is reported at the end)
    NOTE = "note"  # anything else worth a line: a warning, a verify result


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What the executor reports as it goes (from worker threads too); ``change`` is the
    change a START, DONE or FAILED belongs to."""

    step: Step
    message: str
    change: Change | None = None


Progress = Callable[[ProgressEvent], None]


class _Client(VersionsClient, AssetsClient, Protocol):
    """The part of CloudflareClient the executor uses (tests pass an in-memory fake)."""

    def ensure_kv_namespace(self, account_id: str, title: str) -> tuple[dict[str, Any], bool]: ...
    def rename_kv_namespace(self, account_id: str, namespace_id: str, title: str) -> None: ...
    def prepare_upload(
        self,
        name: str,
        metadata: dict[str, Any],
        content: bytes | tuple[UploadPart, ...],
        *,
        account_id: str | None = None,
        zone_id: str | None = None,
    ) -> Callable[[], dict[str, Any]]: ...
    def delete_script(self, name: str, *, account_id: str | None = None, zone_id: str | None = None) -> None: ...
    def delete_secret(self, account_id: str, script_name: str, secret_name: str) -> None: ...
    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]: ...
    def get_migration_tag(self, account_id: str, name: str) -> str | None: ...


@dataclass(slots=True)
class ApplyResult:
    """Counts of what an apply did, for the closing summary line."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    forgotten: int = 0
    adopted: int = 0


def apply_plan(
    plan: Plan,
    manifest: Manifest,
    client: _Client | CloudflareClient,
    store: StateBackend,
    *,
    parallelism: int = 4,
    progress: Progress = lambda message: None,
    verify: bool = False,
    project: str | None = None,
    annotations: Mapping[str, str] | None = None,
    go: Callable[[], None] | None = None,
) -> ApplyResult:
    """Apply ``plan`` (made from ``manifest`` and the store's current state).

    The caller holds the store's lock. Each success is recorded before the next batch is
    started; on the first failure no new request is started, the in-flight ones finish and
    are recorded, and a DeployerError lists every failure. Secret values reach only the
    upload request; the state gets salted fingerprints. With ``verify``, each upload's
    bindings are read back and compared with what was sent; a mismatch fails that script
    (not recorded, so the next apply tries again) with an error naming the binding.
    ``project`` (the identity from ``deployer.state.project``) is recorded with the account.
    A change whose ``rollout`` has a percentage (``--gradual``) goes as a version and a
    deployment at that share (``apply/gradual.py``), carrying ``annotations``.

    ``go`` is called before the first change, and may raise to prevent any (the checks before
    apply, their reads still under way): meanwhile the first uploads' files are read and their
    requests built, unless owned resources or forgotten attachments come first.
    """
    result = ApplyResult()
    scripts = {script.name: script for script in manifest.scripts}
    started = False

    def start() -> None:
        """Before the first change: the go-ahead, then the state's account, zone and project."""
        nonlocal started
        if started:
            return
        started = True
        if go is not None:
            go()
        recorded = store.state
        if (recorded.account_id, recorded.zone_id, recorded.project) != (
            manifest.account_id, manifest.zone_id, project or recorded.project
        ):
            # The state remembers which account/zone it describes (the planner checks it) and which
            # project wrote it (the CLI checks it); a state from before projects is adopted here.
            store.record(account_id=manifest.account_id, zone_id=manifest.zone_id, project=project)

    if any((change.type in RESOURCE_KINDS and change.action is not Action.NO_OP) or change.action is Action.FORGET
           for change in plan.changes):
        start()  # resources are made (and attachments forgotten) before the jobs are built
    _apply_resources(plan, manifest, client, store, progress, result)

    resolve = resolver(store.state.resources, manifest.scripts)
    changes = [c for c in plan.changes if c.type == SCRIPT and c.action is not Action.NO_OP]
    uploads = {c.name for c in changes if c.action is not Action.DELETE}
    deletes = {c.name for c in changes if c.action is Action.DELETE}
    jobs = _attachment_jobs(plan, manifest, client, store, deletes, progress, result)
    detaches: dict[str, set[str]] = {}  # script -> jobs that must finish before it is deleted
    for change in plan.changes:
        have = change.previous_attachment
        if have is not None and change.type in ATTACHMENT_KINDS and not ATTACHMENT_KINDS[change.type].goes_with_script:
            detaches.setdefault(have.script, set()).add(_attachment_key(change))
    bound_by: dict[str, set[str]] = {}  # script -> the scripts whose recorded bindings name it
    for change in changes:
        for name in _scripts_bound(change.previous_bindings):
            bound_by.setdefault(name, set()).add(change.name)
    for change in changes:
        if change.action is Action.DELETE:
            # After every upload that stops binding it and every delete of a script binding it,
            # and after its routes and domains are detached or moved (Cloudflare keeps them).
            binders = bound_by.get(change.name, set())
            jobs.append(Job(f"delete {change.name}", _delete_job(change, manifest, client, progress),
                            frozenset(f"upload {n}" for n in binders & uploads)
                            | frozenset(f"delete {n}" for n in binders & deletes)
                            | frozenset(detaches.get(change.name, ()))))
        else:
            # After the scripts of this plan it binds (Cloudflare refuses a binding to a missing service).
            bound = _scripts_bound(change.bindings) & uploads - {change.name}
            # And after the scripts its settings name (a tail consumer must exist too).
            named = referenced_scripts(deployed_settings(scripts[change.name].settings, resolve))
            bound |= named & uploads - {change.name}
            previous = store.state.script(change.name)
            after = frozenset(f"upload {n}" for n in bound)
            if change.rollout is not None and change.rollout.percentage is not None and previous is not None:
                jobs += _gradual_jobs(change, scripts[change.name], previous, resolve, manifest, client, progress,
                                      annotations or {}, after)
                continue
            jobs.append(Job.in_two_steps(
                f"upload {change.name}",
                _upload_job(change, scripts[change.name], previous, resolve, manifest, client, progress, verify),
                after))
    errors = run_jobs(jobs, parallelism, lambda outcomes: _record(store, outcomes, result), go=start)
    if errors:
        _raise_failures(errors, result)
    return result


def _attachment_key(change: Change) -> str:
    return f"{change.type} {change.name}"


def _attachment_jobs(
    plan: Plan, manifest: Manifest, client: _Client, store: StateBackend, deletes: set[str], progress: Progress,
    result: ApplyResult,
) -> list[Job[_Outcome]]:
    """One job per attachment change (a FORGET is recorded at once: no request). A job runs
    after its script's upload; one that goes with a deleted script only after that delete
    (and sends nothing). Only changed attachments get a job, so an unchanged plan sends nothing."""
    forgotten = [(c.type, c.name) for c in plan.changes if c.type in ATTACHMENT_KINDS and c.action is Action.FORGET]
    if forgotten:
        store.record(removed_attachments=forgotten)
        for change in plan.changes:
            if (change.type, change.name) in forgotten:
                progress(ProgressEvent(Step.DONE, f"forgot {change.type} {change.name} (left as it is in Cloudflare)",
                                       change))
        result.forgotten += len(forgotten)
    pending = [c for c in plan.changes
               if c.type in ATTACHMENT_KINDS and c.action not in (Action.NO_OP, Action.FORGET)]
    if not pending:
        return []
    session = Session(_triggers(client), manifest.require_account("routes, custom domains, crons, workers.dev and queue consumers"))
    jobs: list[Job[_Outcome]] = []
    for change in pending:
        kind = ATTACHMENT_KINDS[change.type]
        have = change.previous_attachment
        if change.action is Action.DELETE and kind.goes_with_script and have is not None and have.script in deletes:
            jobs.append(Job(_attachment_key(change), _gone_with_script(change, progress),
                            frozenset({f"delete {have.script}"})))
            continue
        after = frozenset({f"upload {change.attachment.script}"}) if change.attachment is not None else frozenset()
        jobs.append(Job(_attachment_key(change), _attach_job(change, session, progress), after))
    return jobs


def _triggers(client: object) -> TriggerClient:
    # CloudflareClient has every trigger endpoint; an in-memory test fake may have them too.
    return client  # type: ignore[return-value]


_VERBS = {Action.CREATE: "attached", Action.UPDATE: "updated", Action.DELETE: "removed"}


def _attach_job(change: Change, session: Session, progress: Progress) -> Callable[[], _Outcome]:
    kind = ATTACHMENT_KINDS[change.type]

    def job() -> _Outcome:
        done = kind.apply(session, change)
        shown = done or change.previous_attachment
        summary = f" {kind.summary(shown)}" if shown is not None else ""
        progress(ProgressEvent(Step.DONE, f"{_VERBS[change.action]} {change.type} {change.name}{summary}", change))
        if done is None:
            return _Outcome(change.action, detached=(change.type, change.name))
        return _Outcome(change.action, attached=done)

    return _reported(change, progress, job)


def _gone_with_script(change: Change, progress: Progress) -> Callable[[], _Outcome]:
    def job() -> _Outcome:
        progress(ProgressEvent(Step.DONE, f"removed {change.type} {change.name} (with its script)", change))
        return _Outcome(Action.DELETE, detached=(change.type, change.name))

    return job


def _scripts_bound(bindings: tuple[DeployedBinding, ...]) -> set[str]:
    """The scripts these bindings name (a service, a Durable Object's script), as each kind says."""
    return {name for binding in bindings for name in binding_kind(binding.type).scripts_named(binding)}


def _apply_resources(
    plan: Plan, manifest: Manifest, client: _Client, store: StateBackend, progress: Progress, result: ApplyResult
) -> None:
    for change in plan.changes:
        kind = RESOURCE_KINDS.get(change.type)
        if kind is None:
            continue
        name = change.resource_name or ""
        what = f"{change.type} {change.name}"
        match change.action:
            case Action.CREATE | Action.ADOPT:
                progress(ProgressEvent(Step.START, what, change))
                resource_id, adopted = kind.ensure_in(client, manifest.require_account(what), name)
                store.record(resources=[ResourceState(change.type, change.name, name, resource_id)])
                how = "adopted existing" if adopted else "created"
                shown = "" if kind.id_is_name else f", id {resource_id}"
                progress(ProgressEvent(Step.DONE, f"{how} {what} ({kind.name_key} {name!r}{shown})", change))
                if adopted:
                    result.adopted += 1
                else:
                    result.created += 1
            case Action.UPDATE:
                assert change.resource_id is not None
                progress(ProgressEvent(Step.START, what, change))
                kind.rename_in(client, manifest.require_account(what), change.resource_id, name)
                store.record(resources=[ResourceState(change.type, change.name, name, change.resource_id)])
                progress(ProgressEvent(Step.DONE, f"renamed {what} to {name!r}", change))
                result.updated += 1
            case Action.FORGET:
                store.record(forgotten=[(change.type, change.name)])
                progress(ProgressEvent(Step.DONE, f"forgot {what} (still in Cloudflare, id {change.resource_id})",
                                       change))
                result.forgotten += 1


@dataclass(frozen=True, slots=True)
class _Outcome:
    action: Action
    uploaded: ScriptState | None = None
    deleted: str | None = None
    attached: Attachment | None = None
    detached: tuple[str, str] | None = None  # (type, name) of an attachment removed


def _upload_job(
    change: Change,
    script: Script,
    previous: ScriptState | None,
    resolve: Resolve,
    manifest: Manifest,
    client: _Client,
    progress: Progress,
    verify: bool,
) -> Callable[[], Callable[[], _Outcome]]:
    """The upload as a job in two steps: the files read (and checked against the plan) and,
    when nothing has to be asked of Cloudflare first, the request built; then the requests."""
    bindings = tuple(deployed_binding(b, resolve) for b in script.bindings)
    settings = deployed_settings(script.settings, resolve)
    new_names = {b.name for b in script.bindings}
    # A removed secret whose name a new binding reuses must go first, or its deletion would
    # take the new binding with it; the others go after the upload succeeds.
    delete_before = [s for s in change.removed_secrets if s in new_names]
    delete_after = [s for s in change.removed_secrets if s not in new_names]

    def metadata_for(assets: dict[str, Any], migrations: dict[str, Any] | None) -> dict[str, Any]:
        metadata = upload_metadata(script, [binding_kind(b.type).metadata(b, resolve) for b in script.bindings],
                                   project=manifest.project, settings=settings_metadata(settings),
                                   migrations=migrations)
        metadata.update(assets)
        return metadata

    def content_of(parts: tuple[UploadPart, ...]) -> bytes | tuple[UploadPart, ...]:
        # A service-worker script goes as the seed's single "script" part, bytes unchanged.
        return parts[0].data if script.format is ScriptFormat.SERVICE_WORKER and parts else parts

    def prepare() -> Callable[[], _Outcome]:
        parts = read_parts(script)
        if script.assets is None and not script.migrations and not delete_before:
            metadata = metadata_for({}, None)
            send = client.prepare_upload(script.name, metadata, content_of(parts),
                                         account_id=manifest.account_id, zone_id=manifest.zone_id)
            return lambda: finish(metadata, send())
        return lambda: upload(parts)  # its assets, migration tag or secrets are asked for first

    def upload(parts: tuple[UploadPart, ...]) -> _Outcome:
        assets = upload_assets(change, script, previous, manifest, client,
                               lambda text: progress(ProgressEvent(Step.NOTE, text)))
        metadata = metadata_for(assets, _migrations(change, script, previous, manifest, client))
        deleted: list[str] = []
        try:
            for secret in delete_before:
                client.delete_secret(manifest.require_account("deleting a secret"), script.name, secret)
                deleted.append(secret)
            answer = client.prepare_upload(
                script.name, metadata, content_of(parts), account_id=manifest.account_id, zone_id=manifest.zone_id
            )()
        except DeployerError as exc:
            if not deleted:
                raise
            # Say exactly what was done: the live script has lost these secrets already.
            raise DeployerError(f"{exc}\nscript {script.name}: secret(s) {', '.join(deleted)} were deleted (their "
                                "names are reused by other bindings) but the upload failed, so the live script has "
                                "neither; run apply again to upload it") from exc
        return finish(metadata, answer)

    def finish(metadata: dict[str, Any], answer: dict[str, Any]) -> _Outcome:
        for secret in delete_after:
            if manifest.account_id is None:
                # The secrets endpoint is per account; the legacy zone API has none.
                progress(ProgressEvent(
                    Step.NOTE, f"warning: secret {secret} of script {script.name} was not deleted: needs account_id"))
                continue
            client.delete_secret(manifest.account_id, script.name, secret)
        if verify:
            found = client.get_script_settings(manifest.require_account("--verify"), script.name)
            problems = binding_mismatches(metadata["bindings"], found.get("bindings") or [])
            problems += settings_mismatches(settings, found)
            if problems:
                raise DeployerError(f"verify failed for script {script.name}: " + "; ".join(problems))
            progress(ProgressEvent(
                Step.NOTE, f"verified script {script.name}: {len(metadata['bindings'])} binding(s) as sent"))
        done = "created" if change.action is Action.CREATE else "updated"
        progress(ProgressEvent(Step.DONE, f"{done} script {script.name}", change))
        return _Outcome(
            change.action,
            uploaded=ScriptState(
                name=script.name,
                content_sha256=script.content_sha256,
                bindings=bindings,
                secret_fingerprints=_fingerprints(script.bindings, previous),
                etag=_optional_str(answer.get("etag")),
                modified_on=_optional_str(answer.get("modified_on")),
                settings_sha256=setting_digests(settings),
                # Every step is applied once the upload succeeds (those before old_tag already were).
                migration_tag=script.migrations[-1].tag if script.migrations else None,
                migrations=script.migrations,
                assets=assets_state(script.assets) if script.assets is not None else None,
            ),
        )

    return _reported_in_two_steps(change, progress, prepare)


def _gradual_jobs(change: Change, script: Script, previous: ScriptState, resolve: Resolve, manifest: Manifest,
                  client: _Client | CloudflareClient, progress: Progress, annotations: Mapping[str, str],
                  after: frozenset[str]) -> list[Job[_Outcome]]:
    """The version upload, then the deployment: two jobs, so that the uploaded version is
    recorded before the deployment is asked for (a rerun deploys it without uploading it again).
    Scripts that wait for this one wait for the deployment (its key is the upload's)."""
    assert change.rollout is not None and change.rollout.percentage is not None
    gradual = GradualUpload(change.rollout.percentage, script, previous, manifest, client, resolve, annotations,
                            _fingerprints)

    def upload_version() -> _Outcome:
        recorded, note = gradual.upload_version()
        progress(ProgressEvent(Step.NOTE, note))
        return _Outcome(Action.NO_OP, uploaded=recorded)  # recorded, but not counted as a change

    def deploy() -> _Outcome:
        recorded, done = gradual.deploy()
        progress(ProgressEvent(Step.DONE, done, change))
        return _Outcome(change.action, uploaded=recorded)

    return [Job(f"version {change.name}", _reported(change, progress, upload_version), after),
            Job(f"upload {change.name}", _reported(change, progress, deploy), frozenset({f"version {change.name}"}))]


def _migrations(change: Change, script: Script, previous: ScriptState | None, manifest: Manifest,
                client: _Client) -> dict[str, Any] | None:
    """``metadata.migrations`` for this upload: the steps after the script's current tag, or
    None when it is current. The tag is the state's for an update of a script it records one
    for (the plan checked the applied steps); otherwise Cloudflare's, read now (a new script, an
    older state, an import, a script re-created after it was deleted outside deployer)."""
    if not script.migrations:
        return None
    if change.action is Action.UPDATE and previous is not None and previous.migration_tag is not None:
        current: str | None = previous.migration_tag
    else:
        current = client.get_migration_tag(manifest.require_account("Durable Object migrations"), script.name)
    pending = steps_after(script.name, script.migrations, current)
    return migrations_metadata(current, pending) if pending else None


def _reported(change: Change, progress: Progress, body: Callable[[], _Outcome]) -> Callable[[], _Outcome]:
    """``body`` as a job that reports when its request starts and when it fails."""
    def job() -> _Outcome:
        progress(ProgressEvent(Step.START, f"{change.type} {change.name}", change))
        try:
            return body()
        except BaseException:
            progress(ProgressEvent(Step.FAILED, f"{change.type} {change.name}", change))
            raise

    return job


def _reported_in_two_steps(change: Change, progress: Progress, prepare: Callable[[], Callable[[], _Outcome]]
                           ) -> Callable[[], Callable[[], _Outcome]]:
    """``_reported`` for a job in two steps: its start is reported when its requests start."""
    def reported() -> Callable[[], _Outcome]:
        try:
            send = prepare()
        except BaseException:
            progress(ProgressEvent(Step.FAILED, f"{change.type} {change.name}", change))
            raise
        return _reported(change, progress, send)

    return reported


def _fingerprints(bindings: tuple[Binding, ...], previous: ScriptState | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for binding in bindings:
        if binding.secret is not None:
            old = previous.fingerprint_of(binding.name) if previous else None
            # Keep a still-matching fingerprint: scrypt is deliberately slow.
            keep = old is not None and secret_matches(binding.secret.value, old)
            pairs.append((binding.name, old if keep and old else fingerprint_secret(binding.secret.value)))
    return tuple(sorted(pairs))


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _delete_job(change: Change, manifest: Manifest, client: _Client, progress: Progress) -> Callable[[], _Outcome]:
    def job() -> _Outcome:
        client.delete_script(change.name, account_id=manifest.account_id, zone_id=manifest.zone_id)
        progress(ProgressEvent(Step.DONE, f"deleted script {change.name}", change))
        return _Outcome(Action.DELETE, deleted=change.name)

    return _reported(change, progress, job)


def _record(store: StateBackend, outcomes: list[_Outcome], result: ApplyResult) -> None:
    if not outcomes:
        return
    uploaded = [o.uploaded for o in outcomes if o.uploaded is not None]
    deleted = [o.deleted for o in outcomes if o.deleted is not None]
    attached = [o.attached for o in outcomes if o.attached is not None]
    detached = [o.detached for o in outcomes if o.detached is not None]
    try:
        store.record(scripts=uploaded, removed_scripts=deleted, attachments=attached, removed_attachments=detached)
    except DeployerError as exc:
        done = [f"uploaded {s.name}" for s in uploaded] + [f"deleted {name}" for name in deleted]
        done += [f"attached {a.type} {a.name}" for a in attached] + [f"removed {t} {n}" for t, n in detached]
        raise DeployerError(f"{exc}\nthese succeeded in Cloudflare but are not recorded in the state: "
                            f"{', '.join(done)}; once the state can be written, 'deployer plan --refresh' shows "
                            "them and apply repeats them") from exc
    for outcome in outcomes:
        match outcome.action:
            case Action.CREATE:
                result.created += 1
            case Action.UPDATE:
                result.updated += 1
            case Action.DELETE:
                result.deleted += 1


def _raise_failures(errors: list[Exception], result: ApplyResult) -> None:
    deployer_errors = [e for e in errors if isinstance(e, DeployerError)]
    if len(deployer_errors) < len(errors):
        raise next(e for e in errors if not isinstance(e, DeployerError))  # a bug: keep its traceback
    done = result.created + result.updated + result.deleted + result.adopted
    lines = [str(e) for e in deployer_errors]
    lines.append(f"{done} change(s) succeeded and were recorded; fix the above and run apply again to finish")
    raise DeployerError("\n".join(lines)) from deployer_errors[0]
