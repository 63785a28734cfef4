"""Durable Object migrations (deployer/kinds/migrations.py): what validate finds in the manifest
alone, which steps a plan and an upload send after the current tag, the metadata they make,
the append-only rule at plan time, the state form and the services endpoint's tag."""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from deployer.errors import CloudflareApiError, DeployerError, ManifestError
from deployer.kinds.migrations import migrations_metadata, pending_migrations, steps_after
from deployer.manifest.load import load_manifest
from deployer.models import SCRIPT, Action, Change, MigrationStep, PendingMigrations, Reason, ScriptState, State
from deployer.plan.planner import make_plan
from deployer.plan.render import plan_document, render_text
from deployer.state.document import state_from_json, state_to_json
from tests.factories import ACCOUNT, make_manifest, make_script, sha
from tests.test_cloudflare import BASE, FakeTime, failed, make_client, ok

V1 = MigrationStep("v1", new_sqlite_classes=("Counter",))
V2 = MigrationStep("v2", renamed_classes=(("Counter", "Tally"),))
V3 = MigrationStep("v3", deleted_classes=("Tally",), transferred_classes=(("Old", "legacy", "Moved"),))


# --- validate: the manifest alone --------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "index.js").write_text("export class Counter {}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(migrations: str, *, target: str = f"account_id: {ACCOUNT}") -> list[str]:
    Path("workers.yaml").write_text(
        f"version: 1\n{target}\nscripts:\n  w:\n    path: index.js\n    durable_objects:\n      migrations:\n"
        + textwrap.indent(textwrap.dedent(migrations), "        "))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), {})
    return [str(d) for d in excinfo.value.diagnostics]


def test_valid_steps_become_the_scripts_migrations(project: Path) -> None:
    Path("workers.yaml").write_text(
        f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  w:\n    path: index.js\n    durable_objects:\n"
        "      migrations:\n        - {tag: v1, new_sqlite_classes: [Counter]}\n"
        "        - {tag: v2, renamed_classes: [{from: Counter, to: Tally}]}\n"
        "        - tag: v3\n          deleted_classes: [Tally]\n"
        "          transferred_classes: [{from: Old, from_script: legacy, to: Moved}]\n")
    assert load_manifest(Path("workers.yaml"), {}).scripts[0].migrations == (V1, V2, V3)


def test_a_duplicate_tag_names_the_first(project: Path) -> None:
    assert problems("""\
        - {tag: v1, new_classes: [A]}
        - {tag: v1, new_classes: [B]}
    """) == ["workers.yaml:9:17: scripts.w.durable_objects.migrations[1].tag: duplicate migration tag 'v1' "
             "(first at line 8); each step needs its own tag"]


def test_an_empty_tag_is_refused(project: Path) -> None:
    assert problems("- {tag: '', new_classes: [A]}\n") == [
        "workers.yaml:8:17: scripts.w.durable_objects.migrations[0].tag: must not be empty"]


def test_a_step_without_a_tag_is_refused(project: Path) -> None:
    assert problems("- {new_classes: [A]}\n") == [
        "workers.yaml:8:11: scripts.w.durable_objects.migrations[0]: missing required key 'tag'"]


def test_class_names_must_be_javascript_identifiers(project: Path) -> None:
    assert problems("- {tag: v1, new_classes: [my-class, class]}\n") == [
        "workers.yaml:8:35: scripts.w.durable_objects.migrations[0].new_classes[0]: 'my-class' is not a valid "
        "JavaScript class name",
        "workers.yaml:8:45: scripts.w.durable_objects.migrations[0].new_classes[1]: 'class' is not a valid "
        "JavaScript class name",
    ]


def test_a_class_created_and_deleted_in_one_step_is_refused(project: Path) -> None:
    assert problems("- {tag: v1, new_classes: [A], deleted_classes: [A]}\n") == [
        "workers.yaml:8:57: scripts.w.durable_objects.migrations[0].deleted_classes[0]: class 'A' is both "
        "created and deleted in step 'v1'"]


def test_a_rename_needs_its_class_from_an_earlier_step(project: Path) -> None:
    assert problems("""\
        - {tag: v1, renamed_classes: [{from: A, to: B}]}
        - {tag: v2, new_classes: [A]}
    """) == ["workers.yaml:8:46: scripts.w.durable_objects.migrations[0].renamed_classes[0].from: class 'A' does "
             "not exist before step 'v1': only a class an earlier step created can be renamed"]


def test_a_class_is_created_once(project: Path) -> None:
    assert problems("""\
        - {tag: v1, new_classes: [A]}
        - {tag: v2, new_sqlite_classes: [A]}
    """) == ["workers.yaml:9:42: scripts.w.durable_objects.migrations[1].new_sqlite_classes[0]: class 'A' already "
             "exists (created by step 'v1'); a class is created once"]


def test_deleting_a_class_that_was_renamed_away_is_refused(project: Path) -> None:
    assert problems("""\
        - {tag: v1, new_classes: [A]}
        - {tag: v2, renamed_classes: [{from: A, to: B}]}
        - {tag: v3, deleted_classes: [A]}
    """) == ["workers.yaml:10:39: scripts.w.durable_objects.migrations[2].deleted_classes[0]: class 'A' does not "
             "exist before step 'v3': only a class an earlier step created can be deleted"]


def test_migrations_need_the_account_api(project: Path) -> None:
    assert problems("- {tag: v1, new_classes: [A]}\n", target=f"zone_id: {ACCOUNT}") == [
        "workers.yaml:6:5: scripts.w.durable_objects: Durable Object migrations need account_id: the legacy "
        "single-script API (zone_id) cannot carry them"]


# --- which steps are sent ---------------------------------------------------------------------


def _recorded(tag: str | None, steps: tuple[MigrationStep, ...] = ()) -> ScriptState:
    return ScriptState("w", sha("// v1"), migration_tag=tag, migrations=steps)


def test_nothing_is_pending_when_the_recorded_tag_is_the_last() -> None:
    assert pending_migrations("w", (V1, V2), _recorded("v2", (V1, V2))) is None


def test_only_the_steps_after_the_recorded_tag_are_pending() -> None:
    assert pending_migrations("w", (V1, V2, V3), _recorded("v1", (V1,))) == PendingMigrations("v1", "v3", (V2, V3))


def test_without_a_recorded_tag_every_step_is_pending_and_the_tag_is_read_at_apply() -> None:
    expected = PendingMigrations(None, "v2", (V1, V2), old_tag_known=False)
    assert pending_migrations("w", (V1, V2), None) == expected
    assert pending_migrations("w", (V1, V2), _recorded(None)) == expected


def test_an_imported_tag_without_recorded_steps_still_picks_the_steps_after_it() -> None:
    assert pending_migrations("w", (V1, V2), _recorded("v1")) == PendingMigrations("v1", "v2", (V2,))


def test_an_edited_applied_step_is_refused_naming_it() -> None:
    edited = dataclasses.replace(V1, new_sqlite_classes=("Count",))
    with pytest.raises(DeployerError) as excinfo:
        pending_migrations("w", (edited, V2), _recorded("v1", (V1,)))
    assert str(excinfo.value) == (
        "script w: migration step 'v1' (scripts.w.durable_objects.migrations[0]) was applied to Cloudflare as "
        "new_sqlite_classes Counter but now says new_sqlite_classes Count; applied steps are append-only: restore "
        "it and add a new step (renamed_classes, deleted_classes, ...) for the change")


def test_a_step_inserted_before_an_applied_one_is_refused() -> None:
    with pytest.raises(DeployerError, match="'v1' was applied to Cloudflare but is now at another position"):
        pending_migrations("w", (MigrationStep("v0", new_classes=("A",)), V1), _recorded("v1", (V1,)))


def test_steps_after_an_unknown_tag_is_an_error_listing_the_tags() -> None:
    assert steps_after("w", (V1, V2), None) == (V1, V2)
    assert steps_after("w", (V1, V2), "v1") == (V2,)
    with pytest.raises(DeployerError) as excinfo:
        steps_after("w", (V1, V2), "v7")
    assert str(excinfo.value).startswith(
        "script w is at migration tag 'v7' in Cloudflare, which is not a tag of its durable_objects.migrations "
        "('v1', 'v2')")


def test_metadata_carries_old_tag_new_tag_and_only_the_pending_steps_in_cloudflares_words() -> None:
    assert migrations_metadata("v1", (V2, V3)) == {
        "old_tag": "v1", "new_tag": "v3",
        "steps": [{"renamed_classes": [{"from": "Counter", "to": "Tally"}]},
                  {"deleted_classes": ["Tally"],
                   "transferred_classes": [{"from": "Old", "from_script": "legacy", "to": "Moved"}]}]}
    assert migrations_metadata(None, (V1,)) == {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}]}


# --- the plan ----------------------------------------------------------------------------------


def test_a_pending_step_makes_an_update_with_reason_migrations_that_shows_it() -> None:
    script = dataclasses.replace(make_script("w"), migrations=(V1, V2))
    state = State(account_id=ACCOUNT, scripts=(_recorded("v1", (V1,)),))
    plan = make_plan(make_manifest(script), state)
    assert plan.changes == (Change(SCRIPT, "w", Action.UPDATE, (Reason.MIGRATIONS,),
                                   migrations=PendingMigrations("v1", "v2", (V2,))),)
    assert "      + migration v2: renamed_classes Counter -> Tally\n" in render_text(plan)
    assert plan_document(plan)["changes"][0]["migrations"] == {  # type: ignore[index]
        "old_tag": "v1", "old_tag_known": True, "new_tag": "v2",
        "steps": [{"tag": "v2", "renamed_classes": [{"from": "Counter", "to": "Tally"}]}]}


def test_a_current_tag_plans_as_no_op() -> None:
    script = dataclasses.replace(make_script("w"), migrations=(V1,))
    plan = make_plan(make_manifest(script), State(account_id=ACCOUNT, scripts=(_recorded("v1", (V1,)),)))
    assert plan.changes[0].action is Action.NO_OP


def test_removing_every_step_of_a_migrated_script_is_refused() -> None:
    state = State(account_id=ACCOUNT, scripts=(_recorded("v1", (V1,)),))
    with pytest.raises(DeployerError, match="migration step 'v1' was applied to Cloudflare but was removed"):
        make_plan(make_manifest(make_script("w")), state)


# --- the state ---------------------------------------------------------------------------------


def test_the_state_round_trips_the_tag_and_applied_steps() -> None:
    state = State("l", 1, ACCOUNT, scripts=(_recorded("v3", (V1, V2, V3)),))
    doc = state_to_json(state)
    assert doc["scripts"]["w"]["migration_tag"] == "v3"
    assert doc["scripts"]["w"]["migrations"][2] == {
        "tag": "v3", "deleted_classes": ["Tally"],
        "transferred_classes": [{"from": "Old", "from_script": "legacy", "to": "Moved"}]}
    assert state_from_json(doc, "state.json") == state


def test_a_script_without_migrations_is_written_as_before() -> None:
    doc = state_to_json(State("l", 1, ACCOUNT, scripts=(_recorded(None),)))
    assert sorted(doc["scripts"]["w"]) == ["bindings", "content_sha256", "etag", "modified_on", "secret_fingerprints"]


def test_a_damaged_recorded_step_names_the_field() -> None:
    doc = state_to_json(State("l", 1, ACCOUNT, scripts=(_recorded("v1", (V1,)),)))
    doc["scripts"]["w"]["migrations"][0]["renamed_classes"] = [{"from": "A"}]
    with pytest.raises(DeployerError) as excinfo:
        state_from_json(doc, "state.json")
    assert str(excinfo.value) == "state.json: scripts.w.migrations[0].renamed_classes[0].to: missing"


# --- GET /accounts/{a}/workers/services/{name} ---------------------------------------------------


SERVICE = f"{BASE}/accounts/{ACCOUNT}/workers/services/w"


def test_the_tag_is_read_from_the_services_default_environment(requests_mock) -> None:
    requests_mock.get(SERVICE, json=ok({"id": "w", "default_environment": {"script": {"migration_tag": "v2"}}}))
    assert make_client(FakeTime()).get_migration_tag(ACCOUNT, "w") == "v2"


def test_a_service_without_a_tag_or_not_found_has_none(requests_mock) -> None:
    requests_mock.get(SERVICE, json=ok({"id": "w", "default_environment": {"script": {"id": "w"}}}))
    assert make_client(FakeTime()).get_migration_tag(ACCOUNT, "w") is None
    requests_mock.get(SERVICE, status_code=404, json=failed(10090, "workers.api.error.service_not_found"))
    assert make_client(FakeTime()).get_migration_tag(ACCOUNT, "w") is None


def test_a_malformed_service_answer_is_an_error_naming_the_request(requests_mock) -> None:
    requests_mock.get(SERVICE, json=ok({"id": "w"}))
    with pytest.raises(CloudflareApiError, match="default_environment.script"):
        make_client(FakeTime()).get_migration_tag(ACCOUNT, "w")
