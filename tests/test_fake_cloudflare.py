"""The loopback fake judges requests the way Cloudflare does, and its faults work."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from deployer.cloudflare.client import CloudflareClient, Credentials
from deployer.errors import CloudflareApiError
from deployer.models import Secret
from tests.fake_cloudflare import (
    FAKE_ACCOUNT,
    FAKE_API_KEY,
    FAKE_EMAIL,
    FAKE_TOKEN,
    FAKE_ZONE,
    FakeCloudflare,
    fake_cloudflare,  # noqa: F401 - the fixture
)

SCRIPT = "addEventListener('fetch', e => e.respondWith(new Response('ok €')))\r\n".encode()
AUTH = {"Authorization": f"Bearer {FAKE_TOKEN}"}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake_cloudflare: FakeCloudflare, sleeps: list[float]):
    cf = CloudflareClient(Credentials(token=Secret(FAKE_TOKEN)), base_url=fake_cloudflare.base_url,
                          sleep=sleeps.append)
    yield cf
    cf.close()


def script_url(fake: FakeCloudflare, name: str = "w") -> str:
    return f"{fake.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts/{name}"


def put_raw(fake: FakeCloudflare, files, headers=AUTH, name: str = "w") -> requests.Response:
    return requests.put(script_url(fake, name), files=files, headers=headers, timeout=5)


def error_of(response: requests.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return response.status_code, body["errors"][0]["code"], body["errors"][0]["message"]


def upload(client: CloudflareClient, bindings: list, name: str = "w", content: bytes = SCRIPT) -> dict:
    return client.upload_script(name, {"body_part": "script", "bindings": bindings}, content, account_id=FAKE_ACCOUNT)


# --- a good upload -------------------------------------------------------------------------


def test_upload_stores_exact_bytes_and_bindings_and_hides_secret_text(fake_cloudflare, client):
    namespace_id = fake_cloudflare.add_kv_namespace("cache")
    content = SCRIPT + b"// CRLF\r\n\xe2\x82\xac\r\n"
    result = upload(client, [
        {"type": "kv_namespace", "name": "CACHE", "namespace_id": namespace_id},
        {"type": "plain_text", "name": "ENVIRONMENT", "text": "production"},
        {"type": "secret_text", "name": "API_KEY", "text": "s3cret"},
    ], content=content)
    stored = fake_cloudflare.scripts()["w"]
    assert stored["content"] == content
    assert result["id"] == "w" and result["etag"] == stored["etag"]
    assert stored["secrets"] == {"API_KEY": "s3cret"}
    settings = requests.get(script_url(fake_cloudflare) + "/settings", headers=AUTH, timeout=5).json()["result"]
    assert {"name": "API_KEY", "type": "secret_text"} in settings["bindings"]
    assert "s3cret" not in str(settings)
    assert [s["id"] for s in client.list_scripts(FAKE_ACCOUNT)] == ["w"]
    recorded = fake_cloudflare.find("PUT")[0]
    assert recorded.auth == "token"
    assert recorded.parts["script"].data == content
    assert recorded.metadata["body_part"] == "script"
    assert fake_cloudflare.count("PUT", f"/accounts/{FAKE_ACCOUNT}/workers/scripts/w") == 1


def test_secrets_persist_across_uploads_until_deleted(fake_cloudflare, client):
    upload(client, [{"type": "secret_text", "name": "API_KEY", "text": "one"}])
    upload(client, [{"type": "plain_text", "name": "ENVIRONMENT", "text": "prod"}])
    assert fake_cloudflare.scripts()["w"]["secrets"] == {"API_KEY": "one"}
    assert [b["name"] for b in fake_cloudflare.scripts()["w"]["bindings"]] == ["ENVIRONMENT"]
    upload(client, [{"type": "secret_text", "name": "API_KEY", "text": "two"}])
    assert fake_cloudflare.scripts()["w"]["secrets"] == {"API_KEY": "two"}
    client.delete_secret(FAKE_ACCOUNT, "w", "API_KEY")
    assert fake_cloudflare.scripts()["w"]["secrets"] == {}
    client.delete_secret(FAKE_ACCOUNT, "w", "API_KEY")  # 404 10056: already gone, fine
    last = fake_cloudflare.find("DELETE")[-1]
    assert last.status == 404


def test_zone_upload_and_delete_use_the_legacy_endpoint(fake_cloudflare, client):
    client.upload_script("ignored", {"body_part": "script", "bindings": []}, SCRIPT, zone_id=FAKE_ZONE)
    assert fake_cloudflare.zone_scripts[FAKE_ZONE]["content"] == SCRIPT
    client.delete_script("ignored", zone_id=FAKE_ZONE)
    assert fake_cloudflare.zone_scripts[FAKE_ZONE] is None
    assert fake_cloudflare.count("DELETE", f"/zones/{FAKE_ZONE}/workers/script") == 1


def test_delete_of_a_missing_script_is_404_10007(fake_cloudflare, client):
    response = requests.delete(script_url(fake_cloudflare, "nope"), headers=AUTH, timeout=5)
    assert error_of(response)[:2] == (404, 10007)
    client.delete_script("nope", account_id=FAKE_ACCOUNT)  # the client treats it as done


# --- strictness ----------------------------------------------------------------------------


def test_rejects_a_namespace_id_that_does_not_exist_with_10042(client):
    with pytest.raises(CloudflareApiError) as info:
        upload(client, [{"type": "kv_namespace", "name": "CACHE", "namespace_id": "0" * 32}])
    assert info.value.status == 400
    assert info.value.errors == ((10042, f"KV namespace '{'0' * 32}' is not valid"),)


def test_rejects_an_upload_without_a_metadata_part(fake_cloudflare):
    response = put_raw(fake_cloudflare, [("script", ("script.js", SCRIPT, "application/javascript"))])
    assert error_of(response)[:2] == (400, 10006)
    assert "metadata" in error_of(response)[2]


def test_rejects_body_part_naming_a_missing_part(fake_cloudflare):
    response = put_raw(fake_cloudflare, [
        ("metadata", (None, '{"body_part": "worker.js", "bindings": []}', "application/json")),
        ("script", ("script.js", SCRIPT, "application/javascript")),
    ])
    assert error_of(response) == (400, 10021, "body_part 'worker.js' names no part of the upload")


def test_rejects_a_script_part_that_is_not_application_javascript(fake_cloudflare):
    response = put_raw(fake_cloudflare, [
        ("metadata", (None, '{"body_part": "script"}', "application/json")),
        ("script", ("script.js", SCRIPT, "text/plain")),
    ])
    assert error_of(response)[:2] == (400, 10021)


def test_rejects_a_body_that_is_not_multipart(fake_cloudflare):
    response = requests.put(script_url(fake_cloudflare), data=SCRIPT, timeout=5,
                            headers={**AUTH, "Content-Type": "application/javascript"})
    assert error_of(response)[:2] == (415, 10001)


@pytest.mark.parametrize(("metadata", "code", "message"), [
    ({"body_part": "script", "main": "x"}, 10021, "Unknown field 'main' in metadata"),
    ({"body_part": "script", "bindings": [{"type": "plain_text", "text": "x"}]}, 10052,
     "Binding at index 0 must have a name"),
    ({"body_part": "script", "bindings": [{"name": "A", "text": "x"}]}, 10052, "Binding at index 0 must have a type"),
    ({"body_part": "script", "bindings": [{"type": "plain_text", "name": "A", "text": "x", "raw": True}]}, 10021,
     "Binding 'A' has unknown field 'raw'"),
    ({"body_part": "script", "bindings": [{"type": "plain_text", "name": "A", "text": "x"},
                                          {"type": "secret_text", "name": "A", "text": "y"}]}, 10021,
     "Binding name 'A' is used more than once"),
    ({"body_part": "script", "bindings": [{"type": "secret_text", "name": "A", "text": 5}]}, 10021,
     "Binding 'A' of type secret_text needs a string text"),
])
def test_rejects_bad_metadata_like_cloudflare(client, metadata, code, message):
    with pytest.raises(CloudflareApiError) as info:
        client.upload_script("w", metadata, SCRIPT, account_id=FAKE_ACCOUNT)
    assert info.value.errors == ((code, message),)


MODULE = b"export default { fetch() { return new Response('ok') } }\n"


def test_accepts_modules_and_serves_them_back_as_multipart(fake_cloudflare, client):
    from deployer.apply.upload import UploadPart

    parts = (UploadPart("index.js", "application/javascript+module", MODULE),
             UploadPart("lib/data.bin", "application/octet-stream", b"\0\1\r\n"))
    client.upload_script("w", {"main_module": "index.js", "bindings": []}, parts, account_id=FAKE_ACCOUNT)
    answer = requests.get(script_url(fake_cloudflare) + "/content/v2", headers=AUTH, timeout=5)
    assert answer.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="lib/data.bin"' in answer.content and b"\0\1\r\n" in answer.content


@pytest.mark.parametrize(("metadata", "parts", "message"), [
    ({"main_module": "main.js"}, [("index.js", "application/javascript+module")],
     "main_module 'main.js' names no part of the upload"),
    ({"main_module": "index.js"}, [("index.js", "application/javascript")],
     "main_module 'index.js' must be an ES module (application/javascript+module), not application/javascript"),
    ({"main_module": "index.js"}, [("index.js", "application/javascript+module"), ("x.py", "text/x-python")],
     "Part 'x.py' has an unsupported content type text/x-python"),
    ({"main_module": "index.js", "body_part": "index.js"}, [("index.js", "application/javascript+module")],
     "metadata names both body_part and main_module: send one"),
    ({"body_part": "script"}, [("script", "application/javascript"), ("extra.js", "application/javascript")],
     "Part 'extra.js' is not used: a service-worker upload (body_part) has one script part; use main_module "
     "for modules"),
    ({"main_module": "index.js", "compatibility_date": "2024-9-1"}, [("index.js", "application/javascript+module")],
     "compatibility_date '2024-9-1' is not a date written YYYY-MM-DD"),
])
def test_rejects_module_uploads_cloudflare_would_refuse(fake_cloudflare, metadata, parts, message):
    files = [("metadata", (None, json.dumps(metadata), "application/json"))]
    files += [(name, (name, MODULE, kind)) for name, kind in parts]
    assert error_of(put_raw(fake_cloudflare, files)) == (400, 10021, message)


def test_rejects_a_script_name_cloudflare_would_refuse(client):
    with pytest.raises(CloudflareApiError) as info:
        upload(client, [], name="My-Worker")
    assert info.value.codes == (10021,)


def test_rejects_a_wrong_token_with_10000_and_no_auth_with_9106(fake_cloudflare):
    wrong = requests.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts",
                         headers={"Authorization": "Bearer not-the-token"}, timeout=5)
    assert error_of(wrong)[:2] == (403, 10000)
    missing = requests.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts", timeout=5)
    assert error_of(missing)[:2] == (400, 9106)
    half = requests.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts",
                        headers={"X-Auth-Email": FAKE_EMAIL}, timeout=5)
    assert error_of(half)[:2] == (400, 9106)
    assert [r.auth for r in fake_cloudflare.requests] == ["token", None, None]
    assert "not-the-token" not in repr(fake_cloudflare.requests)


def test_accepts_the_email_and_key_pair(fake_cloudflare):
    cf = CloudflareClient(Credentials(email=FAKE_EMAIL, api_key=Secret(FAKE_API_KEY)),
                          base_url=fake_cloudflare.base_url)
    assert cf.list_scripts(FAKE_ACCOUNT) == []
    assert fake_cloudflare.requests[-1].auth == "key"
    assert FAKE_API_KEY not in repr(fake_cloudflare.requests)


def test_unknown_account_is_403_10000_and_malformed_account_is_404_7003(client):
    with pytest.raises(CloudflareApiError) as unknown:
        client.list_scripts("f" * 32)
    assert (unknown.value.status, unknown.value.codes) == (403, (10000,))
    with pytest.raises(CloudflareApiError) as malformed:
        client.list_scripts("my-account")
    assert (malformed.value.status, malformed.value.codes) == (404, (7003,))


# --- KV namespaces -------------------------------------------------------------------------


def test_namespaces_paginate_and_reject_a_duplicate_title_with_10014(fake_cloudflare, client):
    titles = [f"ns-{i:03}" for i in range(230)]
    for title in titles:
        fake_cloudflare.add_kv_namespace(title)
    assert [ns["title"] for ns in client.list_kv_namespaces(FAKE_ACCOUNT)] == titles
    assert fake_cloudflare.count("GET", f"/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces") == 3
    page = requests.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces",
                        headers=AUTH, timeout=5).json()
    assert page["result_info"] == {"page": 1, "per_page": 20, "count": 20, "total_count": 230}
    duplicate = requests.post(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces",
                              json={"title": "ns-001"}, headers=AUTH, timeout=5)
    assert error_of(duplicate) == (400, 10014, "a namespace with this account ID and title already exists")
    namespace, adopted = client.ensure_kv_namespace(FAKE_ACCOUNT, "ns-001")
    assert adopted and fake_cloudflare.kv_namespaces()[namespace["id"]] == "ns-001"


def test_rename_changes_the_title_and_refuses_a_taken_one(fake_cloudflare, client):
    first = fake_cloudflare.add_kv_namespace("one")
    fake_cloudflare.add_kv_namespace("two")
    client.rename_kv_namespace(FAKE_ACCOUNT, first, "uno")
    assert fake_cloudflare.kv_namespaces()[first] == "uno"
    with pytest.raises(CloudflareApiError) as taken:
        client.rename_kv_namespace(FAKE_ACCOUNT, first, "two")
    assert taken.value.codes == (10014,)
    with pytest.raises(CloudflareApiError) as unknown:
        client.rename_kv_namespace(FAKE_ACCOUNT, "9" * 32, "x")
    assert (unknown.value.status, unknown.value.codes) == (404, (10009,))


def test_per_page_outside_5_to_100_is_refused(fake_cloudflare):
    response = requests.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/storage/kv/namespaces",
                            params={"per_page": 1000}, headers=AUTH, timeout=5)
    assert response.status_code == 400


# --- fault injection -----------------------------------------------------------------------


def test_injected_429_carries_retry_after_and_the_client_waits(fake_cloudflare, client, sleeps):
    fake_cloudflare.fail("PUT", r"/workers/scripts/w$", "429", times=2, retry_after=3)
    upload(client, [])
    assert sleeps == [pytest.approx(3.0, abs=0.1)] * 2
    assert [r.status for r in fake_cloudflare.find("PUT")] == [429, 429, 200]


def test_rate_limit_refuses_requests_beyond_the_window_and_counts_the_refused(fake_cloudflare):
    fake_cloudflare.limit_rate(2, 2.0)
    url = f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts"
    started = time.monotonic()
    answers = [requests.get(url, headers=AUTH, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert error_of(answers[2])[:2] == (429, 971)
    assert answers[2].headers["Retry-After"] == "2"
    time.sleep(max(0.0, started + 1.0 - time.monotonic()))
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 429  # still 3 in the window
    time.sleep(max(0.0, started + 2.2 - time.monotonic()))  # the first three have left; the 4th has not
    assert [requests.get(url, headers=AUTH, timeout=5).status_code for _ in range(2)] == [200, 429]


def test_a_client_budget_equal_to_the_rate_limit_is_never_refused(fake_cloudflare):
    fake_cloudflare.limit_rate(5, 1.0)
    client = CloudflareClient(Credentials(token=Secret(FAKE_TOKEN)), base_url=fake_cloudflare.base_url,
                              pool_size=4, rate_limit=(5, 1.0))
    with client:
        threads = [threading.Thread(target=client.list_scripts, args=(FAKE_ACCOUNT,)) for _ in range(12)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.status for r in fake_cloudflare.requests] == [200] * 12
    assert time.monotonic() - started >= 2.0  # 5 at once, 5 a second later, 2 more a second after that


def test_injected_500_and_html_502_are_retried(fake_cloudflare, client, sleeps):
    fake_cloudflare.fail("PUT", "scripts/w$", "500")
    fake_cloudflare.fail("PUT", "scripts/w$", "502-html")
    upload(client, [])
    assert [r.status for r in fake_cloudflare.find("PUT")] == [500, 502, 200]
    assert len(sleeps) == 2


def test_html_502_becomes_a_readable_error_when_it_persists(fake_cloudflare, client):
    fake_cloudflare.fail("GET", "scripts$", "502-html", times=6)
    with pytest.raises(CloudflareApiError) as info:
        client.list_scripts(FAKE_ACCOUNT)
    assert '"502 Bad Gateway"' in str(info.value) and "-FAKE" in str(info.value)
    assert "gave up after 6 attempts" in str(info.value)


def test_reset_drops_the_connection_and_the_client_retries(fake_cloudflare, client):
    fake_cloudflare.fail("PUT", "scripts/w$", "reset", times=2)
    upload(client, [])
    assert [r.status for r in fake_cloudflare.find("PUT")] == [None, None, 200]
    assert fake_cloudflare.scripts()["w"]["content"] == SCRIPT


def test_a_lost_create_answer_is_found_by_listing_not_created_twice(fake_cloudflare, client):
    fake_cloudflare.fail("POST", "kv/namespaces$", "reset", after=True)
    namespace, adopted = client.ensure_kv_namespace(FAKE_ACCOUNT, "cache")
    assert fake_cloudflare.kv_namespaces() == {namespace["id"]: "cache"}
    assert not adopted
    assert [r.method for r in fake_cloudflare.requests] == ["POST", "GET"]


def test_latency_is_added_per_rule_and_globally(fake_cloudflare, client):
    fake_cloudflare.slow("GET", "scripts$", 0.2, times=1)
    started = time.perf_counter()
    client.list_scripts(FAKE_ACCOUNT)
    assert time.perf_counter() - started >= 0.2
    fake_cloudflare.latency = 0.1
    started = time.perf_counter()
    client.list_scripts(FAKE_ACCOUNT)
    assert 0.1 <= time.perf_counter() - started < 0.2


def test_random_faults_under_parallel_load_are_all_survived(fake_cloudflare):
    fake_cloudflare.fail_randomly(0.2, seed=7)
    cf = CloudflareClient(Credentials(token=Secret(FAKE_TOKEN)), base_url=fake_cloudflare.base_url,
                          sleep=lambda _: None, max_attempts=20, pool_size=4)
    names = [f"w{i}" for i in range(40)]

    def work(chunk: list[str]) -> None:
        for name in chunk:
            cf.upload_script(name, {"body_part": "script"}, SCRIPT, account_id=FAKE_ACCOUNT)

    threads = [threading.Thread(target=work, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(fake_cloudflare.scripts()) == sorted(names)
    statuses = {r.status for r in fake_cloudflare.requests}
    assert {None, 429, 500} <= statuses


def test_keep_alive_answers_do_not_stall(fake_cloudflare, client):
    client.list_scripts(FAKE_ACCOUNT)
    started = time.perf_counter()
    for _ in range(100):
        client.list_scripts(FAKE_ACCOUNT)
    assert time.perf_counter() - started < 2.0  # ~40 ms each without TCP_NODELAY


def test_stop_returns_promptly_with_an_open_keep_alive_connection():
    fake = FakeCloudflare().start()
    session = requests.Session()
    session.get(f"{fake.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts", headers=AUTH, timeout=5)
    started = time.perf_counter()
    fake.stop()
    assert time.perf_counter() - started < 2.0
    session.close()


def test_hold_lets_skip_requests_through_then_holds_until_released(fake_cloudflare, client):
    hold = fake_cloudflare.hold("PUT", r"/workers/scripts/", skip=1)
    upload(client, [], name="first")
    assert not hold.reached.is_set()
    thread = threading.Thread(target=upload, args=(client, []), kwargs={"name": "second"})
    thread.start()
    assert hold.reached.wait(5)
    time.sleep(0.1)
    assert "second" not in fake_cloudflare.scripts()  # held: not carried out yet
    hold.release()
    thread.join(5)
    assert sorted(fake_cloudflare.scripts()) == ["first", "second"]


def test_hold_released_without_answer_drops_the_request_undone(fake_cloudflare):
    hold = fake_cloudflare.hold("*", r"/workers/scripts/w$")
    errors = []

    def put() -> None:
        try:
            put_raw(fake_cloudflare, {"metadata": (None, '{"body_part": "script"}', "application/json"),
                                      "script": ("w.js", SCRIPT, "application/javascript")})
        except requests.ConnectionError as exc:
            errors.append(exc)

    thread = threading.Thread(target=put)
    thread.start()
    assert hold.reached.wait(5)
    hold.release(answer=False)
    thread.join(5)
    assert len(errors) == 1
    (request,) = fake_cloudflare.requests
    assert (request.status, request.applied) == (None, False)
    assert fake_cloudflare.scripts() == {}


def test_lost_answer_is_carried_out_but_not_answered(fake_cloudflare, client, sleeps):
    fake_cloudflare.fail("PUT", r"/w$", "503", after=True)
    upload(client, [])
    first, second = fake_cloudflare.requests
    assert (first.status, first.applied) == (503, True)
    assert (second.status, second.applied) == (200, True)
    assert first.started <= first.answered <= second.started


def test_random_lost_answers_carry_out_5xx_and_resets_but_never_429s(fake_cloudflare):
    fake_cloudflare.fail_randomly(1.0, kinds=("429", "500", "reset"), seed=3, lost_answers=1.0)
    session = requests.Session()
    for _ in range(30):
        try:
            session.get(f"{fake_cloudflare.base_url}/accounts/{FAKE_ACCOUNT}/workers/scripts", headers=AUTH, timeout=5)
        except requests.ConnectionError:
            session = requests.Session()
    for request in fake_cloudflare.requests:
        assert request.applied == (request.status != 429)


# --- second round: helpers ---------------------------------------------------------------

SCRIPTS = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"


def call(fake: FakeCloudflare, method: str, path: str, **kwargs) -> requests.Response:
    """One request below the base URL, with the accepted token unless headers are given."""
    kwargs.setdefault("headers", AUTH)
    return requests.request(method, fake.base_url + path, timeout=10, **kwargs)


def ok(response: requests.Response):
    assert response.status_code == 200, response.text
    return response.json()["result"]


def put_script(fake: FakeCloudflare, name: str, metadata: dict | None = None, *,
               code: bytes = SCRIPT) -> requests.Response:
    """A service-worker upload (or, with ``main_module`` in the metadata, one ES module)."""
    metadata = {"body_part": "script", **(metadata or {})}
    if "main_module" in metadata:
        del metadata["body_part"]
        files = [(metadata["main_module"], (metadata["main_module"], code, "application/javascript+module"))]
    else:
        files = [("script", ("script.js", code, "application/javascript"))]
    return call(fake, "PUT", f"{SCRIPTS}/{name}", files=[
        ("metadata", (None, json.dumps(metadata), "application/json")), *files])


def upload_version(fake: FakeCloudflare, name: str, metadata: dict, code: bytes = MODULE) -> requests.Response:
    files = [("metadata", (None, json.dumps(metadata), "application/json"))]
    if "main_module" in metadata:
        files.append((metadata["main_module"], (metadata["main_module"], code, "application/javascript+module")))
    return call(fake, "POST", f"{SCRIPTS}/{name}/versions", files=files)


def binding_error(fake: FakeCloudflare, binding: dict, name: str = "w") -> tuple[int, int, str]:
    return error_of(put_script(fake, name, {"bindings": [binding]}))


# --- second round: binding types ---------------------------------------------------------


def test_every_binding_type_is_accepted_and_read_back_without_secret_values(fake_cloudflare):
    fake = fake_cloudflare
    fake.add_r2_bucket("shop-assets")
    fake.add_r2_bucket("shop-eu", jurisdiction="eu")
    database = fake.add_d1_database("shop-db")
    fake.add_queue("jobs")
    ok(put_script(fake, "other", {"migrations": {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Room"]}]}}))
    bindings = [
        {"type": "r2_bucket", "name": "B", "bucket_name": "shop-assets"},
        {"type": "r2_bucket", "name": "EU", "bucket_name": "shop-eu", "jurisdiction": "eu"},
        {"type": "d1", "name": "DB", "id": database},
        {"type": "queue", "name": "Q", "queue_name": "jobs", "delivery_delay": 30},
        {"type": "service", "name": "S", "service": "other", "entrypoint": "Admin"},
        {"type": "durable_object_namespace", "name": "OWN", "class_name": "Counter"},
        {"type": "durable_object_namespace", "name": "ROOM", "class_name": "Room", "script_name": "other"},
        {"type": "analytics_engine", "name": "A", "dataset": "events"},
        {"type": "json", "name": "CONFIG", "json": {"retries": [1, 2], "on": True}},
        {"type": "version_metadata", "name": "V"}, {"type": "ai", "name": "AI"}, {"type": "browser", "name": "BR"},
        {"type": "hyperdrive", "name": "H", "id": "hd-1"},
        {"type": "vectorize", "name": "VX", "index_name": "idx"},
        {"type": "mtls_certificate", "name": "C", "certificate_id": "cert-1"},
        {"type": "dispatch_namespace", "name": "D", "namespace": "tenants", "outbound": {"worker": {"service": "x"}}},
        {"type": "secrets_store_secret", "name": "K", "store_id": "store-1", "secret_name": "stripe"},
        {"type": "send_email", "name": "E", "destination_address": "ops@example.com"},
        {"type": "secret_text", "name": "TOKEN", "text": "s3cret-value"},
    ]
    ok(put_script(fake, "w", {"main_module": "index.js", "bindings": bindings,
                              "migrations": {"new_tag": "v1", "steps": [{"new_classes": ["Counter"]}]}}, code=MODULE))
    settings = ok(call(fake, "GET", f"{SCRIPTS}/w/settings"))
    assert settings["bindings"] == bindings[:-1] + [{"name": "TOKEN", "type": "secret_text"}]
    assert "s3cret-value" not in json.dumps(settings)


@pytest.mark.parametrize(("binding", "message"), [
    ({"type": "r2_bucket", "name": "B"}, "Binding 'B' of type r2_bucket needs 'bucket_name'"),
    ({"type": "d1", "name": "DB"}, "Binding 'DB' of type d1 needs 'id'"),
    ({"type": "d1", "name": "DB", "database_id": "x", "id": "y"}, "Binding 'DB' has unknown field 'database_id'"),
    ({"type": "queue", "name": "Q"}, "Binding 'Q' of type queue needs 'queue_name'"),
    ({"type": "service", "name": "S"}, "Binding 'S' of type service needs 'service'"),
    ({"type": "durable_object_namespace", "name": "DO"}, "Binding 'DO' of type durable_object_namespace needs 'class_name'"),
    ({"type": "analytics_engine", "name": "A"}, "Binding 'A' of type analytics_engine needs 'dataset'"),
    ({"type": "json", "name": "J"}, "Binding 'J' of type json needs 'json'"),
    ({"type": "ai", "name": "AI", "model": "x"}, "Binding 'AI' has unknown field 'model'"),
    ({"type": "hyperdrive", "name": "H"}, "Binding 'H' of type hyperdrive needs 'id'"),
    ({"type": "vectorize", "name": "V"}, "Binding 'V' of type vectorize needs 'index_name'"),
    ({"type": "mtls_certificate", "name": "C"}, "Binding 'C' of type mtls_certificate needs 'certificate_id'"),
    ({"type": "dispatch_namespace", "name": "D"}, "Binding 'D' of type dispatch_namespace needs 'namespace'"),
    ({"type": "secrets_store_secret", "name": "K", "store_id": "s"},
     "Binding 'K' of type secrets_store_secret needs 'secret_name'"),
    ({"type": "r2_bucket", "name": "B", "bucket_name": "b", "jurisdiction": "us"},
     "Binding 'B': jurisdiction must be one of eu, fedramp, fedramp-high, not 'us'"),
    ({"type": "service", "name": "S", "service": "w", "entrypoint": 5}, "Binding 'S': entrypoint must be a non-empty string"),
    ({"type": "queue", "name": "Q", "queue_name": "q", "delivery_delay": "soon"},
     "Binding 'Q': delivery_delay must be whole seconds from 0 to 43200"),
    ({"type": "send_email", "name": "E", "destination_address": "a@x", "allowed_destination_addresses": ["b@x"]},
     "Binding 'E': give destination_address or allowed_destination_addresses, not both"),
    ({"type": "workflow", "name": "W"}, "Unknown binding type 'workflow' for binding 'W'"),
])
def test_binding_fields_are_checked_like_cloudflare(fake_cloudflare, binding, message):
    assert binding_error(fake_cloudflare, binding) == (400, 10021, message)


@pytest.mark.parametrize(("binding", "message"), [
    ({"type": "r2_bucket", "name": "B", "bucket_name": "nope"}, "Binding 'B': R2 bucket 'nope' does not exist"),
    ({"type": "r2_bucket", "name": "B", "bucket_name": "shop-assets", "jurisdiction": "eu"},
     "Binding 'B': R2 bucket 'shop-assets' in jurisdiction 'eu' does not exist"),
    ({"type": "d1", "name": "DB", "id": "0" * 32}, f"Binding 'DB': D1 database '{'0' * 32}' does not exist"),
    ({"type": "queue", "name": "Q", "queue_name": "nope"}, "Binding 'Q': queue 'nope' does not exist"),
    ({"type": "service", "name": "S", "service": "nope"},
     "Binding 'S': service 'nope' is not a Worker of this account (upload it first)"),
    ({"type": "durable_object_namespace", "name": "DO", "class_name": "Counter"},
     ("Binding 'DO': Durable Object class 'Counter' is not declared by a migration of script 'w' (add it with "
      "new_classes or new_sqlite_classes)")),
    ({"type": "durable_object_namespace", "name": "DO", "class_name": "Counter", "script_name": "other"},
     "Binding 'DO': script 'other' has no Durable Object class 'Counter'"),
    ({"type": "durable_object_namespace", "name": "DO", "class_name": "Counter", "script_name": "ghost"},
     "Binding 'DO': script 'ghost' holding Durable Object class 'Counter' does not exist"),
    ({"type": "assets", "name": "ASSETS"},
     "Binding 'ASSETS': an assets binding needs assets in this upload (metadata.assets)"),
])
def test_a_binding_must_name_something_that_exists(fake_cloudflare, binding, message):
    fake_cloudflare.add_r2_bucket("shop-assets")
    ok(put_script(fake_cloudflare, "other"))
    assert binding_error(fake_cloudflare, binding) == (400, 10021, message)
    assert "w" not in fake_cloudflare.scripts()


def test_a_service_binding_may_name_the_uploading_script_itself(fake_cloudflare):
    ok(put_script(fake_cloudflare, "w", {"bindings": [{"type": "service", "name": "SELF", "service": "w"}]}))


def test_settings_carry_placement_limits_observability_logpush_tail_consumers_and_tags(fake_cloudflare):
    ok(put_script(fake_cloudflare, "tail"))
    sent = {"placement": {"mode": "smart"}, "limits": {"cpu_ms": 50},
            "observability": {"enabled": True, "head_sampling_rate": 0.5}, "logpush": True,
            "tail_consumers": [{"service": "tail"}], "tags": ["deployer:project=shop"],
            "compatibility_date": "2024-09-23", "compatibility_flags": ["nodejs_compat"]}
    ok(put_script(fake_cloudflare, "w", sent))
    settings = ok(call(fake_cloudflare, "GET", f"{SCRIPTS}/w/settings"))
    assert {key: settings[key] for key in sent} == sent
    ok(put_script(fake_cloudflare, "bare"))
    bare = ok(call(fake_cloudflare, "GET", f"{SCRIPTS}/bare/settings"))
    assert (bare["placement"], bare["limits"], bare["observability"], bare["logpush"], bare["tail_consumers"]) == (
        {}, {}, {"enabled": False}, False, [])


@pytest.mark.parametrize(("metadata", "message"), [
    ({"placement": {"mode": "fast"}}, 'placement must be {"mode": "smart"}'),
    ({"limits": {"cpu_ms": "50"}}, 'limits must be {"cpu_ms": <positive integer>}'),
    ({"limits": {"cpu_ms": 400_000}}, "limits.cpu_ms must be at most 300000"),
    ({"observability": {"head_sampling_rate": 1}}, "observability must be an object with a boolean enabled"),
    ({"observability": {"enabled": True, "head_sampling_rate": 2}},
     "observability.head_sampling_rate must be a number from 0 to 1"),
    ({"logpush": "yes"}, "logpush must be a boolean"),
    ({"tail_consumers": [{"service": "nope"}]}, "Tail consumer 'nope' is not a Worker of this account"),
    ({"annotations": {"workers/message": "x" * 1001}}, "Annotation workers/message must be a string of at most 1000 bytes"),
])
def test_bad_script_settings_are_refused(fake_cloudflare, metadata, message):
    assert error_of(put_script(fake_cloudflare, "w", metadata)) == (400, 10021, message)


# --- second round: owned resources ---------------------------------------------------------


def test_r2_buckets_are_created_listed_read_and_kept_apart_by_jurisdiction(fake_cloudflare):
    fake, path = fake_cloudflare, f"/accounts/{FAKE_ACCOUNT}/r2/buckets"
    created = ok(call(fake, "POST", path, json={"name": "shop-assets", "locationHint": "weur"}))
    assert (created["name"], created["location"]) == ("shop-assets", "WEUR")
    eu = {**AUTH, "cf-r2-jurisdiction": "eu"}
    ok(call(fake, "POST", path, json={"name": "shop-assets"}, headers=eu))
    assert set(fake.r2_buckets()) == {("default", "shop-assets"), ("eu", "shop-assets")}
    assert error_of(call(fake, "POST", path, json={"name": "shop-assets"})) == (
        400, 10021, "The bucket you tried to create already exists, and you own it.")
    assert [b["name"] for b in ok(call(fake, "GET", path))["buckets"]] == ["shop-assets"]
    assert ok(call(fake, "GET", f"{path}/shop-assets", headers=eu))["jurisdiction"] == "eu"
    assert error_of(call(fake, "GET", f"{path}/nope")) == (404, 10006, "The specified bucket does not exist.")
    assert error_of(call(fake, "POST", path, json={"name": "Bad_Name"}))[:2] == (400, 10021)


def test_r2_bucket_list_pages_with_a_cursor(fake_cloudflare):
    for index in range(25):
        fake_cloudflare.add_r2_bucket(f"bucket-{index:02}")
    path = f"/accounts/{FAKE_ACCOUNT}/r2/buckets"
    first = call(fake_cloudflare, "GET", path).json()
    assert len(first["result"]["buckets"]) == 20
    rest = call(fake_cloudflare, "GET", path, params={"cursor": first["result_info"]["cursor"]}).json()
    assert [b["name"] for b in rest["result"]["buckets"]] == [f"bucket-{i}" for i in range(20, 25)]
    assert "cursor" not in rest["result_info"]


def test_d1_databases_are_created_with_a_uuid_and_found_by_a_name_search(fake_cloudflare):
    fake, path = fake_cloudflare, f"/accounts/{FAKE_ACCOUNT}/d1/database"
    created = ok(call(fake, "POST", path, json={"name": "shop-db"}))
    assert fake.d1_databases()[created["uuid"]]["name"] == "shop-db"
    fake.add_d1_database("shop-db-staging")
    assert error_of(call(fake, "POST", path, json={"name": "shop-db"})) == (
        400, 7502, "A database with that name already exists")
    # A search, as Cloudflare's: the caller must pick the exact name out of the answer.
    assert sorted(d["name"] for d in ok(call(fake, "GET", path, params={"name": "shop-db"}))) == [
        "shop-db", "shop-db-staging"]
    assert ok(call(fake, "GET", f"{path}/{created['uuid']}"))["name"] == "shop-db"
    assert error_of(call(fake, "GET", f"{path}/{'0' * 32}"))[:2] == (404, 7404)


def test_queues_are_created_with_a_queue_id_and_listed_by_name(fake_cloudflare):
    fake, path = fake_cloudflare, f"/accounts/{FAKE_ACCOUNT}/queues"
    created = ok(call(fake, "POST", path, json={"queue_name": "jobs"}))
    fake.add_queue("jobs-dlq")
    assert fake.queues()[created["queue_id"]]["queue_name"] == "jobs"
    assert [q["queue_id"] for q in ok(call(fake, "GET", path, params={"name": "jobs"}))] == [created["queue_id"]]
    assert error_of(call(fake, "POST", path, json={"queue_name": "jobs"})) == (
        400, 10021, "A queue named 'jobs' already exists")
    assert error_of(call(fake, "POST", path, json={"name": "x"})) == (400, 10021, "Unknown field 'name' in the queue")


def test_queue_consumers_are_created_read_replaced_and_deleted_once_per_script(fake_cloudflare):
    fake = fake_cloudflare
    queue_id = fake.add_queue("jobs")
    fake.add_queue("jobs-dlq")
    ok(put_script(fake, "worker"))
    path = f"/accounts/{FAKE_ACCOUNT}/queues/{queue_id}/consumers"
    consumer = ok(call(fake, "POST", path, json={"type": "worker", "script_name": "worker",
                                                 "dead_letter_queue": "jobs-dlq",
                                                 "settings": {"batch_size": 50, "max_retries": 5}}))
    assert consumer["script"] == "worker" and consumer["dead_letter_queue"] == "jobs-dlq"
    assert consumer["settings"] == {"batch_size": 50, "max_retries": 5, "max_wait_time_ms": 5000, "retry_delay": 0}
    assert error_of(call(fake, "POST", path, json={"type": "worker", "script_name": "worker"})) == (
        400, 10021, "Script 'worker' already consumes queue 'jobs'")
    assert error_of(call(fake, "POST", path, json={"type": "worker", "script_name": "ghost"})) == (
        400, 10021, "Consumer script 'ghost' is not a Worker of this account (upload it first)")
    ok(put_script(fake, "other-worker"))
    assert error_of(call(fake, "POST", path, json={"script_name": "other-worker", "dead_letter_queue": "nope"})) == (
        400, 10021, "Dead letter queue 'nope' does not exist")
    assert error_of(call(fake, "PUT", f"{path}/{consumer['consumer_id']}", json={
        "script_name": "worker", "settings": {"batch_size": 500}})) == (
        400, 10021, "Consumer setting batch_size must be a whole number from 1 to 100")
    replaced = ok(call(fake, "PUT", f"{path}/{consumer['consumer_id']}",
                       json={"type": "worker", "script_name": "worker", "settings": {"batch_size": 10}}))
    assert replaced["consumer_id"] == consumer["consumer_id"] and "dead_letter_queue" not in replaced
    assert [c["settings"]["batch_size"] for c in ok(call(fake, "GET", path))] == [10]
    ok(call(fake, "DELETE", f"{path}/{consumer['consumer_id']}"))
    assert fake.queue_consumers("jobs") == []
    assert error_of(call(fake, "GET", f"/accounts/{FAKE_ACCOUNT}/queues/{'0' * 32}/consumers"))[:2] == (404, 10005)


# --- second round: Durable Object migrations -----------------------------------------------


def test_migrations_apply_in_order_and_move_the_tag(fake_cloudflare):
    fake = fake_cloudflare
    ok(put_script(fake, "w", {"migrations": {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}]}}))
    assert (fake.migration_tag("w"), fake.durable_object_classes("w")) == ("v1", {"Counter": "sqlite"})
    service = ok(call(fake, "GET", f"/accounts/{FAKE_ACCOUNT}/workers/services/w"))
    assert service["default_environment"]["script"]["migration_tag"] == "v1"
    # One step's keys at the top level, as wrangler also sends them.
    ok(put_script(fake, "w", {"migrations": {"old_tag": "v1", "new_tag": "v2",
                                             "renamed_classes": [{"from": "Counter", "to": "Tally"}]}}))
    assert (fake.migration_tag("w"), fake.durable_object_classes("w")) == ("v2", {"Tally": "sqlite"})
    ok(put_script(fake, "w", {"bindings": [{"type": "durable_object_namespace", "name": "T", "class_name": "Tally"}]}))
    assert fake.migration_tag("w") == "v2"  # an upload without migrations keeps the tag


def test_a_migration_from_another_tag_is_refused_naming_both_and_changes_nothing(fake_cloudflare):
    fake = fake_cloudflare
    ok(put_script(fake, "w", {"migrations": {"new_tag": "v1", "new_classes": ["Counter"]}}))
    stale = {"migrations": {"new_tag": "v2", "steps": [{"deleted_classes": ["Counter"]}]}}
    assert error_of(put_script(fake, "w", stale)) == (
        400, 10021, "Migration tag precondition failed: old_tag is (none) but the script's current migration tag is 'v1'")
    ahead = {"migrations": {"old_tag": "v3", "new_tag": "v4", "steps": []}}
    assert "old_tag is 'v3' but the script's current migration tag is 'v1'" in error_of(put_script(fake, "w", ahead))[2]
    assert (fake.migration_tag("w"), fake.durable_object_classes("w")) == ("v1", {"Counter": "kv"})


@pytest.mark.parametrize(("steps", "message"), [
    ([{"new_classes": ["Counter"]}], "Cannot create Durable Object class 'Counter' (migrations step 0): it already exists"),
    ([{"deleted_classes": ["Ghost"]}], "Cannot delete Durable Object class 'Ghost' (migrations step 0): it does not exist"),
    ([{"renamed_classes": [{"from": "Ghost", "to": "X"}]}],
     "Cannot rename Durable Object class 'Ghost' (migrations step 0): it does not exist"),
    ([{}, {"new_classes": ["Bad Name"]}], "migrations step 1.new_classes: 'Bad Name' is not a class name"),
    ([{"new_classes": ["A"], "tag": "v2"}], "Unknown field 'tag' in migrations step 0"),
])
def test_a_migration_step_that_cannot_apply_is_refused(fake_cloudflare, steps, message):
    ok(put_script(fake_cloudflare, "w", {"migrations": {"new_tag": "v1", "new_classes": ["Counter"]}}))
    assert error_of(put_script(fake_cloudflare, "w", {"migrations": {"old_tag": "v1", "new_tag": "v2",
                                                                     "steps": steps}})) == (400, 10021, message)


def test_deleting_a_class_that_the_upload_still_binds_is_refused(fake_cloudflare):
    ok(put_script(fake_cloudflare, "w", {"migrations": {"new_tag": "v1", "new_classes": ["Counter"]}}))
    response = put_script(fake_cloudflare, "w", {
        "migrations": {"old_tag": "v1", "new_tag": "v2", "deleted_classes": ["Counter"]},
        "bindings": [{"type": "durable_object_namespace", "name": "C", "class_name": "Counter"}]})
    assert "Durable Object class 'Counter' is not declared" in error_of(response)[2]
    assert fake_cloudflare.migration_tag("w") == "v1"


def test_a_class_can_be_transferred_from_another_script(fake_cloudflare):
    fake = fake_cloudflare
    ok(put_script(fake, "old", {"migrations": {"new_tag": "v1", "new_sqlite_classes": ["Room"]}}))
    ok(put_script(fake, "new", {"migrations": {"new_tag": "v1", "transferred_classes": [
        {"from": "Room", "from_script": "old", "to": "Room"}]}}))
    assert (fake.durable_object_classes("old"), fake.durable_object_classes("new")) == ({}, {"Room": "sqlite"})


def test_the_services_endpoint_answers_10090_for_a_missing_script(fake_cloudflare):
    assert error_of(call(fake_cloudflare, "GET", f"/accounts/{FAKE_ACCOUNT}/workers/services/nope")) == (
        404, 10090, "workers.api.error.service_not_found")
    ok(put_script(fake_cloudflare, "w"))
    script = ok(call(fake_cloudflare, "GET", f"/accounts/{FAKE_ACCOUNT}/workers/services/w"))["default_environment"]
    assert "migration_tag" not in script["script"]  # no migration ever ran


# --- second round: triggers ----------------------------------------------------------------


def test_zones_are_found_by_exact_name(fake_cloudflare):
    other = fake_cloudflare.add_zone("example.org")
    assert [z["id"] for z in ok(call(fake_cloudflare, "GET", "/zones", params={"name": "example.com"}))] == [FAKE_ZONE]
    assert [z["id"] for z in ok(call(fake_cloudflare, "GET", "/zones", params={"name": "example.org"}))] == [other]
    assert ok(call(fake_cloudflare, "GET", "/zones", params={"name": "ample.com"})) == []
    assert ok(call(fake_cloudflare, "GET", f"/zones/{other}"))["name"] == "example.org"


def test_routes_are_created_repointed_and_deleted(fake_cloudflare):
    fake, path = fake_cloudflare, f"/zones/{FAKE_ZONE}/workers/routes"
    ok(put_script(fake, "api"))
    ok(put_script(fake, "api-v2"))
    route = ok(call(fake, "POST", path, json={"pattern": "shop.example.com/api/*", "script": "api"}))
    assert ok(call(fake, "GET", path)) == [{"id": route["id"], "pattern": "shop.example.com/api/*", "script": "api"}]
    assert error_of(call(fake, "POST", path, json={"pattern": "shop.example.com/api/*", "script": "api-v2"})) == (
        409, 10020, "A route with pattern 'shop.example.com/api/*' already exists in this zone")
    moved = ok(call(fake, "PUT", f"{path}/{route['id']}", json={"pattern": "shop.example.com/api/*",
                                                                 "script": "api-v2"}))
    assert moved == {"id": route["id"], "pattern": "shop.example.com/api/*", "script": "api-v2"}
    off = ok(call(fake, "POST", path, json={"pattern": "*example.com/static/*"}))  # no script: Workers off
    assert "script" not in fake.routes()[off["id"]]
    ok(call(fake, "DELETE", f"{path}/{route['id']}"))
    assert list(fake.routes()) == [off["id"]]
    assert error_of(call(fake, "GET", f"{path}/{route['id']}"))[:2] == (404, 10005)


@pytest.mark.parametrize(("pattern", "message"), [
    ("shop.example.org/*", "Route pattern 'shop.example.org/*': host 'shop.example.org' is not in zone 'example.com'"),
    ("notexample.com/*", "Route pattern 'notexample.com/*': host 'notexample.com' is not in zone 'example.com'"),
    ("example.com/search?q=*", ("Route pattern 'example.com/search?q=*' has a query string: routes match host "
                                "and path only")),
    ("shop.*.example.com/*", "Route pattern 'shop.*.example.com/*': '*' may only lead the host"),
    ("example.com/*/api", "Route pattern 'example.com/*/api': '*' may only end the path"),
])
def test_a_route_pattern_outside_cloudflares_rules_is_refused(fake_cloudflare, pattern, message):
    response = call(fake_cloudflare, "POST", f"/zones/{FAKE_ZONE}/workers/routes", json={"pattern": pattern})
    assert error_of(response) == (400, 10021, message)


def test_route_patterns_may_carry_a_scheme_and_a_leading_host_wildcard(fake_cloudflare):
    for pattern in ("https://example.com/*", "*.example.com/img/*", "*example.com/*", "example.com"):
        ok(call(fake_cloudflare, "POST", f"/zones/{FAKE_ZONE}/workers/routes", json={"pattern": pattern}))
    assert error_of(call(fake_cloudflare, "POST", f"/zones/{FAKE_ZONE}/workers/routes",
                         json={"pattern": "a.example.com/*", "script": "ghost"}))[2] == (
        "Route script 'ghost' is not a Worker of this account (upload it first)")


def test_custom_domains_upsert_by_hostname_and_need_the_worker_and_the_zone(fake_cloudflare):
    fake, path = fake_cloudflare, f"/accounts/{FAKE_ACCOUNT}/workers/domains"
    ok(put_script(fake, "api"))
    ok(put_script(fake, "api-v2"))
    first = ok(call(fake, "PUT", path, json={"hostname": "api.example.com", "service": "api", "zone_id": FAKE_ZONE}))
    assert (first["zone_name"], first["environment"]) == ("example.com", "production")
    again = ok(call(fake, "PUT", path, json={"hostname": "api.example.com", "service": "api-v2",
                                             "zone_name": "example.com"}))
    assert again["id"] == first["id"] and again["service"] == "api-v2"
    fake.add_custom_domain("www.example.com", "api")
    assert [d["hostname"] for d in ok(call(fake, "GET", path, params={"service": "api-v2"}))] == ["api.example.com"]
    assert len(ok(call(fake, "GET", path))) == 2
    assert error_of(call(fake, "PUT", path, json={"hostname": "api.example.org", "service": "api",
                                                  "zone_id": FAKE_ZONE})) == (
        400, 10021, "Hostname 'api.example.org' is not inside zone 'example.com'")
    assert error_of(call(fake, "PUT", path, json={"hostname": "x.example.com", "service": "ghost"}))[2] == (
        "Custom domain service 'ghost' is not a Worker of this account (upload it first)")
    assert "plain host name" in error_of(call(fake, "PUT", path, json={"hostname": "*.example.com", "service": "api"}))[2]
    ok(call(fake, "DELETE", f"{path}/{first['id']}"))
    assert [d["hostname"] for d in fake.custom_domains().values()] == ["www.example.com"]
    assert error_of(call(fake, "DELETE", f"{path}/{first['id']}"))[:2] == (404, 10005)


def test_schedules_are_replaced_as_a_set_and_checked_loosely(fake_cloudflare):
    fake, path = fake_cloudflare, f"{SCRIPTS}/w/schedules"
    assert error_of(call(fake, "PUT", path, json=[{"cron": "* * * * *"}]))[:2] == (404, 10007)
    ok(put_script(fake, "w"))
    answer = ok(call(fake, "PUT", path, json=[{"cron": "*/30 * * * *"}, {"cron": "0 3 * * MON-FRI"}]))
    assert [s["cron"] for s in answer["schedules"]] == ["*/30 * * * *", "0 3 * * MON-FRI"]
    assert fake.schedules("w") == ["*/30 * * * *", "0 3 * * MON-FRI"]
    assert error_of(call(fake, "PUT", path, json=[{"cron": "* * * *"}])) == (
        400, 10021, "Invalid cron expression '* * * *': give 5 fields (minute hour day month weekday)")
    assert error_of(call(fake, "PUT", path, json={"cron": "* * * * *"}))[:2] == (400, 10021)
    assert ok(call(fake, "PUT", path, json=[]))["schedules"] == []
    assert ok(call(fake, "GET", path)) == {"schedules": []}


def test_workers_dev_needs_the_account_subdomain_first(fake_cloudflare):
    fake, path = fake_cloudflare, f"{SCRIPTS}/w/subdomain"
    ok(put_script(fake, "w"))
    assert ok(call(fake, "GET", path)) == {"enabled": False, "previews_enabled": False}
    assert error_of(call(fake, "GET", f"/accounts/{FAKE_ACCOUNT}/workers/subdomain"))[:2] == (404, 10007)
    refused = error_of(call(fake, "POST", path, json={"enabled": True}))
    assert refused[:2] == (400, 10063) and "workers.dev subdomain" in refused[2]
    ok(call(fake, "POST", path, json={"enabled": False}))  # turning it off needs no subdomain
    fake.set_workers_subdomain("acme")
    assert ok(call(fake, "GET", f"/accounts/{FAKE_ACCOUNT}/workers/subdomain")) == {"subdomain": "acme"}
    assert ok(call(fake, "POST", path, json={"enabled": True})) == {"enabled": True, "previews_enabled": False}
    assert fake.workers_dev("w") == {"enabled": True, "previews_enabled": False}
    assert error_of(call(fake, "POST", path, json={"enabled": "yes"}))[:2] == (400, 10021)


def test_deleting_a_script_takes_its_crons_subdomain_and_consumers_but_leaves_its_routes(fake_cloudflare):
    fake = fake_cloudflare
    fake.set_workers_subdomain("acme")
    queue_id = fake.add_queue("jobs")
    ok(put_script(fake, "w"))
    ok(call(fake, "PUT", f"{SCRIPTS}/w/schedules", json=[{"cron": "0 * * * *"}]))
    ok(call(fake, "POST", f"{SCRIPTS}/w/subdomain", json={"enabled": True}))
    ok(call(fake, "POST", f"/accounts/{FAKE_ACCOUNT}/queues/{queue_id}/consumers", json={"script_name": "w"}))
    route = fake.add_route("example.com/*", "w")
    ok(call(fake, "DELETE", f"{SCRIPTS}/w"))
    ok(put_script(fake, "w"))
    assert fake.schedules("w") == [] and fake.workers_dev("w")["enabled"] is False
    assert fake.queue_consumers("jobs") == []
    assert fake.routes()[route]["script"] == "w"  # like Cloudflare: the route stays, pointing at the name


def test_a_script_that_another_binds_is_only_deleted_with_force(fake_cloudflare):
    ok(put_script(fake_cloudflare, "auth"))
    ok(put_script(fake_cloudflare, "api", {"bindings": [{"type": "service", "name": "AUTH", "service": "auth"}]}))
    assert error_of(call(fake_cloudflare, "DELETE", f"{SCRIPTS}/auth")) == (
        400, 10021, "Cannot delete script 'auth': bound by api (delete or change those first, or pass ?force=true)")
    ok(call(fake_cloudflare, "DELETE", f"{SCRIPTS}/auth", params={"force": "true"}))
    assert "auth" not in fake_cloudflare.scripts()


# --- second round: versions and deployments ------------------------------------------------


def test_every_upload_is_a_version_deployed_at_100_percent(fake_cloudflare):
    fake = fake_cloudflare
    first = ok(put_script(fake, "w", {"main_module": "index.js", "annotations": {"workers/tag": "abc123"}},
                          code=MODULE))
    ok(put_script(fake, "w", {"main_module": "index.js"}, code=MODULE + b"// 2\n"))
    versions = ok(call(fake, "GET", f"{SCRIPTS}/w/versions"))["items"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1]["annotations"]["workers/tag"] == "abc123"
    deployments = ok(call(fake, "GET", f"{SCRIPTS}/w/deployments"))["deployments"]
    assert [d["versions"] for d in deployments] == [[{"version_id": v["id"], "percentage": 100}] for v in versions]
    assert deployments[1]["id"] == first["deployment_id"]
    detail = ok(call(fake, "GET", f"{SCRIPTS}/w/versions/{versions[0]['id']}"))
    assert detail["resources"]["script"]["etag"] == fake.scripts()["w"]["etag"]


def test_a_version_upload_stores_without_deploying_and_a_split_serves_the_larger_share(fake_cloudflare):
    fake = fake_cloudflare
    ok(put_script(fake, "w", {"main_module": "index.js", "bindings": [
        {"type": "plain_text", "name": "ENV", "text": "old"}]}, code=MODULE))
    old = fake.live_version("w")["id"]
    new = ok(upload_version(fake, "w", {"main_module": "index.js", "bindings": [
        {"type": "plain_text", "name": "ENV", "text": "new"}], "annotations": {"workers/message": "try it"}},
        code=MODULE + b"// new\n"))
    assert call(fake, "GET", f"{SCRIPTS}/w/content/v2").content.count(b"// new") == 0  # not deployed yet
    deployment = ok(call(fake, "POST", f"{SCRIPTS}/w/deployments", json={
        "strategy": "percentage", "versions": [{"version_id": new["id"], "percentage": 10},
                                               {"version_id": old, "percentage": 90}]}))
    assert fake.deployments("w")[0]["id"] == deployment["id"]
    assert fake.live_version("w")["id"] == old  # 90% still serves the old code
    ok(call(fake, "POST", f"{SCRIPTS}/w/deployments", json={
        "strategy": "percentage", "versions": [{"version_id": new["id"], "percentage": 60},
                                               {"version_id": old, "percentage": 40}]}))
    assert b"// new" in call(fake, "GET", f"{SCRIPTS}/w/content/v2").content
    assert b"// new" in call(fake, "GET", f"{SCRIPTS}/w").content
    settings = ok(call(fake, "GET", f"{SCRIPTS}/w/settings"))
    assert settings["bindings"] == [{"type": "plain_text", "name": "ENV", "text": "new"}]
    ok(call(fake, "POST", f"{SCRIPTS}/w/deployments", json={  # rollback: the old version at 100%
        "strategy": "percentage", "versions": [{"version_id": old, "percentage": 100}]}))
    assert b"// new" not in call(fake, "GET", f"{SCRIPTS}/w/content/v2").content


@pytest.mark.parametrize(("metadata", "message"), [
    ({"body_part": "script"}, "Version uploads take ES modules only: name the entry in main_module"),
    ({"main_module": "index.js", "migrations": {"new_tag": "v1"}},
     "'migrations' cannot be set by a version upload: upload the script (PUT) to change it"),
    ({"main_module": "index.js", "tags": ["x"]}, "'tags' cannot be set by a version upload: upload the script (PUT) to change it"),
    ({"main_module": "index.js", "logpush": True},
     "'logpush' cannot be set by a version upload: upload the script (PUT) to change it"),
    ({"main_module": "index.js", "tail_consumers": []},
     "'tail_consumers' cannot be set by a version upload: upload the script (PUT) to change it"),
    ({"main_module": "index.js", "annotations": {"workers/tag": "t" * 101}},
     "Annotation workers/tag must be a string of at most 100 bytes"),
    ({"main_module": "index.js", "annotations": {"workers/message": "é" * 501}},
     "Annotation workers/message must be a string of at most 1000 bytes"),
])
def test_a_version_upload_refuses_what_cloudflare_refuses(fake_cloudflare, metadata, message):
    ok(put_script(fake_cloudflare, "w", {"main_module": "index.js"}, code=MODULE))
    assert error_of(upload_version(fake_cloudflare, "w", metadata)) == (400, 10021, message)
    assert len(fake_cloudflare.versions("w")) == 1


def test_a_version_upload_needs_an_existing_script(fake_cloudflare):
    assert error_of(upload_version(fake_cloudflare, "w", {"main_module": "index.js"}))[:2] == (404, 10007)


@pytest.mark.parametrize(("body", "message"), [
    ({"versions": [{"version_id": "V1", "percentage": 100}]}, 'A deployment needs "strategy": "percentage"'),
    ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": 50},
                                             {"version_id": "V2", "percentage": 40}]},
     "The percentages of a deployment must sum to 100, not 90"),
    ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": 50.5},
                                             {"version_id": "V2", "percentage": 49.5}]},
     "percentage must be a whole number from 0 to 100, not 50.5"),
    ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": 40},
                                             {"version_id": "V2", "percentage": 30},
                                             {"version_id": "V1", "percentage": 30}]},
     "A deployment names one or two versions"),
    ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": 50},
                                             {"version_id": "V1", "percentage": 50}]},
     "A deployment names each version once"),
    ({"strategy": "percentage", "versions": [{"version_id": "nope", "percentage": 100}]},
     "Version 'nope' is not a version of script 'w'"),
])
def test_a_deployment_is_one_or_two_versions_of_this_script_summing_to_100(fake_cloudflare, body, message):
    fake = fake_cloudflare
    ok(put_script(fake, "w", {"main_module": "index.js"}, code=MODULE))
    ids = {"V1": fake.live_version("w")["id"],
           "V2": ok(upload_version(fake, "w", {"main_module": "index.js"}))["id"]}
    for item in body.get("versions", []):
        item["version_id"] = ids.get(item["version_id"], item["version_id"])
    assert error_of(call(fake, "POST", f"{SCRIPTS}/w/deployments", json=body)) == (400, 10021, message)
    assert len(fake.deployments("w")) == 1


# --- second round: static assets -----------------------------------------------------------


def asset(content: bytes) -> tuple[str, dict]:
    """A file's manifest entry (the fake checks the hash's shape and the size, not the hash)."""
    import hashlib

    return hashlib.md5(content).hexdigest(), {"hash": hashlib.md5(content).hexdigest(), "size": len(content)}


def upload_assets(fake: FakeCloudflare, script: str, files: dict[str, bytes]) -> tuple[str, list[list[str]]]:
    """Run a whole session: returns the completion jwt and the buckets that were asked for."""
    import base64

    manifest = {path: asset(content)[1] for path, content in files.items()}
    by_hash = {asset(content)[0]: content for content in files.values()}
    session = ok(call(fake, "POST", f"{SCRIPTS}/{script}/assets-upload-session", json={"manifest": manifest}))
    token = session["jwt"]
    for bucket in session["buckets"]:
        answer = ok(call(fake, "POST", f"/accounts/{FAKE_ACCOUNT}/workers/assets/upload", params={"base64": "true"},
                         headers={"Authorization": f"Bearer {session['jwt']}"},
                         files=[(h, (h, base64.b64encode(by_hash[h]), "text/html")) for h in bucket]))
        token = answer.get("jwt", token)
    return token, session["buckets"]


FILES = {f"/page{i}.html": f"<p>page {i}</p>".encode() for i in range(12)}


def test_an_assets_session_asks_only_for_missing_files_in_small_buckets(fake_cloudflare):
    fake = fake_cloudflare
    token, buckets = upload_assets(fake, "site", FILES)
    assert [len(b) for b in buckets] == [5, 5, 2]
    assert set(fake.asset_hashes()) == {asset(c)[0] for c in FILES.values()}
    ok(put_script(fake, "site", {"main_module": "index.js", "assets": {
        "jwt": token, "config": {"html_handling": "auto-trailing-slash", "not_found_handling": "404-page"}},
        "bindings": [{"type": "assets", "name": "ASSETS"}]}, code=MODULE))
    assert fake.scripts()["site"]["assets"]["manifest"]["/page0.html"]["size"] == len(FILES["/page0.html"])
    changed = {**FILES, "/page3.html": b"<p>changed</p>"}
    _, buckets = upload_assets(fake, "site", changed)
    assert buckets == [[asset(b"<p>changed</p>")[0]]]
    _, buckets = upload_assets(fake, "site", changed)
    assert buckets == []  # nothing missing: the session's jwt is already the completion token


def test_an_assets_only_worker_is_uploaded_without_a_main_module(fake_cloudflare):
    token, _ = upload_assets(fake_cloudflare, "static", {"/index.html": b"<h1>hi</h1>"})

    def metadata_only(name: str, metadata: dict) -> requests.Response:
        return call(fake_cloudflare, "PUT", f"{SCRIPTS}/{name}",
                    files=[("metadata", (None, json.dumps(metadata), "application/json"))])

    ok(metadata_only("static", {"assets": {"jwt": token, "config": {"not_found_handling": "single-page-application"}}}))
    assert fake_cloudflare.scripts()["static"]["main_module"] is None
    assert call(fake_cloudflare, "GET", f"{SCRIPTS}/static/content/v2").content == b""
    assert error_of(metadata_only("nothing", {})) == (
        400, 10021, "metadata must name the entry part in main_module or body_part")


def test_a_script_upload_refuses_a_missing_unknown_unfinished_foreign_or_stale_assets_token(fake_cloudflare):
    fake = fake_cloudflare

    def refused(assets: dict, name: str = "site") -> str:
        return error_of(put_script(fake, name, {"main_module": "index.js", "assets": assets}, code=MODULE))[2]

    assert refused({"config": {}}) == "metadata.assets needs the jwt that completed an assets upload session"
    assert refused({"jwt": "made-up"}) == "metadata.assets.jwt is not a token this account issued"
    manifest = {"/a.html": asset(b"a")[1]}
    session = ok(call(fake, "POST", f"{SCRIPTS}/site/assets-upload-session", json={"manifest": manifest}))
    assert refused({"jwt": session["jwt"]}) == (
        "metadata.assets.jwt is an upload session's token, not a completion token: 1 file(s) still to upload")
    token, _ = upload_assets(fake, "site", {"/a.html": b"a"})
    assert refused({"jwt": token}, name="other") == "metadata.assets.jwt was issued for script 'site', not 'other'"
    assert refused({"jwt": token, "config": {"html_handling": "sometimes"}}).startswith(
        "assets.config.html_handling must be one of")
    fake.expire_asset_tokens()
    assert refused({"jwt": token}) == "metadata.assets.jwt has expired: start a new assets upload session"


def test_asset_buckets_are_checked_against_their_session(fake_cloudflare):
    import base64

    fake = fake_cloudflare
    file_hash, entry = asset(b"hello")
    session = ok(call(fake, "POST", f"{SCRIPTS}/site/assets-upload-session", json={"manifest": {"/h.txt": entry}}))
    upload = f"/accounts/{FAKE_ACCOUNT}/workers/assets/upload"
    bearer = {"Authorization": f"Bearer {session['jwt']}"}

    def send(parts, headers=bearer, base64_query="true"):
        return call(fake, "POST", upload, params={"base64": base64_query}, headers=headers, files=parts)

    assert error_of(send([(file_hash, (file_hash, base64.b64encode(b"hello"), "text/plain"))], headers=AUTH))[:2] == (
        401, 10000)  # the API token is not the session's token
    assert error_of(send([(file_hash, (file_hash, b"hello", "text/plain"))], base64_query="false"))[2] == (
        "Upload assets as base64 with ?base64=true")
    assert error_of(send([(file_hash, (file_hash, b"not base64!", "text/plain"))]))[2] == (
        f"Asset {file_hash} is not valid base64")
    assert error_of(send([(file_hash, (file_hash, base64.b64encode(b"hello!"), "text/plain"))]))[2] == (
        f"Asset {file_hash} is 6 bytes, the manifest said 5")
    other = "f" * 32
    assert error_of(send([(other, (other, base64.b64encode(b"x"), "text/plain"))]))[2] == (
        f"Asset {other} is not part of this upload session")
    assert fake.asset_hashes() == {}
    assert "jwt" in ok(send([(file_hash, (file_hash, base64.b64encode(b"hello"), "text/plain"))]))


@pytest.mark.parametrize(("manifest", "message"), [
    ({"index.html": {"hash": "a" * 32, "size": 1}}, "Asset path 'index.html' must start with '/'"),
    ({"/i.html": {"hash": "A" * 32, "size": 1}}, "Asset /i.html: hash must be 32 lowercase hex characters"),
    ({"/i.html": {"hash": "a" * 32}}, 'Asset /i.html: give exactly {"hash", "size"}'),
    ({"/i.html": {"hash": "a" * 32, "size": 26 * 1024 * 1024}},
     "Asset /i.html: size must be a whole number of bytes up to 26214400"),
])
def test_an_assets_manifest_is_checked(fake_cloudflare, manifest, message):
    response = call(fake_cloudflare, "POST", f"{SCRIPTS}/site/assets-upload-session", json={"manifest": manifest})
    assert error_of(response) == (400, 10021, message)


def test_parallel_bucket_uploads_complete_the_session_once(fake_cloudflare):
    import base64

    fake = fake_cloudflare
    fake.assets_per_bucket = 1
    files = {f"/f{i}.txt": f"file {i}".encode() for i in range(16)}
    manifest = {path: asset(content)[1] for path, content in files.items()}
    by_hash = {asset(content)[0]: content for content in files.values()}
    session = ok(call(fake, "POST", f"{SCRIPTS}/site/assets-upload-session", json={"manifest": manifest}))
    tokens: list[str] = []

    def send(bucket: list[str]) -> None:
        answer = ok(call(fake, "POST", f"/accounts/{FAKE_ACCOUNT}/workers/assets/upload", params={"base64": "true"},
                         headers={"Authorization": f"Bearer {session['jwt']}"},
                         files=[(h, (h, base64.b64encode(by_hash[h]), "text/plain")) for h in bucket]))
        if "jwt" in answer:
            tokens.append(answer["jwt"])

    threads = [threading.Thread(target=send, args=(bucket,)) for bucket in session["buckets"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(tokens) == 1 and len(fake.asset_hashes()) == 16


# --- second round: counters ----------------------------------------------------------------


def test_requests_are_counted_per_method_and_path_template(fake_cloudflare):
    fake = fake_cloudflare
    ok(put_script(fake, "a"))
    ok(put_script(fake, "b"))
    fake.fail("GET", r"/workers/scripts$", "500")
    call(fake, "GET", SCRIPTS)  # a faulted request still arrived
    ok(call(fake, "GET", f"{SCRIPTS}/a/settings"))
    call(fake, "GET", f"/accounts/{FAKE_ACCOUNT}/no/such/thing")
    assert fake.request_counts() == {
        ("PUT", "/accounts/{account_id}/workers/scripts/{script_name}"): 2,
        ("GET", "/accounts/{account_id}/workers/scripts"): 1,
        ("GET", "/accounts/{account_id}/workers/scripts/{script_name}/settings"): 1,
        ("GET", "(unknown)"): 1,
    }
    assert fake.mutating_request_count() == 2
    fake.max_recorded_requests = 2
    ok(call(fake, "GET", SCRIPTS))
    assert len(fake.requests) == 2 and fake.request_counts()[("GET", "/accounts/{account_id}/workers/scripts")] == 2
    fake.clear_requests()
    assert (fake.request_counts(), fake.mutating_request_count()) == ({}, 0)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", f"/accounts/{FAKE_ACCOUNT}/r2/buckets", {"name": ["x"]}),
    ("POST", f"/accounts/{FAKE_ACCOUNT}/d1/database", {"name": {"x": 1}}),
    ("POST", f"/accounts/{FAKE_ACCOUNT}/queues", {"queue_name": 5}),
    ("PUT", f"/accounts/{FAKE_ACCOUNT}/workers/domains", {"hostname": "a.example.com", "service": "w",
                                                          "zone_id": ["x"]}),
    ("POST", f"/zones/{FAKE_ZONE}/workers/routes", {"pattern": ["x"], "script": {"a": 1}}),
    ("PUT", f"{SCRIPTS}/w/schedules", [{"cron": ["*"]}]),
    ("POST", f"{SCRIPTS}/w/subdomain", {"enabled": None}),
    ("POST", f"{SCRIPTS}/w/deployments", {"strategy": "percentage", "versions": [{"version_id": [1],
                                                                                   "percentage": 100}]}),
    ("POST", f"{SCRIPTS}/w/assets-upload-session", {"manifest": {"/a": {"hash": 5, "size": "1"}}}),
    ("POST", f"{SCRIPTS}/w/assets-upload-session", {"manifest": []}),
])
def test_odd_json_shapes_are_refused_with_a_400_not_a_crash(fake_cloudflare, method, path, body):
    ok(put_script(fake_cloudflare, "w"))
    assert error_of(call(fake_cloudflare, method, path, json=body))[:2] == (400, 10021)


def test_odd_migration_and_binding_shapes_are_refused_with_a_400_not_a_crash(fake_cloudflare):
    for metadata in ({"migrations": {"new_tag": "v1", "deleted_classes": [["A"]]}},
                     {"migrations": {"new_tag": "v1", "renamed_classes": [{"from": 1, "to": 2}]}},
                     {"migrations": {"new_tag": "v1", "steps": "all"}},
                     {"migrations": "v1"},
                     {"bindings": [{"type": "d1", "name": "DB", "id": ["x"]}]},
                     {"bindings": [{"type": "durable_object_namespace", "name": "D", "class_name": "C",
                                    "script_name": ["x"]}]},
                     {"assets": {"jwt": ["x"]}}, {"assets": "jwt"}, {"keep_assets": True},
                     {"tail_consumers": "all"}, {"observability": []}):
        assert error_of(put_script(fake_cloudflare, "w", metadata))[:2] == (400, 10021), metadata
