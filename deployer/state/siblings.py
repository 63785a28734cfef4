"""Keep environments apart: the states of the other environments of the same manifest, and the
rule that an environment never adopts an owned resource one of them records (CONTRACT.md, "Safe
by default"; issue 10 item 7).

File states: every ``.deployer/state.json`` and ``.deployer/state.<env>.json`` beside the
manifest other than the one in use. PostgreSQL states: the default names of the base and of each
environment the manifest declares, in the same database and schema; with ``--state-name`` the
other environments' names are not known, so none are read.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from deployer.errors import DeployerError
from deployer.kinds.registry import RESOURCE_KINDS
from deployer.models import Action, Manifest, Plan, State

if TYPE_CHECKING:
    from deployer.state.backend import StateBackend
    from deployer.state.postgres import PgStateStore


@dataclass(frozen=True, slots=True)
class OtherState:
    """The state of another environment (None: the base manifest) of this manifest."""

    environment: str | None
    description: str  # where it is: a file, or a name in PostgreSQL
    state: State

    @property
    def label(self) -> str:
        return _who(self.environment)


def other_environment_states(
    manifest: Manifest, store: StateBackend, *, state_name_given: bool, warn: Callable[[str], None]
) -> list[OtherState]:
    """The states of the manifest's other environments that exist and were written by the same
    project (or before projects were recorded). One that cannot be read is skipped with a
    warning: it must not stop this environment's deploy."""
    from deployer.state.store import StateStore

    candidates: list[tuple[str | None, StateBackend]] = []
    if isinstance(store, StateStore):
        folder = manifest.path.parent / ".deployer"
        for path in sorted([folder / "state.json", *folder.glob("state.*.json")]):
            # Another state of this very environment (--state) is the user's choice, not another environment.
            environment = _environment_of(path)
            if path.is_file() and path.resolve() != store.path.resolve() and environment != manifest.environment:
                candidates.append((environment, StateStore(path)))
    elif not state_name_given and _is_postgres(store):
        from deployer.state.backend import state_name
        from deployer.state.postgres import PgStateStore

        current = cast("PgStateStore", store)
        for environment in (None, *manifest.environments):
            name = state_name(manifest.path, environment, None, manifest.project)
            if name != current.name:
                candidates.append((environment, PgStateStore(current.target, name)))
    found = []
    for environment, other in candidates:
        try:
            state = other.load()
        except DeployerError as exc:
            warn(f"could not read {other.description} to check that environments do not share resources: {exc}")
            continue
        if state.resources:
            found.append(OtherState(environment, other.description, state))
    return found


def shared_resources(others: Iterable[OtherState]) -> frozenset[tuple[str, str]]:
    """``(type, id)`` of every owned resource another environment's state records: this
    environment must not rename one (the planner creates its own instead)."""
    return frozenset((r.type, r.id) for other in others for r in other.state.resources)


def refuse_adopting_theirs(plan: Plan, manifest: Manifest, others: Iterable[OtherState], identity: str) -> None:
    """Raise DeployerError, before any request, when ``plan`` would create (that is, adopt by
    name) an owned resource that the state of another environment records, naming both."""
    problems = []
    theirs = [o for o in others if o.state.project in (None, identity)]
    for change in plan.changes:
        kind = RESOURCE_KINDS.get(change.type)
        if kind is None or change.action not in (Action.CREATE, Action.ADOPT):
            continue
        for other in theirs:
            recorded = next((r for r in other.state.resources_of(change.type) if r.name == change.resource_name), None)
            if recorded is None:
                continue
            if manifest.environment is not None:
                fix = (f"give it its own {kind.name_key} under environments.{manifest.environment}.{kind.section}."
                       f"{change.name}, or a name_suffix to environments.{manifest.environment} (names from the "
                       "base then get it)")
            else:
                fix = f"give it another {kind.name_key} under {kind.section}.{change.name}"
            problems.append(
                f"{_who(manifest.environment)} would adopt {change.type} {change.name} ({kind.name_key} "
                f"{change.resource_name!r}), which {other.label} records in {other.description} (id {recorded.id}): "
                f"environments never share owned resources; {fix}")
            break
    if problems:
        raise DeployerError("\n".join(problems))


def _who(environment: str | None) -> str:
    return f"environment {environment!r}" if environment is not None else "the base manifest (no --env)"


def _environment_of(path: Path) -> str | None:
    """``state.json`` -> None (the base), ``state.staging.json`` -> ``staging``."""
    return path.name[len("state."):-len(".json")] or None if path.name != "state.json" else None


def _is_postgres(store: StateBackend) -> bool:
    module = sys.modules.get("deployer.state.postgres")  # not imported: no PostgreSQL store exists
    return module is not None and isinstance(store, module.PgStateStore)
