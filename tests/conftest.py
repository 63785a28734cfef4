"""Guards for every test: no real Cloudflare credentials, and no way to reach the real API."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


def _closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def no_real_cloudflare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove real credentials and point the API at a closed port (pre-commit's home-guard idea)."""
    import os

    for name in list(os.environ):
        if name.startswith(("CLOUDFLARE_", "CF_", "DEPLOYER_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", f"http://127.0.0.1:{_closed_loopback_port()}/client/v4")


@pytest.fixture(autouse=True)
def nothing_registered_as_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts, as a fresh process does, with no secret registered for scrubbing: a
    short secret of one test ("one") must not mask words in the messages another test reads."""
    from deployer import redact

    monkeypatch.setattr(redact, "_values", set())
    monkeypatch.setattr(redact, "_pattern", None)


from tests.factories import NAMESPACE_ID, sample_with_triggers  # noqa: E402
from tests.fake_cloudflare import FakeCloudflare, fake_cloudflare  # noqa: E402,F401  (the loopback fake API fixture)
from tests.pg_server import pg_database, pg_url, postgres_server  # noqa: E402,F401  (throwaway PostgreSQL)


SAMPLE_TRIGGERS = (
    # Round two's resources and module worker (tests/test_cli_triggers.py applies the whole sample).
'r2_buckets:                            # owned like namespaces: created (or adopted) by name\n  assets:\n    name: sample-project-assets\nd1_databases:\n  main:\n    name: sample-project-db\nqueues:\n  jobs:\n    name: sample-project-jobs\n',
    '\n  # A module worker with round two\'s bindings: owned resources by key, another worker of this\n  # project (uploaded first), a Durable Object class with its migration, and a queue consumer.\n  shop:\n    format: modules\n    path: shop/index.js\n    compatibility_date: "2024-09-23"\n    bindings:\n      - {type: r2_bucket, name: ASSETS, bucket: assets}\n      - {type: d1, name: DB, database: main}\n      - {type: queue, name: JOBS, queue: jobs}\n      - {type: service, name: COUNTER, script: visit-counter}\n      - {type: durable_object_namespace, name: CARTS, class_name: Cart}\n    durable_objects:\n      migrations:\n        - {tag: v1, new_sqlite_classes: [Cart]}\n    queue_consumers:\n      - {queue: jobs, max_batch_size: 10}\n',
    """    # Triggers, attached after the upload. zone_name is looked up at apply (plan needs no network).
    routes:
      - {pattern: "sample.example.com/*", zone_name: example.com}
    crons: ["*/30 * * * *"]   # the whole set; [] removes them all
    workers_dev: false        # reached through its route only
""",
    """      my-worker:
        routes:                  # its own host: two environments never take a route from each other
          - {pattern: "staging.sample.example.com/*", zone_name: example.com}
""",
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of sample-project/ to plan and apply end to end (test modules with a project of
    their own define their own ``project``), without my-worker's triggers: the tests using it
    count the changes and requests of scripts and namespaces. ``sample_with_triggers`` is
    the whole sample (tests/test_cli_triggers.py applies it)."""
    target = sample_with_triggers(tmp_path)
    manifest = target / "workers.yaml"
    text = manifest.read_text()
    for block in SAMPLE_TRIGGERS:
        assert block in text, "sample-project/workers.yaml changed: update SAMPLE_TRIGGERS in tests/conftest.py"
        text = text.replace(block, "")
    manifest.write_text(text)
    return target


@pytest.fixture
def api(fake_cloudflare: FakeCloudflare) -> FakeCloudflare:
    """The fake API, with the namespace the seed's script binds by id already in the account."""
    fake_cloudflare.kv_namespaces()[NAMESPACE_ID] = "the seed's namespace"
    return fake_cloudflare


# Property tests: local runs explore new examples every time; CI (.ci/run sets
# HYPOTHESIS_PROFILE=ci) replays the same derandomized examples, so a green commit stays green.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("dev")
_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
