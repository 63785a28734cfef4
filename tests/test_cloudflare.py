"""CloudflareClient against requests-mock: URLs, auth, the multipart body, retries, errors."""
from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest
import requests

from deployer import __version__
from deployer.cloudflare.client import CloudflareClient, Credentials, credentials_from_env
from deployer.errors import CloudflareApiError, CredentialsError, DeployerError
from deployer.models import Secret

BASE = "https://api.cloudflare.test/client/v4"
ACCOUNT = "0123456789abcdef0123456789abcdef"
ZONE = "fedcba9876543210fedcba9876543210"
TOKEN = "tok-SECRET-0123456789"
SCRIPTS = f"{BASE}/accounts/{ACCOUNT}/workers/scripts"
NAMESPACES = f"{BASE}/accounts/{ACCOUNT}/storage/kv/namespaces"


class FakeTime:
    """A clock that only moves when something sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(fake_time: FakeTime):
    cf = make_client(fake_time)
    yield cf
    cf.close()


def make_client(fake_time: FakeTime, credentials: Credentials | None = None, **kwargs) -> CloudflareClient:
    return CloudflareClient(
        credentials or Credentials(token=Secret(TOKEN)), base_url=BASE,
        sleep=fake_time.sleep, clock=fake_time.clock, **kwargs,
    )


def ok(result=None, **extra) -> dict:
    return {"success": True, "errors": [], "messages": [], "result": result, **extra}


def failed(code: int, message: str) -> dict:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


def parse_multipart(request) -> dict[str, tuple[str | None, str, bytes]]:
    """name -> (filename, content type, exact bytes), parsed with the stdlib email parser."""
    head = b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    assert message.is_multipart()
    return {
        part.get_param("name", header="content-disposition"): (
            part.get_filename(), part.get_content_type(), part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    }


# --- credentials ---------------------------------------------------------------------------


def test_token_wins_over_key_pair_with_a_warning():
    credentials, warnings = credentials_from_env({
        "CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_EMAIL": "me@example.com", "CLOUDFLARE_API_KEY": "key-1",
    })
    assert credentials.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert len(warnings) == 1
    assert "CLOUDFLARE_EMAIL" in warnings[0] and "CLOUDFLARE_API_KEY" in warnings[0] and "ignored" in warnings[0]


def test_token_alone_gives_no_warning():
    credentials, warnings = credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
    assert credentials.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert warnings == []


def test_email_and_key_become_x_auth_headers():
    credentials, warnings = credentials_from_env({"CLOUDFLARE_EMAIL": "me@example.com", "CLOUDFLARE_API_KEY": "key-1"})
    assert credentials.headers() == {"X-Auth-Email": "me@example.com", "X-Auth-Key": "key-1"}
    assert warnings == []


@pytest.mark.parametrize(("present", "missing"), [
    ({"CLOUDFLARE_EMAIL": "me@example.com"}, "CLOUDFLARE_API_KEY is not"),
    ({"CLOUDFLARE_API_KEY": "key-1"}, "CLOUDFLARE_EMAIL is not"),
])
def test_half_a_key_pair_names_the_missing_variable(present, missing):
    with pytest.raises(CredentialsError, match=missing) as info:
        credentials_from_env(present)
    assert "key-1" not in str(info.value)


def test_no_credentials_names_the_variables_to_set():
    with pytest.raises(CredentialsError) as info:
        credentials_from_env({"CLOUDFLARE_API_TOKEN": "", "CLOUDFLARE_EMAIL": "", "CLOUDFLARE_API_KEY": ""})
    assert "CLOUDFLARE_API_TOKEN" in str(info.value)
    assert "CLOUDFLARE_EMAIL" in str(info.value) and "CLOUDFLARE_API_KEY" in str(info.value)


def test_surrounding_whitespace_is_dropped_but_unsendable_characters_are_refused():
    credentials, _ = credentials_from_env({"CLOUDFLARE_API_TOKEN": f"  {TOKEN}\n"})
    assert credentials.headers() == {"Authorization": f"Bearer {TOKEN}"}
    with pytest.raises(CredentialsError, match="CLOUDFLARE_API_TOKEN contains characters") as info:
        credentials_from_env({"CLOUDFLARE_API_TOKEN": "tok\u2013en"})
    assert "tok" not in str(info.value)


def test_credentials_repr_masks_secrets():
    text = repr(Credentials(token=Secret(TOKEN), email="me@example.com", api_key=Secret("key-1")))
    assert TOKEN not in text and "key-1" not in text


def test_from_environment_uses_base_url_without_trailing_slash(requests_mock):
    requests_mock.get(f"{BASE}/accounts/{ACCOUNT}/workers/scripts", json=ok([]))
    cf, warnings = CloudflareClient.from_environment(
        {"CLOUDFLARE_API_BASE_URL": BASE + "/", "CLOUDFLARE_API_TOKEN": TOKEN})
    with cf:
        assert cf.list_scripts(ACCOUNT) == []
    assert requests_mock.last_request.url == f"{BASE}/accounts/{ACCOUNT}/workers/scripts"
    assert warnings == []


def test_from_environment_without_base_url_uses_cloudflare(requests_mock):
    requests_mock.get(f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/workers/scripts", json=ok([]))
    cf, _ = CloudflareClient.from_environment({"CLOUDFLARE_API_TOKEN": TOKEN})
    assert cf.list_scripts(ACCOUNT) == []


def test_base_url_without_scheme_is_a_clear_error():
    with pytest.raises(DeployerError, match="https://"):
        CloudflareClient(Credentials(token=Secret(TOKEN)), base_url="api.cloudflare.com/client/v4")


# --- the upload request --------------------------------------------------------------------

SCRIPT_BYTES = "addEventListener('fetch', e => e.respondWith(new Response('héllo €')))\r\n".encode() + \
    b"// CRLF above, LF here\n\r lone CR, NUL \x00 and a stray byte \xff\r\n"
METADATA = {"body_part": "script", "bindings": [
    {"type": "kv_namespace", "name": "CACHE", "namespace_id": "0f2ac74b498b48028cb68387c421e279"},
    {"type": "plain_text", "name": "ENVIRONMENT", "text": "production"},
]}


def test_upload_puts_metadata_and_unchanged_script_bytes(client, requests_mock):
    requests_mock.put(f"{SCRIPTS}/my-worker", json=ok({"id": "my-worker", "etag": "e1"}))
    result = client.upload_script("my-worker", METADATA, SCRIPT_BYTES, account_id=ACCOUNT)
    assert result == {"id": "my-worker", "etag": "e1"}
    request = requests_mock.last_request
    assert request.method == "PUT"
    assert request.url == f"{SCRIPTS}/my-worker"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Auth-Key" not in request.headers
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = parse_multipart(request)
    assert list(parts) == ["metadata", "script"]
    _, metadata_type, metadata_bytes = parts["metadata"]
    assert metadata_type == "application/json"
    assert json.loads(metadata_bytes) == METADATA
    filename, script_type, script_bytes = parts["script"]
    assert (filename, script_type) == ("script.js", "application/javascript")
    assert script_bytes == SCRIPT_BYTES


def test_a_prepared_upload_sends_nothing_until_called_then_the_same_bytes_on_every_try(
        client, requests_mock, fake_time):
    requests_mock.put(f"{SCRIPTS}/w", [{"status_code": 429, "headers": {"Retry-After": "3"},
                                        "json": failed(971, "wait")},
                                       {"json": ok({"id": "w", "etag": "e2"})}])
    send = client.prepare_upload("w", METADATA, SCRIPT_BYTES, account_id=ACCOUNT)
    assert requests_mock.call_count == 0  # built, not sent: an apply prepares while slots are busy
    assert send() == {"id": "w", "etag": "e2"}
    first, retry = requests_mock.request_history
    assert retry.body == first.body and retry.headers["Content-Type"] == first.headers["Content-Type"]
    assert parse_multipart(retry)["script"][2] == SCRIPT_BYTES
    assert retry.headers["Authorization"] == f"Bearer {TOKEN}"
    assert fake_time.sleeps == [3.0]


def test_upload_with_key_pair_sends_x_auth_headers(fake_time, requests_mock):
    requests_mock.put(f"{SCRIPTS}/w", json=ok({}))
    cf = make_client(fake_time, Credentials(email="me@example.com", api_key=Secret("key-1")))
    cf.upload_script("w", METADATA, b"x", account_id=ACCOUNT)
    headers = requests_mock.last_request.headers
    assert headers["X-Auth-Email"] == "me@example.com"
    assert headers["X-Auth-Key"] == "key-1"
    assert "Authorization" not in headers


def test_every_request_has_user_agent_and_connect_read_timeout(client, requests_mock):
    requests_mock.get(SCRIPTS, json=ok([]))
    client.list_scripts(ACCOUNT)
    assert requests_mock.last_request.headers["User-Agent"] == f"deployer/{__version__}"
    assert requests_mock.last_request.timeout == (10.0, 120.0)


def test_zone_upload_uses_the_legacy_single_script_url(client, requests_mock):
    requests_mock.put(f"{BASE}/zones/{ZONE}/workers/script", json=ok({"id": "abc"}))
    client.upload_script("ignored-name", METADATA, SCRIPT_BYTES, zone_id=ZONE)
    assert parse_multipart(requests_mock.last_request)["script"][2] == SCRIPT_BYTES


def test_upload_without_result_returns_empty_dict(client, requests_mock):
    requests_mock.put(f"{SCRIPTS}/w", json=ok(None))
    assert client.upload_script("w", METADATA, b"x", account_id=ACCOUNT) == {}


def test_upload_needs_exactly_one_of_account_and_zone(client):
    with pytest.raises(ValueError):
        client.upload_script("w", METADATA, b"x")
    with pytest.raises(ValueError):
        client.upload_script("w", METADATA, b"x", account_id=ACCOUNT, zone_id=ZONE)


# --- scripts, secrets ----------------------------------------------------------------------


def test_list_scripts_returns_the_result(client, requests_mock):
    scripts = [{"id": "a", "etag": "e", "modified_on": "2024-01-01T00:00:00Z"}]
    requests_mock.get(SCRIPTS, json=ok(scripts))
    assert client.list_scripts(ACCOUNT) == scripts


def test_delete_script_sends_delete(client, requests_mock):
    requests_mock.delete(f"{SCRIPTS}/w", json=ok({"id": "w"}))
    client.delete_script("w", account_id=ACCOUNT)
    assert requests_mock.last_request.method == "DELETE"


def test_zone_delete_uses_the_legacy_url(client, requests_mock):
    requests_mock.delete(f"{BASE}/zones/{ZONE}/workers/script", status_code=204)
    client.delete_script("w", zone_id=ZONE)
    assert requests_mock.call_count == 1


def test_delete_of_a_missing_script_counts_as_done(client, requests_mock):
    requests_mock.delete(f"{SCRIPTS}/w", status_code=404, json=failed(10007, "workers.api.error.script_not_found"))
    client.delete_script("w", account_id=ACCOUNT)
    assert requests_mock.call_count == 1


def test_delete_with_a_malformed_account_id_is_not_mistaken_for_gone(client, requests_mock):
    requests_mock.delete(f"{BASE}/accounts/abc/workers/scripts/w", status_code=404,
                         json=failed(7003, "Could not route to /accounts/abc/workers/scripts/w"))
    with pytest.raises(CloudflareApiError) as info:
        client.delete_script("w", account_id="abc")
    assert info.value.codes == (7003,)
    assert "account_id" in str(info.value)


def test_delete_secret_url_and_missing_secret_is_fine(client, requests_mock):
    url = f"{SCRIPTS}/w/secrets/API_KEY"
    requests_mock.delete(url, [{"json": ok(None)}, {"status_code": 404, "json": failed(10056, "not found")}])
    client.delete_secret(ACCOUNT, "w", "API_KEY")
    client.delete_secret(ACCOUNT, "w", "API_KEY")
    assert [r.url for r in requests_mock.request_history] == [url, url]


# --- KV namespaces -------------------------------------------------------------------------


def namespace_pages(total: int, per_page: int = 100, report_total: bool = True):
    items = [{"id": f"{i:032x}", "title": f"ns-{i}"} for i in range(total)]

    def answer(request, context):
        page = int(request.qs["page"][0])
        assert int(request.qs["per_page"][0]) == per_page
        chunk = items[(page - 1) * per_page: page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk)}
        if report_total:
            info["total_count"] = total
        return ok(chunk, result_info=info)

    return items, answer


def test_list_kv_namespaces_reads_every_page(client, requests_mock):
    items, answer = namespace_pages(250)
    requests_mock.get(NAMESPACES, json=answer)
    assert client.list_kv_namespaces(ACCOUNT) == items
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"], ["3"]]


def test_list_kv_namespaces_stops_when_total_count_is_reached(client, requests_mock):
    items, answer = namespace_pages(200)
    requests_mock.get(NAMESPACES, json=answer)
    assert client.list_kv_namespaces(ACCOUNT) == items
    assert requests_mock.call_count == 2


def test_list_kv_namespaces_without_total_count_stops_on_empty_page(client, requests_mock):
    items, answer = namespace_pages(200, report_total=False)
    requests_mock.get(NAMESPACES, json=answer)
    assert client.list_kv_namespaces(ACCOUNT) == items
    assert requests_mock.call_count == 3


def test_ensure_kv_namespace_creates_a_new_title(client, requests_mock):
    requests_mock.post(NAMESPACES, json=ok({"id": "n1", "title": "cache"}))
    assert client.ensure_kv_namespace(ACCOUNT, "cache") == ({"id": "n1", "title": "cache"}, False)
    assert requests_mock.last_request.json() == {"title": "cache"}


def test_ensure_kv_namespace_adopts_the_existing_title_on_10014(client, requests_mock):
    requests_mock.post(NAMESPACES, status_code=400,
                       json=failed(10014, "a namespace with this account ID and title already exists"))
    requests_mock.get(NAMESPACES, json=ok([{"id": "n0", "title": "other"}, {"id": "n1", "title": "cache"}],
                                          result_info={"page": 1, "per_page": 100, "count": 2, "total_count": 2}))
    assert client.ensure_kv_namespace(ACCOUNT, "cache") == ({"id": "n1", "title": "cache"}, True)


def test_ensure_kv_namespace_lists_instead_of_reposting_after_a_dropped_connection(client, requests_mock, fake_time):
    requests_mock.post(NAMESPACES, exc=requests.exceptions.ConnectionError("Connection aborted."))
    requests_mock.get(NAMESPACES, json=ok([{"id": "n1", "title": "cache"}]))
    assert client.ensure_kv_namespace(ACCOUNT, "cache") == ({"id": "n1", "title": "cache"}, False)
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]
    assert len(fake_time.sleeps) == 1


def test_ensure_kv_namespace_posts_again_only_when_the_title_is_still_absent(client, requests_mock):
    requests_mock.post(NAMESPACES, [{"status_code": 500, "json": failed(10013, "internal")},
                                    {"json": ok({"id": "n1", "title": "cache"})}])
    requests_mock.get(NAMESPACES, json=ok([]))
    assert client.ensure_kv_namespace(ACCOUNT, "cache") == ({"id": "n1", "title": "cache"}, False)
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET", "POST"]


def test_ensure_kv_namespace_gives_up_after_max_attempts(fake_time, requests_mock):
    requests_mock.post(NAMESPACES, status_code=503, json=failed(10013, "unavailable"))
    requests_mock.get(NAMESPACES, json=ok([]))
    cf = make_client(fake_time, max_attempts=3)
    with pytest.raises(CloudflareApiError, match="gave up after 3 attempts") as info:
        cf.ensure_kv_namespace(ACCOUNT, "cache")
    assert info.value.status == 503
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET", "POST", "GET", "POST"]


def test_rename_kv_namespace_puts_the_new_title_and_is_retried(client, requests_mock, fake_time):
    url = f"{NAMESPACES}/n1"
    requests_mock.put(url, [{"status_code": 502, "text": "bad gateway"}, {"json": ok(None)}])
    client.rename_kv_namespace(ACCOUNT, "n1", "new-title")
    assert [r.json() for r in requests_mock.request_history] == [{"title": "new-title"}] * 2
    assert len(fake_time.sleeps) == 1


# --- retries -------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_seconds(client, requests_mock, fake_time):
    requests_mock.get(SCRIPTS, [
        {"status_code": 429, "headers": {"Retry-After": "7"}, "json": failed(971, "Please wait")},
        {"json": ok([])},
    ])
    assert client.list_scripts(ACCOUNT) == []
    assert fake_time.sleeps == [7.0]
    assert requests_mock.call_count == 2


def test_429_is_retried_after_retry_after_http_date(client, requests_mock, fake_time):
    served = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    headers = {"Retry-After": format_datetime(served + timedelta(seconds=42), usegmt=True),
               "Date": format_datetime(served, usegmt=True)}
    requests_mock.put(f"{SCRIPTS}/w", [{"status_code": 429, "headers": headers, "json": failed(971, "wait")},
                                       {"json": ok({})}])
    client.upload_script("w", METADATA, b"x", account_id=ACCOUNT)
    assert fake_time.sleeps == [42.0]


def test_429_without_retry_after_backs_off(client, requests_mock, fake_time):
    requests_mock.get(SCRIPTS, [{"status_code": 429, "json": failed(971, "wait")}, {"json": ok([])}])
    client.list_scripts(ACCOUNT)
    assert len(fake_time.sleeps) == 1 and 1.0 <= fake_time.sleeps[0] <= 2.0


def test_5xx_is_retried_with_growing_backoff(client, requests_mock, fake_time):
    requests_mock.put(f"{SCRIPTS}/w", [
        {"status_code": 500, "json": failed(10013, "internal")},
        {"status_code": 502, "text": "<html><title>502 Bad Gateway</title></html>"},
        {"status_code": 503, "json": failed(10013, "unavailable")},
        {"json": ok({"id": "w"})},
    ])
    assert client.upload_script("w", METADATA, SCRIPT_BYTES, account_id=ACCOUNT) == {"id": "w"}
    assert [int(s) for s in fake_time.sleeps] == [1, 2, 4]
    assert all(parse_multipart(r)["script"][2] == SCRIPT_BYTES for r in requests_mock.request_history)


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectTimeout("connect timed out"),
])
def test_dropped_connections_and_timeouts_are_retried(client, requests_mock, fake_time, exc):
    requests_mock.delete(f"{SCRIPTS}/w", [{"exc": exc}, {"json": ok({"id": "w"})}])
    client.delete_script("w", account_id=ACCOUNT)
    assert requests_mock.call_count == 2
    assert len(fake_time.sleeps) == 1


def test_backoff_is_capped_at_30_seconds(fake_time, requests_mock):
    requests_mock.get(SCRIPTS, status_code=500, json=failed(10013, "internal"))
    cf = make_client(fake_time, max_attempts=8, max_retry_wait=1000)
    with pytest.raises(CloudflareApiError):
        cf.list_scripts(ACCOUNT)
    assert [int(s) for s in fake_time.sleeps] == [1, 2, 4, 8, 16, 30, 30]


def test_gives_up_after_max_attempts_saying_attempts_and_total_wait(fake_time, requests_mock):
    requests_mock.get(SCRIPTS, status_code=500, json=failed(10013, "workers.api.error.unknown"))
    cf = make_client(fake_time, max_attempts=3)
    with pytest.raises(CloudflareApiError) as info:
        cf.list_scripts(ACCOUNT)
    waited = sum(fake_time.sleeps)
    assert requests_mock.call_count == 3
    message = str(info.value)
    assert message.startswith(f"Cloudflare API GET /accounts/{ACCOUNT}/workers/scripts failed (HTTP 500): ")
    assert "workers.api.error.unknown [code: 10013]" in message
    assert f"gave up after 3 attempts, {waited:.1f} s of waiting in total" in message


def test_gives_up_when_the_total_wait_cap_is_reached(fake_time, requests_mock):
    requests_mock.get(SCRIPTS, exc=requests.exceptions.ConnectionError("reset"))
    cf = make_client(fake_time, max_attempts=100, max_retry_wait=6.0)
    with pytest.raises(CloudflareApiError) as info:
        cf.list_scripts(ACCOUNT)
    assert len(fake_time.sleeps) == 2  # 1-2 s, then 2-3 s; the next 4-5 s would pass 6 s
    assert sum(fake_time.sleeps) <= 6.0
    assert info.value.status is None
    assert "(no answer)" in str(info.value) and "closed without an answer" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)


def test_retry_after_beyond_the_remaining_budget_gives_up_at_once(client, requests_mock, fake_time):
    requests_mock.get(SCRIPTS, status_code=429, headers={"Retry-After": "301"}, json=failed(971, "blocked"))
    with pytest.raises(CloudflareApiError) as info:
        client.list_scripts(ACCOUNT)
    assert fake_time.sleeps == []
    assert requests_mock.call_count == 1
    assert "asked to wait 301 s" in str(info.value)
    assert "gave up after 1 attempt, 0.0 s of waiting in total" in str(info.value)


@pytest.mark.parametrize(("status", "code", "message"), [
    (400, 10021, "Uncaught ReferenceError: foo is not defined"),
    (401, 10000, "Authentication error"),
    (403, 10000, "Authentication error"),
    (404, 10007, "workers.api.error.script_not_found"),
])
def test_other_4xx_are_not_retried(client, requests_mock, fake_time, status, code, message):
    requests_mock.put(f"{SCRIPTS}/w", status_code=status, json=failed(code, message))
    with pytest.raises(CloudflareApiError) as info:
        client.upload_script("w", METADATA, b"x", account_id=ACCOUNT)
    assert requests_mock.call_count == 1
    assert fake_time.sleeps == []
    assert info.value.status == status
    assert info.value.errors == ((code, message),)
    assert f"{message} [code: {code}]" in str(info.value)


# --- error rendering -----------------------------------------------------------------------


def test_every_error_entry_is_shown(client, requests_mock):
    requests_mock.put(f"{SCRIPTS}/w", status_code=400, json={
        "success": False, "result": None, "messages": [],
        "errors": [{"code": 10021, "message": "first"}, {"code": 10052, "message": "Binding at index 1 must have a name"}],
    })
    with pytest.raises(CloudflareApiError) as info:
        client.upload_script("w", METADATA, b"x", account_id=ACCOUNT)
    assert str(info.value) == (f"Cloudflare API PUT /accounts/{ACCOUNT}/workers/scripts/w failed (HTTP 400): "
                               "first [code: 10021]; Binding at index 1 must have a name [code: 10052]")


def test_code_and_error_fallback_shape_is_understood(client, requests_mock):
    requests_mock.get(SCRIPTS, status_code=400, json={"code": 10001, "error": "bad request"})
    with pytest.raises(CloudflareApiError) as info:
        client.list_scripts(ACCOUNT)
    assert info.value.errors == ((10001, "bad request"),)


def test_html_error_page_becomes_a_short_readable_error_with_cf_ray(client, requests_mock):
    page = "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>" + "<p>x</p>" * 500
    requests_mock.get(SCRIPTS, status_code=403, text=page,
                      headers={"Content-Type": "text/html; charset=UTF-8", "cf-ray": "8a1b2c3d4e5f6789-AMS",
                               "cf-mitigated": "challenge"})
    with pytest.raises(CloudflareApiError) as info:
        client.list_scripts(ACCOUNT)
    message = str(info.value)
    assert "text/html instead of JSON" in message
    assert '"Attention Required! | Cloudflare"' in message
    assert "cf-ray 8a1b2c3d4e5f6789-AMS" in message
    assert "cf-mitigated: challenge" in message
    assert len(message) < 400


def test_non_json_success_body_is_an_error_not_a_traceback(client, requests_mock):
    requests_mock.get(SCRIPTS, text="<html>captive portal</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(CloudflareApiError, match="instead of JSON"):
        client.list_scripts(ACCOUNT)


@pytest.mark.parametrize(("code", "hint"), [
    (10000, "Workers Scripts Write"),
    (9106, "CLOUDFLARE_API_TOKEN"),
    (10042, "namespace_id"),
    (7003, "account_id / zone_id"),
    (7000, "account_id / zone_id"),
])
def test_known_codes_get_a_hint(client, requests_mock, code, hint):
    requests_mock.get(SCRIPTS, status_code=400, json=failed(code, "msg"))
    with pytest.raises(CloudflareApiError) as info:
        client.list_scripts(ACCOUNT)
    assert hint in info.value.detail


def test_credentials_never_appear_in_errors(fake_time, requests_mock):
    echo = f"Invalid header value 'Bearer {TOKEN}' or key 'key-1'"
    requests_mock.get(SCRIPTS, status_code=400, json=failed(6003, echo))
    requests_mock.put(f"{SCRIPTS}/w", exc=requests.exceptions.ConnectionError(f"boom {TOKEN} key-1"))
    for credentials, secret in ((Credentials(token=Secret(TOKEN)), TOKEN),
                                (Credentials(email="me@example.com", api_key=Secret("key-1")), "key-1")):
        cf = make_client(fake_time, credentials, max_attempts=2)
        for call in (lambda: cf.list_scripts(ACCOUNT), lambda: cf.upload_script("w", {}, b"", account_id=ACCOUNT)):
            with pytest.raises(CloudflareApiError) as info:
                call()
            text = f"{info.value} {info.value!r} {info.value.errors} {info.value.detail}"
            assert secret not in text


# --- shared budget -------------------------------------------------------------------------


def test_a_429_seen_by_one_thread_pauses_every_thread(fake_time, requests_mock):
    """Thread A gets a 429 with Retry-After 30; while A waits, thread B must wait too."""
    a_paused, b_done = threading.Event(), threading.Event()
    requests_mock.put(f"{SCRIPTS}/a", [{"status_code": 429, "headers": {"Retry-After": "30"},
                                        "json": failed(971, "wait")}, {"json": ok({})}])
    requests_mock.put(f"{SCRIPTS}/b", json=ok({}))
    sleeps: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:
        sleeps.append((threading.current_thread().name, seconds))
        if threading.current_thread().name == "A" and not a_paused.is_set():
            a_paused.set()
            assert b_done.wait(5)
        fake_time.sleep(seconds)

    cf = CloudflareClient(Credentials(token=Secret(TOKEN)), base_url=BASE, sleep=sleep, clock=fake_time.clock)
    errors: list[BaseException] = []

    def upload_a() -> None:
        try:
            cf.upload_script("a", METADATA, b"a", account_id=ACCOUNT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=upload_a, name="A")
    thread.start()
    assert a_paused.wait(5)
    cf.upload_script("b", METADATA, b"b", account_id=ACCOUNT)  # thread B: this test's thread
    b_done.set()
    thread.join(5)
    assert not errors
    main = threading.current_thread().name
    assert (main, 30.0) in sleeps
    assert sleeps[0] == ("A", 30.0)
    assert [r.url.rsplit("/", 1)[1] for r in requests_mock.request_history] == ["a", "b", "a"]


def test_request_budget_throttles_once_the_limit_is_used(fake_time, requests_mock):
    requests_mock.get(SCRIPTS, json=ok([]))
    cf = make_client(fake_time, rate_limit=(3, 10.0))
    for _ in range(3):
        cf.list_scripts(ACCOUNT)
    assert fake_time.sleeps == []
    fake_time.now += 4.0
    cf.list_scripts(ACCOUNT)  # the first request of the window leaves it 10 s after it started
    assert fake_time.sleeps == [6.0]
    cf.list_scripts(ACCOUNT)
    cf.list_scripts(ACCOUNT)
    assert fake_time.sleeps == [6.0]
    cf.list_scripts(ACCOUNT)  # 3 requests started within the last 10 s again
    assert fake_time.sleeps == [6.0, 10.0]
    assert requests_mock.call_count == 7


def test_a_request_counts_against_the_budget_until_a_window_after_its_answer(fake_time, requests_mock):
    # Cloudflare counts a request when it arrives, anywhere between our start and its answer:
    # counting from the answer keeps two requests a window apart however slow the first was.
    def slow_answer(request, context):
        fake_time.now += 5.0  # the request takes 5 s
        return ok([])

    requests_mock.get(SCRIPTS, json=slow_answer)
    cf = make_client(fake_time, rate_limit=(1, 10.0))
    cf.list_scripts(ACCOUNT)
    cf.list_scripts(ACCOUNT)
    assert fake_time.sleeps == [10.0]  # from its answer at +5 s, not from its start (which would be 5 s)


def test_request_budget_is_shared_by_threads(requests_mock):
    requests_mock.get(SCRIPTS, json=ok([]))
    sleeps: list[float] = []
    cf = CloudflareClient(Credentials(token=Secret(TOKEN)), base_url=BASE, sleep=sleeps.append,
                          clock=lambda: 1000.0, rate_limit=(5, 60.0))
    threads = [threading.Thread(target=cf.list_scripts, args=(ACCOUNT,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert requests_mock.call_count == 8
    assert sleeps == [60.0, 60.0, 60.0]  # the clock stands still: 5 go at once, 3 wait a window


def test_rate_limit_none_never_throttles(fake_time, requests_mock):
    requests_mock.get(SCRIPTS, json=ok([]))
    cf = make_client(fake_time, rate_limit=None)
    for _ in range(50):
        cf.list_scripts(ACCOUNT)
    assert fake_time.sleeps == []


def test_proxy_and_ca_bundle_variables_are_read_once_for_the_api_host(fake_time, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    cf = make_client(fake_time)
    assert cf._session.proxies["https"] == "http://proxy.internal:3128"
    assert cf._session.verify == "/etc/ssl/corporate.pem"
    monkeypatch.setenv("NO_PROXY", "api.cloudflare.test")
    assert "https" not in make_client(fake_time)._session.proxies  # the API host bypasses the proxy


def test_connection_pool_is_sized_for_the_worker_threads(fake_time):
    cf = make_client(fake_time, pool_size=9)
    adapter = cf._session.get_adapter(BASE)
    assert adapter._pool_maxsize == 9


def test_a_long_budget_wait_is_announced_once_with_its_length(fake_time, requests_mock, caplog):
    requests_mock.get(SCRIPTS, json=ok([]))
    cf = make_client(fake_time, rate_limit=(2, 10.0))
    with caplog.at_level("INFO", logger="deployer.cloudflare"):
        for _ in range(3):
            cf.list_scripts(ACCOUNT)
    assert fake_time.sleeps == [10.0]
    assert [r.getMessage() for r in caplog.records] == [
        "request budget used up (2 requests per 10 s, --rate-limit): waiting 10.0 s"]


def test_zone_script_exists_reads_the_legacy_download(fake_time, requests_mock):
    url = f"{BASE}/zones/{ZONE}/workers/script"
    cf = make_client(fake_time)
    requests_mock.get(url, content=b"addEventListener('fetch', () => {})", headers={"Content-Type": "application/javascript"})
    assert cf.zone_script_exists(ZONE) is True
    requests_mock.get(url, status_code=404, json=failed(10007, "workers.api.error.script_not_found"))
    assert cf.zone_script_exists(ZONE) is False
    requests_mock.get(url, status_code=403, json=failed(10000, "Authentication error"))
    with pytest.raises(CloudflareApiError):
        cf.zone_script_exists(ZONE)
# --- hostile answers: 429 storms and malformed successes ------------------------------------


@pytest.mark.parametrize("retry_after", ["1", "0", None])
def test_a_429_storm_is_retried_until_the_wait_budget_not_an_attempt_count_runs_out(
        fake_time, requests_mock, retry_after):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    requests_mock.get(SCRIPTS, status_code=429, headers=headers, json=failed(971, "Please wait"))
    cf = make_client(fake_time, max_attempts=6, max_retry_wait=300.0)
    with pytest.raises(CloudflareApiError) as info:
        cf.list_scripts(ACCOUNT)
    waited = fake_time.now - 1000.0
    assert requests_mock.call_count > 6  # not the hidden attempt count of other failures
    assert 240.0 <= waited <= 300.0  # most of the budget was spent waiting, never more
    assert info.value.status == 429 and "gave up after" in str(info.value)


def test_a_429_storm_then_success_succeeds_after_more_than_max_attempts(fake_time, requests_mock):
    storm = [{"status_code": 429, "headers": {"Retry-After": "2"}, "json": failed(971, "wait")}] * 20
    requests_mock.get(SCRIPTS, [*storm, {"json": ok([{"id": "w"}])}])
    cf = make_client(fake_time, max_attempts=6, max_retry_wait=300.0)
    assert cf.list_scripts(ACCOUNT) == [{"id": "w"}]
    assert requests_mock.call_count == 21


def _malformed_cases():
    """(call, method, url, answer) for every client method that reads a result."""
    settings = f"{SCRIPTS}/w/settings"
    return [
        pytest.param(lambda cf: cf.list_scripts(ACCOUNT), "GET", SCRIPTS, {"id": "w"}, id="scripts-object-for-list"),
        pytest.param(lambda cf: cf.list_scripts(ACCOUNT), "GET", SCRIPTS, [{"etag": "e"}], id="script-without-id"),
        pytest.param(lambda cf: cf.list_scripts(ACCOUNT), "GET", SCRIPTS, ["w"], id="script-is-a-string"),
        pytest.param(lambda cf: cf.list_scripts(ACCOUNT), "GET", SCRIPTS, [{"id": 5}], id="script-id-number"),
        pytest.param(lambda cf: cf.list_kv_namespaces(ACCOUNT), "GET", NAMESPACES, {"result": []},
                     id="namespaces-object-for-list"),
        pytest.param(lambda cf: cf.list_kv_namespaces(ACCOUNT), "GET", NAMESPACES, [{"title": "t"}],
                     id="namespace-without-id"),
        pytest.param(lambda cf: cf.ensure_kv_namespace(ACCOUNT, "t"), "POST", NAMESPACES, {"title": "t"},
                     id="created-namespace-without-id"),
        pytest.param(lambda cf: cf.ensure_kv_namespace(ACCOUNT, "t"), "POST", NAMESPACES, [{"id": "x"}],
                     id="created-namespace-list-for-object"),
        pytest.param(lambda cf: cf.ensure_kv_namespace(ACCOUNT, "t"), "POST", NAMESPACES, None,
                     id="created-namespace-null"),
        pytest.param(lambda cf: cf.upload_script("w", {"body_part": "script", "bindings": []}, b"x",
                                                 account_id=ACCOUNT), "PUT", f"{SCRIPTS}/w", ["w"],
                     id="upload-list-for-object"),
        pytest.param(lambda cf: cf.get_script_settings(ACCOUNT, "w"), "GET", settings, [],
                     id="settings-list-for-object"),
        pytest.param(lambda cf: cf.get_script_settings(ACCOUNT, "w"), "GET", settings, {"bindings": {}},
                     id="settings-bindings-object"),
    ]


@pytest.mark.parametrize("call, method, url, result", _malformed_cases())
def test_a_malformed_success_is_an_api_error_naming_the_request(client, requests_mock, call, method, url, result):
    requests_mock.register_uri(method, url, json=ok(result))
    with pytest.raises(CloudflareApiError) as info:
        call(client)
    path = url[len(BASE):]
    assert str(info.value).startswith(f"Cloudflare API {method} {path} failed (HTTP 200): "
                                      "Cloudflare answered with success, but ")


def test_connections_opened_ahead_are_the_ones_the_requests_use(fake_cloudflare) -> None:
    """An apply opens its upload connections while its checks read (TCP and TLS handshakes off
    the first uploads' path): no request is sent, and requests then find them open, never
    opening more than the pool holds."""
    from tests.fake_cloudflare import FAKE_ACCOUNT

    client, _ = CloudflareClient.from_environment(fake_cloudflare.environ(), pool_size=4)
    with client:
        client.open_connections(3)
        _wait_for(lambda: fake_cloudflare.connection_count() == 3)
        assert fake_cloudflare.requests == []
        together = threading.Barrier(6, timeout=5)

        def read() -> None:
            together.wait()
            client.list_scripts(FAKE_ACCOUNT)

        readers = [threading.Thread(target=read) for _ in range(6)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(10)
        assert len(fake_cloudflare.requests) == 6
        assert fake_cloudflare.connection_count() <= 4  # six at once wait for the pool's four


def test_opening_connections_ahead_is_nothing_with_a_mock_adapter(client, requests_mock) -> None:
    client.open_connections(3)  # requests-mock's adapter has no pool: nothing to open, no error
    assert requests_mock.call_count == 0


def _wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)

