"""Gradual deployments as units (issue 14): which way a --gradual plan deploys each script
(pure planner), the state's version fields, the versions client endpoints, promote/rollback
checks, and the annotations read from git."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deployer.apply.annotations import cut_utf8, head_commit, version_annotations
from deployer.apply.gradual import end_gradual, plan_endings, refuse_changing_gradual
from deployer.errors import CloudflareApiError, DeployerError, StateError
from deployer.kinds.settings import frozen
from deployer.models import Action, MigrationStep, Rollout, ScriptFormat, ScriptState, VersionShare
from deployer.plan.planner import make_plan
from deployer.state.document import parse_state, script_to_json, state_from_json, state_to_json
from tests.factories import ACCOUNT, deployed_secret, make_manifest, make_script, make_state, plain, recorded
from tests.test_cloudflare import SCRIPTS, FakeTime, failed, make_client, ok, parse_multipart

NEW, OLD = "11111111-aaaa-4aaa-8aaa-111111111111", "22222222-bbbb-4bbb-8bbb-222222222222"


def _modules(name: str = "api", content: str = "// v2", **fields: object):
    return dataclasses.replace(make_script(name, content, (plain("GREETING", "hi"),)),
                               format=ScriptFormat.MODULES, **fields)


def _deployed(script) -> ScriptState:
    return recorded(dataclasses.replace(script, content_sha256="0" * 64))


def _rollout(script, state_script: ScriptState | None, **manifest) -> Rollout | None:
    state = make_state(*([state_script] if state_script else []))
    plan = make_plan(make_manifest(script, **manifest), state, gradual=10)
    return next(c for c in plan.changes if c.name == script.name).rollout


# --- the plan: which way each script goes -------------------------------------------------


def test_a_changed_modules_script_goes_as_a_version_at_the_share() -> None:
    script = _modules()
    assert _rollout(script, _deployed(script)) == Rollout(10)


@pytest.mark.parametrize(("case", "because"), [
    ("new", "a new script has no current version to share the traffic with"),
    ("service-worker", "a service-worker script cannot be uploaded as a version (ES modules only)"),
    ("zone", "the legacy zone API (zone_id) has no versions"),
    ("migrations", "Durable Object migrations are pending, and a version cannot carry them"),
    ("logpush", "setting(s) logpush changed, and only a script upload can change them"),
    ("removed secret", "secret(s) TOKEN are deleted, which deploys the script at once"),
])
def test_changes_the_versions_api_cannot_take_are_uploaded_the_usual_way(case: str, because: str) -> None:
    script = _modules()
    before: ScriptState | None = _deployed(script)
    manifest: dict[str, object] = {}
    match case:
        case "new":
            before = None
        case "service-worker":
            script = dataclasses.replace(script, format=ScriptFormat.SERVICE_WORKER)
        case "zone":
            manifest = {"account_id": None, "zone_id": "f" * 32}
        case "migrations":
            script = dataclasses.replace(script, migrations=(MigrationStep("v1", new_classes=("Counter",)),))
        case "logpush":
            script = dataclasses.replace(script, settings=(("logpush", frozen(True)),))
        case "removed secret":
            assert before is not None
            before = dataclasses.replace(before, bindings=(*before.bindings, deployed_secret("TOKEN")))
    if case == "zone":
        state = dataclasses.replace(make_state(_deployed(script)), account_id=None, zone_id="f" * 32)
        plan = make_plan(make_manifest(script, **manifest), state, gradual=10)  # type: ignore[arg-type]
        assert plan.changes[0].rollout == Rollout(None, because)
        return
    assert _rollout(script, before) == Rollout(None, because)


def test_a_plan_without_gradual_carries_no_rollout_and_a_no_op_none() -> None:
    script = _modules()
    assert make_plan(make_manifest(script), make_state(_deployed(script))).changes[0].rollout is None
    plan = make_plan(make_manifest(script), make_state(recorded(script)), gradual=10)
    assert plan.changes[0].action is Action.NO_OP and plan.changes[0].rollout is None


def test_a_script_in_a_gradual_deployment_carries_its_split_and_apply_refuses_to_change_it() -> None:
    script = _modules()
    split = (VersionShare(NEW, 10), VersionShare(OLD, 90))
    before = dataclasses.replace(_deployed(script), version_id=NEW, split=split,
                                 previous=dataclasses.replace(_deployed(script), version_id=OLD))
    plan = make_plan(make_manifest(script), make_state(before))
    assert plan.changes[0].live_split == split
    with pytest.raises(DeployerError, match="script api is in a gradual deployment .new version 11111111 at 10%, "
                                            "previous version 22222222 at 90%., and this apply would upload it"):
        refuse_changing_gradual(plan)
    unchanged = make_plan(make_manifest(script), make_state(dataclasses.replace(before, **{
        "content_sha256": script.content_sha256})))
    refuse_changing_gradual(unchanged)  # a no-op is not refused


# --- the state ------------------------------------------------------------------------------


def _in_split() -> ScriptState:
    script = _modules()
    pending = dataclasses.replace(recorded(script), version_id="33333333-cccc-4ccc-8ccc-333333333333")
    return dataclasses.replace(recorded(script), version_id=NEW, etag="e2",
                               split=(VersionShare(NEW, 10), VersionShare(OLD, 90)),
                               previous=dataclasses.replace(_deployed(script), version_id=OLD, etag="e1"),
                               pending=pending)


def test_version_fields_survive_the_state_document_and_are_absent_when_unused() -> None:
    state = make_state(_in_split(), recorded(make_script("plain")))
    doc = json.loads(json.dumps(state_to_json(state)))
    assert parse_state(doc) == state
    assert set(doc["scripts"]["plain"]) == {"content_sha256", "bindings", "secret_fingerprints", "etag",
                                            "modified_on"}
    assert doc["scripts"]["api"]["split"] == [{"version_id": NEW, "percentage": 10},
                                              {"version_id": OLD, "percentage": 90}]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda e: e["split"][1].update(percentage=80), "scripts.api.split: expected one or two versions whose "
                                                    "percentages sum to 100"),
    (lambda e: e.pop("previous"), "scripts.api.previous: missing"),
    (lambda e: e["split"].reverse(), "scripts.api.split: expected this entry's version_id first"),
    (lambda e: e["pending_version"].pop("version_id"), "scripts.api.pending_version.version_id: missing"),
    (lambda e: e["previous"].update(split=[]), "scripts.api.previous.split: unknown field"),
])
def test_inconsistent_version_fields_are_a_state_error(edit, message: str) -> None:
    doc = json.loads(json.dumps(state_to_json(make_state(_in_split()))))
    edit(doc["scripts"]["api"])
    with pytest.raises(StateError, match=message.replace(".", r"\.").replace("(", r"\(")):
        state_from_json(doc, "state.json")


def test_promote_keeps_the_new_version_and_rollback_restores_what_ran_before() -> None:
    entry = _in_split()
    [promoted] = plan_endings(make_state(entry), [], promote=True)
    assert promoted.version_id == NEW and promoted.after.version_id == NEW
    assert promoted.after.content_sha256 == entry.content_sha256 and not promoted.after.split
    [rolled] = plan_endings(make_state(entry), ["api"], promote=False)
    assert rolled.version_id == OLD and rolled.after.content_sha256 == "0" * 64 and rolled.after.etag == "e1"
    assert script_to_json(rolled.after).keys() == {"content_sha256", "bindings", "secret_fingerprints", "etag",
                                                   "modified_on", "version_id"}
    with pytest.raises(DeployerError, match="not in a gradual deployment according to the state: other"):
        plan_endings(make_state(entry), ["other"], promote=True)


# --- the client -------------------------------------------------------------------------------


@pytest.fixture
def client():
    cf = make_client(FakeTime())
    yield cf
    cf.close()


def test_upload_version_posts_the_upload_body_and_is_not_retried_after_a_5xx(client, requests_mock) -> None:
    from deployer.apply.upload import UploadPart

    requests_mock.post(f"{SCRIPTS}/api/versions", [{"json": failed(10013, "boom"), "status_code": 500},
                                                   {"json": ok({"id": NEW})}])
    parts = (UploadPart("index.js", "application/javascript+module", b"export default {}"),)
    with pytest.raises(CloudflareApiError):
        client.upload_version(ACCOUNT, "api", {"main_module": "index.js"}, parts)
    assert requests_mock.call_count == 1
    assert client.upload_version(ACCOUNT, "api", {"main_module": "index.js"}, parts)["id"] == NEW
    body = parse_multipart(requests_mock.last_request)
    assert json.loads(body["metadata"][2]) == {"main_module": "index.js"}
    assert body["index.js"][2] == b"export default {}"


def test_create_deployment_sends_the_split_and_force_as_a_query(client, requests_mock) -> None:
    requests_mock.post(f"{SCRIPTS}/api/deployments", json=ok({"id": "d1"}))
    client.create_deployment(ACCOUNT, "api", [(NEW, 10), (OLD, 90)])
    assert requests_mock.last_request.json() == {
        "strategy": "percentage",
        "versions": [{"version_id": NEW, "percentage": 10}, {"version_id": OLD, "percentage": 90}]}
    assert requests_mock.last_request.qs == {}
    client.create_deployment(ACCOUNT, "api", [(OLD, 100)], "back", force=True)
    assert requests_mock.last_request.qs == {"force": ["true"]}
    assert requests_mock.last_request.json()["annotations"] == {"workers/message": "back"}


def test_listing_versions_and_deployments_checks_their_shape(client, requests_mock) -> None:
    requests_mock.get(f"{SCRIPTS}/api/versions", json=ok({"items": [{"id": NEW, "number": 2}]}))
    requests_mock.get(f"{SCRIPTS}/api/deployments", json=ok({"deployments": [{"id": "d", "versions": [{}]}]}))
    assert client.list_versions(ACCOUNT, "api") == [{"id": NEW, "number": 2}]
    with pytest.raises(CloudflareApiError, match="versions are not"):
        client.list_deployments(ACCOUNT, "api")


# --- promote and rollback against what is live ---------------------------------------------


class _Deployments:
    def __init__(self, live: list[tuple[str, int]], error: CloudflareApiError | None = None) -> None:
        self.live, self.error, self.posts = live, error, []  # type: ignore[var-annotated]

    def list_deployments(self, account_id, name):
        return [{"id": "d", "versions": [{"version_id": v, "percentage": p} for v, p in self.live]}]

    def create_deployment(self, account_id, name, split, message=None, *, force=False):
        if self.error is not None and not force:
            raise self.error
        self.posts.append((list(split), force))
        return {}


def test_ending_checks_the_live_split_and_sends_one_deployment() -> None:
    [ending] = plan_endings(make_state(_in_split()), [], promote=True)
    client = _Deployments([(NEW, 10), (OLD, 90)])
    assert "now gets all the traffic" in end_gradual(ending, ACCOUNT, client)
    assert client.posts == [([(NEW, 100)], False)]
    already = _Deployments([(NEW, 100)])
    assert "already gets all the traffic" in end_gradual(ending, ACCOUNT, already)
    assert already.posts == []
    changed = _Deployments([(NEW, 50), (OLD, 50)])
    with pytest.raises(DeployerError, match="it was changed outside deployer"):
        end_gradual(ending, ACCOUNT, changed)
    assert changed.posts == []


def test_a_rollback_refused_for_changed_secrets_names_force() -> None:
    [ending] = plan_endings(make_state(_in_split()), [], promote=False)
    refused = CloudflareApiError("POST", "/deployments", 400, ((10220, "secrets changed"),))
    with pytest.raises(DeployerError, match="pass --force"):
        end_gradual(ending, ACCOUNT, _Deployments([(NEW, 10), (OLD, 90)], refused))
    forced = _Deployments([(NEW, 10), (OLD, 90)], refused)
    end_gradual(ending, ACCOUNT, forced, force=True)
    assert forced.posts == [([(OLD, 100)], True)]


# --- annotations ------------------------------------------------------------------------------


def test_a_message_is_cut_on_a_character_boundary() -> None:
    assert cut_utf8("é" * 600, 1000) == "é" * 500
    assert cut_utf8("a" + "é" * 600, 1000) == "a" + "é" * 499
    assert len(version_annotations(Path("/nowhere/workers.yaml"), "€" * 400, None)["workers/message"]
               .encode()) == 999


def test_outside_git_only_what_is_given_is_sent(tmp_path: Path) -> None:
    assert version_annotations(tmp_path / "workers.yaml", None, None) == {}
    assert version_annotations(tmp_path / "workers.yaml", "m", "t") == {"workers/message": "m", "workers/tag": "t"}
    with pytest.raises(DeployerError, match="--tag is 101 bytes"):
        version_annotations(tmp_path / "workers.yaml", None, "x" * 101)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_COMMITTER_NAME": "a",
                               "GIT_COMMITTER_EMAIL": "a@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
                          ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to make the repository")
def test_defaults_come_from_the_checked_out_commit_loose_packed_or_in_a_worktree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for n in range(3):
        (repo / "deploy" / "f.txt").write_text("line\n" * (n + 1) * 200)
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", f"Ship feature {n}\nwrapped subject\n\nbody text")
    head = _git(repo, "rev-parse", "HEAD")
    expected = {"workers/message": "Ship feature 2 wrapped subject", "workers/tag": head[:7]}
    assert version_annotations(repo / "deploy" / "workers.yaml", None, None) == expected
    _git(repo, "gc", "-q", "--aggressive")  # objects and refs packed (as a CI clone has them)
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert head_commit(repo / "deploy") == (head, "Ship feature 2 wrapped subject")
    assert version_annotations(repo / "deploy" / "workers.yaml", "given", None)["workers/message"] == "given"
    _git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"), "HEAD~1")
    assert head_commit(tmp_path / "wt") == (_git(repo, "rev-parse", "HEAD~1"), "Ship feature 1 wrapped subject")
