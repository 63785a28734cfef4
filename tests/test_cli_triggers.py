"""Triggers and queue consumers end to end: the real CLI against the loopback fake (routes,
custom domains, crons, workers.dev, queue consumers), from the first apply to drift and import.
Contract: "Triggers" and "Queue consumers" of the additions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli_runner import run
from tests.factories import NAMESPACE_ID, sample_with_triggers
from tests.fake_cloudflare import FAKE_ACCOUNT, FAKE_ZONE, FakeCloudflare

ROUTES = f"/zones/{FAKE_ZONE}/workers/routes"
DOMAINS = f"/accounts/{FAKE_ACCOUNT}/workers/domains"
SCRIPTS = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"

API = """\
    path: api.js
    routes:
      - {pattern: "shop.example.com/api/*", zone_name: example.com}
      - {pattern: "*.example.com/img/*", zone_id: %s}
    custom_domains: [{hostname: api.example.com, zone_name: example.com}]
    crons: ["*/5 * * * *", "0 3 * * mon"]
    workers_dev: true
    queue_consumers: [{queue: jobs, max_batch_size: 20, max_retries: 5}]
""" % FAKE_ZONE
WEB = """\
    path: web.js
    routes: [{pattern: "shop.example.com/*", zone_name: example.com}]
    crons: ["0 0 * * *"]
"""


def write(project: Path, api: str = API, web: str | None = WEB) -> None:
    text = f"version: 1\naccount_id: {FAKE_ACCOUNT}\nscripts:\n  api:\n{api}"
    if web is not None:
        text += f"  web:\n{web}"
    (project / "workers.yaml").write_text(text)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    for name in ("api", "web"):
        (root / f"{name}.js").write_text(f"addEventListener('fetch', () => {{}}) // {name}\n")
    write(root)
    return root


@pytest.fixture
def fake(fake_cloudflare: FakeCloudflare) -> FakeCloudflare:
    fake_cloudflare.set_workers_subdomain("acme")
    fake_cloudflare.add_queue("jobs")
    return fake_cloudflare


def apply(project: Path, fake: FakeCloudflare, *args: str, expect: int = 0) -> str:
    result = run("apply", "--auto-approve", *args, cwd=project, env=fake.environ(), expect=expect)
    return result.stdout + result.stderr


def plan_json(project: Path, fake: FakeCloudflare, *args: str, expect: int | None = 0) -> dict:
    return json.loads(run("plan", "--format", "json", *args, cwd=project, env=fake.environ(), expect=expect).stdout)


def routes_by_pattern(fake: FakeCloudflare) -> dict[str, str | None]:
    return {r["pattern"]: r.get("script") for r in fake.routes().values()}


def trigger_requests(fake: FakeCloudflare) -> list[str]:
    """Every request that is not about uploading or listing scripts."""
    return [f"{r.method} {r.path}" for r in fake.requests
            if "/routes" in r.path or "/domains" in r.path or "/schedules" in r.path or "/subdomain" in r.path
            or "/consumers" in r.path or r.path.startswith("/zones") or "/queues" in r.path]


def test_first_apply_attaches_every_trigger_after_its_scripts_upload(project: Path, fake: FakeCloudflare) -> None:
    output = apply(project, fake)

    assert routes_by_pattern(fake) == {"shop.example.com/api/*": "api", "*.example.com/img/*": "api",
                                       "shop.example.com/*": "web"}
    assert [(d["hostname"], d["service"]) for d in fake.custom_domains().values()] == [("api.example.com", "api")]
    assert sorted(fake.schedules("api")) == ["*/5 * * * *", "0 3 * * mon"]
    assert fake.schedules("web") == ["0 0 * * *"]
    assert fake.workers_dev("api")["enabled"] is True
    [consumer] = fake.queue_consumers("jobs")
    assert (consumer["script"], consumer["settings"]["batch_size"], consumer["settings"]["max_retries"]) == ("api", 20, 5)
    # Every trigger of a script is sent after that script's upload.
    order = [f"{r.method} {r.path}" for r in fake.requests]
    assert order.index(f"PUT {SCRIPTS}/api") < min(order.index(f"PUT {SCRIPTS}/api/schedules"),
                                                  order.index(f"POST {SCRIPTS}/api/subdomain"),
                                                  order.index(f"PUT {DOMAINS}"))
    # zone_name example.com is named by two routes and a domain: looked up once.
    assert fake.count("GET", "/zones") == 1
    assert "attached route shop.example.com/api/* -> api (zone example.com)" in output
    state = json.loads((project / ".deployer" / "state.json").read_text())
    assert state["attachments"]["route"]["shop.example.com/*"]["script"] == "web"
    assert state["attachments"]["crons"]["api"] == {"script": "api", "crons": ["*/5 * * * *", "0 3 * * mon"]}
    assert state["attachments"]["queue_consumer"]["jobs:api"]["settings"] == {"batch_size": 20, "max_retries": 5}


def test_an_apply_with_no_trigger_change_sends_no_request(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    assert plan_json(project, fake, "--detailed-exitcode")["summary"]["no-op"] == 10
    fake.clear_requests()
    (project / "api.js").write_text("addEventListener('fetch', () => {}) // api v2\n")

    apply(project, fake)

    assert [f"{r.method} {r.path}" for r in fake.requests] == [f"PUT {SCRIPTS}/api"]


def test_moving_a_pattern_between_two_scripts_is_one_put(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    route_id = next(r["id"] for r in fake.routes().values() if r["pattern"] == "shop.example.com/api/*")
    moved = WEB.replace('routes: [', 'routes: [{pattern: "shop.example.com/api/*", zone_name: example.com}, ')
    write(project, API.replace('      - {pattern: "shop.example.com/api/*", zone_name: example.com}\n', ""), moved)
    change = next(c for c in plan_json(project, fake)["changes"] if c["name"] == "shop.example.com/api/*")
    assert change == {"type": "route", "name": "shop.example.com/api/*", "action": "update", "reasons": ["script"],
                      "script": "web", "zone_name": "example.com", "previous_script": "api"}
    fake.clear_requests()

    apply(project, fake)

    assert [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"] == [f"PUT {ROUTES}/{route_id}"]
    assert routes_by_pattern(fake)["shop.example.com/api/*"] == "web"


def test_a_pattern_another_script_owns_is_refused_before_any_change(project: Path, fake: FakeCloudflare) -> None:
    fake.add_script("legacy")
    fake.add_route("shop.example.com/*", "legacy")
    fake.add_custom_domain("api.example.com", "legacy")

    output = apply(project, fake, expect=1)

    assert "refusing to take over what scripts outside this state use" in output
    assert "route shop.example.com/* (zone example.com) is attached to script legacy" in output
    assert "custom domain api.example.com is attached to script legacy" in output
    assert fake.mutating_request_count() == 0
    assert not (project / ".deployer" / "state.json").exists()


def test_allow_overwrite_takes_a_foreign_pattern_with_one_put(project: Path, fake: FakeCloudflare) -> None:
    fake.add_script("legacy")
    route_id = fake.add_route("shop.example.com/*", "legacy")

    apply(project, fake, "--allow-overwrite")

    assert fake.routes()[route_id]["script"] == "web"  # the same route, re-pointed (POST refused 10020, then PUT)
    assert fake.count("PUT", f"{ROUTES}/{route_id}") == 1


def test_removed_triggers_are_deleted_and_absent_crons_are_left_alone(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    write(project, API.replace('    crons: ["*/5 * * * *", "0 3 * * mon"]\n', "")
          .replace("    custom_domains: [{hostname: api.example.com, zone_name: example.com}]\n", "")
          .replace("    queue_consumers: [{queue: jobs, max_batch_size: 20, max_retries: 5}]\n", ""), WEB)
    text = run("plan", cwd=project, env=fake.environ()).stdout
    assert "  - custom_domain api.example.com -> api (zone example.com)" in text
    assert "  - queue_consumer jobs:api -> api (queue jobs, batch_size 20, max_retries 5)" in text
    assert '  ! crons api ("*/5 * * * *", "0 3 * * mon") (dropped from the state; left as it is' in text
    fake.clear_requests()

    apply(project, fake)

    assert fake.custom_domains() == {} and fake.queue_consumers("jobs") == []
    assert sorted(fake.schedules("api")) == ["*/5 * * * *", "0 3 * * mon"]  # absent: left alone
    assert fake.count("PUT", f"{SCRIPTS}/api/schedules") == 0
    assert "api" not in json.loads((project / ".deployer" / "state.json").read_text())["attachments"]["crons"]


def test_empty_crons_remove_them_all_with_one_put(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    write(project, API, WEB.replace('crons: ["0 0 * * *"]', "crons: []"))
    fake.clear_requests()

    apply(project, fake)

    assert fake.schedules("web") == []
    assert [f"{r.method} {r.path}" for r in fake.requests] == [f"PUT {SCRIPTS}/web/schedules"]


def test_deleting_a_script_detaches_its_routes_first(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    write(project, API, None)
    changes = {(c["type"], c["name"]): c["action"] for c in plan_json(project, fake)["changes"]}
    assert changes[("route", "shop.example.com/*")] == changes[("crons", "web")] == changes[("script", "web")] == "delete"
    fake.clear_requests()

    apply(project, fake)

    order = [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"]
    route_delete = next(o for o in order if o.startswith(f"DELETE {ROUTES}/"))
    assert order.index(route_delete) < order.index(f"DELETE {SCRIPTS}/web")
    assert "shop.example.com/*" not in routes_by_pattern(fake)
    assert not any("/schedules" in o for o in order)  # the crons went with the script
    state = json.loads((project / ".deployer" / "state.json").read_text())
    assert "web" not in state["attachments"]["crons"] and "shop.example.com/*" not in state["attachments"]["route"]


def test_refresh_shows_triggers_changed_outside_and_apply_sets_them_back(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    fake.add_script("legacy")
    route = next(r for r in fake.routes().values() if r["pattern"] == "shop.example.com/*")
    route["script"] = "legacy"  # re-pointed by hand in the dashboard
    fake.custom_domains().clear()  # detached by hand
    run("plan", cwd=project, env=fake.environ(), expect=0)  # without --refresh: only the state is compared

    doc = plan_json(project, fake, "--refresh", "--detailed-exitcode", expect=3)

    changes = {(c["type"], c["name"]): c for c in doc["changes"]}
    assert changes[("route", "shop.example.com/*")]["action"] == "update"
    assert changes[("route", "shop.example.com/*")]["reasons"] == ["drift"]
    assert changes[("custom_domain", "api.example.com")]["action"] == "create"
    assert changes[("custom_domain", "api.example.com")]["reasons"] == ["drift"]

    apply(project, fake, "--refresh")

    assert routes_by_pattern(fake)["shop.example.com/*"] == "web"
    assert [d["service"] for d in fake.custom_domains().values()] == ["api"]
    assert plan_json(project, fake, "--refresh", "--detailed-exitcode")["summary"]["update"] == 0


def test_import_adopts_the_triggers_so_the_next_plan_has_no_changes(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    shutil.rmtree(project / ".deployer")  # a project deployed by other means: nothing in the state
    fake.clear_requests()

    run("import", "--all", cwd=project, env=fake.environ())

    assert fake.mutating_request_count() == 0
    doc = plan_json(project, fake, "--detailed-exitcode")
    assert doc["summary"] == {"create": 0, "update": 0, "delete": 0, "no-op": 10}


def test_custom_domain_5xx_is_retried(project: Path, fake: FakeCloudflare) -> None:
    fake.fail("PUT", "/workers/domains$", "503")

    apply(project, fake)

    assert fake.count("PUT", DOMAINS) == 2
    assert [d["hostname"] for d in fake.custom_domains().values()] == ["api.example.com"]


def test_a_queue_consumer_setting_change_is_one_put(project: Path, fake: FakeCloudflare) -> None:
    apply(project, fake)
    write(project, API.replace("max_batch_size: 20", "max_batch_size: 50"), WEB)
    change = next(c for c in plan_json(project, fake)["changes"] if c["type"] == "queue_consumer")
    assert (change["action"], change["reasons"], change["settings"]) == (
        "update", ["settings"], {"batch_size": 50, "max_retries": 5})
    fake.clear_requests()

    apply(project, fake)

    assert [r.method for r in fake.requests] == ["PUT"] and "/consumers/" in fake.requests[0].path
    assert fake.queue_consumers("jobs")[0]["settings"]["batch_size"] == 50


def test_plan_of_triggers_needs_no_network(project: Path) -> None:
    text = run("plan", cwd=project).stdout  # the base URL points at a closed port

    assert "  + route shop.example.com/api/* -> api (zone example.com)" in text
    assert '  + crons api ("*/5 * * * *", "0 3 * * mon")' in text
    assert "  + workers_dev api (on)" in text
    assert "  + queue_consumer jobs:api -> api (queue jobs, batch_size 20, max_retries 5)" in text


def test_triggers_in_zone_mode_are_a_validation_error(project: Path) -> None:
    (project / "workers.yaml").write_text(
        f"version: 1\nzone_id: {FAKE_ZONE}\nscripts:\n  api:\n    path: api.js\n    crons: ['* * * * *']\n")

    result = run("validate", cwd=project, expect=1)

    assert result.stderr.splitlines()[1:] == [
        "  workers.yaml:6:5: scripts.api.crons: crons needs account_id: the legacy single-script API (zone_id) has no "
        "routes, custom domains, crons, workers.dev or queue consumers"]


def test_the_sample_project_deploys_its_triggers_and_then_plans_no_changes(tmp_path: Path,
                                                                          fake_cloudflare: FakeCloudflare) -> None:
    fake_cloudflare.kv_namespaces()[NAMESPACE_ID] = "the seed's namespace"
    sample = sample_with_triggers(tmp_path)
    env = fake_cloudflare.environ()

    run("apply", "--auto-approve", cwd=sample, env=env)
    run("apply", "--auto-approve", "--env", "staging", cwd=sample, env=env)

    assert routes_by_pattern(fake_cloudflare) == {"sample.example.com/*": "my-worker",
                                                  "staging.sample.example.com/*": "my-worker-staging"}
    assert fake_cloudflare.schedules("my-worker") == ["*/30 * * * *"]
    assert fake_cloudflare.workers_dev("my-worker")["enabled"] is False
    assert "No changes" in run("plan", "--refresh", "--detailed-exitcode", cwd=sample, env=env).stdout
    assert "warning" not in run("validate", cwd=sample).stderr


def test_validate_warns_when_two_environments_would_take_the_same_route(project: Path) -> None:
    (project / "workers.yaml").write_text(
        f"version: 1\naccount_id: {FAKE_ACCOUNT}\nscripts:\n  web:\n{WEB}"
        "environments:\n  staging:\n    name_suffix: -staging\n"
        "  canary:\n    name_suffix: -canary\n    scripts:\n      web:\n"
        '        routes: [{pattern: "shop.example.com/*", zone_name: example.com}]\n')

    result = run("validate", cwd=project)

    assert result.stderr.splitlines()[:2] == [
        "warning: workers.yaml:6:24: scripts.web.routes[0].pattern: route pattern 'shop.example.com/*' is deployed by "
        "both the base manifest and environment 'staging', which inherits it: each apply would take it from the "
        "other; give environment 'staging' its own routes",
        "warning: workers.yaml:15:28: environments.canary.scripts.web.routes[0].pattern: route pattern "
        "'shop.example.com/*' is also declared for the base manifest (line 6): each apply would take it from the "
        "other",
    ]
