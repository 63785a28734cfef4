"""State maintenance behind ``deployer state history | rollback | push | pull``: listing and
restoring saved versions in PostgreSQL, and moving a state between a file and PostgreSQL.
Returns text for cli.py to print; refusals are StateErrors that say how to go on."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from deployer.errors import StateError
from deployer.state.lock import shown_path
from deployer.models import State
from deployer.state.postgres import PgStateStore, Version
from deployer.state.store import StateStore, state_to_json


def render_history(store: PgStateStore, versions: list[Version]) -> str:
    if not versions:
        return f"no saved versions of state {store.description}\n"
    rows = [("SERIAL", "SAVED (UTC)", "HOST", "USER", "RECORDS", "NOTE")]
    rows += [(str(v.serial), v.saved_at, v.host, v.user, str(v.records), v.note) for v in versions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] + "\n" for row in rows
    )


def rollback_state(store: PgStateStore, serial: int, *, timeout: float, warn: Callable[[str], None]) -> str:
    """Save the content of version ``serial`` as a new version (lineage kept, serial + 1)."""
    with store.lock(command=f"deployer state rollback --to {serial}", timeout=timeout, warn=warn):
        current = store.state
        if serial >= current.serial:
            what = "is the current one" if serial == current.serial else "was never saved"
            raise StateError(f"serial {serial} {what}: state {store.description} is at serial {current.serial}; "
                             f"roll back to an earlier serial ('deployer state history' lists them)")
        old = store.version(serial)
        if old is None:
            raise StateError(f"serial {serial} is not a saved version of state {store.description}; "
                             f"'deployer state history' lists them")
        restored = dataclasses.replace(old, lineage=current.lineage, serial=current.serial + 1)
        store.replace(restored, note=f"rollback to serial {serial}")
    return (f"state {store.description}: the content of serial {serial} is saved as serial "
            f"{restored.serial}; run 'deployer plan' to see what apply would change in Cloudflare\n")


def push_state(path: Path, store: PgStateStore, *, force: bool, timeout: float,
               warn: Callable[[str], None]) -> str:
    """Copy the state file at ``path`` into PostgreSQL; refuse to overwrite another lineage or a
    newer remote unless ``force`` (the history keeps what was there)."""
    shown = shown_path(path)
    local = StateStore(path).load()
    if not local.lineage:
        raise StateError(f"{shown} holds no state to push (is it the right file? 'deployer state push FILE')")
    with store.lock(command="deployer state push", timeout=timeout, warn=warn):
        remote = store.state
        if _same(local, remote):
            return f"state {store.description} already holds {shown} (serial {remote.serial}); nothing to push\n"
        if not force:
            _refuse_overwrite(remote, local, target=f"state {store.description}", source=shown,
                              other_way=f"pull it first ('deployer state pull {shown}')")
        serial = local.serial if local.serial > remote.serial else remote.serial + 1
        store.replace(dataclasses.replace(local, serial=serial), note=f"push of {shown}")
    return f"pushed {shown} to state {store.description} as serial {serial}\n"


def pull_state(store: PgStateStore, path: Path, *, force: bool, timeout: float,
               warn: Callable[[str], None]) -> str:
    """Write the state in PostgreSQL to the file at ``path`` (taking that file's lock); refuse to
    overwrite another lineage or a newer file unless ``force``."""
    shown = shown_path(path)
    remote = store.load()
    if not remote.lineage:
        raise StateError(f"there is no state {store.description} to pull; check --state-name and the URL")
    local_store = StateStore(path)
    with local_store.lock(command="deployer state pull", timeout=timeout, warn=warn):
        local = local_store.state
        if _same(local, remote):
            return f"{shown} already holds state {store.description} (serial {remote.serial}); nothing to pull\n"
        if not force:
            _refuse_overwrite(local, remote, target=shown, source=f"state {store.description}",
                              other_way=f"push it instead ('deployer state push {shown}')")
        local_store.replace(remote)
    return f"pulled state {store.description} (serial {remote.serial}) into {shown}\n"


def _same(a: State, b: State) -> bool:
    return state_to_json(a) == state_to_json(b)


def _refuse_overwrite(existing: State, incoming: State, *, target: str, source: str, other_way: str) -> None:
    """Terraform's rule: only the same lineage at a lower serial may be overwritten."""
    if not existing.lineage:
        return
    if existing.lineage != incoming.lineage:
        raise StateError(
            f"{target} has lineage {existing.lineage} but {source} has lineage {incoming.lineage}: they are "
            f"different states; pass --force to replace it anyway"
        )
    if existing.serial >= incoming.serial:
        newer = "is newer than" if existing.serial > incoming.serial else "has the same serial as, but other content than,"
        raise StateError(
            f"{target} (serial {existing.serial}) {newer} {source} (serial {incoming.serial}); "
            f"{other_way}, or pass --force to replace it"
        )
