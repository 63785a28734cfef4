"""The planner over the second round's owned resources and scripts that bind scripts: pure,
in-memory manifests and states in, whole plans (or the refusal) out."""
from __future__ import annotations

import dataclasses
import json

import pytest

from deployer.errors import DeployerError
from deployer.kinds import d1, durable_object_namespace, queue, r2_bucket, service
from deployer.models import (
    SCRIPT,
    Action,
    Binding,
    Change,
    DeployedBinding,
    Plan,
    Reason,
    Resource,
    ResourceState,
    Script,
    ScriptState,
    State,
)
from deployer.plan.planner import RemoteSnapshot, make_plan
from deployer.plan.render import render_json, render_text
from tests.factories import ACCOUNT, make_manifest, make_script, sha

DATABASE_ID = "0c3a4f8e-5b2d-4e3f-9a1b-2c3d4e5f6a7b"


def _bucket_binding(name: str = "ASSETS", key: str = "assets") -> Binding:
    return r2_bucket.KIND.build(name, {"bucket": key})


def _state(*scripts: ScriptState, resources: tuple[ResourceState, ...] = ()) -> State:
    return State("lineage", 3, ACCOUNT, None, scripts, resources)


def _recorded(script: Script, *bindings: DeployedBinding) -> ScriptState:
    return ScriptState(script.name, script.content_sha256, bindings)


def test_a_new_bucket_is_created_and_its_binding_already_knows_the_name() -> None:
    script = make_script("api", bindings=(_bucket_binding(),))
    manifest = make_manifest(script, namespaces=(Resource("r2_bucket", "assets", "shop-assets"),))
    assert make_plan(manifest, State()) == Plan((
        Change("r2_bucket", "assets", Action.CREATE, resource_name="shop-assets"),
        Change(SCRIPT, "api", Action.CREATE,
               bindings=(DeployedBinding("r2_bucket", "ASSETS", (("bucket_name", "shop-assets"),)),),
               content_sha256=script.content_sha256, size=script.size),
    ))


def test_a_new_database_is_known_after_apply_and_resolved_once_recorded() -> None:
    script = make_script("api", bindings=(d1.KIND.build("DB", {"database": "main"}),))
    manifest = make_manifest(script, namespaces=(Resource("d1_database", "main", "shop-db"),))
    first = make_plan(manifest, State())
    assert first.changes[1].bindings == (DeployedBinding("d1", "DB", (("id", None),)),)
    deployed = DeployedBinding("d1", "DB", (("id", DATABASE_ID),))
    state = _state(_recorded(script, deployed), resources=(ResourceState("d1_database", "main", "shop-db", DATABASE_ID),))
    assert [c.action for c in make_plan(manifest, state).changes] == [Action.NO_OP, Action.NO_OP]


def test_a_queue_is_resolved_by_name_and_not_renamed_when_its_name_changes() -> None:
    script = make_script("api", bindings=(queue.KIND.build("JOBS", {"queue": "jobs"}),))
    manifest = make_manifest(script, namespaces=(Resource("queue", "jobs", "shop-jobs-v2"),))
    state = _state(_recorded(script, DeployedBinding("queue", "JOBS", (("queue_name", "shop-jobs"),))),
                   resources=(ResourceState("queue", "jobs", "shop-jobs", "q1"),))
    plan = make_plan(manifest, state)
    assert plan.changes == (
        Change("queue", "jobs", Action.CREATE, resource_name="shop-jobs-v2"),
        Change(SCRIPT, "api", Action.UPDATE, (Reason.BINDINGS,),
               (DeployedBinding("queue", "JOBS", (("queue_name", "shop-jobs-v2"),)),),
               (DeployedBinding("queue", "JOBS", (("queue_name", "shop-jobs"),)),)),
    )


def test_a_service_binding_to_a_script_of_the_manifest_sends_its_environment_name() -> None:
    api = dataclasses.replace(make_script("api-staging", bindings=(service.KIND.build("AUTH", {"script": "auth"}),)),
                              key="api")
    auth = dataclasses.replace(make_script("auth-staging"), key="auth")
    plan = make_plan(make_manifest(api, auth), State())
    assert plan.changes[0].bindings == (DeployedBinding("service", "AUTH", (("service", "auth-staging"),)),)


def test_a_durable_object_of_the_script_itself_sends_no_script_name() -> None:
    script = make_script("api", bindings=(durable_object_namespace.KIND.build("COUNTER", {"class_name": "Counter"}),))
    plan = make_plan(make_manifest(script), State())
    assert plan.changes[0].bindings == (
        DeployedBinding("durable_object_namespace", "COUNTER", (("class_name", "Counter"),)),)


@pytest.mark.parametrize(("binding", "sends"), [
    (service.KIND.build("AUTH", {"service": "auth"}), "service"),
    (durable_object_namespace.KIND.build("ROOMS", {"class_name": "Room", "script_name": "auth"}), "script_name"),
])
def test_deleting_a_script_another_script_still_binds_by_name_is_refused(binding: Binding, sends: str) -> None:
    api = make_script("api", bindings=(binding,))
    state = _state(_recorded(api), ScriptState("auth", sha("// auth")))
    with pytest.raises(DeployerError) as caught:
        make_plan(make_manifest(api), state)
    assert str(caught.value) == (
        f"script 'auth' is no longer in the manifest, but script 'api' still binds it (binding {binding.name} sends "
        f"{sends} 'auth'): remove or change that binding in the same change, or keep 'auth' in the manifest")


def test_deleting_a_script_together_with_the_scripts_binding_it_is_planned() -> None:
    binder = ScriptState("api", sha("// api"), (DeployedBinding("service", "AUTH", (("service", "auth"),)),))
    plan = make_plan(make_manifest(), _state(binder, ScriptState("auth", sha("// auth"))))
    assert [(c.name, c.action) for c in plan.changes] == [("api", Action.DELETE), ("auth", Action.DELETE)]


def test_with_refresh_a_resource_whose_name_exists_is_adopted_and_counted_apart() -> None:
    manifest = make_manifest(namespaces=(Resource("r2_bucket", "assets", "shop-assets"),
                                         Resource("d1_database", "main", "shop-db")))
    remote = RemoteSnapshot({}, {"r2_bucket": frozenset({"shop-assets"}), "d1_database": frozenset()},
                            {"r2_bucket": frozenset({"shop-assets"}), "d1_database": frozenset()})
    plan = make_plan(manifest, State(), remote)
    assert [c.action for c in plan.changes] == [Action.ADOPT, Action.CREATE]
    assert json.loads(render_json(plan))["changes"] == [
        {"type": "r2_bucket", "name": "assets", "action": "adopt", "bucket_name": "shop-assets"},
        {"type": "d1_database", "name": "main", "action": "create", "database_name": "shop-db", "database_id": None},
    ]
    assert plan.summary() == {"create": 1, "update": 0, "delete": 0, "no-op": 0, "adopt": 1}
    assert plan.has_changes and not plan.has_drift
    assert render_text(plan).splitlines()[2:4] == [
        '  < r2_bucket assets (name "shop-assets" exists in Cloudflare: adopted, not created)',
        '  + d1_database main (name "shop-db", created or adopted by name; id known after apply)',
    ]


def test_without_adoptions_the_summary_has_no_adopt_key() -> None:
    plan = make_plan(make_manifest(namespaces=(Resource("queue", "jobs", "shop-jobs"),)), State())
    assert plan.summary() == {"create": 1, "update": 0, "delete": 0, "no-op": 0}


def test_a_namespace_shared_with_another_environment_is_replaced_not_renamed() -> None:
    manifest = make_manifest(namespaces=(Resource("kv_namespace", "cache", "shop-cache-staging"),))
    state = _state(resources=(ResourceState("kv_namespace", "cache", "shop-cache", "ns1"),))
    assert make_plan(manifest, state).changes[0].action is Action.UPDATE  # alone: a rename, as before
    shared = make_plan(manifest, state, shared=frozenset({("kv_namespace", "ns1")}))
    assert shared.changes == (Change("kv_namespace", "cache", Action.CREATE, resource_name="shop-cache-staging"),)
