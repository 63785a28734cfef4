"""End to end: environments (--env overlays) and ES module workers, on a copy of sample-project/."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli_runner import run
from tests.fake_cloudflare import FakeCloudflare
from tests.test_cli import SCRIPTS_URL

# --- environments ---------------------------------------------------------------------------


def test_plan_for_an_environment_names_it_and_applies_its_overlay(project: Path) -> None:
    result = run("plan", "--env", "staging", cwd=project)
    assert result.stdout.startswith("deployer plan (environment: staging)\n")
    assert '+ kv_namespace counts (title "sample-project-counts-staging"' in result.stdout
    assert "+ script visit-counter-staging" in result.stdout
    assert '+ binding ENVIRONMENT: plain_text "staging"' in result.stdout
    assert '+ binding GREETING: plain_text "Hello from deployer"' in result.stdout  # inherited
    doc = json.loads(run("plan", "--env", "staging", "--format", "json", cwd=project).stdout)
    assert doc["environment"] == "staging"
    assert [c["name"] for c in doc["changes"]] == [
        "counts", "hello-modules-staging", "my-worker-staging", "visit-counter-staging"
    ]


def test_apply_of_an_environment_deploys_its_scripts_beside_the_base_ones(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    run("apply", "--auto-approve", "--env", "staging", cwd=project, env=api.environ())
    assert sorted(api.scripts()) == [
        "hello-modules", "hello-modules-staging", "my-worker", "my-worker-staging",
        "visit-counter", "visit-counter-staging",
    ]
    (staging,) = api.find("PUT", f"{SCRIPTS_URL}/visit-counter-staging")
    bindings = {b["name"]: b for b in staging.metadata["bindings"]}
    assert bindings["ENVIRONMENT"] == {"type": "plain_text", "name": "ENVIRONMENT", "text": "staging"}
    state = json.loads((project / ".deployer" / "state.staging.json").read_text())
    assert api.kv_namespaces()[state["kv_namespaces"]["counts"]["id"]] == "sample-project-counts-staging"
    assert bindings["COUNTS"]["namespace_id"] == state["kv_namespaces"]["counts"]["id"]
    assert sorted(state["scripts"]) == ["hello-modules-staging", "my-worker-staging", "visit-counter-staging"]
    run("plan", "--env", "staging", "--detailed-exitcode", cwd=project)
    run("plan", "--detailed-exitcode", cwd=project)


def test_unknown_environment_is_an_error_listing_the_known_ones(project: Path) -> None:
    result = run("plan", "--env", "prod", cwd=project, expect=1)
    assert result.stderr == (
        "error: unknown environment 'prod': workers.yaml declares staging under 'environments:'\n"
    )


def test_validate_checks_the_base_and_every_environment(project: Path) -> None:
    result = run("validate", cwd=project)
    assert result.stderr == "workers.yaml: valid (3 scripts, 1 kv_namespace(s); environments: staging)\n"
    text = (project / "workers.yaml").read_text()
    (project / "workers.yaml").write_text(text.replace("            text: staging\n", "            txt: staging\n"))
    failed = run("validate", cwd=project, expect=1)
    assert "environments.staging.scripts.visit-counter.bindings[0].txt: unexpected key 'txt'" in failed.stderr


def test_validate_takes_the_manifests_pre_commit_passes(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "workers.yaml").write_text("version: 1\nscripts: {}\n")
    result = run("validate", str(project / "workers.yaml"), str(other / "workers.yaml"), cwd=tmp_path, expect=1)
    assert f"{other / 'workers.yaml'}:1:1: missing 'account_id'" in result.stderr
    assert f"{project / 'workers.yaml'}: valid" in result.stderr


def test_validate_allow_unset_ignores_unset_variables(project: Path) -> None:
    text = (project / "workers.yaml").read_text()
    (project / "workers.yaml").write_text(text.replace("${COUNTER_API_KEY:-change-me}", "${COUNTER_API_KEY}"))
    assert "COUNTER_API_KEY is not set" in run("validate", cwd=project, expect=1).stderr
    run("validate", "--allow-unset", cwd=project)


# --- ES module workers ----------------------------------------------------------------------


def test_module_worker_is_uploaded_with_main_module_and_typed_parts(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (request,) = api.find("PUT", f"{SCRIPTS_URL}/hello-modules")
    assert request.metadata == {
        "main_module": "index.js",
        "bindings": [{"type": "plain_text", "name": "GREETING", "text": "Hello from an ES module"}],
        "compatibility_date": "2024-09-23",
    }
    parts = {name: (p.filename, p.content_type, p.data) for name, p in (request.parts or {}).items()}
    assert parts["index.js"] == ("index.js", "application/javascript+module",
                                 (project / "modules" / "index.js").read_bytes())
    assert parts["greeting.js"] == ("greeting.js", "application/javascript+module",
                                    (project / "modules" / "greeting.js").read_bytes())
    assert sorted(parts) == ["greeting.js", "index.js", "metadata"]


def test_a_changed_module_is_a_content_update_of_that_script_only(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "modules" / "greeting.js").write_text("export function greet() { return 'hi' }\n")
    doc = json.loads(run("plan", "--format", "json", cwd=project).stdout)
    (changed,) = [c for c in doc["changes"] if c["action"] != "no-op"]
    assert (changed["name"], changed["action"], changed["reasons"]) == ("hello-modules", "update", ["content"])
    parts = [project / "modules" / "index.js", project / "modules" / "greeting.js"]
    assert changed["size"] == sum(len(p.read_bytes()) for p in parts)
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert [r.path for r in api.find("PUT")] == [f"{SCRIPTS_URL}/hello-modules"]


def test_a_changed_compatibility_date_is_a_content_update(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    text = (project / "workers.yaml").read_text()
    (project / "workers.yaml").write_text(text.replace('"2024-09-23"', "2025-01-01"))
    doc = json.loads(run("plan", "--format", "json", cwd=project).stdout)
    assert [c["reasons"] for c in doc["changes"] if c["action"] == "update"] == [["content"]]


def test_service_worker_with_compatibility_settings_sends_them(project: Path, api: FakeCloudflare) -> None:
    text = (project / "workers.yaml").read_text()
    text = text.replace("    path: script.js\n", "    path: script.js\n    compatibility_flags: [nodejs_compat]\n")
    (project / "workers.yaml").write_text(text)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (request,) = api.find("PUT", f"{SCRIPTS_URL}/my-worker")
    assert request.metadata["body_part"] == "script" and request.metadata["compatibility_flags"] == ["nodejs_compat"]
    assert "main_module" not in request.metadata
