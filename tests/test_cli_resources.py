"""End to end against the loopback fake: a manifest with R2, D1, queue, service and Durable
Object bindings and the three new resource sections; environments get their own resources and
never adopt another environment's."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from deployer.apply.upload import UploadPart
from deployer.cloudflare.client import CloudflareClient, Credentials
from deployer.models import Secret
from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SCRIPTS = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"

MANIFEST = f"""\
version: 1
account_id: {FAKE_ACCOUNT}
project: shop
kv_namespaces: {{cache: {{title: shop-cache}}}}
r2_buckets: {{assets: {{name: shop-assets}}}}
d1_databases: {{main: {{name: shop-db}}}}
queues: {{jobs: {{name: shop-jobs}}}}
scripts:
  api:
    path: api.js
    bindings:
      - {{type: r2_bucket, name: ASSETS, bucket: assets}}
      - {{type: d1, name: DB, database: main}}
      - {{type: queue, name: JOBS, queue: jobs, delivery_delay: 5}}
      - {{type: kv_namespace, name: CACHE, namespace: cache}}
      - {{type: service, name: AUTH, script: auth, entrypoint: Admin}}
      - {{type: durable_object_namespace, name: ROOMS, class_name: Room, script_name: chat}}
      - {{type: json, name: CONFIG, json: {{limits: [1, 2], beta: false}}}}
      - {{type: analytics_engine, name: EVENTS, dataset: shop_events}}
      - {{type: version_metadata, name: VERSION}}
  auth:
    path: auth.js
environments:
  staging:
    name_suffix: -staging
  shared: {{}}
"""


@pytest.fixture
def shop(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> Path:
    """The shop manifest, and ``chat``: a Worker outside it that holds the Durable Object class
    Room (planted the way wrangler would have deployed it, with a migration)."""
    (tmp_path / "api.js").write_text("addEventListener('fetch', e => e.respondWith(new Response('api')))\n")
    (tmp_path / "auth.js").write_text("addEventListener('fetch', e => e.respondWith(new Response('auth')))\n")
    (tmp_path / "workers.yaml").write_text(MANIFEST)
    with CloudflareClient(Credentials(token=Secret(fake_cloudflare.token or "")),
                          base_url=fake_cloudflare.base_url) as client:
        client.upload_script(
            "chat", {"main_module": "chat.js", "migrations": {"new_tag": "v1", "steps": [{"new_classes": ["Room"]}]}},
            (UploadPart("chat.js", "application/javascript+module", b"export class Room {}\nexport default {}\n"),),
            account_id=FAKE_ACCOUNT)
    fake_cloudflare.clear_requests()
    return tmp_path


def _state(project: Path, environment: str | None = None) -> dict:
    name = f"state.{environment}.json" if environment else "state.json"
    return json.loads((project / ".deployer" / name).read_text())


def test_apply_creates_the_resources_and_uploads_the_bound_script_first(shop: Path, api: FakeCloudflare) -> None:
    plan = run("plan", cwd=shop)
    assert '+ r2_bucket assets (name "shop-assets", created or adopted by name)' in plan.stdout
    assert "+ binding ASSETS: r2_bucket shop-assets" in plan.stdout  # addressed by name: known already
    assert "+ binding DB: d1 (known after apply)" in plan.stdout
    assert "+ binding AUTH: service auth (entrypoint Admin)" in plan.stdout

    result = run("apply", "--auto-approve", "--parallelism", "4", cwd=shop, env=api.environ())
    assert "Apply complete: 6 created, 0 updated, 0 deleted." in result.stdout
    state = _state(shop)
    database_id = state["d1_databases"]["main"]["id"]
    assert state["r2_buckets"] == {"assets": {"name": "shop-assets", "id": "shop-assets"}}
    assert api.d1_databases()[database_id]["name"] == "shop-db"
    assert api.queues()[state["queues"]["jobs"]["id"]]["queue_name"] == "shop-jobs"
    puts = [r.path.rsplit("/", 1)[-1] for r in api.find("PUT") if "/workers/scripts/" in r.path]
    assert puts == ["auth", "api"]  # Cloudflare refuses a service binding to a Worker that does not exist yet
    (upload,) = api.find("PUT", f"{SCRIPTS}/api")
    sent = {b["name"]: b for b in upload.metadata["bindings"]}
    assert sent["ASSETS"] == {"type": "r2_bucket", "name": "ASSETS", "bucket_name": "shop-assets"}
    assert sent["DB"] == {"type": "d1", "name": "DB", "id": database_id}
    assert sent["JOBS"] == {"type": "queue", "name": "JOBS", "queue_name": "shop-jobs", "delivery_delay": 5}
    assert sent["AUTH"] == {"type": "service", "name": "AUTH", "service": "auth", "entrypoint": "Admin"}
    assert sent["ROOMS"] == {"type": "durable_object_namespace", "name": "ROOMS", "class_name": "Room",
                             "script_name": "chat"}
    assert sent["CONFIG"] == {"type": "json", "name": "CONFIG", "json": {"limits": [1, 2], "beta": False}}

    again = run("plan", "--detailed-exitcode", cwd=shop)
    assert "No changes" in again.stdout
    refreshed = run("plan", "--refresh", "--detailed-exitcode", "--format", "json", cwd=shop, env=api.environ())
    assert json.loads(refreshed.stdout)["summary"] == {"create": 0, "update": 0, "delete": 0, "no-op": 6}


def test_an_environment_gets_its_own_resources_and_script_names(shop: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=shop, env=api.environ())
    run("apply", "--auto-approve", "--env", "staging", cwd=shop, env=api.environ())
    staging = _state(shop, "staging")
    assert staging["r2_buckets"]["assets"]["name"] == "shop-assets-staging"
    assert api.d1_databases()[staging["d1_databases"]["main"]["id"]]["name"] == "shop-db-staging"
    assert api.kv_namespaces()[staging["kv_namespaces"]["cache"]["id"]] == "shop-cache-staging"
    assert sorted(q["queue_name"] for q in api.queues().values()) == ["shop-jobs", "shop-jobs-staging"]
    (upload,) = api.find("PUT", f"{SCRIPTS}/api-staging")
    sent = {b["name"]: b for b in upload.metadata["bindings"]}
    assert sent["AUTH"]["service"] == "auth-staging" and sent["ASSETS"]["bucket_name"] == "shop-assets-staging"
    run("plan", "--env", "staging", "--detailed-exitcode", cwd=shop)


def test_an_environment_never_adopts_what_another_environments_state_records(shop: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=shop, env=api.environ())
    base = _state(shop)
    api.clear_requests()
    result = run("apply", "--auto-approve", "--env", "shared", cwd=shop, env=api.environ(), expect=1)
    bucket = ("environment 'shared' would adopt r2_bucket assets (name 'shop-assets'), which the base "
              "manifest (no --env) records in .deployer/state.json (id shop-assets): "
              "environments never share owned resources; give it its own name under "
              "environments.shared.r2_buckets.assets, or a name_suffix to environments.shared (names from the base "
              "then get it)")
    assert bucket in result.stderr
    assert result.stderr.startswith("error: environment 'shared' would adopt kv_namespace cache (title 'shop-cache'), "
                                    "which the base manifest (no --env) records")
    assert f"(id {base['d1_databases']['main']['id']})" in result.stderr
    assert api.count() == 0 and not (shop / ".deployer" / "state.shared.json").exists()
    run("plan", "--env", "shared", cwd=shop, expect=1)  # plan says so too, without the network


def test_with_refresh_a_bucket_that_exists_is_shown_and_applied_as_adopt(shop: Path, api: FakeCloudflare) -> None:
    api.add_r2_bucket("shop-assets")
    plan = run("plan", "--refresh", cwd=shop, env=api.environ())
    assert '  < r2_bucket assets (name "shop-assets" exists in Cloudflare: adopted, not created)' in plan.stdout
    assert "to adopt" in plan.stdout
    result = run("apply", "--refresh", "--auto-approve", cwd=shop, env=api.environ())
    assert "Apply complete: 5 created, 0 updated, 0 deleted, 1 adopted." in result.stdout
    assert list(api.r2_buckets()) == [("default", "shop-assets")]
    assert _state(shop)["r2_buckets"]["assets"] == {"name": "shop-assets", "id": "shop-assets"}


def test_deleting_a_script_another_one_still_names_is_refused_before_any_request(shop: Path,
                                                                                 api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=shop, env=api.environ())
    manifest = (shop / "workers.yaml").read_text()
    manifest = manifest.replace("script: auth, entrypoint: Admin", "service: auth, entrypoint: Admin")
    (shop / "workers.yaml").write_text(manifest.replace("  auth:\n    path: auth.js\n", ""))
    api.clear_requests()
    result = run("apply", "--auto-approve", cwd=shop, env=api.environ(), expect=1)
    assert result.stderr == textwrap.dedent("""\
        error: script 'auth' is no longer in the manifest, but script 'api' still binds it (binding AUTH sends service \
'auth'): remove or change that binding in the same change, or keep 'auth' in the manifest
    """)
    assert api.count() == 0


def test_with_the_state_in_postgresql_the_other_environments_default_states_are_checked(
    project: Path, api: FakeCloudflare, pg_url: str
) -> None:
    manifest = project / "workers.yaml"
    manifest.write_text(manifest.read_text() + "  qa: {}\n")  # no name_suffix: the base's titles
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", cwd=project, env=env)
    run("apply", "--auto-approve", "--env", "staging", cwd=project, env=env)  # suffixed: its own namespace
    api.clear_requests()
    result = run("apply", "--auto-approve", "--env", "qa", cwd=project, env=env, expect=1)
    assert result.stderr.startswith(
        "error: environment 'qa' would adopt kv_namespace counts (title 'sample-project-counts'), which the base "
        "manifest (no --env) records in 'project/workers.yaml' in postgresql://")
    assert api.count() == 0
