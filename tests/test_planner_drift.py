"""With what --refresh read back (settings and code of scripts whose etag changed), the plan says
what drifted item by item and compares the manifest with what is deployed. Pure: in-memory
manifests, states and remote snapshots."""
from __future__ import annotations

import dataclasses
import json

from deployer.fingerprint import fingerprint_secret
from deployer.models import Action, Drift, DriftKind, Reason
from deployer.plan.planner import (
    RemoteScript,
    RemoteSnapshot,
    make_plan,
    refreshed,
    script_drift,
)
from deployer.plan.render import render_json, render_text
from tests.factories import (
    deployed_plain,
    deployed_secret,
    make_manifest,
    make_script,
    make_state,
    plain,
    recorded,
    resource_ids,
    secret,
    sha,
)

SCRIPT = make_script(bindings=(plain("GREETING", "hi"), plain("MODE", "fast"), secret("KEY", "k")))
RECORDED = dataclasses.replace(recorded(SCRIPT, fingerprints=(("KEY", fingerprint_secret("k")),)), etag="e1")


def _remote(**details: object) -> RemoteSnapshot:
    seen = RemoteScript(SCRIPT.name, "e2", **details)  # type: ignore[arg-type]
    return RemoteSnapshot({SCRIPT.name: seen}, resource_ids())


def test_each_binding_changed_outside_is_one_drift_entry() -> None:
    deployed = (deployed_plain("GREETING", "edited"), deployed_plain("EXTRA", "x"), deployed_secret("KEY"))
    seen = RemoteScript(SCRIPT.name, "e2", bindings=deployed, content_sha256=SCRIPT.content_sha256)
    assert script_drift(RECORDED, seen) == (
        Drift("binding", DriftKind.ADDED, "EXTRA", deployed=deployed_plain("EXTRA", "x")),
        Drift("binding", DriftKind.CHANGED, "GREETING", deployed_plain("GREETING", "hi"),
              deployed_plain("GREETING", "edited")),
        Drift("binding", DriftKind.REMOVED, "MODE", recorded=deployed_plain("MODE", "fast")),
    )


def test_code_changed_outside_is_content_drift() -> None:
    seen = RemoteScript(SCRIPT.name, "e2", bindings=RECORDED.bindings, content_sha256=sha("// other"))
    assert script_drift(RECORDED, seen) == (Drift("content"),)


def test_a_new_etag_with_the_same_code_and_bindings_is_etag_drift() -> None:
    same = RemoteScript(SCRIPT.name, "e2", bindings=RECORDED.bindings, content_sha256=RECORDED.content_sha256)
    only_listed = RemoteScript(SCRIPT.name, "e2")
    assert script_drift(RECORDED, same) == script_drift(RECORDED, only_listed) == (Drift("etag"),)


def test_the_refreshed_record_is_what_cloudflare_has_without_secret_fingerprints() -> None:
    deployed = (deployed_plain("GREETING", "edited"), deployed_secret("KEY"))
    seen = RemoteScript(SCRIPT.name, "e2", "t2", bindings=deployed, content_sha256=sha("// other"))
    assert refreshed(RECORDED, seen) == dataclasses.replace(
        RECORDED, etag="e2", modified_on="t2", bindings=deployed, content_sha256=sha("// other"),
        secret_fingerprints=())
    # Only the list was read: the etag is taken, the rest kept.
    assert refreshed(RECORDED, RemoteScript(SCRIPT.name, "e2")) == dataclasses.replace(RECORDED, etag="e2")


def test_the_plan_compares_the_manifest_with_what_is_deployed() -> None:
    deployed = (deployed_plain("GREETING", "edited"), deployed_plain("MODE", "fast"), deployed_secret("KEY"))
    plan = make_plan(make_manifest(SCRIPT), make_state(RECORDED),
                     _remote(bindings=deployed, content_sha256=SCRIPT.content_sha256))
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    # The deployed secret's value is unknown after an outside change: it is sent again.
    assert change.reasons == (Reason.BINDINGS, Reason.SECRET, Reason.DRIFT)
    assert change.previous_bindings == deployed and change.changed_secrets == ("KEY",)
    assert plan.has_drift
    text = render_text(plan, refreshed=True)
    assert 'drift: binding GREETING changed outside deployer: plain_text "hi" -> plain_text "edited"' in text
    assert '~ binding GREETING: plain_text "edited" -> plain_text "hi"' in text


def test_a_secret_added_outside_is_deleted_by_the_plan() -> None:
    deployed = (*RECORDED.bindings, deployed_secret("SNEAKY"))
    (change,) = make_plan(make_manifest(SCRIPT), make_state(RECORDED),
                          _remote(bindings=deployed, content_sha256=SCRIPT.content_sha256)).changes
    assert change.removed_secrets == ("SNEAKY",)
    assert Drift("binding", DriftKind.ADDED, "SNEAKY", deployed=deployed_secret("SNEAKY")) in change.drift


def test_drift_is_in_the_json_plan_with_secrets_sensitive() -> None:
    deployed = (deployed_plain("GREETING", "hi"), deployed_plain("MODE", "fast"))  # KEY deleted outside
    plan = make_plan(make_manifest(SCRIPT), make_state(RECORDED),
                     _remote(bindings=deployed, content_sha256=sha("// hotfix")))
    (change,) = json.loads(render_json(plan))["changes"]
    assert change["drift"] == [
        {"what": "binding", "change": "removed", "name": "KEY", "type": "secret_text", "old": "(sensitive)"},
        {"what": "content", "change": "changed"},
    ]
    assert change["reasons"] == ["content", "bindings", "drift"]
    assert (change["content_sha256"], change["size"]) == (SCRIPT.content_sha256, SCRIPT.size)
