"""make_plan is pure: in-memory manifests and states in, a whole Plan compared with == out."""
from __future__ import annotations

import pytest

from deployer.errors import StateError
from deployer.fingerprint import fingerprint_secret
from deployer.models import (
    Action,
    Change,
    Plan,
    Reason,
)
from deployer.plan.planner import RemoteScript, RemoteSnapshot, check_same_target, make_plan
from tests.factories import (
    namespace_state,
    resource_ids,
    namespace,

    deployed_kv,
    NAMESPACE_ID,
    deployed,
    kv,
    make_manifest,
    make_script,
    make_state,
    plain,
    recorded,
    secret,
)

SCRIPT = "script"
KV = "kv_namespace"


def test_new_script_is_a_create_with_its_bindings() -> None:
    script = make_script("my-worker", bindings=(kv("myNamespace"),))
    plan = make_plan(make_manifest(script), make_state(serial=0))
    assert plan == Plan(
        changes=(
            Change(SCRIPT, "my-worker", Action.CREATE, bindings=(deployed(kv("myNamespace")),),
                   content_sha256=script.content_sha256, size=script.size),
        ),
        lineage="lineage-1",
        serial=0,
    )
    assert plan.summary() == {"create": 1, "update": 0, "delete": 0, "no-op": 0}


def test_unchanged_script_is_a_no_op_and_is_listed() -> None:
    script = make_script(bindings=(kv("myNamespace"), plain("ENVIRONMENT", "production")))
    plan = make_plan(make_manifest(script), make_state(recorded(script)))
    (change,) = plan.changes
    assert change.action is Action.NO_OP
    assert change.reasons == ()
    assert not plan.has_changes


@pytest.mark.parametrize(
    ("old", "new", "reasons"),
    [
        (make_script(content="// v1"), make_script(content="// v2"), (Reason.CONTENT,)),
        (
            make_script(bindings=(plain("A", "1"),)),
            make_script(bindings=(plain("A", "2"),)),
            (Reason.BINDINGS,),
        ),
        (
            make_script(bindings=(kv("NS"),)),
            make_script(bindings=(kv("NS", "ffffffffffffffffffffffffffffffff"),)),
            (Reason.BINDINGS,),
        ),
        (
            make_script(content="// v1"),
            make_script(content="// v2", bindings=(plain("A", "1"),)),
            (Reason.CONTENT, Reason.BINDINGS),
        ),
    ],
    ids=["content", "binding-value", "namespace-id", "content-and-bindings"],
)
def test_changed_script_is_an_update_naming_each_reason(old, new, reasons) -> None:
    plan = make_plan(make_manifest(new), make_state(recorded(old)))
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert change.reasons == reasons
    assert change.previous_bindings == recorded(old).bindings


def test_reordered_bindings_are_not_a_change() -> None:
    old = make_script(bindings=(plain("A", "1"), plain("B", "2")))
    new = make_script(bindings=(plain("B", "2"), plain("A", "1")))
    (change,) = make_plan(make_manifest(new), make_state(recorded(old))).changes
    assert change.action is Action.NO_OP


def test_script_removed_from_manifest_is_a_delete() -> None:
    gone = recorded(make_script("old-worker", bindings=(kv("NS"),)))
    plan = make_plan(make_manifest(), make_state(gone))
    assert plan.changes == (
        Change(SCRIPT, "old-worker", Action.DELETE, previous_bindings=gone.bindings),
    )


def test_changed_secret_value_is_an_update_for_reason_secret_without_storing_it() -> None:
    old = make_script(bindings=(secret("API_KEY", "old-value"),))
    state = make_state(recorded(old, fingerprints=(("API_KEY", fingerprint_secret("old-value")),)))
    new = make_script(bindings=(secret("API_KEY", "new-value"),))
    (change,) = make_plan(make_manifest(new), state).changes
    assert change.action is Action.UPDATE
    assert change.reasons == (Reason.SECRET,)
    assert "new-value" not in repr(change) and "old-value" not in repr(change)


def test_same_secret_value_is_a_no_op() -> None:
    script = make_script(bindings=(secret("API_KEY", "same"),))
    state = make_state(recorded(script, fingerprints=(("API_KEY", fingerprint_secret("same")),)))
    (change,) = make_plan(make_manifest(script), state).changes
    assert change.action is Action.NO_OP


def test_removed_secret_binding_is_deleted_remotely_and_shown() -> None:
    old = make_script(bindings=(secret("API_KEY", "x"), plain("A", "1")))
    new = make_script(bindings=(plain("A", "1"),))
    (change,) = make_plan(make_manifest(new), make_state(recorded(old))).changes
    assert change.action is Action.UPDATE
    assert change.reasons == (Reason.BINDINGS,)
    assert change.removed_secrets == ("API_KEY",)


def test_new_namespace_is_created_and_its_id_is_known_after_apply() -> None:
    script = make_script(bindings=(kv("CACHE", namespace="cache"),))
    manifest = make_manifest(script, namespaces=(namespace("cache", "my-app-cache"),))
    plan = make_plan(manifest, make_state(serial=0))
    assert plan.changes == (
        Change(KV, "cache", Action.CREATE, resource_name="my-app-cache"),
        Change(
            SCRIPT,
            "my-worker",
            Action.CREATE,
            bindings=(deployed_kv("CACHE", None),),
            content_sha256=script.content_sha256,
            size=script.size,
        ),
    )


def test_known_namespace_is_a_no_op_and_resolves_references() -> None:
    script = make_script(bindings=(kv("CACHE", namespace="cache"),))
    manifest = make_manifest(script, namespaces=(namespace("cache", "my-app-cache"),))
    state = make_state(
        recorded(script, namespace_ids={"cache": NAMESPACE_ID}),
        namespaces=(namespace_state("cache", "my-app-cache", NAMESPACE_ID),),
    )
    plan = make_plan(manifest, state)
    assert [(c.name, c.action) for c in plan.changes] == [("cache", Action.NO_OP), ("my-worker", Action.NO_OP)]
    assert plan.changes[1].bindings[0].get("namespace_id") == NAMESPACE_ID


def test_namespace_left_out_of_the_manifest_is_forgotten_never_deleted() -> None:
    state = make_state(namespaces=(namespace_state("old", "old-title", NAMESPACE_ID),))
    plan = make_plan(make_manifest(), state)
    assert plan.changes == (Change(KV, "old", Action.FORGET, resource_name="old-title", resource_id=NAMESPACE_ID),)
    assert plan.summary() == {"create": 0, "update": 0, "delete": 0, "no-op": 0, "forget": 1}
    assert plan.has_changes


def test_renamed_namespace_title_is_an_update_keeping_its_id() -> None:
    manifest = make_manifest(namespaces=(namespace("cache", "new-title"),))
    state = make_state(namespaces=(namespace_state("cache", "old-title", NAMESPACE_ID),))
    (change,) = make_plan(manifest, state).changes
    assert change == Change(KV, "cache", Action.UPDATE, resource_name="new-title", resource_id=NAMESPACE_ID)


def test_changes_are_ordered_namespaces_then_scripts_by_name() -> None:
    manifest = make_manifest(
        make_script("zeta"),
        make_script("alpha"),
        namespaces=(namespace("second", "t2"), namespace("first", "t1")),
    )
    plan = make_plan(manifest, make_state(recorded(make_script("beta"))))
    assert [c.name for c in plan.changes] == ["first", "second", "alpha", "beta", "zeta"]


def test_planning_twice_gives_equal_plans() -> None:
    manifest = make_manifest(make_script("a", bindings=(secret("S", "v"),)), make_script("b"))
    state = make_state(recorded(make_script("b", content="old")))
    assert make_plan(manifest, state) == make_plan(manifest, state)


def test_state_of_another_account_is_refused() -> None:
    state = make_state(recorded(make_script()), account_id="ffffffffffffffffffffffffffffffff")
    with pytest.raises(StateError, match="the state records account_id ffff"):
        check_same_target(make_manifest(make_script()), state)


def test_refresh_marks_a_script_changed_outside_as_drift() -> None:
    script = make_script()
    state_script = recorded(script)
    state = make_state(type(state_script)(**{**_fields(state_script), "etag": "etag-1"}))
    remote = RemoteSnapshot({"my-worker": RemoteScript("my-worker", etag="etag-2")}, resource_ids())
    (change,) = make_plan(make_manifest(script), state, remote).changes
    assert (change.action, change.reasons) == (Action.UPDATE, (Reason.DRIFT,))


def test_refresh_plans_a_script_deleted_outside_as_create() -> None:
    script = make_script()
    remote = RemoteSnapshot({}, resource_ids())
    (change,) = make_plan(make_manifest(script), make_state(recorded(script)), remote).changes
    assert (change.action, change.reasons) == (Action.CREATE, (Reason.DRIFT,))


def test_refresh_recreates_a_namespace_deleted_outside() -> None:
    manifest = make_manifest(namespaces=(namespace("cache", "t"),))
    state = make_state(namespaces=(namespace_state("cache", "t", NAMESPACE_ID),))
    (change,) = make_plan(manifest, state, RemoteSnapshot({}, resource_ids())).changes
    assert (change.action, change.reasons) == (Action.CREATE, (Reason.DRIFT,))


def _fields(obj: object) -> dict:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


def test_refresh_flags_a_new_script_that_already_exists_in_cloudflare() -> None:
    script = make_script()
    remote = RemoteSnapshot({"my-worker": RemoteScript("my-worker", etag="e")}, resource_ids())
    (change,) = make_plan(make_manifest(script), make_state(), remote).changes
    assert (change.action, change.reasons, change.overwrites_remote) == (Action.CREATE, (), True)
    (unseen,) = make_plan(make_manifest(script), make_state()).changes
    assert not unseen.overwrites_remote


def test_an_imported_secret_without_fingerprint_is_sent_again() -> None:
    script = make_script(bindings=(secret("API_KEY", "v"),))
    (change,) = make_plan(make_manifest(script), make_state(recorded(script))).changes
    assert (change.action, change.reasons) == (Action.UPDATE, (Reason.SECRET,))
    fingerprinted = recorded(script, fingerprints=(("API_KEY", fingerprint_secret("v")),))
    (same,) = make_plan(make_manifest(script), make_state(fingerprinted)).changes
    assert same.action is Action.NO_OP


def test_has_drift_covers_drift_reasons_and_overwrites() -> None:
    script = make_script()
    remote = RemoteSnapshot({"my-worker": RemoteScript("my-worker")}, resource_ids())
    assert make_plan(make_manifest(script), make_state(), remote).has_drift
    assert not make_plan(make_manifest(script), make_state()).has_drift
