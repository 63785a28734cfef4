"""``deployer promote``, ``deployer rollback`` and ``deployer versions``: end a gradual
deployment that ``apply --gradual`` started, or list a script's versions (CONTRACT.md,
"Versions, gradual deployments and rollback"). The logic is in ``deployer/apply/gradual.py``."""
from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any, Optional

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
from deployer.errors import ApprovalRefused

ScriptsArgument = typer.Argument(
    None, metavar="[SCRIPT]...", help="Scripts to end the gradual deployment of, as the plan names them (default: "
    "every script in one).")
AutoApproveOption = typer.Option(False, "--auto-approve", help="Go ahead without asking (CI).")
DeploymentMessageOption = typer.Option(
    None, "--message", help="Annotate the new deployment (workers/message, at most 1,000 bytes).")


class VersionsFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    app.command()(promote)
    app.command()(rollback)
    app.command()(versions)


def promote(
    scripts: Optional[list[str]] = ScriptsArgument,
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    auto_approve: bool = AutoApproveOption,
    message: Optional[str] = DeploymentMessageOption,
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Send all traffic to the new version of scripts in a gradual deployment (one deployment each, no upload)."""
    return _end(scripts or [], file, env, state, state_name, auto_approve, message, lock_timeout, promote=True)


def rollback(
    scripts: Optional[list[str]] = ScriptsArgument,
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    auto_approve: bool = AutoApproveOption,
    message: Optional[str] = DeploymentMessageOption,
    force: bool = typer.Option(
        False, "--force", help="Roll back even when the script's secrets changed since the previous version "
        "(it then runs with the current secrets; Cloudflare refuses otherwise, code 10220)."),
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Send all traffic back to the version scripts in a gradual deployment ran before (one deployment each);
    the next plan shows the manifest's update again."""
    return _end(scripts or [], file, env, state, state_name, auto_approve, message, lock_timeout, promote=False,
                force=force)


def _end(names: list[str], file: Path, env: str | None, state: str | None, state_name: str | None,
         auto_approve: bool, message: str | None, lock_timeout: float, *, promote: bool, force: bool = False) -> int:
    from deployer.apply.annotations import MAX_MESSAGE_BYTES, cut_utf8
    from deployer.apply.gradual import end_gradual, plan_endings
    from deployer.cli import app as cli

    command = "promote" if promote else "rollback"
    manifest = cli._load_manifest(file, env)
    account_id = manifest.require_account(f"deployer {command}")
    client = cli._client()
    store = open_state(file, env, state, state_name, manifest.project)
    done = 0
    try:
        with store.lock(command=f"deployer {command}", timeout=lock_timeout, warn=warn):
            current = store.load()
            cli._check_target(manifest, store, current, cli._identity(file, manifest))  # before any request
            endings = plan_endings(current, names, promote=promote)
            if not endings:
                print(f"Nothing to {command}: no script is in a gradual deployment.")
                return ExitStatus.OK
            for ending in endings:
                print(ending.describe())
            if not auto_approve:
                _confirm(command)
            try:
                for ending in endings:
                    note = end_gradual(ending, account_id, client, force=force,
                                       message=cut_utf8(message, MAX_MESSAGE_BYTES) if message else None)
                    store.record(scripts=[ending.after])
                    done += 1
                    stderr(note)
            finally:
                store.commit()
    finally:
        client.close()
    verb = "promoted" if promote else "rolled back"
    print(f"{command.capitalize()} complete: {done} script(s) {verb}."
          + ("" if promote else " 'deployer plan' shows the manifest's update again."))
    return ExitStatus.OK


def _confirm(command: str) -> None:
    if not sys.stdin.isatty():
        raise ApprovalRefused(f"{command} needs approval and there is no terminal to ask on: review the lines above "
                              "and pass --auto-approve")
    sys.stderr.write(f"\n{command.capitalize()} these scripts? Only 'yes' is accepted: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "yes":
        raise ApprovalRefused(f"{command} cancelled: nothing was changed")


def versions(
    script: str = typer.Argument(..., help="The script's name in Cloudflare, as the plan shows it."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    format: VersionsFormat = typer.Option(VersionsFormat.TEXT, "--format", help="text or json."),
    debug: bool = DebugOption,
) -> int:
    """List a script's recent versions and its live deployment, marking the versions the state records."""
    from deployer.cli import app as cli

    manifest = cli._load_manifest(file, env)
    account_id = manifest.require_account("deployer versions")
    recorded = open_state(file, env, state, state_name, manifest.project).load().script(script)
    client = cli._client()
    try:
        found = client.list_versions(account_id, script)
        deployments = client.list_deployments(account_id, script)
    finally:
        client.close()
    marks: dict[str, str] = {}
    if recorded is not None:
        if recorded.pending is not None and recorded.pending.version_id:
            marks[recorded.pending.version_id] = "uploaded, not deployed yet"
        if recorded.previous is not None and recorded.previous.version_id:
            marks[recorded.previous.version_id] = "previous"
        if recorded.version_id:
            marks[recorded.version_id] = "new, gradual" if recorded.split else "deployed"
    live = deployments[0] if deployments else None
    shares = {str(s["version_id"]): s["percentage"] for s in live["versions"]} if live else {}
    if format is VersionsFormat.JSON:
        doc = {"script": script, "deployment": live,
               "versions": [{**_version_summary(v), "percentage": shares.get(v["id"], 0),
                             "state": marks.get(v["id"])} for v in found]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return ExitStatus.OK
    if live is not None:
        split = ", ".join(f"{vid} at {share}%" for vid, share in shares.items())
        print(f"Live deployment of script {script} ({live.get('created_on', 'date unknown')}): {split}")
    else:
        print(f"Script {script} has no deployment.")
    print(f"Versions, newest first ({len(found)}; 'state:' marks what the state records):")
    for version in found:
        summary = _version_summary(version)
        share = f"{shares[version['id']]}%" if version["id"] in shares else "-"
        line = f"  #{summary['number']}  {version['id']}  {summary['created_on'] or '?'}  {share:>4}"
        annotations = summary["annotations"]
        if annotations.get("workers/tag"):
            line += f"  tag {annotations['workers/tag']}"
        if annotations.get("workers/message"):
            line += f"  {json.dumps(annotations['workers/message'], ensure_ascii=False)}"
        if version["id"] in marks:
            line += f"  state: {marks[version['id']]}"
        print(line)
    if recorded is None:
        stderr(f"note: the state records no script {script}")
    elif not marks:
        stderr(f"note: the state records no version of script {script} (versions are recorded by 'apply --gradual')")
    return ExitStatus.OK


def _version_summary(version: dict[str, Any]) -> dict[str, Any]:
    metadata = version.get("metadata") if isinstance(version.get("metadata"), dict) else {}
    annotations = version.get("annotations") if isinstance(version.get("annotations"), dict) else {}
    return {"id": version["id"], "number": version.get("number"), "created_on": (metadata or {}).get("created_on"),
            "annotations": {k: v for k, v in (annotations or {}).items() if isinstance(v, str)}}
