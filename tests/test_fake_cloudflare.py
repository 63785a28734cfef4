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
