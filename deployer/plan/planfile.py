"""Save a reviewed plan (``plan --out``) and check it before ``apply PLANFILE`` runs it.

A plan file holds the plan, the state lineage and serial it was made against, the account or
zone, and per script the content hash, the bindings as written (secret values only as salted
fingerprints): enough to refuse a plan that no longer says what would be uploaded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deployer.errors import DeployerError, StalePlanError
from deployer.files import parse_json, read_regular, write_atomically
from deployer.fingerprint import fingerprint_secret, secret_matches
from deployer.kinds.assets import config_sha256
from deployer.kinds.registry import binding_kind
from deployer.models import Manifest, Plan, Script, State
from deployer.plan.render import plan_document, without_details
from deployer.state.fields import json_kind

PLANFILE_KIND = "deployer-plan"
PLANFILE_VERSION = 1
MAX_PLANFILE_BYTES = 64 * 1024 * 1024


def write_planfile(path: Path, plan: Plan, manifest: Manifest, *, refreshed: bool = False,
                   gradual: int | None = None) -> None:
    """Write atomically (temp file + rename) so a half-written plan can never be applied; only
    as a regular file (0600), never through a symlink or over a device in its place.
    ``refreshed``: the plan compared Cloudflare too (apply then reads it again to check);
    ``gradual``: it was made with ``--gradual`` (apply then deploys the same way)."""
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
                **_assets_record(script),
            }
            for script in manifest.scripts
        },
    }
    if gradual is not None:
        doc["gradual"] = gradual  # only then, so other plan files stay as they were
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    write_atomically(path, text.encode("utf-8"), f"plan file {path}")


def read_planfile(path: Path) -> dict[str, object]:
    """The plan file's document with every field the apply reads type-checked; a
    DeployerError naming the file and field otherwise (never a traceback, whatever it holds)."""
    raw = read_regular(path, f"plan file {path}", max_bytes=MAX_PLANFILE_BYTES, follow=True)
    if raw is None:
        raise DeployerError(f"plan file not found: {path}")
    try:
        doc = parse_json(raw)
    except ValueError as exc:
        raise DeployerError(f"{path} is not a deployer plan file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != PLANFILE_KIND:
        raise DeployerError(f"{path} is not a deployer plan file (made with 'deployer plan --out')")
    if doc.get("format_version") != PLANFILE_VERSION:
        raise DeployerError(f"{path} has plan format {doc.get('format_version')!r}; this deployer reads {PLANFILE_VERSION}")
    problem = _shape_problem(doc)
    if problem:
        raise DeployerError(f"{path} is damaged: {problem}; make it again with 'deployer plan --out'")
    return doc


def _shape_problem(doc: dict[str, Any]) -> str:
    """What is wrong with the fields of a plan file, or ""."""

    def wrong(where: str, value: object, expected: str) -> str:
        return f"{where} must be {expected}, got {json_kind(value)}"

    for key, types, expected in (
        ("manifest", (str,), "a string"), ("environment", (str, type(None)), "a string or null"),
        ("refresh", (bool,), "true or false"), ("lineage", (str,), "a string"),
        ("plan", (dict,), "an object"), ("target", (dict,), "an object"), ("scripts", (dict,), "an object"),
    ):
        if key in doc and not isinstance(doc[key], types):  # a missing one reads as a stale plan
            return wrong(repr(key), doc[key], expected)
    gradual = doc.get("gradual")
    if gradual is not None and (not isinstance(gradual, int) or isinstance(gradual, bool) or not 1 <= gradual <= 99):
        return wrong("'gradual'", gradual, "a whole number from 1 to 99")
    serial = doc.get("serial", 0)
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        return wrong("'serial'", serial, "a whole number >= 0")
    for key, value in doc.get("target", {}).items():
        if value is not None and not isinstance(value, str):
            return wrong(f"target.{key}", value, "a string or null")
    for name, saved in doc.get("scripts", {}).items():
        if not isinstance(saved, dict):
            return wrong(f"scripts.{name}", saved, "an object")
        if not isinstance(saved.get("content_sha256"), str):
            return wrong(f"scripts.{name}.content_sha256", saved.get("content_sha256"), "a string")
        if not isinstance(saved.get("bindings"), list):
            return wrong(f"scripts.{name}.bindings", saved.get("bindings"), "a list")
        fingerprints = saved.get("secret_fingerprints", {})
        if not isinstance(fingerprints, dict) or not all(isinstance(v, str) for v in fingerprints.values()):
            return wrong(f"scripts.{name}.secret_fingerprints", fingerprints, "an object of strings")
    return ""


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
        if saved.get("assets") != _assets_record(script).get("assets"):
            raise StalePlanError(f"the static assets of script {script.name} changed since plan {path} was made; "
                                 "run plan again")
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
    now: object = plan_document(plan)
    saved_plan = doc.get("plan")
    if not _carries_details(saved_plan):
        now = without_details(now)  # made before plans carried binding details: compare the rest
    if now != saved_plan:
        raise StalePlanError(f"the manifest {manifest.path} changed since plan {path} was made; run plan again")


def _carries_details(saved_plan: object) -> bool:
    """Whether a saved plan document has the binding details (every script change then has
    ``bindings``); a plan without script changes compares equal either way."""
    changes = saved_plan.get("changes") if isinstance(saved_plan, dict) else None
    return isinstance(changes, list) and any(isinstance(c, dict) and "bindings" in c for c in changes)


def _target(manifest: Manifest) -> dict[str, str | None]:
    return {"account_id": manifest.account_id, "zone_id": manifest.zone_id}


def _describe(target: object) -> str:
    if not isinstance(target, dict):
        return "an unknown account (the plan file has no target)"
    if target.get("account_id"):
        return f"account_id {target['account_id']}"
    return f"zone_id {target.get('zone_id')}"


def _assets_record(script: Script) -> dict[str, object]:
    """The digests of the script's asset files and config (nothing without assets, so a plan
    file stays what it was)."""
    if script.assets is None:
        return {}
    return {"assets": {"manifest_sha256": script.assets.manifest_sha256,
                       "config_sha256": config_sha256(script.assets.config)}}


def _bindings_record(script: Script) -> list[dict[str, object]]:
    """The bindings as the manifest gives them, in upload order; a secret by name only (its
    value is checked against the fingerprint)."""
    return [binding_kind(b.type).planfile_record(b) for b in script.bindings]
