"""The trigger and queue consumer endpoints against requests-mock: method, URL, body, auth,
the zone and queue lookups made once, retries and tolerated 404s."""
from __future__ import annotations

import pytest

from deployer.cloudflare.client import CloudflareClient, Credentials
from deployer.errors import CloudflareApiError, DeployerError
from deployer.models import Secret
from tests.test_cloudflare import ACCOUNT, BASE, TOKEN, ZONE, FakeTime

ROUTES = f"{BASE}/zones/{ZONE}/workers/routes"
DOMAINS = f"{BASE}/accounts/{ACCOUNT}/workers/domains"
SCRIPT = f"{BASE}/accounts/{ACCOUNT}/workers/scripts/api"
QUEUES = f"{BASE}/accounts/{ACCOUNT}/queues"


def ok(result: object) -> dict[str, object]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def failure(code: int, message: str) -> dict[str, object]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    time = FakeTime()
    cf = CloudflareClient(Credentials(token=Secret(TOKEN)), base_url=BASE, sleep=time.sleep, clock=time.clock)
    yield cf
    cf.close()


def test_a_zone_name_is_looked_up_once_per_client(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    lookup = requests_mock.get(f"{BASE}/zones", json=ok([{"id": ZONE, "name": "example.com"}]))

    assert client.find_zone_id("example.com") == ZONE
    assert client.find_zone_id("example.com") == ZONE

    assert lookup.call_count == 1
    assert lookup.last_request.qs == {"name": ["example.com"]}
    assert lookup.last_request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_unknown_zone_name_says_what_to_check(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    requests_mock.get(f"{BASE}/zones", json=ok([]))

    with pytest.raises(DeployerError) as caught:
        client.find_zone_id("example.org")

    assert str(caught.value) == (
        "zone_name 'example.org': Cloudflare has no zone of that name that this token can see (GET /zones?name=); "
        "check the name and the token's Zone permissions, or give zone_id")


def test_routes_are_created_re_pointed_and_deleted(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    created = requests_mock.post(ROUTES, json=ok({"id": "r1", "pattern": "shop.example.com/*", "script": "api"}))
    moved = requests_mock.put(f"{ROUTES}/r1", json=ok({"id": "r1", "pattern": "shop.example.com/*", "script": "web"}))
    deleted = requests_mock.delete(f"{ROUTES}/r1", status_code=404, json=failure(10005, "Route not found"))

    assert client.create_route(ZONE, "shop.example.com/*", "api")["id"] == "r1"
    client.update_route(ZONE, "r1", "shop.example.com/*", "web")
    client.delete_route(ZONE, "r1")  # already gone counts as deleted

    assert created.last_request.json() == {"pattern": "shop.example.com/*", "script": "api"}
    assert moved.last_request.json() == {"pattern": "shop.example.com/*", "script": "web"}
    assert deleted.call_count == 1


def test_a_route_create_is_not_repeated_after_a_5xx(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    created = requests_mock.post(ROUTES, status_code=500, json=failure(10013, "internal"))

    with pytest.raises(CloudflareApiError):
        client.create_route(ZONE, "shop.example.com/*", "api")

    assert created.call_count == 1  # the route may exist now: a repeat would be refused with 10020


def test_a_custom_domain_is_attached_with_one_put_retried_on_5xx(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    attached = requests_mock.put(DOMAINS, [
        {"status_code": 503, "json": failure(10013, "try again")},
        {"json": ok({"id": "d1", "hostname": "api.example.com", "service": "api", "zone_id": ZONE,
                     "zone_name": "example.com"})},
    ])

    domain = client.attach_custom_domain(ACCOUNT, "api.example.com", "api", {"zone_name": "example.com"})

    assert domain["id"] == "d1" and attached.call_count == 2
    assert attached.last_request.json() == {"hostname": "api.example.com", "service": "api", "zone_name": "example.com"}


def test_crons_replace_the_whole_set_and_workers_dev_is_one_post(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    schedules = requests_mock.put(f"{SCRIPT}/schedules", json=ok({"schedules": [{"cron": "*/5 * * * *"}]}))
    subdomain = requests_mock.post(f"{SCRIPT}/subdomain", json=ok({"enabled": True, "previews_enabled": False}))

    assert client.put_schedules(ACCOUNT, "api", ["*/5 * * * *"]) == ["*/5 * * * *"]
    assert client.set_workers_dev(ACCOUNT, "api", True) is True

    assert schedules.last_request.json() == [{"cron": "*/5 * * * *"}]
    assert subdomain.last_request.json() == {"enabled": True}


def test_a_schedules_answer_of_the_wrong_shape_is_an_error_naming_the_request(client: CloudflareClient,
                                                                              requests_mock) -> None:  # type: ignore[no-untyped-def]
    requests_mock.get(f"{SCRIPT}/schedules", json=ok({"schedules": "*/5 * * * *"}))

    with pytest.raises(CloudflareApiError) as caught:
        client.get_schedules(ACCOUNT, "api")

    assert "schedules are not a list" in str(caught.value) and "/workers/scripts/api/schedules" in str(caught.value)


def test_a_queue_consumer_is_created_on_the_queue_found_by_name(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    lookup = requests_mock.get(QUEUES, json=ok([{"queue_id": "q1", "queue_name": "jobs"}]))
    created = requests_mock.post(f"{QUEUES}/q1/consumers", json=ok({"consumer_id": "c1", "script": "api"}))
    removed = requests_mock.delete(f"{QUEUES}/q1/consumers/c1", json=ok(None))

    queue_id = client.find_queue_id(ACCOUNT, "jobs")
    assert queue_id == "q1" and client.find_queue_id(ACCOUNT, "jobs") == "q1"
    body = {"type": "worker", "script_name": "api", "settings": {"batch_size": 10}}
    assert client.create_queue_consumer(ACCOUNT, "q1", body)["consumer_id"] == "c1"
    client.delete_queue_consumer(ACCOUNT, "q1", "c1")

    assert lookup.call_count == 1 and lookup.last_request.qs == {"name": ["jobs"]}
    assert created.last_request.json() == body
    assert removed.call_count == 1


def test_a_queue_that_does_not_exist_is_none(client: CloudflareClient, requests_mock) -> None:  # type: ignore[no-untyped-def]
    requests_mock.get(QUEUES, json=ok([{"queue_id": "q2", "queue_name": "jobs-dlq"}]))

    assert client.find_queue_id(ACCOUNT, "jobs") is None
