"""Choosing the state backend and naming the state: pure, no server needed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deployer.state.backend import (
    DEFAULT_SCHEMA,
    mask_url,
    open_store,
    parse_postgres_url,
    state_name,
)
from deployer.errors import DeployerError, StateError
from deployer.state.store import StateStore

MANIFEST = Path("/srv/repos/shop-api/workers.yaml")
URL = "postgresql://ci:s3cr%2Ft@db.internal:5432/deploys"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ci:hunter2@db:5432/app", "postgresql://ci:***@db:5432/app"),
        ("postgresql://ci@db/app?schema=x", "postgresql://ci@db/app?schema=x"),
        ("postgres://ci:p%40ss@h1,h2/app?sslmode=require", "postgres://ci:***@h1,h2/app?sslmode=require"),
        ("postgresql://db/app?user=ci&password=hunter2", "postgresql://db/app?user=ci&password=***"),
        ("postgresql://ci:hunter2@db", "postgresql://ci:***@db"),
    ],
)
def test_url_is_shown_with_the_password_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert parse_postgres_url(url).shown == shown


def test_schema_parameter_is_ours_and_the_rest_goes_to_libpq() -> None:
    target = parse_postgres_url("postgresql://ci:pw@db/app?sslmode=require&schema=team_a")
    assert target.schema == "team_a"
    assert target.conninfo == "postgresql://ci:pw@db/app?sslmode=require"


def test_default_schema_is_deployer() -> None:
    assert DEFAULT_SCHEMA == "deployer"
    assert parse_postgres_url("postgresql://db/app").schema == "deployer"


def test_empty_schema_is_refused() -> None:
    with pytest.raises(StateError, match="invalid schema ''"):
        parse_postgres_url("postgresql://db/app?schema=")


def test_scrub_removes_the_password_in_any_spelling() -> None:
    target = parse_postgres_url(URL)
    text = f"failed for {URL}: password s3cr/t or s3cr%2Ft rejected"
    scrubbed = target.scrub(text)
    assert "s3cr" not in scrubbed
    assert "postgresql://ci:***@db.internal:5432/deploys" in scrubbed
    assert "s3cr" not in repr(target)


@pytest.mark.parametrize(
    ("environment", "explicit", "expected"),
    [(None, None, "shop-api/workers.yaml"), ("staging", None, "shop-api/workers.yaml.staging"),
     ("staging", "Team A/prod", "Team A/prod")],
)
def test_state_outside_a_repository_is_named_after_the_manifest_directory_and_file(
    environment: str | None, explicit: str | None, expected: str
) -> None:
    assert state_name(MANIFEST, environment, explicit) == expected


def test_state_is_named_after_the_project_key_when_the_manifest_sets_one() -> None:
    assert state_name(MANIFEST, None, None, "shop") == "shop"
    assert state_name(MANIFEST, "staging", None, "shop") == "shop.staging"
    assert state_name(MANIFEST, "staging", "explicit", "shop") == "explicit"


def test_empty_state_name_is_refused() -> None:
    with pytest.raises(StateError, match="--state-name must not be empty"):
        state_name(MANIFEST, None, " ")


def test_state_file_is_the_default() -> None:
    store = open_store(MANIFEST, "prod", None, None, {})
    assert isinstance(store, StateStore)
    assert store.path == MANIFEST.parent / ".deployer" / "state.prod.json"


def test_state_url_variable_selects_postgresql() -> None:
    store = open_store(MANIFEST, None, None, None, {"DEPLOYER_STATE_URL": URL})
    assert store.description == "'shop-api/workers.yaml' in postgresql://ci:***@db.internal:5432/deploys"


def test_state_option_beats_the_variable(tmp_path: Path) -> None:
    store = open_store(MANIFEST, None, str(tmp_path / "s.json"), None, {"DEPLOYER_STATE_URL": URL})
    assert isinstance(store, StateStore) and store.path == tmp_path / "s.json"
    store = open_store(MANIFEST, None, "postgresql://other@h/db?schema=s", "n", {"DEPLOYER_STATE_URL": URL})
    assert store.description == "'n' in postgresql://other@h/db?schema=s"


def test_state_url_variable_must_be_a_url() -> None:
    with pytest.raises(StateError, match="DEPLOYER_STATE_URL must be a postgresql:// URL, got 'state.json'"):
        open_store(MANIFEST, None, None, None, {"DEPLOYER_STATE_URL": "state.json"})


def test_state_name_with_a_state_file_is_refused() -> None:
    with pytest.raises(StateError, match="--state-name names a state in PostgreSQL"):
        open_store(MANIFEST, None, None, "shop", {})


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes 'import psycopg' fail
    with pytest.raises(DeployerError, match=r"pip install 'deployer\[postgres\]'"):
        open_store(MANIFEST, None, URL, None, {})
