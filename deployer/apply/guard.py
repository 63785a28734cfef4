"""What apply checks before its first change: a script this state does not hold must not exist
in Cloudflare already (someone's script would be replaced), a script carrying another
project's ownership tag (``deployer:project=NAME``) is never taken without ``--allow-overwrite``,
and neither is a route pattern or custom domain that a script outside this state has.

The account's script list is read once per run (``CachedReads``), whatever the number of
scripts, and shared with ``--refresh``. Contract: "Safe by default" in shared/CONTRACT.md.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from deployer.apply.upload import OWNER_TAG_PREFIX
from deployer.errors import DeployerError
from deployer.kinds.attachment import Session, TriggerClient
from deployer.kinds.registry import ATTACHMENT_KINDS
from deployer.models import SCRIPT, Action, Attachment, Manifest, Plan, State


class _Client(Protocol):
    """The reading part of CloudflareClient."""

    def list_scripts(self, account_id: str) -> list[dict[str, Any]]: ...
    def list_kv_namespaces(self, account_id: str) -> list[dict[str, Any]]: ...
    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]: ...
    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]: ...
    def zone_script_exists(self, zone_id: str) -> bool: ...
    def find_zone_id(self, zone_name: str) -> str: ...
    def list_routes(self, zone_id: str) -> list[dict[str, Any]]: ...
    def list_custom_domains(self, account_id: str) -> list[dict[str, Any]]: ...


class CachedReads:
    """A client whose script list and script settings are read at most once per run, so
    apply's check and ``--refresh`` share one list request and import's tag check reuses the
    settings it read. Only for one command's run: what it caches is not read again."""

    def __init__(self, client: _Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}

    def list_scripts(self, account_id: str) -> list[dict[str, Any]]:
        with self._lock:
            if account_id not in self._lists:
                self._lists[account_id] = self._client.list_scripts(account_id)
            return self._lists[account_id]

    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]:
        with self._lock:
            cached = self._settings.get((account_id, name))
        if cached is None:
            # Read outside the lock: --refresh reads several scripts' settings in parallel.
            cached = self._client.get_script_settings(account_id, name)
            with self._lock:
                cached = self._settings.setdefault((account_id, name), cached)
        return cached

    def list_kv_namespaces(self, account_id: str) -> list[dict[str, Any]]:
        return self._client.list_kv_namespaces(account_id)

    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]:
        return self._client.download_script(account_id, name)

    def zone_script_exists(self, zone_id: str) -> bool:
        return self._client.zone_script_exists(zone_id)

    def find_zone_id(self, zone_name: str) -> str:
        return self._client.find_zone_id(zone_name)  # the client remembers it for the run

    def list_routes(self, zone_id: str) -> list[dict[str, Any]]:
        return self._client.list_routes(zone_id)

    def list_custom_domains(self, account_id: str) -> list[dict[str, Any]]:
        return self._client.list_custom_domains(account_id)

    def __getattr__(self, name: str) -> Any:
        # Every other read (each owned resource kind's list, an attachment's read-back) goes straight through.
        return getattr(self._client, name)


def check_before_apply(plan: Plan, state: State, manifest: Manifest, client: _Client) -> None:
    """Refuse (DeployerError) before any change when the plan creates a script that the state
    does not hold but Cloudflare has: one list request (account), or one GET of the zone's
    script (the legacy zone API has no list). No request when the plan creates no such script."""
    refuse_foreign_attachments(plan, state, manifest, client)
    names = unrecorded_creates(plan, state)
    if not names:
        return
    if manifest.account_id is not None:
        refuse_overwrites(names, client.list_scripts(manifest.account_id), manifest.project)
    elif manifest.zone_id is not None and client.zone_script_exists(manifest.zone_id):
        raise DeployerError(
            f"refusing to overwrite the script that zone {manifest.zone_id} already runs: it is not in the state, "
            f"and this apply would replace it with {', '.join(names)}. The legacy zone API cannot import it; "
            "pass --allow-overwrite to replace it"
        )


def check_before_apply_started(plan: Plan, state: State, manifest: Manifest, client: _Client) -> Callable[[], None]:
    """``check_before_apply`` started on a thread, so that its reads overlap what apply does
    before its first change (reading and building the first uploads); the returned function
    waits for it and raises its refusal, if any. Nothing waits when it needs no request."""
    refusal: list[BaseException] = []

    def check() -> None:
        try:
            check_before_apply(plan, state, manifest, client)
        except BaseException as exc:  # noqa: BLE001 - raised by the verdict, in the caller's thread
            refusal.append(exc)

    checking = threading.Thread(target=check, name="deployer-guard", daemon=True)
    checking.start()

    def verdict() -> None:
        checking.join()
        if refusal:
            raise refusal[0]

    return verdict


def refuse_foreign_attachments(plan: Plan, state: State, manifest: Manifest, client: _Client) -> None:
    """Refuse (DeployerError) before any change when the plan attaches a route pattern or a
    custom domain, new to this state, that Cloudflare attaches to a script this state does not
    hold. Reads each zone's routes and the account's domains once, only when such are planned."""
    new: dict[str, list[Attachment]] = {}
    for change in plan.changes:
        if (change.type in ATTACHMENT_KINDS and change.action is Action.CREATE and change.attachment is not None
                and state.attachment(change.type, change.name) is None):
            new.setdefault(change.type, []).append(change.attachment)
    if not new or manifest.account_id is None:
        return
    session = Session(cast(TriggerClient, client), manifest.account_id)
    lines = []
    for kind_type, wanted in new.items():
        lines += ATTACHMENT_KINDS[kind_type].foreign(session, wanted, lambda script: state.script(script) is not None)
    if lines:
        raise DeployerError("\n".join([
            "refusing to take over what scripts outside this state use (their owner would lose it):", *lines,
            "Remove them from the manifest, or pass --allow-overwrite to take them"]))


def owner_tag(project: str) -> str:
    """The tag every upload of a project with ``project: NAME`` carries."""
    return OWNER_TAG_PREFIX + project


def tagged_owners(tags: object) -> tuple[str, ...]:
    """The projects named by ``deployer:project=`` tags in a script's ``tags`` (anything else
    Cloudflare sends there is ignored)."""
    if not isinstance(tags, list):
        return ()
    return tuple(sorted({t[len(OWNER_TAG_PREFIX):] for t in tags
                         if isinstance(t, str) and t.startswith(OWNER_TAG_PREFIX)}))


def other_owners(tags: object, project: str | None) -> tuple[str, ...]:
    """Projects other than ``project`` that tag a script as theirs (any, when ``project`` is None)."""
    return tuple(owner for owner in tagged_owners(tags) if owner != project)


def unrecorded_creates(plan: Plan, state: State) -> list[str]:
    """Scripts the plan creates that the state does not hold: what an upload could replace.
    (A create of a script the state holds was deleted outside deployer: nothing to replace.)"""
    return [
        change.name for change in plan.changes
        if change.type == SCRIPT and change.action is Action.CREATE and state.script(change.name) is None
    ]


def refuse_overwrites(names: Sequence[str], listed: Iterable[Mapping[str, Any]], project: str | None) -> None:
    """Raise DeployerError naming each of ``names`` that the account's script list holds, with
    ``deployer import NAME`` and ``--allow-overwrite`` as the ways forward, and the project
    that tagged it when the list says."""
    by_name = {item.get("id"): item for item in listed}
    existing = [name for name in names if name in by_name]
    if not existing:
        return
    lines = [overwrite_message(existing)]
    for name in existing:
        owners = other_owners(by_name[name].get("tags"), project)
        if owners:
            lines.append(f"deployer import {name}   (tagged by project {', '.join(owners)}: "
                         "import and overwrite both need --allow-overwrite)")
        else:
            lines.append(f"deployer import {name}")
    raise DeployerError("\n".join(lines))


def overwrite_message(names: Sequence[str]) -> str:
    return (f"refusing to overwrite script(s) that exist in Cloudflare but not in the state: {', '.join(names)}. "
            "Adopt them with 'deployer import NAME' (then plan again), or pass --allow-overwrite")


def refuse_other_owner(name: str, tags: object, project: str | None, what: str) -> None:
    """Raise DeployerError when script ``name`` carries another project's ownership tag."""
    owners = other_owners(tags, project)
    if owners:
        mine = f"this manifest's project is {project!r}" if project else "this manifest sets no project:"
        raise DeployerError(
            f"refusing to {what} script {name}: it is tagged as project {', '.join(repr(o) for o in owners)}'s "
            f"(tag {owner_tag(owners[0])}) and {mine}; pass --allow-overwrite if it really is yours to take"
        )
