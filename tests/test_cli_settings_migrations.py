"""End to end against the loopback fake (issue 12 parts 4 and 6): Durable Object migrations
sent after the script's current tag, that tag read from Cloudflare when the state does not
know it, applied steps append-only; and upload settings sent, read back and planned."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SERVICE = f"/accounts/{FAKE_ACCOUNT}/workers/services/counter"
UPLOAD = f"/accounts/{FAKE_ACCOUNT}/workers/scripts/counter"

V1 = """\
      - tag: v1
        new_sqlite_classes: [Counter]
"""
V2 = """\
      - tag: v2
        renamed_classes:
          - from: Counter
            to: Tally
"""


def _write(project: Path, steps: str) -> None:
    project.mkdir(exist_ok=True)
    (project / "index.js").write_text(
        "export class Counter {}\nexport class Tally {}\nexport default { fetch() { return new Response('hi') } }\n")
    (project / "workers.yaml").write_text(
        f"version: 1\naccount_id: {FAKE_ACCOUNT}\nscripts:\n  counter:\n    path: index.js\n    format: modules\n"
        f"    compatibility_date: \"2024-09-23\"\n    durable_objects:\n      migrations:\n{steps}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _write(tmp_path / "do", V1)
    return tmp_path / "do"


def _uploads(api: FakeCloudflare) -> list[dict]:
    return [r.metadata for r in api.requests if r.method == "PUT" and r.path == UPLOAD]


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _service_reads(api: FakeCloudflare) -> int:
    return sum(1 for r in api.requests if r.method == "GET" and r.path == SERVICE)


# --- migrations -----------------------------------------------------------------------------


def test_first_apply_sends_every_step_without_old_tag_and_records_the_tag(project: Path, api: FakeCloudflare) -> None:
    plan = run("plan", cwd=project)
    assert "+ migration v1: new_sqlite_classes Counter" in plan.stdout
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _uploads(api)[0]["migrations"] == {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}]}
    assert _service_reads(api) == 1  # a new script: the state cannot know its tag
    assert api.migration_tag("counter") == "v1"
    recorded = _state(project)["scripts"]["counter"]
    assert recorded["migration_tag"] == "v1"
    assert recorded["migrations"] == [{"tag": "v1", "new_sqlite_classes": ["Counter"]}]


def test_a_new_step_is_sent_alone_after_the_recorded_tag(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    _write(project, V1 + V2)
    api.clear_requests()
    plan = run("plan", "--format", "json", cwd=project)
    change = json.loads(plan.stdout)["changes"][0]
    assert change["reasons"] == ["migrations"]
    assert change["migrations"] == {"old_tag": "v1", "old_tag_known": True, "new_tag": "v2",
                                    "steps": [{"tag": "v2", "renamed_classes": [{"from": "Counter", "to": "Tally"}]}]}
    text = run("plan", cwd=project).stdout
    assert "~ script counter (migrations)" in text
    assert "+ migration v2: renamed_classes Counter -> Tally" in text
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _uploads(api)[0]["migrations"] == {
        "old_tag": "v1", "new_tag": "v2", "steps": [{"renamed_classes": [{"from": "Counter", "to": "Tally"}]}]}
    assert _service_reads(api) == 0  # the state knew the tag
    assert api.durable_object_classes("counter") == {"Tally": "sqlite"}
    assert api.migration_tag("counter") == "v2"
    again = run("plan", "--detailed-exitcode", cwd=project)
    assert "No changes" in again.stdout


def test_an_upload_with_the_tag_current_sends_no_migrations(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "index.js").write_text((project / "index.js").read_text() + "// v2 of the code\n")
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert "migrations" not in _uploads(api)[0]
    assert api.migration_tag("counter") == "v1"


def test_a_state_without_the_tag_reads_it_from_the_services_endpoint(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    state_file = project / ".deployer" / "state.json"
    doc = _state(project)
    # As a state written before deployer recorded migration tags (or by an import) looks.
    del doc["scripts"]["counter"]["migration_tag"], doc["scripts"]["counter"]["migrations"]
    state_file.write_text(json.dumps(doc))
    _write(project, V1 + V2)
    api.clear_requests()
    plan = run("plan", cwd=project).stdout
    assert "+ migration v1: new_sqlite_classes Counter" in plan
    assert "+ migration v2: renamed_classes Counter -> Tally" in plan
    assert "current migration tag is read from Cloudflare at apply" in plan
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _service_reads(api) == 1
    assert _uploads(api)[0]["migrations"] == {
        "old_tag": "v1", "new_tag": "v2", "steps": [{"renamed_classes": [{"from": "Counter", "to": "Tally"}]}]}
    assert _state(project)["scripts"]["counter"]["migration_tag"] == "v2"
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=project).stdout


def test_a_tag_cloudflare_has_but_the_manifest_lacks_stops_before_the_upload(
    project: Path, api: FakeCloudflare
) -> None:
    _write(project, V1 + V2)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    doc = _state(project)
    del doc["scripts"]["counter"]["migration_tag"], doc["scripts"]["counter"]["migrations"]
    (project / ".deployer" / "state.json").write_text(json.dumps(doc))
    _write(project, V1)
    (project / "index.js").write_text((project / "index.js").read_text() + "// changed\n")
    api.clear_requests()
    result = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert ("script counter is at migration tag 'v2' in Cloudflare, which is not a tag of its "
            "durable_objects.migrations ('v1')") in result.stderr
    assert _uploads(api) == []


def test_editing_an_applied_step_is_refused_at_plan_naming_it(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    _write(project, V1.replace("new_sqlite_classes", "new_classes"))
    result = run("plan", cwd=project, expect=1)
    assert result.stderr == (
        "error: script counter: migration step 'v1' (scripts.counter.durable_objects.migrations[0]) was applied "
        "to Cloudflare as new_sqlite_classes Counter but now says new_classes Counter; applied steps are "
        "append-only: restore it and add a new step (renamed_classes, deleted_classes, ...) for the change\n")
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert _uploads(api) == []


def test_removing_an_applied_step_is_refused_at_plan(project: Path, api: FakeCloudflare) -> None:
    _write(project, V1 + V2)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    _write(project, V1)
    result = run("plan", cwd=project, expect=1)
    assert ("error: script counter: migration step 'v2' was applied to Cloudflare but was removed; applied steps "
            "are append-only: put it back at scripts.counter.durable_objects.migrations[1] as it was "
            "(renamed_classes Counter -> Tally)") in result.stderr


# --- settings -------------------------------------------------------------------------------


SETTINGS_MANIFEST = f"""\
version: 1
account_id: {FAKE_ACCOUNT}
project: shop
scripts:
  tail:
    path: tail.js
  api:
    path: api.js
    placement: {{mode: smart}}
    limits: {{cpu_ms: 50}}
    observability:
      enabled: true
      head_sampling_rate: 0.5
    logpush: true
    tail_consumers:
      - script: tail
    tags: [team-a]
environments:
  staging:
    name_suffix: -staging
"""


@pytest.fixture
def settings_project(tmp_path: Path) -> Path:
    directory = tmp_path / "settings"
    directory.mkdir()
    for name in ("tail", "api"):
        (directory / f"{name}.js").write_text(f"addEventListener('fetch', () => {{}}) // {name}\n")
    (directory / "workers.yaml").write_text(SETTINGS_MANIFEST)
    return directory


def _settings(api: FakeCloudflare, script: str) -> dict:
    import urllib.request

    request = urllib.request.Request(f"{api.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts/{script}/settings",
                                     headers={"Authorization": "Bearer " + api.environ()["CLOUDFLARE_API_TOKEN"]})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["result"]  # type: ignore[no-any-return]


def test_settings_are_sent_and_read_back_as_written(settings_project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", "--verify", cwd=settings_project, env=api.environ())
    uploads = [(r.path.rsplit("/", 1)[1], r.metadata) for r in api.requests if r.method == "PUT"]
    assert [name for name, _ in uploads] == ["tail", "api"]  # the tail consumer must exist first
    metadata = uploads[1][1]
    assert metadata["tags"] == ["deployer:project=shop", "team-a"]
    assert metadata["tail_consumers"] == [{"service": "tail"}]
    found = _settings(api, "api")
    assert found["placement"] == {"mode": "smart"}
    assert found["limits"] == {"cpu_ms": 50}
    assert found["observability"] == {"enabled": True, "head_sampling_rate": 0.5}
    assert found["logpush"] is True
    assert found["tail_consumers"] == [{"service": "tail"}]
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=settings_project).stdout
    recorded = _state(settings_project)["scripts"]
    assert sorted(recorded["api"]["settings_sha256"]) == ["limits", "logpush", "observability", "placement",
                                                          "tags", "tail_consumers"]
    assert "settings_sha256" not in recorded["tail"]  # written only for a script with settings


def test_a_changed_setting_is_an_update_with_reason_settings(settings_project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=settings_project, env=api.environ())
    manifest = settings_project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace("cpu_ms: 50", "cpu_ms: 100").replace("    logpush: true\n", ""))
    plan = run("plan", "--format", "json", "--detailed-exitcode", cwd=settings_project, expect=2)
    change = next(c for c in json.loads(plan.stdout)["changes"] if c["name"] == "api")
    assert (change["action"], change["reasons"]) == ("update", ["settings"])
    assert {s["name"]: s["action"] for s in change["settings"]} == {
        "placement": "no-op", "limits": "update", "observability": "no-op", "tail_consumers": "no-op",
        "tags": "no-op", "logpush": "delete"}
    assert next(s for s in change["settings"] if s["name"] == "limits")["value"] == {"cpu_ms": 100}
    text = run("plan", cwd=settings_project).stdout
    assert '~ script api (settings)\n      ~ setting limits: now {"cpu_ms":100}\n' \
           "      - setting logpush (no longer sent: Cloudflare's default)\n" in text
    markdown = run("plan", "--format", "markdown", cwd=settings_project).stdout
    assert '| ~ update | script | `api` | settings<br>\\~ setting limits: now {"cpu\\_ms":100}' in markdown
    run("apply", "--auto-approve", "--verify", cwd=settings_project, env=api.environ())
    found = _settings(api, "api")
    assert (found["limits"], found["logpush"]) == ({"cpu_ms": 100}, False)
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=settings_project).stdout


def test_a_tail_consumer_script_is_named_as_its_environment_names_it(
    settings_project: Path, api: FakeCloudflare
) -> None:
    run("apply", "--auto-approve", "--env", "staging", cwd=settings_project, env=api.environ())
    metadata = next(r.metadata for r in api.requests if r.method == "PUT" and r.path.endswith("/api-staging"))
    assert metadata["tail_consumers"] == [{"service": "tail-staging"}]


def test_an_import_records_the_settings_cloudflare_has(settings_project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=settings_project, env=api.environ())
    (settings_project / ".deployer" / "state.json").unlink()
    run("import", "--all", cwd=settings_project, env=api.environ())
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=settings_project).stdout


def test_a_saved_plan_is_refused_once_a_setting_changed(settings_project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=settings_project, env=api.environ())
    manifest = settings_project / "workers.yaml"
    manifest.write_text(manifest.read_text().replace("cpu_ms: 50", "cpu_ms: 100"))
    run("plan", "--out", "plan.bin", cwd=settings_project, expect=None)
    manifest.write_text(manifest.read_text().replace("cpu_ms: 100", "cpu_ms: 200"))
    api.clear_requests()
    result = run("apply", "plan.bin", cwd=settings_project, env=api.environ(), expect=1)
    assert "changed since plan" in result.stderr
    assert not any(r.method == "PUT" for r in api.requests)
    manifest.write_text(manifest.read_text().replace("cpu_ms: 200", "cpu_ms: 100"))
    run("apply", "plan.bin", cwd=settings_project, env=api.environ())
    assert _settings(api, "api")["limits"] == {"cpu_ms": 100}
