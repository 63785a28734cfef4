"""Guards for every test: no real Cloudflare credentials, and no way to reach the real API."""
from __future__ import annotations

import os
import shutil
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


from tests.factories import NAMESPACE_ID  # noqa: E402
from tests.fake_cloudflare import FakeCloudflare, fake_cloudflare  # noqa: E402,F401  (the loopback fake API fixture)
from tests.pg_server import pg_database, pg_url, postgres_server  # noqa: E402,F401  (throwaway PostgreSQL)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of sample-project/ to plan and apply end to end (test modules with a project of
    their own define their own ``project``)."""
    target = tmp_path / "project"
    shutil.copytree(Path(__file__).resolve().parent.parent / "sample-project", target)
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
