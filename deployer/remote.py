"""The deployed side, read back from Cloudflare: the account's script and namespace lists
(``--refresh``, ``deployer refresh``), one script's code and settings (``deployer import``),
and its bindings compared with what an upload sent (``apply --verify``).

Reference: shared/reference/cloudflare-api.md §2.1 (list), §2.3 (content/v2), §2.4 (settings).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from deployer.errors import CloudflareApiError, DeployerError
from deployer.escape import escape_text
from deployer.fingerprint import fingerprint_secret
from deployer.kinds.attachment import Session, TriggerClient
from deployer.kinds.registry import ATTACHMENT_KINDS, BINDING_KINDS, RESOURCE_KINDS
from deployer.kinds.settings import remote_settings, setting_digests
from deployer.models import Attachment, DeployedBinding, Drift, Manifest, Script, ScriptFormat, ScriptState, State
from deployer.plan.planner import RemoteScript, RemoteSnapshot, refreshed, script_drift
from deployer.apply.upload import SERVICE_WORKER_PART, SERVICE_WORKER_TYPE, content_digest


class _Client(Protocol):
    """The reading part of CloudflareClient (tests may pass a fake)."""

    def list_scripts(self, account_id: str) -> list[dict[str, Any]]: ...
    def list_kv_namespaces(self, account_id: str) -> list[dict[str, Any]]: ...
    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]: ...
    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]: ...


def read_remote(manifest: Manifest, client: _Client, state: State | None = None, *,
                parallelism: int = 4) -> RemoteSnapshot:
    """One list of scripts and one of each kind of owned resource in use: what ``--refresh``
    compares with the state (ids: gone or not; names: a resource to create that exists already
    is adopted). With ``state``, each recorded script whose etag changed is read further (its
    settings and code, ``parallelism`` scripts at a time), so the plan can say what changed
    outside, and so is what Cloudflare has for each attachment it records (a zone's routes and
    the account's domains listed once each)."""
    account_id = manifest.require_account("--refresh")
    listed = client.list_scripts(account_id)
    scripts = {item["id"]: RemoteScript(item["id"], item.get("etag"), item.get("modified_on")) for item in listed}
    if state is not None:
        changed = [s for s in state.scripts if s.name in scripts
                   and (scripts[s.name].etag, scripts[s.name].modified_on) != (s.etag, s.modified_on)]
        wanted = {script.name: script for script in manifest.scripts}
        for name, (bindings, digest, unmanaged) in _read_scripts(account_id, client, changed, wanted,
                                                                 parallelism).items():
            scripts[name] = dataclasses.replace(scripts[name], bindings=bindings, content_sha256=digest,
                                                unmanaged=unmanaged)
    # Each resource kind the manifest or state has is listed once (KV always, as before).
    used = {r.type for r in manifest.resources} | {kind.type for kind in RESOURCE_KINDS.values() if kind.always_in_state}
    owned = {t: RESOURCE_KINDS[t].listed_in(client, account_id) for t in sorted(used)}
    return RemoteSnapshot(scripts, {t: ids for t, (ids, _) in owned.items()},
                          {t: names for t, (_, names) in owned.items()},
                          read_attachments(state.attachments, account_id, client) if state is not None else {})


def read_attachments(recorded: Sequence[Attachment], account_id: str, client: object
                     ) -> dict[tuple[str, str], Attachment | None]:
    """What Cloudflare has for each recorded attachment, by (type, name); None when it is gone
    (its script too, for crons and workers.dev)."""
    session = Session(cast(TriggerClient, client), account_id)
    found: dict[tuple[str, str], Attachment | None] = {}
    for attachment in recorded:
        try:
            found[attachment.type, attachment.name] = ATTACHMENT_KINDS[attachment.type].read(session, attachment)
        except CloudflareApiError as exc:
            if exc.status != 404:
                raise
            found[attachment.type, attachment.name] = None
    return found


def adopt_attachments(script: Script, account_id: str, client: object) -> tuple[tuple[Attachment, ...], list[str]]:
    """What Cloudflare attaches to ``script`` of what the manifest attaches to it (``import``),
    plus warnings for what it has attached elsewhere or not at all (the next plan shows them)."""
    session = Session(cast(TriggerClient, client), account_id)
    adopted, warnings = [], []
    for wanted in script.attachments:
        try:
            found = ATTACHMENT_KINDS[wanted.type].adopt(session, wanted)
        except CloudflareApiError as exc:
            if exc.status != 404:
                raise
            found = None
        if found is None:
            warnings.append(f"{wanted.type} {wanted.name} is not attached to script {script.name} in Cloudflare: "
                            "the next apply attaches it")
        else:
            adopted.append(found)
    return tuple(adopted), warnings


_Read = tuple[tuple[DeployedBinding, ...], str, tuple[tuple[str, str], ...]]


def _read_scripts(account_id: str, client: _Client, changed: Sequence[ScriptState], wanted: Mapping[str, Script],
                  parallelism: int) -> dict[str, _Read]:
    """``(bindings, code hash, unmanaged bindings)`` of each ``changed`` script from its settings
    and code, read in parallel (the client's request budget paces them); the first failure is
    raised once every read has ended."""
    if not changed:
        return {}

    def read(recorded: ScriptState) -> _Read:
        settings = client.get_script_settings(account_id, recorded.name)
        content_type, body = client.download_script(account_id, recorded.name)
        bindings, unmanaged = _split_bindings(settings.get("bindings") or [])
        digest = _code_digest(wanted.get(recorded.name), content_type, body, settings, recorded.content_sha256)
        return bindings, digest, unmanaged

    from concurrent.futures import ThreadPoolExecutor  # here: apply imports this module, refresh alone needs it

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(changed))),
                            thread_name_prefix="deployer-refresh") as pool:
        futures = {recorded.name: pool.submit(read, recorded) for recorded in changed}
    return {name: future.result() for name, future in futures.items()}


# --- deployer refresh ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refresh:
    """What ``deployer refresh`` records: scripts as deployed (etag, bindings, code hash), with
    what changed outside each one, and scripts and namespaces gone from Cloudflare (dropped, so
    the next plan creates them)."""

    updated: tuple[tuple[ScriptState, tuple[Drift, ...]], ...]
    gone_scripts: tuple[str, ...]
    gone_resources: tuple[tuple[str, str], ...]  # (type, key)
    unchanged: int
    attachments: tuple[Attachment, ...] = ()  # recorded attachments as Cloudflare has them now
    gone_attachments: tuple[tuple[str, str], ...] = ()  # (type, name)


def refresh_state(state: State, remote: RemoteSnapshot) -> Refresh:
    """Pure: the records that make ``state`` agree with ``remote`` without uploading."""
    updated, gone = [], []
    for recorded in state.scripts:
        seen = remote.scripts.get(recorded.name)
        if seen is None:
            gone.append(recorded.name)
        elif (seen.etag, seen.modified_on) != (recorded.etag, recorded.modified_on):
            updated.append((refreshed(recorded, seen), script_drift(recorded, seen)))
    gone_resources = tuple((r.type, r.key) for r in state.resources if remote.resource_gone(r))
    unchanged = len(state.scripts) - len(updated) - len(gone)
    attachments: list[Attachment] = []
    gone_attachments: list[tuple[str, str]] = []
    for attached in state.attachments:
        key = (attached.type, attached.name)
        if key not in remote.attachments:
            continue
        now = remote.attachments[key]
        if now is None:
            gone_attachments.append(key)
        elif ATTACHMENT_KINDS[attached.type].drifted(now, attached):
            attachments.append(now)
    return Refresh(tuple(updated), tuple(gone), gone_resources, unchanged, tuple(attachments), tuple(gone_attachments))


# --- deployer import ----------------------------------------------------------------------


def deployed_scripts(account_id: str, client: _Client) -> dict[str, dict[str, Any]]:
    """The account's scripts by name (one list request), for importing several at once."""
    return {item["id"]: item for item in client.list_scripts(account_id) if isinstance(item.get("id"), str)}


def import_script(
    script: Script,
    account_id: str,
    client: _Client,
    *,
    listed: Mapping[str, Mapping[str, Any]] | None = None,
    trust_secrets: bool = False,
) -> tuple[ScriptState, list[str]]:
    """Read ``script``'s deployed code and bindings into a ScriptState, plus warnings.

    The content hash is computed from the downloaded parts the way the manifest computes its
    own, so an unchanged script plans as no-op. Secrets come back without values: they are
    recorded without a fingerprint, so the next plan re-sends them (reason ``secret``), unless
    ``trust_secrets``: then the manifest's values of the secrets Cloudflare has are taken to be
    the deployed ones and their fingerprints recorded (never the values). ``listed`` is the
    account's script list when the caller read it already (``deployed_scripts``).
    Raises DeployerError when the script does not exist in the account.
    """
    if listed is None:
        listed = deployed_scripts(account_id, client)
    if script.name not in listed:
        raise DeployerError(f"script {script.name!r} does not exist in account {account_id}: nothing to import "
                            "(deployer plan shows it as a create)")
    content_type, body = client.download_script(account_id, script.name)
    settings = client.get_script_settings(account_id, script.name)
    digest = _code_digest(script, content_type, body, settings)
    bindings, unmanaged = _split_bindings(settings.get("bindings") or [])
    warnings = [unmanaged_warning(name, binding_type) for name, binding_type in unmanaged]
    fingerprints: tuple[tuple[str, str], ...] = ()
    if trust_secrets:
        fingerprints, untrusted = _trusted_secrets(script, bindings)
        warnings += [f"secret {name} is in the manifest but not deployed in Cloudflare: the next apply sends it"
                     for name in untrusted]
    item = listed[script.name]
    recorded = ScriptState(
        name=script.name,
        content_sha256=digest,
        bindings=bindings,
        secret_fingerprints=fingerprints,
        etag=_text(item.get("etag")),
        modified_on=_text(item.get("modified_on")),
        # The upload settings Cloudflare has (its defaults left out), so the next plan compares them.
        settings_sha256=setting_digests(remote_settings(settings)),
    )
    return recorded, warnings


def _trusted_secrets(
    script: Script, bindings: Sequence[DeployedBinding]
) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """Fingerprints of the manifest's values for the secrets Cloudflare has (trusted to be the
    same: Cloudflare never returns a secret), and the names of those it does not have."""
    deployed = {b.name for b in bindings if BINDING_KINDS[b.type].secret is not None}
    trusted, missing = [], []
    for binding in script.bindings:
        if binding.secret is not None:
            if binding.name in deployed:
                trusted.append((binding.name, fingerprint_secret(binding.secret.value)))
            else:
                missing.append(binding.name)
    return tuple(trusted), missing


def _code_digest(script: Script | None, content_type: str, body: bytes, settings: Mapping[str, Any],
                 recorded: str | None = None) -> str:
    """The ``content_sha256`` of downloaded code, computed the way the manifest computes its
    own: with the compatibility settings only when the manifest's ``script`` sets them (the
    settings always report a date). For a script the manifest no longer has, the form that
    matches ``recorded`` if any (it is about to be deleted; only drift is shown for it)."""
    script_format, parts = _code_parts(content_type, body)
    date = settings.get("compatibility_date")
    flags = tuple(settings.get("compatibility_flags") or ())
    if script is not None:
        return content_digest(script_format, parts, date if script.compatibility_date is not None else None,
                              flags if script.compatibility_flags else ())
    forms = [content_digest(script_format, parts, date, flags), content_digest(script_format, parts)]
    return recorded if recorded in forms else forms[0]


def _code_parts(content_type: str, body: bytes) -> tuple[ScriptFormat, list[tuple[str, str, str]]]:
    """``(format, [(part name, content type, sha256)])`` of downloaded code, entry first: a
    multipart answer is a modules script (its first part the main module), anything else the
    bytes of a service-worker script."""
    from email.message import Message  # here, not at the top: apply imports this module (~5 ms)

    header = Message()
    header["Content-Type"] = content_type or "application/octet-stream"
    if header.get_content_type() != "multipart/form-data":
        return ScriptFormat.SERVICE_WORKER, [(SERVICE_WORKER_PART, SERVICE_WORKER_TYPE, hashlib.sha256(body).hexdigest())]
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise DeployerError("Cloudflare sent the script's modules without a multipart boundary")
    parts = []
    for name, part_type, data in _split_multipart(body, boundary):
        parts.append((name, part_type, hashlib.sha256(data).hexdigest()))
    if not parts:
        raise DeployerError("Cloudflare sent the script's code as an empty multipart body")
    return ScriptFormat.MODULES, parts


def _split_multipart(body: bytes, boundary: str) -> list[tuple[str, str, bytes]]:
    """``(name, content type, bytes)`` of each part, bytes exactly as received."""
    from email.message import Message

    parts = []
    for section in (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))[1:]:
        if section.startswith(b"--"):
            break
        head, _, data = section.partition(b"\r\n\r\n")
        headers = Message()
        for line in head.decode("latin-1").split("\r\n")[1:]:
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip()] = value.strip()
        name = headers.get_param("name", header="content-disposition")
        content_type = headers.get_content_type() if headers.get("Content-Type") else "application/octet-stream"
        parts.append((name if isinstance(name, str) else "", content_type, data))
    return parts


def _split_bindings(items: Sequence[Any]) -> tuple[tuple[DeployedBinding, ...], tuple[tuple[str, str], ...]]:
    """The settings' bindings deployer manages, read back by their kinds, and ``(name, type)``
    of the others."""
    bindings, unmanaged = [], []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        kind = BINDING_KINDS.get(str(item.get("type")))
        if kind is None:
            unmanaged.append((item["name"], str(item.get("type"))))
            continue
        bindings.append(kind.from_remote(item))
    return tuple(bindings), tuple(unmanaged)


def unmanaged_warning(name: str, binding_type: str) -> str:
    return (f"binding {escape_text(name)} of type {escape_text(binding_type)} is not one deployer manages; "
            "the next apply uploads the script without it")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# --- apply --verify -----------------------------------------------------------------------


def binding_mismatches(sent: Sequence[Mapping[str, Any]], deployed: Sequence[Any]) -> list[str]:
    """How the bindings Cloudflare reports differ from those an upload sent, one line per
    binding, naming it. Secret values are never compared or shown (Cloudflare returns none)."""
    remote = {item.get("name"): item for item in deployed if isinstance(item, dict)}
    problems = []
    for binding in sent:
        name, kind = binding["name"], binding["type"]
        found = remote.pop(name, None)
        if found is None:
            problems.append(f"binding {name} ({kind}) was sent but Cloudflare does not have it")
        elif found.get("type") != kind:
            problems.append(f"binding {name} was sent as {kind} but Cloudflare has it as {found.get('type')}")
        elif kind in BINDING_KINDS:
            problems += BINDING_KINDS[kind].mismatches(binding, found)
    for name, found in remote.items():
        problems.append(f"binding {name} ({found.get('type')}) is in Cloudflare but was not sent")
    return problems
