"""End to end against the loopback fake (issue 14): ``apply --gradual`` uploads a version and
deploys it beside the current one; ``promote`` and ``rollback`` end the split; a killed gradual
apply converges without a second upload; apply is refused over an unfinished split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.state.store import StateStore
from tests.cli_runner import kill_apply_at, run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SCRIPTS = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"


def _write(project: Path, body: str = "v1", *, greeting: str = "hello", extra: str = "") -> None:
    project.mkdir(exist_ok=True)
    (project / "api.js").write_text(f"export default {{ fetch() {{ return new Response('{body}') }} }}\n")
    (project / "old.js").write_text("addEventListener('fetch', () => {})\n")
    (project / "workers.yaml").write_text(
        f"version: 1\naccount_id: {FAKE_ACCOUNT}\nscripts:\n"
        "  api:\n    path: api.js\n    format: modules\n    compatibility_date: \"2024-09-23\"\n"
        f"    bindings:\n      - type: plain_text\n        name: GREETING\n        text: {greeting}\n{extra}"
        "  old:\n    path: old.js\n")


@pytest.fixture
def project(tmp_path: Path, api: FakeCloudflare) -> Path:
    """Both scripts deployed the usual way; then the modules script's code changes."""
    directory = tmp_path / "gradual"
    _write(directory)
    run("apply", "--auto-approve", cwd=directory, env=api.environ())
    _write(directory, "v2", greeting="hi")
    (directory / "old.js").write_text("addEventListener('fetch', () => {}) // changed\n")
    api.clear_requests()
    return directory


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _requests(api: FakeCloudflare, method: str, suffix: str) -> list:
    return [r for r in api.requests if r.method == method and r.path == f"{SCRIPTS}/{suffix}"]


def _split(api: FakeCloudflare, script: str) -> list[tuple[str, int]]:
    return [(v["version_id"], v["percentage"]) for v in api.deployments(script)[0]["versions"]]


def _served(api: FakeCloudflare) -> bytes:
    return bytes(api.scripts()["api"]["content"])


def test_plan_with_gradual_says_per_script_which_way_it_goes(project: Path) -> None:
    text = run("plan", "--gradual", "10", cwd=project).stdout
    assert "gradual: a new version gets 10% of the traffic, the current one keeps 90%" in text
    assert ("gradual: uploaded the usual way, 100% at once: a service-worker script cannot be uploaded as a "
            "version (ES modules only)") in text
    changes = {c["name"]: c for c in json.loads(run("plan", "--gradual", "10", "--format", "json",
                                                    cwd=project).stdout)["changes"]}
    assert changes["api"]["rollout"] == {"method": "version", "percentage": 10}
    assert changes["old"]["rollout"]["method"] == "upload"
    markdown = run("plan", "--gradual", "10", "--format", "markdown", cwd=project).stdout
    assert "gradual: a new version gets 10% of the traffic" in markdown
    # Without --gradual the plan is what it always was.
    assert "rollout" not in json.loads(run("plan", "--format", "json", cwd=project).stdout)["changes"][0]


def test_gradual_apply_then_promote_sends_all_traffic_to_the_new_version(project: Path, api: FakeCloudflare) -> None:
    before = api.live_version("api")["id"]
    applied = run("apply", "--auto-approve", "--gradual", "10", "--message", "try v2", "--tag", "v2",
                  cwd=project, env=api.environ())
    assert "Gradual deployments started:" in applied.stdout
    # One version upload, one deployment, no script upload for it; the service worker went whole.
    assert len(_requests(api, "POST", "api/versions")) == 1
    assert _requests(api, "PUT", "api") == []
    assert len(_requests(api, "PUT", "old")) == 1
    new = api.versions("api")[0]
    assert new["annotations"]["workers/message"] == "try v2" and new["annotations"]["workers/tag"] == "v2"
    assert _split(api, "api") == [(new["id"], 10), (before, 90)]
    assert b"v1" in _served(api)  # the larger share still serves the old code
    recorded = _state(project)["scripts"]["api"]
    assert recorded["version_id"] == new["id"]
    assert recorded["split"] == [{"version_id": new["id"], "percentage": 10},
                                 {"version_id": before, "percentage": 90}]
    assert recorded["previous"]["version_id"] == before

    plan = run("plan", cwd=project).stdout
    assert "No changes" in plan
    # Cloudflare lists the old version's etag while it has the larger share: not drift.
    run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ())
    assert f"script api: new version {new['id'][:8]} at 10%, previous version {before[:8]} at 90%" in plan
    gradual = json.loads(run("plan", "--format", "json", cwd=project).stdout)["changes"][0]["gradual_deployment"]
    assert gradual == {"version_id": new["id"], "percentage": 10, "previous_version_id": before,
                       "previous_percentage": 90}

    api.clear_requests()
    promoted = run("promote", "--auto-approve", cwd=project, env=api.environ())
    assert f"script api: new version {new['id'][:8]} at 10%" in promoted.stdout
    assert "Promote complete: 1 script(s) promoted." in promoted.stdout
    posts = _requests(api, "POST", "api/deployments")
    assert [p.json for p in posts] == [{"strategy": "percentage",
                                        "versions": [{"version_id": new["id"], "percentage": 100}]}]
    assert api.mutating_request_count() == 1  # no upload
    assert _split(api, "api") == [(new["id"], 100)]
    assert b"v2" in _served(api)
    recorded = _state(project)["scripts"]["api"]
    assert recorded["version_id"] == new["id"]
    assert "split" not in recorded and "previous" not in recorded
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=project).stdout
    assert "Gradual deployments" not in run("plan", cwd=project).stdout
    run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=api.environ())


def test_rollback_returns_the_traffic_and_the_next_plan_shows_the_update_again(
        project: Path, api: FakeCloudflare) -> None:
    before = api.live_version("api")["id"]
    run("apply", "--auto-approve", "--gradual", "25", cwd=project, env=api.environ())
    api.clear_requests()
    rolled = run("rollback", "api", "--auto-approve", cwd=project, env=api.environ())
    assert "Rollback complete: 1 script(s) rolled back." in rolled.stdout
    assert api.mutating_request_count() == 1
    assert _split(api, "api") == [(before, 100)]
    assert b"v1" in _served(api)
    recorded = _state(project)["scripts"]["api"]
    assert recorded["version_id"] == before and "split" not in recorded
    plan = json.loads(run("plan", "--format", "json", cwd=project).stdout)["changes"][0]
    assert plan["action"] == "update" and plan["reasons"] == ["content", "bindings"]
    assert run("plan", "--detailed-exitcode", cwd=project, expect=2).exit_code == 2
    # Applying again goes the usual way (or gradually again): the manifest's code is deployed.
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert b"v2" in _served(api)


def test_apply_over_an_unfinished_gradual_deployment_is_refused_naming_the_commands(
        project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", "--gradual", "10", cwd=project, env=api.environ())
    _write(project, "v3", greeting="hi")
    api.clear_requests()
    refused = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "script api is in a gradual deployment" in refused.stderr
    assert "'deployer promote api'" in refused.stderr and "'deployer rollback api'" in refused.stderr
    assert api.mutating_request_count() == 0
    plan = run("plan", cwd=project).stdout
    assert "! in a gradual deployment" in plan and "apply refuses to change it until" in plan
    # Once promoted, the same apply goes through.
    run("promote", "api", "--auto-approve", cwd=project, env=api.environ())
    run("apply", "--auto-approve", "--gradual", "50", cwd=project, env=api.environ())
    assert _split(api, "api")[0][1] == 50


def test_promote_and_rollback_need_auto_approve_without_a_terminal(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", "--gradual", "10", cwd=project, env=api.environ())
    api.clear_requests()
    for command in ("promote", "rollback"):
        refused = run(command, cwd=project, env=api.environ(), expect=1)
        assert f"{command} needs approval and there is no terminal" in refused.stderr
    assert api.mutating_request_count() == 0
    run("promote", "--auto-approve", cwd=project, env=api.environ())
    nothing = run("promote", "--auto-approve", cwd=project, env=api.environ())
    assert "Nothing to promote" in nothing.stdout
    unknown = run("rollback", "api", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "not in a gradual deployment according to the state: api" in unknown.stderr


def test_apply_without_a_terminal_needs_auto_approve_with_gradual_too(project: Path, api: FakeCloudflare) -> None:
    refused = run("apply", "--gradual", "10", cwd=project, env=api.environ(), expect=1)
    assert "apply needs approval" in refused.stderr
    assert api.mutating_request_count() == 0


def test_a_gradual_apply_killed_before_the_deployment_converges_without_a_second_upload(
        project: Path, api: FakeCloudflare) -> None:
    before = api.live_version("api")["id"]
    hold = api.hold("POST", r"/workers/scripts/api/deployments$")
    kill_apply_at(hold, project, api, "--gradual", "10", "--parallelism", "1", waiting_for="the deployment")
    uploaded = api.versions("api")[0]["id"]
    assert len(_requests(api, "POST", "api/versions")) == 1
    recorded = StateStore(project / ".deployer" / "state.json").load().script("api")
    assert recorded is not None and recorded.pending is not None and recorded.pending.version_id == uploaded
    assert _split(api, "api") == [(before, 100)]
    # The state still describes the old code: the plan shows the update.
    assert json.loads(run("plan", "--format", "json", cwd=project).stdout)["changes"][0]["action"] == "update"

    api.clear_requests()
    rerun = run("apply", "--auto-approve", "--gradual", "10", cwd=project, env=api.environ())
    assert "that an earlier apply uploaded (not uploaded again)" in rerun.stderr
    assert _requests(api, "POST", "api/versions") == []
    assert _split(api, "api") == [(uploaded, 10), (before, 90)]
    assert _state(project)["scripts"]["api"]["version_id"] == uploaded
    assert "pending_version" not in _state(project)["scripts"]["api"]
    assert "No changes" in run("plan", cwd=project).stdout


def test_a_lost_deployment_answer_is_not_taken_for_a_foreign_split(project: Path, api: FakeCloudflare) -> None:
    before = api.live_version("api")["id"]
    # The deployment is made but its answer is lost (no retry: --max-retry-wait 0): apply fails, and
    # the state holds the version as pending.
    api.fail("POST", r"/workers/scripts/api/deployments$", "reset", after=True)
    run("apply", "--auto-approve", "--gradual", "10", "--max-retry-wait", "0", cwd=project, env=api.environ(),
        expect=1)
    uploaded = api.versions("api")[0]["id"]
    assert _split(api, "api") == [(uploaded, 10), (before, 90)]
    api.clear_requests()
    run("apply", "--auto-approve", "--gradual", "10", cwd=project, env=api.environ())
    assert _requests(api, "POST", "api/versions") == []
    assert _split(api, "api") == [(uploaded, 10), (before, 90)]
    assert _state(project)["scripts"]["api"]["previous"]["version_id"] == before


def test_changes_the_versions_api_refuses_are_uploaded_the_usual_way(project: Path, api: FakeCloudflare) -> None:
    _write(project, "v2", greeting="hi", extra="    logpush: true\n")
    plan = run("plan", "--gradual", "10", cwd=project).stdout
    assert "uploaded the usual way, 100% at once: setting(s) logpush changed" in plan
    run("apply", "--auto-approve", "--gradual", "10", cwd=project, env=api.environ())
    assert len(_requests(api, "PUT", "api")) == 1 and _requests(api, "POST", "api/versions") == []
    assert "Gradual deployments" not in run("plan", cwd=project).stdout


def test_versions_lists_them_and_marks_what_the_state_records(project: Path, api: FakeCloudflare) -> None:
    before = api.live_version("api")["id"]
    run("apply", "--auto-approve", "--gradual", "10", "--tag", "abc1234", cwd=project, env=api.environ())
    new = api.versions("api")[0]["id"]
    text = run("versions", "api", cwd=project, env=api.environ()).stdout
    assert "Live deployment of script api" in text and f"{new} at 10%" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("  #")}
    assert "tag abc1234" in lines[new] and "state: new, gradual" in lines[new] and " 10%" in lines[new]
    assert "state: previous" in lines[before] and " 90%" in lines[before]
    doc = json.loads(run("versions", "api", "--format", "json", cwd=project, env=api.environ()).stdout)
    assert [(v["id"], v["percentage"], v["state"]) for v in doc["versions"]] == [
        (new, 10, "new, gradual"), (before, 90, "previous")]


def test_a_tag_over_100_bytes_is_refused_before_any_request(project: Path, api: FakeCloudflare) -> None:
    refused = run("apply", "--auto-approve", "--gradual", "10", "--tag", "x" * 101, cwd=project,
                  env=api.environ(), expect=1)
    assert "--tag is 101 bytes; Cloudflare takes at most 100" in refused.stderr
    assert api.requests == []


def test_a_pending_version_is_not_reused_once_a_secret_changed_and_no_secret_is_written(
        project: Path, api: FakeCloudflare) -> None:
    canary = "canary-SECRET-9f8e7d"
    secret = "      - type: secret_text\n        name: TOKEN\n        text: ${API_TOKEN_VALUE}\n"
    _write(project, "v1", greeting="hello", extra=secret)
    run("apply", "--auto-approve", cwd=project, env={**api.environ(), "API_TOKEN_VALUE": "first-" + canary})
    _write(project, "v2", greeting="hi", extra=secret)
    api.fail("POST", r"/workers/scripts/api/deployments$", "reset", after=True)
    first = run("apply", "--auto-approve", "--gradual", "10", "--max-retry-wait", "0", cwd=project,
                env={**api.environ(), "API_TOKEN_VALUE": "first-" + canary}, expect=1)
    pending = _state(project)["scripts"]["api"]["pending_version"]
    api.clear_requests()
    second = run("apply", "--auto-approve", "--gradual", "10", cwd=project,
                 env={**api.environ(), "API_TOKEN_VALUE": "second-" + canary})
    [upload] = _requests(api, "POST", "api/versions")  # the pending version holds the old secret value
    sent = json.loads(upload.parts["metadata"].data)["bindings"]
    assert {"type": "secret_text", "name": "TOKEN", "text": "second-" + canary} in sent
    assert _split(api, "api")[0] == (api.versions("api")[0]["id"], 10) != (pending["version_id"], 10)
    state_text = (project / ".deployer" / "state.json").read_text()
    for text in (state_text, first.stdout, first.stderr, second.stdout, second.stderr):
        assert canary not in text
