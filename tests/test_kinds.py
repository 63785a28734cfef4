"""Every binding kind in the registry, through every stage: manifest -> metadata sent ->
state recorded -> read back from Cloudflare -> shown. A kind added to the registry without an
example here fails ``test_every_registered_kind_has_an_example``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.errors import ManifestError
from deployer.kinds import schema as kinds_schema
from deployer.kinds.registry import BINDING_KINDS, binding_kind
from deployer.manifest.load import load_manifest
from deployer.remote import binding_mismatches
from deployer.state.document import state_from_json, state_to_json
from tests.factories import ACCOUNT, make_state, recorded

NAMESPACE_ID = "0f2ac74b498b48028cb68387c421e279"
DATABASE_ID = "0c3a4f8e-5b2d-4e3f-9a1b-2c3d4e5f6a7b"

# type -> (the binding as written in workers.yaml, the binding as sent in metadata.bindings)
EXAMPLES: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "kv_namespace": [
        ({"name": "KV", "namespace_id": NAMESPACE_ID},
         {"type": "kv_namespace", "name": "KV", "namespace_id": NAMESPACE_ID}),
    ],
    "plain_text": [
        ({"name": "MODE", "text": "fast"}, {"type": "plain_text", "name": "MODE", "text": "fast"}),
        ({"name": "EMPTY", "text": ""}, {"type": "plain_text", "name": "EMPTY", "text": ""}),
    ],
    "secret_text": [
        ({"name": "TOKEN", "text": "s3cr3t"}, {"type": "secret_text", "name": "TOKEN", "text": "s3cr3t"}),
    ],
    "r2_bucket": [
        ({"name": "ASSETS", "bucket_name": "shop-assets"},
         {"type": "r2_bucket", "name": "ASSETS", "bucket_name": "shop-assets"}),
        ({"name": "EU", "bucket_name": "shop-eu", "jurisdiction": "eu"},
         {"type": "r2_bucket", "name": "EU", "bucket_name": "shop-eu", "jurisdiction": "eu"}),
        ({"name": "GOV", "bucket_name": "shop-gov", "jurisdiction": "fedramp-high"},
         {"type": "r2_bucket", "name": "GOV", "bucket_name": "shop-gov", "jurisdiction": "fedramp-high"}),
    ],
    "d1": [
        ({"name": "DB", "id": DATABASE_ID}, {"type": "d1", "name": "DB", "id": DATABASE_ID}),
    ],
    "queue": [
        ({"name": "JOBS", "queue_name": "shop-jobs"}, {"type": "queue", "name": "JOBS", "queue_name": "shop-jobs"}),
        ({"name": "LATER", "queue_name": "shop-jobs", "delivery_delay": 30},
         {"type": "queue", "name": "LATER", "queue_name": "shop-jobs", "delivery_delay": 30}),
    ],
    "service": [
        ({"name": "AUTH", "service": "auth-worker"}, {"type": "service", "name": "AUTH", "service": "auth-worker"}),
        ({"name": "ADMIN", "service": "auth-worker", "entrypoint": "AdminApi", "environment": "production"},
         {"type": "service", "name": "ADMIN", "service": "auth-worker", "entrypoint": "AdminApi",
          "environment": "production"}),
    ],
    "durable_object_namespace": [
        ({"name": "COUNTER", "class_name": "Counter"},
         {"type": "durable_object_namespace", "name": "COUNTER", "class_name": "Counter"}),
        ({"name": "ROOMS", "class_name": "Room", "script_name": "chat-worker"},
         {"type": "durable_object_namespace", "name": "ROOMS", "class_name": "Room", "script_name": "chat-worker"}),
    ],
    "analytics_engine": [
        ({"name": "EVENTS", "dataset": "shop_events"},
         {"type": "analytics_engine", "name": "EVENTS", "dataset": "shop_events"}),
    ],
    "json": [
        ({"name": "CONFIG", "json": {"limits": [1, 2.5], "beta": None, "name": "shop"}},
         {"type": "json", "name": "CONFIG", "json": {"limits": [1, 2.5], "beta": None, "name": "shop"}}),
        ({"name": "FLAG", "json": True}, {"type": "json", "name": "FLAG", "json": True}),
    ],
    "version_metadata": [({"name": "VERSION"}, {"type": "version_metadata", "name": "VERSION"})],
    "ai": [({"name": "AI"}, {"type": "ai", "name": "AI"})],
    "browser": [({"name": "BROWSER"}, {"type": "browser", "name": "BROWSER"})],
    "hyperdrive": [
        ({"name": "PG", "id": "a76a99bc342644deb02c38d66082262a"},
         {"type": "hyperdrive", "name": "PG", "id": "a76a99bc342644deb02c38d66082262a"}),
    ],
    "vectorize": [
        ({"name": "SEARCH", "index_name": "products"},
         {"type": "vectorize", "name": "SEARCH", "index_name": "products"}),
    ],
    "mtls_certificate": [
        ({"name": "CERT", "certificate_id": "efwu2n6s-q69d-2kr9-184j-4913e8h391k6"},
         {"type": "mtls_certificate", "name": "CERT", "certificate_id": "efwu2n6s-q69d-2kr9-184j-4913e8h391k6"}),
    ],
    "dispatch_namespace": [
        ({"name": "TENANTS", "namespace": "customers"},
         {"type": "dispatch_namespace", "name": "TENANTS", "namespace": "customers"}),
        ({"name": "SANDBOX", "namespace": "customers",
          "outbound": {"worker": {"service": "egress"}, "params": [{"name": "customer"}]}},
         {"type": "dispatch_namespace", "name": "SANDBOX", "namespace": "customers",
          "outbound": {"worker": {"service": "egress"}, "params": [{"name": "customer"}]}}),
    ],
    "secrets_store_secret": [
        ({"name": "STRIPE", "store_id": "8f7a1cdced6342c18d223ece462fd88d", "secret_name": "stripe-key"},
         {"type": "secrets_store_secret", "name": "STRIPE", "store_id": "8f7a1cdced6342c18d223ece462fd88d",
          "secret_name": "stripe-key"}),
    ],
    "send_email": [
        ({"name": "MAIL"}, {"type": "send_email", "name": "MAIL"}),
        ({"name": "ALERTS", "destination_address": "ops@example.com"},
         {"type": "send_email", "name": "ALERTS", "destination_address": "ops@example.com"}),
        ({"name": "NEWS", "allowed_destination_addresses": ["a@example.com", "b@example.com"],
          "allowed_sender_addresses": ["news@example.com"]},
         {"type": "send_email", "name": "NEWS", "allowed_destination_addresses": ["a@example.com", "b@example.com"],
          "allowed_sender_addresses": ["news@example.com"]}),
    ],
    "assets": [({"name": "ASSETS"}, {"type": "assets", "name": "ASSETS"})],
}
# Kinds not written in bindings: the script keys that make them, from the example's fields.
MADE_BY = {"assets": lambda written: {"assets": {"directory": "public", "binding": written["name"]}}}
CASES = [(kind, written, sent) for kind, examples in EXAMPLES.items() for written, sent in examples]
IDS = [f"{kind}-{written['name']}" for kind, written, _ in CASES]


def _load(tmp_path: Path, kind: str, written: dict[str, Any]) -> Any:
    (tmp_path / "w.js").write_text("addEventListener('fetch', () => {})\n")
    (tmp_path / "public").mkdir(exist_ok=True)
    (tmp_path / "public" / "index.html").write_text("<h1>shop</h1>\n")
    made = MADE_BY[kind](written) if kind in MADE_BY else {"bindings": [{"type": kind, **written}]}
    doc = {"version": 1, "account_id": ACCOUNT, "scripts": {"w": {"path": "w.js", **made}}}
    path = tmp_path / "workers.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_manifest(path, {}).scripts[0]


def _no_resources(section: str, key: str) -> str | None:
    raise AssertionError(f"no reference expected, got {section}.{key}")


def test_every_registered_kind_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(BINDING_KINDS)


@pytest.mark.parametrize(("kind", "written", "sent"), CASES, ids=IDS)
def test_binding_is_sent_exactly_in_cloudflares_shape(tmp_path: Path, kind: str, written: dict[str, Any],
                                                      sent: dict[str, Any]) -> None:
    binding = _load(tmp_path, kind, written).bindings[0]
    assert binding_kind(kind).metadata(binding, _no_resources) == sent


@pytest.mark.parametrize(("kind", "written", "sent"), CASES, ids=IDS)
def test_recorded_binding_survives_the_state_file_without_any_secret(
    tmp_path: Path, kind: str, written: dict[str, Any], sent: dict[str, Any]
) -> None:
    script = _load(tmp_path, kind, written)
    state = make_state(recorded(script))
    text = json.dumps(state_to_json(state))
    assert state_from_json(json.loads(text), "state.json") == state
    if binding_kind(kind).secret is not None:
        assert "s3cr3t" not in text


@pytest.mark.parametrize(("kind", "written", "sent"), CASES, ids=IDS)
def test_binding_read_back_from_cloudflare_equals_what_was_recorded(
    tmp_path: Path, kind: str, written: dict[str, Any], sent: dict[str, Any]
) -> None:
    script = _load(tmp_path, kind, written)
    kind_ = binding_kind(kind)
    # Cloudflare's settings never return a secret's value.
    reported = {k: v for k, v in sent.items() if kind_.secret is None or k != kind_.secret.name}
    assert kind_.from_remote(reported) == recorded(script).bindings[0]
    assert binding_mismatches([sent], [reported]) == []


@pytest.mark.parametrize(("kind", "written", "sent"), CASES, ids=IDS)
def test_a_changed_field_in_cloudflare_is_a_verify_mismatch_naming_the_binding(
    tmp_path: Path, kind: str, written: dict[str, Any], sent: dict[str, Any]
) -> None:
    changed = {k: v for k, v in sent.items() if k not in ("type", "name")}
    if not changed or binding_kind(kind).secret is not None:
        pytest.skip(f"{kind} has no field Cloudflare reports back")
    key = next(iter(changed))
    problems = binding_mismatches([sent], [{**sent, key: "other"}])
    assert len(problems) == 1 and problems[0].startswith(f"binding {sent['name']} was sent with {key} ")


def test_r2_bucket_binding_is_described_by_its_bucket_and_jurisdiction(tmp_path: Path) -> None:
    script = _load(tmp_path, "r2_bucket", {"name": "EU", "bucket_name": "shop-eu", "jurisdiction": "eu"})
    deployed = recorded(script).bindings[0]
    assert binding_kind("r2_bucket").describe(deployed) == "r2_bucket shop-eu (jurisdiction eu)"


def test_r2_bucket_binding_without_bucket_name_or_bucket_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, "r2_bucket", {"name": "ASSETS", "jurisdiction": "mars"})
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{tmp_path / 'workers.yaml'}:7:7: scripts.w.bindings[0]: a r2_bucket binding needs bucket_name or bucket",
        (f"{tmp_path / 'workers.yaml'}:9:21: scripts.w.bindings[0].jurisdiction: 'mars' is not a valid "
         "jurisdiction; expected one of: eu, fedramp, fedramp-high"),
    ]


@pytest.mark.parametrize(("kind", "written", "section", "resolved", "sent"), [
    ("r2_bucket", {"name": "B", "bucket": "assets"}, "r2_buckets", "shop-assets", {"bucket_name": "shop-assets"}),
    ("d1", {"name": "DB", "database": "main"}, "d1_databases", DATABASE_ID, {"id": DATABASE_ID}),
    ("queue", {"name": "Q", "queue": "jobs"}, "queues", "shop-jobs", {"queue_name": "shop-jobs"}),
    ("service", {"name": "S", "script": "auth"}, "scripts", "auth-staging", {"service": "auth-staging"}),
    ("durable_object_namespace", {"name": "D", "class_name": "Room", "script": "chat"}, "scripts", "chat-staging",
     {"class_name": "Room", "script_name": "chat-staging"}),
])
def test_a_reference_is_sent_as_the_field_it_fills(kind: str, written: dict[str, Any], section: str, resolved: str,
                                                    sent: dict[str, Any]) -> None:
    binding = binding_kind(kind).build(written["name"], written)
    key = next(v for k, v in written.items() if k in ("bucket", "database", "queue", "script"))

    def resolve(wanted_section: str, wanted_key: str) -> str | None:
        return resolved if (wanted_section, wanted_key) == (section, key) else None

    assert binding_kind(kind).metadata(binding, resolve) == {"type": kind, "name": written["name"], **sent}


def test_only_bindings_to_scripts_name_scripts() -> None:
    service = binding_kind("service").from_remote({"type": "service", "name": "S", "service": "auth"})
    durable = binding_kind("durable_object_namespace").from_remote(
        {"type": "durable_object_namespace", "name": "D", "class_name": "Room"})
    text = binding_kind("plain_text").from_remote({"type": "plain_text", "name": "T", "text": "auth"})
    assert [binding_kind(b.type).scripts_named(b) for b in (service, durable, text)] == [
        frozenset({"auth"}), frozenset(), frozenset()]


@pytest.mark.parametrize(("kind", "written", "shown"), [
    ("d1", {"name": "DB", "id": DATABASE_ID}, f"d1 {DATABASE_ID}"),
    ("service", {"name": "S", "service": "auth", "entrypoint": "Admin"}, "service auth (entrypoint Admin)"),
    ("json", {"name": "C", "json": {"b": [1], "a": None}}, 'json {"a": null, "b": [1]}'),
    ("send_email", {"name": "E", "allowed_sender_addresses": ["a@example.com"]}, 'send_email ["a@example.com"]'),
    ("ai", {"name": "AI"}, "ai"),
])
def test_plans_describe_each_binding_in_one_line(tmp_path: Path, kind: str, written: dict[str, Any],
                                                 shown: str) -> None:
    deployed = recorded(_load(tmp_path, kind, written)).bindings[0]
    assert binding_kind(kind).describe(deployed) == shown


def test_schema_files_are_what_the_registry_generates() -> None:
    assert kinds_schema.main(["--check"]) == 0
