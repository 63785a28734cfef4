"""The assets endpoints of the client (reference §7.6), with requests-mock: the session with
the API credentials, each bucket with the session's token alone, retries, and the tokens kept
out of every message."""
from __future__ import annotations

import email.parser
import email.policy
import json

import pytest

from deployer.apply.upload import UploadPart
from deployer.errors import CloudflareApiError, DeployerError
from deployer.models import Secret
from tests.test_cloudflare import ACCOUNT, BASE, TOKEN, FakeTime, failed, fake_time, make_client, ok  # noqa: F401
from deployer.cloudflare.client import Credentials

SESSION = f"{BASE}/accounts/{ACCOUNT}/workers/scripts/site/assets-upload-session"
BUCKET = f"{BASE}/accounts/{ACCOUNT}/workers/assets/upload?base64=true"
MANIFEST = b'{"/a.html":{"hash":"' + b"a" * 32 + b'","size":1}}'


def _parts(request) -> dict[str, tuple[str | None, bytes]]:  # type: ignore[no-untyped-def]
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    return {p.get_param("name", header="content-disposition"): (p.get_content_type(), p.get_payload(decode=True))
            for p in message.iter_parts()}


def test_the_session_sends_the_manifest_with_the_api_token(requests_mock, fake_time: FakeTime) -> None:  # type: ignore[no-untyped-def]
    requests_mock.post(SESSION, json=ok({"jwt": "session-jwt-1", "buckets": [["a" * 32]]}))
    with make_client(fake_time) as client:
        session, buckets = client.start_assets_session(ACCOUNT, "site", MANIFEST)
    sent = requests_mock.request_history[0]
    assert json.loads(sent.body) == {"manifest": json.loads(MANIFEST)}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert session == Secret("session-jwt-1") and buckets == [["a" * 32]]
    assert "session-jwt-1" not in repr(session)


@pytest.mark.parametrize("credentials", [Credentials(token=Secret(TOKEN)),
                                         Credentials(email="me@example.com", api_key=Secret("key-SECRET-1"))])
def test_a_bucket_is_sent_with_the_session_token_and_never_the_credentials(
        requests_mock, fake_time: FakeTime, credentials: Credentials) -> None:  # type: ignore[no-untyped-def]
    requests_mock.post(BUCKET, json=ok({"jwt": "completion-jwt"}))
    with make_client(fake_time, credentials) as client:
        done = client.upload_asset_buckets(ACCOUNT, Secret("session-jwt-2"), [["h1", "h2"]], lambda hashes: [
            UploadPart(h, "text/html", b"PGgxPg==") for h in hashes])
    sent = requests_mock.request_history[0]
    assert sent.headers["Authorization"] == "Bearer session-jwt-2"
    assert "X-Auth-Key" not in sent.headers and "X-Auth-Email" not in sent.headers
    assert _parts(sent) == {"h1": ("text/html", b"PGgxPg=="), "h2": ("text/html", b"PGgxPg==")}
    assert done == Secret("completion-jwt")


def test_buckets_are_retried_and_the_completion_token_comes_from_the_last_answer(
        requests_mock, fake_time: FakeTime) -> None:  # type: ignore[no-untyped-def]
    requests_mock.post(BUCKET, [{"status_code": 503, "json": failed(10013, "busy")},
                                {"json": ok(None)}, {"status_code": 201, "json": ok({"jwt": "done"})}])
    with make_client(fake_time, pool_size=1) as client:
        done = client.upload_asset_buckets(ACCOUNT, Secret("s"), [["h1"], ["h2"]],
                                           lambda hashes: [UploadPart(h, "text/plain", b"eA==") for h in hashes])
    assert done == Secret("done") and requests_mock.call_count == 3 and len(fake_time.sleeps) == 1


def test_a_refused_bucket_names_the_request_without_the_token(requests_mock, fake_time: FakeTime) -> None:  # type: ignore[no-untyped-def]
    requests_mock.post(BUCKET, status_code=401, json=failed(10000, "bad token session-jwt-3"))
    with make_client(fake_time) as client, pytest.raises(CloudflareApiError) as caught:
        client.upload_asset_buckets(ACCOUNT, Secret("session-jwt-3"), [["h1"]],
                                    lambda hashes: [UploadPart(h, "text/plain", b"eA==") for h in hashes])
    assert "session-jwt-3" not in str(caught.value) and "10000" in str(caught.value)


def test_no_completion_token_after_the_last_bucket_is_an_error(requests_mock, fake_time: FakeTime) -> None:  # type: ignore[no-untyped-def]
    requests_mock.post(BUCKET, json=ok(None))
    with make_client(fake_time) as client, pytest.raises(DeployerError, match="completion token"):
        client.upload_asset_buckets(ACCOUNT, Secret("s"), [["h1"]],
                                    lambda hashes: [UploadPart(h, "text/plain", b"eA==") for h in hashes])
