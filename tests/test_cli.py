"""End to end: the real CLI against the loopback fake Cloudflare API, on a copy of sample-project/."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from deployer.state.store import StateStore
from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

REPO = Path(__file__).resolve().parent.parent
SEED_NAMESPACE = "0f2ac74b498b48028cb68387c421e279"
CANARY = "canary-Zq8vX2-secret-value"
SCRIPTS_URL = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _put_metadata(api: FakeCloudflare, name: str) -> dict:
    (request,) = api.find("PUT", f"{SCRIPTS_URL}/{name}")
    return request.metadata


# --- plan without credentials or network ----------------------------------------------------


def test_plan_of_the_sample_project_needs_no_credentials_or_network(project: Path) -> None:
    result = run("plan", cwd=project)
    assert "+ script my-worker" in result.stdout
    assert "+ kv_namespace counts" in result.stdout
    assert "Plan: 4 to create, 0 to update, 0 to delete, 0 unchanged." in result.stdout
    assert result.stderr == ""


def test_plan_json_is_only_json_on_stdout(project: Path) -> None:
    result = run("plan", "--format", "json", cwd=project)
    doc = json.loads(result.stdout)
    assert [{k: c[k] for k in c if k not in ("content_sha256", "size", "bindings")} for c in doc["changes"]] == [
        {"type": "kv_namespace", "name": "counts", "action": "create", "title": "sample-project-counts", "namespace_id": None},
        {"type": "script", "name": "hello-modules", "action": "create", "reasons": []},
        {"type": "script", "name": "my-worker", "action": "create", "reasons": []},
        {"type": "script", "name": "visit-counter", "action": "create", "reasons": []},
    ]
    assert doc["summary"] == {"create": 4, "update": 0, "delete": 0, "no-op": 0}


def test_plan_markdown_fits_a_pull_request_comment(project: Path) -> None:
    result = run("plan", "--format", "markdown", cwd=project)
    assert result.stdout.startswith("### deployer plan")
    assert "| + create | script | `my-worker` |" in result.stdout


def test_detailed_exitcode_is_2_when_there_are_changes(project: Path) -> None:
    run("plan", "--detailed-exitcode", cwd=project, expect=2)


def test_manifest_flag_works_from_another_directory(project: Path, tmp_path: Path) -> None:
    result = run("plan", "-f", str(project / "workers.yaml"), "--format", "json", cwd=tmp_path)
    assert json.loads(result.stdout)["summary"]["create"] == 4


# --- apply ----------------------------------------------------------------------------------


def test_apply_sends_one_put_per_script_with_the_seed_metadata(project: Path, api: FakeCloudflare) -> None:
    result = run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert "Apply complete: 4 created, 0 updated, 0 deleted." in result.stdout
    assert api.count("PUT", f"{SCRIPTS_URL}/my-worker") == 1
    assert api.count("PUT", f"{SCRIPTS_URL}/visit-counter") == 1
    assert _put_metadata(api, "my-worker") == {
        "body_part": "script",
        "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": SEED_NAMESPACE}],
    }
    assert api.scripts()["my-worker"]["content"] == (project / "script.js").read_bytes()
    counts_id = _state(project)["kv_namespaces"]["counts"]["id"]
    assert api.kv_namespaces()[counts_id] == "sample-project-counts"
    assert _put_metadata(api, "visit-counter")["bindings"][0] == {
        "type": "kv_namespace", "name": "COUNTS", "namespace_id": counts_id
    }


def test_plan_after_apply_is_all_no_ops_and_exit_0(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    result = run("plan", "--detailed-exitcode", "--format", "json", cwd=project)
    assert {c["action"] for c in json.loads(result.stdout)["changes"]} == {"no-op"}


def test_second_apply_sends_nothing(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()
    result = run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert "No changes" in result.stdout
    assert api.count() == 0


def test_changed_script_is_uploaded_again_and_others_are_not(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()
    (project / "script.js").write_text("// v2\n")
    plan = json.loads(run("plan", "--format", "json", cwd=project).stdout)
    assert {c["name"]: c["action"] for c in plan["changes"]} == {
        "counts": "no-op", "hello-modules": "no-op", "my-worker": "update", "visit-counter": "no-op"
    }
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert [r.path for r in api.find("PUT")] == [f"{SCRIPTS_URL}/my-worker"]


def test_removed_script_is_deleted_and_removed_secret_too(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    manifest = project / "workers.yaml"
    text = manifest.read_text()
    text = text.replace(
        "      - type: secret_text\n        name: API_KEY\n        text: ${COUNTER_API_KEY:-change-me}\n", ""
    )
    head, _, _ = text.partition("  # The seed's example")
    rest = text[text.index("  visit-counter:"):]
    manifest.write_text(head + rest)
    plan = run("plan", cwd=project).stdout
    assert "- script my-worker" in plan and "- secret API_KEY" in plan
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert api.count("DELETE", f"{SCRIPTS_URL}/my-worker") == 1
    assert api.count("DELETE", f"{SCRIPTS_URL}/visit-counter/secrets/API_KEY") == 1
    assert "my-worker" not in api.scripts()
    assert "API_KEY" not in api.scripts()["visit-counter"]["secrets"]


def test_apply_without_a_terminal_or_auto_approve_refuses_and_changes_nothing(project: Path, api: FakeCloudflare) -> None:
    result = run("apply", cwd=project, env=api.environ(), expect=1)
    assert "--auto-approve" in result.stderr
    # Only the script list, read before asking: a script it would overwrite is refused first.
    assert [(r.method, r.path) for r in api.requests] == [("GET", SCRIPTS_URL)]
    assert not (project / ".deployer" / "state.json").exists()


def test_missing_credentials_fail_before_any_request(project: Path, api: FakeCloudflare) -> None:
    result = run("apply", "--auto-approve", cwd=project, env={"CLOUDFLARE_API_BASE_URL": api.base_url}, expect=1)
    assert "CLOUDFLARE_API_TOKEN" in result.stderr
    assert api.count() == 0


def test_token_wins_over_key_pair_with_a_warning(project: Path, api: FakeCloudflare) -> None:
    env = {**api.environ(), "CLOUDFLARE_EMAIL": "x@example.com", "CLOUDFLARE_API_KEY": "not-used"}
    result = run("apply", "--auto-approve", cwd=project, env=env)
    assert "warning:" in result.stderr and "CLOUDFLARE_API_KEY" in result.stderr
    assert "not-used" not in result.stderr


def test_api_error_names_the_cloudflare_code_and_keeps_what_succeeded(project: Path, api: FakeCloudflare) -> None:
    del api.kv_namespaces()[SEED_NAMESPACE]  # the seed's namespace id is now unknown: 10042
    result = run("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=api.environ(), expect=1)
    assert f"KV namespace '{SEED_NAMESPACE}' is not valid [code: 10042]" in result.stderr
    state = _state(project)
    assert "counts" in state["kv_namespaces"]
    assert "my-worker" not in state["scripts"]


def test_apply_is_refused_while_another_holds_the_lock(project: Path, api: FakeCloudflare) -> None:
    store = StateStore(project / ".deployer" / "state.json")
    with store.lock(command="deployer apply (test)"):
        result = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "is locked by pid" in result.stderr and "deployer apply (test)" in result.stderr
    assert api.count() == 0


def test_env_selects_its_own_state_file(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", "--env", "staging", cwd=project, env=api.environ())
    assert (project / ".deployer" / "state.staging.json").exists()
    assert not (project / ".deployer" / "state.json").exists()
    run("plan", "--env", "staging", "--detailed-exitcode", cwd=project)
    run("plan", "--detailed-exitcode", cwd=project, expect=2)


# --- saved plans ----------------------------------------------------------------------------


def test_saved_plan_is_applied_without_asking(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    result = run("apply", "plan.json", cwd=project, env=api.environ())
    assert "Apply complete: 4 created" in result.stdout


def test_saved_plan_is_refused_after_the_state_changed(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "the state changed since plan plan.json was made" in result.stderr
    assert api.count() == 0


def test_saved_plan_is_refused_after_a_script_file_changed(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    (project / "counter.js").write_text("// edited\n")
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "counter.js changed since plan plan.json was made" in result.stderr
    assert api.count() == 0


def test_saved_plan_is_refused_after_a_secret_changed(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project, env={"COUNTER_API_KEY": "one"})
    result = run("apply", "plan.json", cwd=project, env={**api.environ(), "COUNTER_API_KEY": "two"}, expect=1)
    assert "secret API_KEY of script visit-counter changed since plan" in result.stderr
    assert api.count() == 0


def test_saved_plan_applies_exactly_the_planned_changes(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "counter.js").write_text("// v2\n")
    planned = json.loads(run("plan", "--out", "plan.json", "--format", "json", cwd=project).stdout)
    assert [c["name"] for c in planned["changes"] if c["action"] != "no-op"] == ["visit-counter"]
    api.clear_requests()
    result = run("apply", "plan.json", cwd=project, env=api.environ())
    assert "Apply complete: 0 created, 1 updated, 0 deleted." in result.stdout
    assert [(r.method, r.path) for r in api.requests] == [("PUT", f"{SCRIPTS_URL}/visit-counter")]
    assert api.scripts()["visit-counter"]["content"] == b"// v2\n"


def test_saved_plan_is_refused_after_the_manifest_changed(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    manifest = project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace("text: Hello from deployer", "text: Hello again"))
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert ("the bindings of script visit-counter in workers.yaml changed since plan plan.json was made; "
            "run plan again") in result.stderr
    assert api.count() == 0


def test_saved_plan_is_refused_after_a_script_was_added_to_the_manifest(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    manifest = project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace("\nscripts:\n", "\nscripts:\n  extra:\n    path: script.js\n", 1))
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "the manifest workers.yaml changed since plan plan.json was made; run plan again" in result.stderr
    assert api.count() == 0


def test_saved_plan_is_refused_when_the_manifest_targets_another_account(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    other = "fedcba9876543210fedcba9876543210"
    result = run("apply", "plan.json", cwd=project, env={**api.environ(), "CLOUDFLARE_ACCOUNT_ID": other}, expect=1)
    assert (f"plan plan.json was made for account_id 0123456789abcdef0123456789abcdef, but workers.yaml now "
            f"targets account_id {other}; run plan again") in result.stderr
    assert api.count() == 0


def test_saved_plan_of_another_state_lineage_is_refused(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=api.environ())
    # A second state of the same scripts: only with --allow-overwrite (they exist in Cloudflare).
    run("apply", "--auto-approve", "--parallelism", "1", "--allow-overwrite", "--state", "other.json", cwd=project,
        env=api.environ())
    mine, other = (json.loads(p.read_text()) for p in (project / ".deployer" / "state.json", project / "other.json"))
    assert mine["serial"] == other["serial"] and mine["lineage"] != other["lineage"]
    (project / "counter.js").write_text("// v2\n")
    run("plan", "--out", "plan.json", cwd=project)
    api.clear_requests()
    result = run("apply", "plan.json", "--state", "other.json", cwd=project, env=api.environ(), expect=1)
    assert (f"plan plan.json belongs to state lineage '{mine['lineage']}', but this state is lineage "
            f"'{other['lineage']}'; run plan again against this state") in result.stderr
    assert api.count() == 0


def test_saved_plan_made_before_the_first_apply_is_refused_after_it(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "plan.json", cwd=project)
    run("apply", "plan.json", cwd=project, env=api.environ())
    result = run("apply", "plan.json", cwd=project, env=api.environ(), expect=1)
    assert "the state changed since plan plan.json was made" in result.stderr


# --- secrets never leak ---------------------------------------------------------------------


def test_secret_canary_reaches_only_the_upload_request(project: Path, api: FakeCloudflare) -> None:
    env = {**api.environ(), "COUNTER_API_KEY": CANARY}
    outputs = [
        run("validate", cwd=project, env=env),
        run("plan", "--out", "plan.json", cwd=project, env=env),
        run("plan", "--format", "json", cwd=project, env=env),
        run("plan", "--format", "markdown", cwd=project, env=env),
        run("apply", "plan.json", cwd=project, env=env),
        run("state", "show", "visit-counter", cwd=project),
        run("state", "list", cwd=project),
    ]
    for result in outputs:
        assert CANARY not in result.stdout + result.stderr
    for path in (project / ".deployer").iterdir():
        assert CANARY not in path.read_text(errors="replace"), path
    assert CANARY not in (project / "plan.json").read_text()
    secret = [b for b in _put_metadata(api, "visit-counter")["bindings"] if b["type"] == "secret_text"]
    assert secret == [{"type": "secret_text", "name": "API_KEY", "text": CANARY}]
    assert api.token not in "".join(r.stdout + r.stderr for r in outputs)


# --- validation, schema, state --------------------------------------------------------------


def test_invalid_manifest_lists_every_problem_and_exits_1(project: Path) -> None:
    (project / "workers.yaml").write_text(
        "version: 1\naccount_id: 0123456789abcdef0123456789abcdef\nscripts:\n"
        "  Bad_Name:\n    path: missing.js\n"
    )
    result = run("validate", cwd=project, expect=1)
    assert result.stderr.startswith("error: ")
    assert "workers.yaml:4:3: scripts.Bad_Name" in result.stderr
    assert "missing.js" in result.stderr


def test_missing_manifest_names_the_file_and_the_flag(tmp_path: Path) -> None:
    result = run("plan", cwd=tmp_path, expect=1)
    assert "workers.yaml" in result.stderr and "-f" in result.stderr


def test_schema_command_prints_the_shipped_schema() -> None:
    result = run("schema")
    assert json.loads(result.stdout) == json.loads((REPO / "schemas" / "workers.schema.json").read_text())


def test_state_list_and_show(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    listing = run("state", "list", cwd=project).stdout
    assert "kv_namespace.counts" in listing and "script.my-worker" in listing
    shown = json.loads(run("state", "show", "my-worker", cwd=project).stdout)
    assert shown["type"] == "script" and shown["bindings"][0]["namespace_id"] == SEED_NAMESPACE
    assert "not in the state" in run("state", "show", "nope", cwd=project, expect=1).stderr


def test_usage_error_exits_1_without_traceback(project: Path) -> None:
    result = run("plan", "--format", "yaml", cwd=project, expect=1)
    assert "yaml" in result.stderr


# --- as a real process ----------------------------------------------------------------------


def _deployer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployer", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_python_m_deployer_gives_real_exit_codes(project: Path) -> None:
    assert _deployer("validate", cwd=project).returncode == 0
    assert _deployer("plan", "--detailed-exitcode", cwd=project).returncode == 2
    (project / "workers.yaml").write_text("version: [\n")
    broken = _deployer("plan", cwd=project)
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr and "workers.yaml:" in broken.stderr


def test_debug_shows_the_traceback_of_an_expected_error(tmp_path: Path) -> None:
    result = _deployer("plan", "--debug", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_zone_mode_uploads_to_the_legacy_endpoint_with_a_warning(tmp_path: Path, api: FakeCloudflare) -> None:
    from tests.fake_cloudflare import FAKE_ZONE

    (tmp_path / "script.js").write_text("addEventListener('fetch', e => e.respondWith(new Response('hi')))\n")
    (tmp_path / "workers.yaml").write_text(
        f"version: 1\nzone_id: {FAKE_ZONE}\nscripts:\n  my-worker:\n    path: script.js\n"
        f"    bindings:\n      - type: kv_namespace\n        name: myNamespace\n        namespace_id: {SEED_NAMESPACE}\n"
    )
    result = run("apply", "--auto-approve", cwd=tmp_path, env=api.environ())
    assert "deprecated single-script API" in result.stderr
    (request,) = api.find("PUT")
    assert request.path == f"/zones/{FAKE_ZONE}/workers/script"
    assert request.metadata == {
        "body_part": "script",
        "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": SEED_NAMESPACE}],
    }
    run("plan", "--detailed-exitcode", cwd=tmp_path)


def _apply_on_a_terminal(project: Path, api: FakeCloudflare, answer: bytes) -> subprocess.CompletedProcess[str]:
    import os

    primary, secondary = os.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployer", "apply"], cwd=project, env={**os.environ, **api.environ()},
            stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        os.write(primary, answer)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_apply_on_a_terminal_asks_and_applies_after_yes(project: Path, api: FakeCloudflare) -> None:
    done = _apply_on_a_terminal(project, api, b"yes\n")
    assert "Apply these changes? Only 'yes' is accepted:" in done.stderr
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 4 created" in done.stdout
    assert api.count("PUT", f"{SCRIPTS_URL}/my-worker") == 1


def test_apply_on_a_terminal_changes_nothing_without_yes(project: Path, api: FakeCloudflare) -> None:
    done = _apply_on_a_terminal(project, api, b"y\n")
    assert done.returncode == 1
    assert "error: apply cancelled: nothing was changed" in done.stderr
    assert [(r.method, r.path) for r in api.requests] == [("GET", SCRIPTS_URL)]  # read before asking
