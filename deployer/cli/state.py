"""``deployer state``: list, show, and (PostgreSQL) history, rollback, push, pull."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from deployer.cli.shared import (
    DebugOption,
    EnvOption,
    ExitStatus,
    FileOption,
    LockTimeoutOption,
    StateNameOption,
    StateOption,
    open_state,
    stderr,
    warn,
)
from deployer.errors import DeployerError

state_app = typer.Typer(help="Read, restore and move the recorded state.", no_args_is_help=True, rich_markup_mode=None)


@state_app.command("list")
def state_list(
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    debug: bool = DebugOption,
) -> int:
    """List every recorded owned resource (namespace, ...), script and attachment (route, ...)."""
    from deployer.escape import escape_text

    recorded = open_state(file, env, state, state_name, peek=True).load()
    # One line per item, tab-separated: a title holding a tab or newline must not add columns or lines.
    for resource in recorded.resources:
        print("\t".join(escape_text(part) for part in (f"{resource.type}.{resource.key}", resource.id, resource.name)))
    for script in recorded.scripts:
        print(escape_text(f"script.{script.name}") + f"\t{script.content_sha256[:12]}\t{len(script.bindings)} binding(s)")
    for attachment in recorded.attachments:
        print(escape_text(f"{attachment.type}.{attachment.name}\t{attachment.id or '-'}\t-> {attachment.script}"))
    return ExitStatus.OK


@state_app.command("show")
def state_show(
    name: str = typer.Argument(..., help="A script name, or kv_namespace.KEY / script.NAME."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    debug: bool = DebugOption,
) -> int:
    """Show one recorded script or namespace as JSON."""
    from deployer.kinds.registry import RESOURCE_KINDS
    from deployer.state.store import state_to_json

    store = open_state(file, env, state, state_name, peek=True)
    doc = state_to_json(store.load())
    sections = {"script": "scripts", **{kind.type: kind.section for kind in RESOURCE_KINDS.values()}}
    kind, dot, short = name.partition(".")
    if not dot or kind not in sections:
        kind, short = "", name
    for kind_type in [kind] if kind else sections:
        entry = doc.get(sections[kind_type], {}).get(short)
        if entry is not None:
            print(json.dumps({"type": kind_type, "name": short, **entry}, indent=2, sort_keys=True))
            return ExitStatus.OK
    raise DeployerError(f"{name!r} is not in the state {store.description}; 'deployer state list' shows what is")


@state_app.command("history")
def state_history(
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    debug: bool = DebugOption,
) -> int:
    """List the saved versions of a state in PostgreSQL: serial, time, host, user."""
    from deployer.state.backend import require_postgres
    from deployer.state.commands import render_history

    store = require_postgres(open_state(file, env, state, state_name, peek=True), "state history")
    sys.stdout.write(render_history(store, store.history()))
    return ExitStatus.OK


@state_app.command("rollback")
def state_rollback(
    to: int = typer.Option(..., "--to", min=1, help="The serial to restore ('deployer state history')."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Save an earlier version of a state in PostgreSQL as its newest version."""
    from deployer.state.backend import require_postgres
    from deployer.state.commands import rollback_state

    store = require_postgres(open_state(file, env, state, state_name, peek=True), "state rollback")
    stderr(rollback_state(store, to, timeout=lock_timeout, warn=warn).rstrip("\n"))
    return ExitStatus.OK


@state_app.command("push")
def state_push(
    local: Optional[Path] = typer.Argument(None, help="State file to copy (default: .deployer/state[.ENV].json)."),
    force: bool = typer.Option(False, "--force", help="Replace another lineage or a newer remote state."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Copy a local state file into PostgreSQL."""
    from deployer.state.backend import require_postgres
    from deployer.state.store import default_state_path
    from deployer.state.commands import push_state

    store = require_postgres(open_state(file, env, state, state_name, peek=True), "state push")
    path = local if local is not None else default_state_path(file, env)
    stderr(push_state(path, store, force=force, timeout=lock_timeout, warn=warn).rstrip("\n"))
    return ExitStatus.OK


@state_app.command("pull")
def state_pull(
    local: Optional[Path] = typer.Argument(None, help="State file to write (default: .deployer/state[.ENV].json)."),
    force: bool = typer.Option(False, "--force", help="Replace another lineage or a newer local state file."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Write the state in PostgreSQL to a local state file."""
    from deployer.state.backend import require_postgres
    from deployer.state.store import default_state_path
    from deployer.state.commands import pull_state

    store = require_postgres(open_state(file, env, state, state_name, peek=True), "state pull")
    path = local if local is not None else default_state_path(file, env)
    stderr(pull_state(store, path, force=force, timeout=lock_timeout, warn=warn).rstrip("\n"))
    return ExitStatus.OK
