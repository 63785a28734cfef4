"""The R2, D1 and queue endpoints against requests-mock: create or adopt by name (robust to a
refused or lost create), and the listings ``--refresh`` reads."""
from __future__ import annotations

import pytest
import requests

from deployer.errors import CloudflareApiError
from tests.test_cloudflare import ACCOUNT, BASE, failed, fake_time, make_client, ok  # noqa: F401 (fixture)

BUCKETS = f"{BASE}/accounts/{ACCOUNT}/r2/buckets"
DATABASES = f"{BASE}/accounts/{ACCOUNT}/d1/database"
QUEUES = f"{BASE}/accounts/{ACCOUNT}/queues"
UUID = "0c3a4f8e-5b2d-4e3f-9a1b-2c3d4e5f6a7b"


@pytest.fixture
def client(fake_time):  # noqa: F811
    cf = make_client(fake_time)
    yield cf
    cf.close()


def test_ensure_r2_bucket_posts_its_name(client, requests_mock):
    requests_mock.post(BUCKETS, json=ok({"name": "shop-assets", "location": "ENAM"}))
    assert client.ensure_r2_bucket(ACCOUNT, "shop-assets") == ({"name": "shop-assets", "location": "ENAM"}, False)
    assert requests_mock.last_request.json() == {"name": "shop-assets"}


def test_ensure_r2_bucket_adopts_a_bucket_that_exists(client, requests_mock):
    requests_mock.post(BUCKETS, status_code=409, json=failed(10004, "The bucket you tried to create already exists"))
    requests_mock.get(f"{BUCKETS}/shop-assets", json=ok({"name": "shop-assets", "location": "WEUR"}))
    assert client.ensure_r2_bucket(ACCOUNT, "shop-assets") == ({"name": "shop-assets", "location": "WEUR"}, True)


def test_ensure_r2_bucket_keeps_the_refusal_when_the_bucket_does_not_exist(client, requests_mock):
    requests_mock.post(BUCKETS, status_code=400, json=failed(10005, "The bucket name is not valid"))
    requests_mock.get(f"{BUCKETS}/Bad", status_code=404, json=failed(10006, "The specified bucket does not exist."))
    with pytest.raises(CloudflareApiError, match="The bucket name is not valid"):
        client.ensure_r2_bucket(ACCOUNT, "Bad")


def test_list_r2_buckets_follows_the_cursor(client, requests_mock):
    requests_mock.get(BUCKETS, [
        {"json": ok({"buckets": [{"name": "a"}, {"name": "b"}]}, result_info={"cursor": "2", "per_page": 2})},
        {"json": ok({"buckets": [{"name": "c"}]}, result_info={"per_page": 2})},
    ])
    assert [b["name"] for b in client.list_r2_buckets(ACCOUNT)] == ["a", "b", "c"]
    assert requests_mock.request_history[1].qs["cursor"] == ["2"]


def test_ensure_d1_database_returns_the_uuid_cloudflare_gives(client, requests_mock):
    requests_mock.post(DATABASES, json=ok({"uuid": UUID, "name": "shop-db"}))
    assert client.ensure_d1_database(ACCOUNT, "shop-db") == ({"uuid": UUID, "name": "shop-db"}, False)


def test_ensure_d1_database_adopts_only_the_exact_name_of_a_name_search(client, requests_mock):
    requests_mock.post(DATABASES, status_code=400, json=failed(7502, "A database with that name already exists"))
    requests_mock.get(DATABASES, json=ok([{"uuid": "u-staging", "name": "shop-db-staging"},
                                          {"uuid": UUID, "name": "shop-db"}]))
    assert client.ensure_d1_database(ACCOUNT, "shop-db") == ({"uuid": UUID, "name": "shop-db"}, True)
    assert requests_mock.last_request.qs["name"] == ["shop-db"]


def test_ensure_queue_searches_instead_of_reposting_after_a_lost_answer(client, requests_mock, fake_time):  # noqa: F811
    requests_mock.post(QUEUES, exc=requests.exceptions.ConnectionError("Connection aborted."))
    requests_mock.get(QUEUES, json=ok([{"queue_id": "q1", "queue_name": "shop-jobs"}]))
    assert client.ensure_queue(ACCOUNT, "shop-jobs") == ({"queue_id": "q1", "queue_name": "shop-jobs"}, False)
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]
    assert len(fake_time.sleeps) == 1


def test_ensure_queue_posts_again_only_while_the_name_is_free(client, requests_mock):
    requests_mock.post(QUEUES, [{"status_code": 500, "json": failed(10013, "internal")},
                                {"json": ok({"queue_id": "q1", "queue_name": "shop-jobs"})}])
    requests_mock.get(QUEUES, json=ok([]))
    assert client.ensure_queue(ACCOUNT, "shop-jobs") == ({"queue_id": "q1", "queue_name": "shop-jobs"}, False)
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET", "POST"]
    assert requests_mock.request_history[0].json() == {"queue_name": "shop-jobs"}


def test_a_created_queue_without_its_id_is_a_malformed_answer(client, requests_mock):
    requests_mock.post(QUEUES, json=ok({"queue_name": "shop-jobs"}))
    with pytest.raises(CloudflareApiError, match="queue_id"):
        client.ensure_queue(ACCOUNT, "shop-jobs")
