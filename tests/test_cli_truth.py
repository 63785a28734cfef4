"""End to end: refresh and import record what is deployed, --refresh shows drift item by item, and
the JSON plan carries the binding details and code hash (issue 10 items 5, 6 and 8)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from deployer.plan.render import DETAIL_KEYS
from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare
from tests.test_cli import CANARY, SCRIPTS_URL

NAMESPACES_URL = f"/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces"


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _plan(project: Path, api: FakeCloudflare, *args: str, expect: int = 0) -> dict:
    result = run("plan", "--format", "json", *args, cwd=project, env={**api.environ(), "COUNTER_API_KEY": CANARY},
                 expect=expect)
    assert CANARY not in result.stdout + result.stderr
    return json.loads(result.stdout)


def _change(doc: dict, name: str) -> dict:
    (change,) = [c for c in doc["changes"] if c["name"] == name]
    return change


def _deployed(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env={**api.environ(), "COUNTER_API_KEY": CANARY})
    api.clear_requests()


def _edit_in_dashboard(api: FakeCloudflare, name: str) -> None:
    """What a person does in the dashboard: one binding changed, one removed, one added; a new
    version (etag) results."""
    script = api.scripts()[name]
    bindings = {b["name"]: b for b in script["bindings"]}
    bindings["GREETING"] = {"type": "plain_text", "name": "GREETING", "text": "edited in the dashboard"}
    del bindings["ENVIRONMENT"]
    bindings["EXTRA"] = {"type": "plain_text", "name": "EXTRA", "text": "added by hand"}
    script["bindings"] = list(bindings.values())
    script["etag"], script["modified_on"] = "edited-etag", "2030-01-01T00:00:00.000000Z"


def test_a_dashboard_edit_after_refresh_is_still_shown_by_the_next_plan_refresh(
    project: Path, api: FakeCloudflare
) -> None:
    _deployed(project, api)
    _edit_in_dashboard(api, "visit-counter")

    drifted = _change(_plan(project, api, "--refresh", "--detailed-exitcode", expect=3), "visit-counter")
    assert drifted["drift"] == [
        {"what": "binding", "change": "removed", "name": "ENVIRONMENT", "type": "plain_text",
         "old": {"text": "production"}},
        {"what": "binding", "change": "added", "name": "EXTRA", "type": "plain_text",
         "new": {"text": "added by hand"}},
        {"what": "binding", "change": "changed", "name": "GREETING", "type": "plain_text",
         "old": {"text": "Hello from deployer"}, "new": {"text": "edited in the dashboard"}},
    ]
    assert drifted["reasons"] == ["bindings", "secret", "drift"]

    result = run("refresh", cwd=project, env=api.environ())
    assert ("script visit-counter: recorded as deployed (binding ENVIRONMENT removed; binding EXTRA added; "
            "binding GREETING changed; etag edited-etag") in result.stderr
    recorded = {b["name"]: b for b in _state(project)["scripts"]["visit-counter"]["bindings"]}
    assert recorded["GREETING"]["text"] == "edited in the dashboard" and "ENVIRONMENT" not in recorded

    # The manifest still differs from what is deployed: not "No changes".
    after = _plan(project, api, "--refresh", "--detailed-exitcode", expect=2)
    change = _change(after, "visit-counter")
    assert (change["action"], change["reasons"], "drift" in change) == ("update", ["bindings", "secret"], False)
    assert [b for b in change["bindings"] if b["action"] != "no-op"] == [
        {"name": "GREETING", "type": "plain_text", "action": "update",
         "old": {"text": "edited in the dashboard"}, "new": {"text": "Hello from deployer"}},
        {"name": "ENVIRONMENT", "type": "plain_text", "action": "create", "new": {"text": "production"}},
        # Cloudflare never returns a secret's value: after an outside change it is sent again.
        {"name": "API_KEY", "type": "secret_text", "action": "update", "old": "(sensitive)", "new": "(sensitive)"},
        {"name": "EXTRA", "type": "plain_text", "action": "delete", "old": {"text": "added by hand"}},
    ]
    text = run("plan", "--refresh", cwd=project, env=api.environ()).stdout
    assert "  ~ script visit-counter (bindings, secret)\n" in text
    assert '      ~ binding GREETING: plain_text "edited in the dashboard" -> plain_text "Hello from deployer"\n' in text
    assert '      - binding EXTRA: plain_text "added by hand"\n' in text

    run("apply", "--auto-approve", cwd=project, env={**api.environ(), "COUNTER_API_KEY": CANARY})
    deployed = {b["name"]: b.get("text") for b in api.scripts()["visit-counter"]["bindings"]}
    assert deployed["GREETING"] == "Hello from deployer" and "EXTRA" not in deployed
    _plan(project, api, "--refresh", "--detailed-exitcode")


def test_code_changed_in_the_dashboard_is_content_drift_until_refresh_records_its_hash(
    project: Path, api: FakeCloudflare
) -> None:
    _deployed(project, api)
    script = api.scripts()["my-worker"]
    script["content"] = b"addEventListener('fetch', () => {}) // quick fix in the dashboard\n"
    script["etag"] = hashlib.sha256(script["content"]).hexdigest()
    local = (project / "script.js").read_bytes()

    change = _change(_plan(project, api, "--refresh", "--detailed-exitcode", expect=3), "my-worker")
    assert change["drift"] == [{"what": "content", "change": "changed"}]
    assert change["reasons"] == ["content", "drift"]
    assert (change["content_sha256"], change["size"]) == (hashlib.sha256(local).hexdigest(), len(local))

    run("refresh", cwd=project, env=api.environ())
    assert _state(project)["scripts"]["my-worker"]["content_sha256"] == script["etag"]
    # Even without --refresh the plan now knows the deployed code is not the manifest's.
    assert _change(_plan(project, api, "--detailed-exitcode", expect=2), "my-worker")["reasons"] == ["content"]


def test_refresh_reads_settings_and_code_only_of_scripts_whose_etag_changed(
    project: Path, api: FakeCloudflare
) -> None:
    _deployed(project, api)
    _edit_in_dashboard(api, "visit-counter")
    run("refresh", cwd=project, env=api.environ())
    assert sorted((r.method, r.path) for r in api.requests) == sorted([
        ("GET", SCRIPTS_URL), ("GET", f"{SCRIPTS_URL}/visit-counter/content/v2"),
        ("GET", f"{SCRIPTS_URL}/visit-counter/settings"), ("GET", NAMESPACES_URL),
    ])
    api.clear_requests()
    run("plan", "--refresh", cwd=project, env=api.environ())
    assert [(r.method, r.path) for r in api.requests] == [("GET", SCRIPTS_URL), ("GET", NAMESPACES_URL)]


def test_several_changed_scripts_are_read_in_parallel(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    for name in ("my-worker", "visit-counter", "hello-modules"):
        api.scripts()[name]["etag"] = f"new-{name}"
    api.slow("GET", r"/settings$", 0.5)
    run("plan", "--refresh", cwd=project, env=api.environ(), expect=0)
    reads = sorted(api.find("GET", path_regex=r"/settings$"), key=lambda r: r.started)
    assert len(reads) == 3
    assert reads[-1].started < reads[0].answered  # the last began before the first was answered


def test_an_unmanaged_binding_added_outside_is_drift_and_refresh_warns_about_it(
    project: Path, api: FakeCloudflare
) -> None:
    _deployed(project, api)
    script = api.scripts()["my-worker"]
    script["bindings"].append({"type": "workflow", "name": "FLOW", "workflow_name": "orders"})
    script["etag"] = "with-a-workflow"
    change = _change(_plan(project, api, "--refresh", "--detailed-exitcode", expect=3), "my-worker")
    assert change["drift"] == [{"what": "binding", "change": "added", "name": "FLOW", "type": "workflow"}]
    result = run("refresh", cwd=project, env=api.environ())
    assert ("warning: script my-worker: binding FLOW of type workflow is not one deployer manages; the next apply uploads "
            "the script without it") in result.stderr


# --- the JSON plan's details ----------------------------------------------------------------


def test_json_plan_carries_each_binding_and_the_code_hash_and_size(project: Path, api: FakeCloudflare) -> None:
    first = _change(_plan(project, api), "visit-counter")
    code = (project / "counter.js").read_bytes()
    assert (first["content_sha256"], first["size"]) == (hashlib.sha256(code).hexdigest(), len(code))
    assert first["bindings"] == [
        {"name": "COUNTS", "type": "kv_namespace", "action": "create", "new": {"namespace_id": "(known after apply)"}},
        {"name": "GREETING", "type": "plain_text", "action": "create", "new": {"text": "Hello from deployer"}},
        {"name": "ENVIRONMENT", "type": "plain_text", "action": "create", "new": {"text": "production"}},
        {"name": "API_KEY", "type": "secret_text", "action": "create", "new": "(sensitive)"},
    ]
    modules = _change(_plan(project, api), "hello-modules")
    parts = [project / "modules" / "index.js", project / "modules" / "greeting.js"]
    assert modules["size"] == sum(len(p.read_bytes()) for p in parts)

    _deployed(project, api)
    manifest = project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace("text: Hello from deployer", "text: Hi")
                        .replace("name: ENVIRONMENT\n        text: ${DEPLOY_ENVIRONMENT:-production}",
                                 "name: MODE\n        text: fast"))
    doc = json.loads(run("plan", "--format", "json", cwd=project,
                         env={"COUNTER_API_KEY": "another-" + CANARY}).stdout)
    change = _change(doc, "visit-counter")
    assert change["reasons"] == ["bindings", "secret"] and "content_sha256" not in change
    assert change["bindings"] == [
        {"name": "COUNTS", "type": "kv_namespace", "action": "no-op",
         "old": {"namespace_id": _state(project)["kv_namespaces"]["counts"]["id"]},
         "new": {"namespace_id": _state(project)["kv_namespaces"]["counts"]["id"]}},
        {"name": "GREETING", "type": "plain_text", "action": "update", "old": {"text": "Hello from deployer"},
         "new": {"text": "Hi"}},
        {"name": "MODE", "type": "plain_text", "action": "create", "new": {"text": "fast"}},
        {"name": "API_KEY", "type": "secret_text", "action": "update", "old": "(sensitive)", "new": "(sensitive)"},
        {"name": "ENVIRONMENT", "type": "plain_text", "action": "delete", "old": {"text": "production"}},
    ]
    assert "another-" not in json.dumps(doc)
    text = run("plan", cwd=project, env={"COUNTER_API_KEY": "another-" + CANARY}).stdout
    assert "      ~ binding API_KEY: secret_text (sensitive), its value changes\n" in text


def test_a_binding_that_changes_type_names_both(project: Path, api: FakeCloudflare) -> None:
    _deployed(project, api)
    manifest = project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace(
        "- type: plain_text\n        name: GREETING", "- type: secret_text\n        name: GREETING"))
    change = _change(_plan(project, api), "visit-counter")
    (greeting,) = [b for b in change["bindings"] if b["name"] == "GREETING"]
    assert greeting == {"name": "GREETING", "type": "secret_text", "action": "update", "old_type": "plain_text",
                        "old": {"text": "Hello from deployer"}, "new": "(sensitive)"}


def test_a_plan_file_made_before_the_details_still_applies(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    saved = json.loads((project / "plan.json").read_text())
    for change in saved["plan"]["changes"]:
        for key in DETAIL_KEYS:
            change.pop(key, None)
    (project / "plan.json").write_text(json.dumps(saved))
    run("apply", "plan.json", cwd=project, env=api.environ())
    assert sorted(api.successful_uploads()) == ["hello-modules", "my-worker", "visit-counter"]


def test_a_plan_file_whose_binding_details_differ_is_refused(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    saved = json.loads((project / "plan.json").read_text())
    change = next(c for c in saved["plan"]["changes"] if c["name"] == "visit-counter")
    change["bindings"][1]["new"] = {"text": "what the reviewer was shown"}
    (project / "plan.json").write_text(json.dumps(saved))
    refused = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "changed since plan plan.json was made" in refused.stderr
    assert api.find("PUT") == []
