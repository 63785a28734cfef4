"""End to end against the loopback fake (issue 18): static assets uploaded through a session,
only the buckets Cloudflare lacks; unchanged assets cost no request; a changed file is one
bucket; ignored files never leave the machine; a script may serve assets alone; a run killed
during the buckets resumes without sending again what Cloudflare already has."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import kill_apply_at, run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SESSION = ("POST", "/accounts/{account_id}/workers/scripts/{script_name}/assets-upload-session")
BUCKET = ("POST", "/accounts/{account_id}/workers/assets/upload")
UPLOAD = ("PUT", "/accounts/{account_id}/workers/scripts/{script_name}")

MANIFEST = f"""\
version: 1
account_id: {FAKE_ACCOUNT}
scripts:
  site:
    path: index.js
    format: modules
    compatibility_date: "2024-09-23"
    assets:
      directory: public
      binding: ASSETS
      html_handling: auto-trailing-slash
      not_found_handling: single-page-application
      run_worker_first: false
"""


def _write(project: Path, manifest: str = MANIFEST, files: int = 12) -> Path:
    public = project / "public"
    (public / "css").mkdir(parents=True, exist_ok=True)
    (project / "index.js").write_text("export default { fetch(r, env) { return env.ASSETS.fetch(r) } }\n")
    (project / "workers.yaml").write_text(manifest)
    (public / "index.html").write_text("<h1>shop</h1>\n")
    (public / "css" / "site.css").write_text("body { margin: 0 }\n")
    for index in range(files - 2):
        (public / f"page-{index}.html").write_text(f"<p>page {index}</p>\n")
    (public / ".assetsignore").write_text("# source maps stay home\n*.map\ndrafts/\n")
    (public / "app.js.map").write_text("{}")
    (public / "drafts").mkdir(exist_ok=True)
    (public / "drafts" / "secret-plan.html").write_text("<p>not yet</p>\n")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _write(tmp_path / "site")


def _state(project: Path) -> dict:
    return json.loads((project / ".deployer" / "state.json").read_text())


def _count(api: FakeCloudflare, request: tuple[str, str]) -> int:
    return api.request_counts().get(request, 0)


def _bucket_parts(api: FakeCloudflare) -> list[int]:
    return [len(r.parts or {}) for r in api.requests if r.method == "POST" and r.path.endswith("/assets/upload")]


def _uploads(api: FakeCloudflare) -> list[dict]:
    return [r.metadata for r in api.requests if r.method == "PUT" and "/workers/scripts/" in r.path]


def test_first_apply_uploads_every_file_in_buckets_then_the_script_with_the_token(
        project: Path, api: FakeCloudflare) -> None:
    plan = run("plan", cwd=project)
    assert "+ script site" in plan.stdout
    assert "~ assets: 12 added, 0 changed, 0 removed (12 file(s))" in plan.stdout
    assert "+ binding ASSETS: assets" in plan.stdout
    applied = run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert "uploaded 12 asset file(s) in 3 request(s); 0 were in Cloudflare already" in applied.stderr
    assert _count(api, SESSION) == 1 and sorted(_bucket_parts(api)) == [2, 5, 5]  # 5 a bucket, in parallel
    metadata = _uploads(api)[0]
    assert metadata["assets"]["config"] == {"html_handling": "auto-trailing-slash",
                                            "not_found_handling": "single-page-application",
                                            "run_worker_first": False}
    assert {"type": "assets", "name": "ASSETS"} in metadata["bindings"]
    served = api.scripts()["site"]["assets"]["manifest"]
    assert sorted(served) == sorted(["/index.html", "/css/site.css", *(f"/page-{i}.html" for i in range(10))])
    recorded = _state(project)["scripts"]["site"]
    assert recorded["assets"]["files"] == 12
    digest = recorded["assets"]["manifest_sha256"]
    assert (project / ".deployer" / "assets" / f"{digest}.json").is_file()
    assert "fake-assets" not in json.dumps(recorded) + applied.stdout + applied.stderr  # no token anywhere


def test_unchanged_rerun_sends_no_asset_request_at_all(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()
    plan = run("plan", "--detailed-exitcode", cwd=project)
    assert "No changes" in plan.stdout
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert api.mutating_request_count() == 0
    assert _count(api, SESSION) == 0 and _count(api, BUCKET) == 0


def test_one_changed_file_is_an_update_for_assets_and_one_bucket_of_one_file(
        project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "public" / "css" / "site.css").write_text("body { margin: 1em }\n")
    plan = run("plan", "--detailed-exitcode", cwd=project, expect=2)
    assert "~ script site (assets)" in plan.stdout
    assert "~ assets: 0 added, 1 changed, 0 removed (12 file(s))" in plan.stdout
    doc = json.loads(run("plan", "--format", "json", cwd=project).stdout)
    change = next(c for c in doc["changes"] if c["name"] == "site")
    assert change["reasons"] == ["assets"]
    assert change["assets"] == {"files": 12, "added": 0, "changed": 1, "removed": 0, "config_changed": False}
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _count(api, SESSION) == 1 and _bucket_parts(api) == [1]
    assert run("plan", "--detailed-exitcode", cwd=project).exit_code == 0


def test_added_and_removed_files_are_counted(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "public" / "page-0.html").unlink()
    (project / "public" / "new.html").write_text("<p>new</p>\n")
    (project / "public" / "other.html").write_text("<p>other</p>\n")
    plan = run("plan", cwd=project)
    assert "~ assets: 2 added, 0 changed, 1 removed (13 file(s))" in plan.stdout


def test_an_ignored_file_is_neither_planned_nor_uploaded(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "public" / "more.js.map").write_text("{}")
    (project / "public" / "drafts" / "another.html").write_text("<p>draft</p>\n")
    assert run("plan", "--detailed-exitcode", cwd=project).exit_code == 0
    sent = [name for r in api.requests if r.parts for name in r.parts]
    assert not any("map" in name or "draft" in name for name in sent)
    served = api.scripts()["site"]["assets"]["manifest"]
    assert not any(path.endswith(".map") or path.startswith("/drafts") for path in served)


def test_a_code_change_keeps_the_uploaded_assets_without_asking_for_them(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "index.js").write_text("export default { fetch() { return new Response('v2') } }\n")
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _count(api, SESSION) == 0 and _count(api, BUCKET) == 0
    assert _uploads(api)[0]["keep_assets"] is True
    assert len(api.scripts()["site"]["assets"]["manifest"]) == 12


def test_a_config_change_opens_a_session_but_uploads_no_file(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "workers.yaml").write_text(MANIFEST.replace("single-page-application", "404-page"))
    plan = run("plan", cwd=project)
    assert "~ script site (assets)" in plan.stdout and "~ assets config" in plan.stdout
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _count(api, SESSION) == 1 and _count(api, BUCKET) == 0
    assert api.scripts()["site"]["assets"]["config"]["not_found_handling"] == "404-page"


def test_removing_assets_uploads_the_script_without_them(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (project / "workers.yaml").write_text(MANIFEST.split("    assets:")[0])
    plan = run("plan", cwd=project)
    assert "- assets (12 file(s) no longer served)" in plan.stdout
    assert "- binding ASSETS: assets" in plan.stdout
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert api.scripts()["site"]["assets"] is None
    assert "assets" not in _state(project)["scripts"]["site"]


def test_a_script_may_serve_assets_alone(tmp_path: Path, api: FakeCloudflare) -> None:
    manifest = f"version: 1\naccount_id: {FAKE_ACCOUNT}\nscripts:\n  docs:\n    assets:\n      directory: public/\n"
    project = _write(tmp_path / "docs", manifest, files=3)
    run("validate", cwd=project)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    upload = next(r for r in api.requests if r.method == "PUT")
    assert set(upload.parts or {}) == {"metadata"}
    assert upload.metadata == {"bindings": [], "assets": {"jwt": upload.metadata["assets"]["jwt"], "config": {}}}
    assert len(api.scripts()["docs"]["assets"]["manifest"]) == 3
    assert run("plan", "--detailed-exitcode", cwd=project).exit_code == 0


def test_session_and_buckets_are_retried_like_any_request(project: Path, api: FakeCloudflare) -> None:
    api.fail("POST", r"/assets-upload-session$", "500")
    api.fail("POST", r"/workers/assets/upload$", "reset", after=True)  # carried out, answer lost
    api.fail("POST", r"/workers/assets/upload$", "429", retry_after=0)
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert len(api.scripts()["site"]["assets"]["manifest"]) == 12
    assert run("plan", "--detailed-exitcode", cwd=project).exit_code == 0


def test_killed_during_the_buckets_the_next_apply_sends_only_what_cloudflare_lacks(
        project: Path, fake_cloudflare: FakeCloudflare) -> None:
    fake = fake_cloudflare
    fake.assets_per_bucket = 1
    hold = fake.hold("POST", r"/workers/assets/upload$", skip=4)
    kill_apply_at(hold, project, fake, "--parallelism", "1", waiting_for="the fifth bucket")
    assert "site" not in fake.scripts() and len(fake.asset_hashes()) == 4
    fake.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=fake.environ())
    assert _count(fake, SESSION) == 1 and _bucket_parts(fake) == [1] * 8  # 12 files, 4 already there
    assert len(fake.scripts()["site"]["assets"]["manifest"]) == 12


def test_without_the_last_list_the_plan_says_the_counts_are_unknown(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    for kept in (project / ".deployer" / "assets").iterdir():
        kept.unlink()
    (project / "public" / "index.html").write_text("<h1>shop v2</h1>\n")
    plan = run("plan", cwd=project)
    assert "~ assets: 12 file(s); the list last uploaded is not kept here" in plan.stdout


def test_refresh_says_it_cannot_read_assets_back(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    plan = run("plan", "--refresh", cwd=project, env=api.environ())
    assert "--refresh cannot read static assets back from Cloudflare: the assets of site are compared with " \
           "the state only" in plan.stderr


def test_a_saved_plan_is_refused_once_an_asset_changed(project: Path, api: FakeCloudflare) -> None:
    run("plan", "--out", "site.plan", cwd=project)
    (project / "public" / "index.html").write_text("<h1>changed</h1>\n")
    refused = run("apply", "site.plan", cwd=project, env=api.environ(), expect=1)
    assert "the static assets of script site changed since plan" in refused.stderr
    assert api.mutating_request_count() == 0
