"""Save a reviewed plan (``plan --out``) and check it before ``apply PLANFILE`` runs it.

A plan file holds the plan, the state lineage and serial it was made against, the account or
zone, and per script the content hash, the bindings as written (secret values only as salted
fingerprints): enough to refuse a plan that no longer says what would be uploaded.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from deployer.errors import DeployerError, StalePlanError
from deployer.fingerprint import fingerprint_secret, secret_matches
from deployer.kinds.registry import binding_kind
from deployer.models import Manifest, Plan, Script, State
from deployer.plan.render import plan_document

PLANFILE_KIND = "deployer-plan"
PLANFILE_VERSION = 1


def write_planfile(path: Path, plan: Plan, manifest: Manifest, *, refreshed: bool = False) -> None:
    """Write atomically (temp file + rename) so a half-written plan can never be applied.
    ``refreshed``: the plan compared Cloudflare too (apply then reads it again to check)."""
    doc = {
        "kind": PLANFILE_KIND,
        "format_version": PLANFILE_VERSION,
        "manifest": str(manifest.path),
        "environment": manifest.environment,
        "refresh": refreshed,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "plan": plan_document(plan),
        "target": _target(manifest),
        "scripts": {
            script.name: {
                "content_sha256": script.content_sha256,
                "bindings": _bindings_record(script),
                "secret_fingerprints": {
                    b.name: fingerprint_secret(b.secret.value) for b in script.bindings if b.secret is not None
                },
            }
            for script in manifest.scripts
        },
    }
    directory = path.resolve().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except OSError as exc:
        raise DeployerError(f"cannot write plan file {path}: {exc.strerror or exc}") from exc


def read_planfile(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployerError(f"plan file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployerError(f"{path} is not a deployer plan file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != PLANFILE_KIND:
        raise DeployerError(f"{path} is not a deployer plan file (made with 'deployer plan --out')")
    if doc.get("format_version") != PLANFILE_VERSION:
        raise DeployerError(f"{path} has plan format {doc.get('format_version')!r}; this deployer reads {PLANFILE_VERSION}")
    return doc


def check_planfile(doc: dict[str, object], path: Path, manifest: Manifest, state: State, plan: Plan) -> None:
    """Raise StalePlanError unless applying ``plan`` (made now) is exactly what ``doc`` promised:
    same state lineage and serial, same script files, same secrets, same changes."""
    if doc.get("lineage") and doc.get("lineage") != state.lineage:
        raise StalePlanError(
            f"plan {path} belongs to state lineage {doc.get('lineage')!r}, but this state is lineage "
            f"{state.lineage or '(empty)'!r}; run plan again against this state"
        )
    if doc.get("lineage") != state.lineage or doc.get("serial") != state.serial:
        raise StalePlanError(
            f"the state changed since plan {path} was made (serial {doc.get('serial')} -> {state.serial}); "
            "run plan again and review it"
        )
    if doc.get("target") != _target(manifest):
        raise StalePlanError(
            f"plan {path} was made for {_describe(doc.get('target'))}, but {manifest.path} now targets "
            f"{_describe(_target(manifest))}; run plan again"
        )
    saved_scripts = doc.get("scripts")
    if not isinstance(saved_scripts, dict):
        raise DeployerError(f"{path} is damaged: no 'scripts' record")
    for script in manifest.scripts:
        saved = saved_scripts.get(script.name)
        if not isinstance(saved, dict):
            continue  # a script added to the manifest shows up as a changed plan below
        if saved.get("content_sha256") != script.content_sha256:
            raise StalePlanError(f"script file {script.path} changed since plan {path} was made; run plan again")
        if saved.get("bindings") != _bindings_record(script):
            raise StalePlanError(
                f"the bindings of script {script.name} in {manifest.path} changed since plan {path} was made; "
                "run plan again"
            )
        fingerprints = saved.get("secret_fingerprints") or {}
        for binding in script.bindings:
            if binding.secret is not None:
                fingerprint = fingerprints.get(binding.name) if isinstance(fingerprints, dict) else None
                if fingerprint is None or not secret_matches(binding.secret.value, str(fingerprint)):
                    raise StalePlanError(
                        f"secret {binding.name} of script {script.name} changed since plan {path} was made; "
                        "run plan again"
                    )
    if plan_document(plan) != doc.get("plan"):
        raise StalePlanError(f"the manifest {manifest.path} changed since plan {path} was made; run plan again")


def _target(manifest: Manifest) -> dict[str, str | None]:
    return {"account_id": manifest.account_id, "zone_id": manifest.zone_id}


def _describe(target: object) -> str:
    if not isinstance(target, dict):
        return "an unknown account (the plan file has no target)"
    if target.get("account_id"):
        return f"account_id {target['account_id']}"
    return f"zone_id {target.get('zone_id')}"


def _bindings_record(script: Script) -> list[dict[str, object]]:
    """The bindings as the manifest gives them, in upload order; a secret by name only (its
    value is checked against the fingerprint)."""
    return [binding_kind(b.type).planfile_record(b) for b in script.bindings]
