"""Secret values and credentials never reach the terminal, whatever a server answers.

Each path by which outside text becomes a message is tried with a canary secret (and the API
token), as a real ``python -m deployer`` process (a fresh process: nothing registered by an
earlier test can hide a gap), with and without ``--debug``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from deployer.redact import MASK, register, scrub
from tests.fake_cloudflare import FAKE_TOKEN, FakeCloudflare
from tests.pg_server import PostgresServer

# Non-ASCII, a quote and a slash: the JSON and URL encodings of it differ from the raw text.
CANARY = 'Cän"ary/Zq8vX2-secret value'
FRAGMENT = "Zq8vX2"  # in every encoding of the canary


def _deployer(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployer", *args], check=False, cwd=project, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def _assert_nothing_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    shown = result.stdout + result.stderr
    for secret in (FRAGMENT, FAKE_TOKEN, *secrets):
        assert secret not in shown, f"{secret!r} leaked:\n{shown}"


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("kind, expected", [
    ("echo", "could not parse your request"),
    ("echo-text", "instead of JSON"),
    ("redirect", f"unexpected redirect to https://{MASK}@elsewhere.example/login"),
])
def test_a_server_that_repeats_the_request_never_shows_the_secret_or_the_token(
        project: Path, api: FakeCloudflare, kind: str, expected: str, debug: bool) -> None:
    api.fail("PUT", r"/visit-counter$", kind)
    args = ["apply", "--auto-approve", *(["--debug"] if debug else [])]
    result = _deployer(project, *args, env={**api.environ(), "COUNTER_API_KEY": CANARY})
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" in result.stderr if debug else result.stderr.count("Traceback") == 0
    _assert_nothing_secret(result)
    echoed = api.find("PUT", path_regex="/visit-counter$")[0]
    assert echoed.status in (302, 400)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_connection_error_never_shows_credentials_in_the_base_url(project: Path, debug: bool) -> None:
    base = f"http://ci:Base{FRAGMENT}pw@127.0.0.1:{_closed_port()}/client/v4"
    env = {"CLOUDFLARE_API_BASE_URL": base, "CLOUDFLARE_API_TOKEN": FAKE_TOKEN, "COUNTER_API_KEY": CANARY}
    result = _deployer(project, "apply", "--auto-approve", "--max-retry-wait", "0",
                       *(["--debug"] if debug else []), env=env)
    assert result.returncode == 1
    assert "could not connect to 127.0.0.1:" in result.stderr
    _assert_nothing_secret(result)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("password", ["canary/PGsecret", "canary?PGsecret#x", "can@ry/PGsecret"])
def test_a_postgres_password_with_unencoded_characters_is_never_shown(project: Path, password: str,
                                                                       debug: bool) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://deployer:{password}@127.0.0.1:{_closed_port()}/app"
    result = _deployer(project, "plan", "--state", url, *(["--debug"] if debug else []), env={})
    assert result.returncode == 1
    masked = f"postgresql://{MASK}@127.0.0.1:" if debug else "postgresql://deployer:***@127.0.0.1:"
    assert masked in result.stderr
    _assert_nothing_secret(result, "PGsecret", "canary", "can@ry")


def test_a_postgres_password_with_a_slash_reaches_the_server_whole(pg_database: str, project: Path,
                                                                   postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as admin:
        admin.execute("CREATE ROLE slash_user LOGIN PASSWORD 'pa/ss?w#rd'")
    url = f"postgresql://slash_user:pa/ss?w#rd@127.0.0.1:{postgres_server.port}/{pg_database}"
    result = _deployer(project, "plan", "--state", url, env={})
    assert result.returncode == 0, result.stderr
    assert "pa/ss" not in result.stdout + result.stderr


# --- the scrubber itself ---------------------------------------------------------------------


def test_scrub_masks_every_encoding_a_server_may_echo() -> None:
    value = 'Wø"rd/with space-Kx91'
    register(value)
    body = json.dumps({"text": value})
    for text in (value, body, json.dumps(body), quote(body), quote(value, safe=""), quote(json.dumps(value)[1:-1])):
        assert "Kx91" not in scrub(f"error: {text}"), text


def test_scrub_masks_user_and_password_of_any_url() -> None:
    assert scrub("see https://u:p@w/rd@example.com/x and postgres://a:b@h/db") == \
        f"see https://{MASK}@example.com/x and postgres://{MASK}@h/db"
    assert scrub("https://example.com/a@b") == "https://example.com/a@b"


def test_a_secret_read_from_the_manifest_is_registered_as_it_is_read() -> None:
    from deployer.models import Secret

    Secret("registered-on-creation-Vy72")
    assert "Vy72" not in scrub("server said: registered-on-creation-Vy72")
