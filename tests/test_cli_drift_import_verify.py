"""End to end: drift (plan/apply --refresh, deployer refresh), deployer import and apply --verify."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare
from tests.test_cli import CANARY, SCRIPTS_URL

NAMESPACES_URL = f"/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces"


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _plan_json(project: Path, *args: str, env: dict[str, str] | None = None, expect: int = 0) -> dict:
    return json.loads(run("plan", "--format", "json", *args, cwd=project, env=env, expect=expect).stdout)


def _deployed(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()


def _change_outside(api: FakeCloudflare, name: str) -> None:
    script = api.scripts()[name]
    script["etag"], script["modified_on"] = "changed-by-someone", "2030-01-01T00:00:00.000000Z"


# --- drift ----------------------------------------------------------------------------------


def test_refresh_reads_one_script_list_and_one_namespace_list(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ())
    assert [(r.method, r.path) for r in api.requests] == [("GET", SCRIPTS_URL), ("GET", NAMESPACES_URL)]


def test_script_changed_outside_is_drift_exit_3_and_apply_uploads_it_again(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    _change_outside(api, "my-worker")
    run("plan", "--detailed-exitcode", cwd=project)  # without --refresh nothing is seen
    result = run("plan", "--refresh", "--detailed-exitcode", "--format", "json", cwd=project, env=api.environ(),
                 expect=3)
    changed = [c for c in json.loads(result.stdout)["changes"] if c["action"] != "no-op"]
    # Its code and bindings were read back and are as recorded: only a new version is seen.
    assert [{k: c[k] for k in ("type", "name", "action", "reasons", "drift")} for c in changed] == [
        {"type": "script", "name": "my-worker", "action": "update", "reasons": ["drift"],
         "drift": [{"what": "etag", "change": "changed"}]}]
    assert "warning: script my-worker was changed outside deployer" in result.stderr
    api.clear_requests()
    run("apply", "--refresh", "--auto-approve", cwd=project, env=api.environ())
    assert [r.path for r in api.find("PUT")] == [f"{SCRIPTS_URL}/my-worker"]
    run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ())


def test_only_manifest_changes_with_refresh_exit_2(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    (project / "script.js").write_text("// v2\n")
    run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ(), expect=2)


def test_script_deleted_outside_is_created_again(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    del api.scripts()["hello-modules"]
    result = run("plan", "--refresh", "--format", "json", cwd=project, env=api.environ())
    doc = json.loads(result.stdout)
    (change,) = [c for c in doc["changes"] if c["name"] == "hello-modules"]
    assert (change["action"], change["reasons"], change["drift"]) == (
        "create", ["drift"], [{"what": "script", "change": "removed"}])
    assert "script hello-modules was deleted outside deployer" in result.stderr
    run("apply", "--refresh", "--auto-approve", cwd=project, env=api.environ())
    assert "hello-modules" in api.scripts()


def test_namespace_deleted_outside_is_created_again_with_a_warning(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    old_id = _state(project)["kv_namespaces"]["counts"]["id"]
    del api.kv_namespaces()[old_id]
    result = run("apply", "--refresh", "--auto-approve", cwd=project, env=api.environ())
    assert "warning: kv_namespace counts (title 'sample-project-counts') was deleted outside deployer" in result.stderr
    new_id = _state(project)["kv_namespaces"]["counts"]["id"]
    assert new_id != old_id and api.kv_namespaces()[new_id] == "sample-project-counts"
    (put,) = api.find("PUT", f"{SCRIPTS_URL}/visit-counter")
    assert {"type": "kv_namespace", "name": "COUNTS", "namespace_id": new_id} in put.metadata["bindings"]


def test_deployer_refresh_records_remote_etags_without_uploading(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    _change_outside(api, "my-worker")
    del api.scripts()["hello-modules"]
    result = run("refresh", cwd=project, env=api.environ())
    assert "Refresh complete: 1 updated, 1 script(s) and 0 kv_namespace(s) gone, 1 unchanged." in result.stdout
    assert "script hello-modules no longer exists in Cloudflare" in result.stderr
    assert api.find("PUT") == [] and api.find("DELETE") == []
    state = _state(project)
    assert state["scripts"]["my-worker"]["etag"] == "changed-by-someone"
    assert "hello-modules" not in state["scripts"]
    doc = _plan_json(project, "--refresh", "--detailed-exitcode", env=api.environ(), expect=2)
    assert [c["name"] for c in doc["changes"] if c["action"] != "no-op"] == ["hello-modules"]


def test_script_in_cloudflare_but_not_in_state_needs_allow_overwrite(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    (project / ".deployer" / "state.json").unlink()
    result = run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ(), expect=3)
    assert "+ script my-worker (OVERWRITES a script of that name that exists in Cloudflare" in result.stdout
    assert "warning: script my-worker exists in Cloudflare but not in the state" in result.stderr
    doc = _plan_json(project, "--refresh", env=api.environ())
    (change,) = [c for c in doc["changes"] if c["name"] == "my-worker"]
    assert (change["action"], change["reasons"], change["overwrites_remote"]) == ("create", [], True)
    api.clear_requests()
    refused = run("apply", "--refresh", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "error: refusing to overwrite script(s) that exist in Cloudflare but not in the state: " \
           "hello-modules, my-worker, visit-counter" in refused.stderr
    assert api.find("PUT") == []
    run("apply", "--refresh", "--auto-approve", "--allow-overwrite", cwd=project, env=api.environ())
    assert len(api.find("PUT")) == 3


def test_a_saved_refreshed_plan_is_checked_against_cloudflare_again(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    _change_outside(api, "my-worker")
    run("plan", "--refresh", "--out", "plan.json", cwd=project, env=api.environ())
    run("apply", "plan.json", cwd=project, env=api.environ())
    _change_outside(api, "visit-counter")
    run("plan", "--refresh", "--out", "plan.json", cwd=project, env=api.environ())
    _change_outside(api, "my-worker")  # changed again after the review
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "changed since plan plan.json was made" in result.stderr


# --- import ---------------------------------------------------------------------------------


def _forget_scripts(project: Path) -> None:
    path = project / ".deployer" / "state.json"
    state = json.loads(path.read_text())
    state["scripts"] = {}
    path.write_text(json.dumps(state))


def test_import_adopts_deployed_scripts_so_plan_shows_only_real_differences(project: Path, api: FakeCloudflare) -> None:
    env = {**api.environ(), "COUNTER_API_KEY": CANARY}
    run("apply", "--auto-approve", cwd=project, env=env)
    _forget_scripts(project)
    api.clear_requests()
    for name in ("my-worker", "hello-modules", "visit-counter"):
        result = run("import", name, cwd=project, env=env)
        assert f"Imported script {name}" in result.stdout
    assert api.find("PUT") == []
    assert {r.path for r in api.requests} == {
        SCRIPTS_URL, *(f"{SCRIPTS_URL}/{n}/{what}" for n in ("my-worker", "hello-modules", "visit-counter")
                       for what in ("content/v2", "settings"))
    }
    doc = _plan_json(project)
    assert {c["name"]: (c["action"], c.get("reasons")) for c in doc["changes"]} == {
        "counts": ("no-op", None),
        "hello-modules": ("no-op", []),
        "my-worker": ("no-op", []),
        # Cloudflare never returns a secret's value: it is sent again to be sure.
        "visit-counter": ("update", ["secret"]),
    }
    state_text = (project / ".deployer" / "state.json").read_text()
    assert CANARY not in state_text
    assert _state(project)["scripts"]["my-worker"]["etag"] == api.scripts()["my-worker"]["etag"]


def test_import_records_what_differs_from_the_manifest(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    _forget_scripts(project)
    (project / "script.js").write_text("// edited locally\n")
    run("import", "my-worker", cwd=project, env=api.environ())
    doc = _plan_json(project)
    assert [c for c in doc["changes"] if c["name"] == "my-worker"][0]["reasons"] == ["content"]


def test_import_refuses_what_it_cannot_adopt(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    missing = run("import", "nope", cwd=project, env=api.environ(), expect=1)
    assert "script 'nope' is not in the manifest" in missing.stderr
    assert "already in the state" in run("import", "my-worker", cwd=project, env=api.environ(), expect=1).stderr
    _forget_scripts(project)
    del api.scripts()["my-worker"]
    gone = run("import", "my-worker", cwd=project, env=api.environ(), expect=1)
    assert f"script 'my-worker' does not exist in account {FAKE_ACCOUNT}" in gone.stderr


# --- apply --verify -------------------------------------------------------------------------


def test_apply_verify_reads_every_uploaded_script_back(project: Path, api: FakeCloudflare) -> None:
    result = run("apply", "--auto-approve", "--verify", cwd=project, env=api.environ())
    assert "verified script visit-counter: 4 binding(s) as sent" in result.stderr
    assert len(api.find("GET", path_regex=r"/settings$")) == 3


def test_apply_verify_names_a_binding_cloudflare_did_not_keep(project: Path, api: FakeCloudflare) -> None:
    api.ignore_bindings = {"GREETING"}
    env = {**api.environ(), "COUNTER_API_KEY": CANARY}
    result = run("apply", "--auto-approve", "--verify", "--parallelism", "1", cwd=project, env=env, expect=1)
    assert ("verify failed for script hello-modules: binding GREETING (plain_text) was sent but Cloudflare "
            "does not have it") in result.stderr
    assert CANARY not in result.stderr + result.stdout
    # Not recorded: the next apply tries again.
    assert "hello-modules" not in _state(project)["scripts"]
