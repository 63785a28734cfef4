"""Pure parts of reading the deployed side back: refresh records and the verify comparison."""
from __future__ import annotations

import dataclasses

from deployer.models import Drift
from deployer.plan.planner import RemoteScript, RemoteSnapshot
from deployer.remote import binding_mismatches, refresh_state
from tests.factories import NAMESPACE_ID, make_script, make_state, namespace_state, recorded, resource_ids

OTHER_ID = "ffffffffffffffffffffffffffffffff"


def test_refresh_takes_the_remote_etags_and_drops_what_is_gone() -> None:
    a = dataclasses.replace(recorded(make_script("a")), etag="1", modified_on="t1")
    b = dataclasses.replace(recorded(make_script("b")), etag="1", modified_on="t1")
    c = recorded(make_script("c"))
    state = make_state(a, b, c, namespaces=(namespace_state("cache", "t", NAMESPACE_ID),))
    remote = RemoteSnapshot(
        {"a": RemoteScript("a", "2", "t2"), "b": RemoteScript("b", "1", "t1")}, resource_ids({OTHER_ID})
    )
    found = refresh_state(state, remote)
    # Only the list was read for a: its etag is taken, and nothing more is known of what changed.
    assert found.updated == ((dataclasses.replace(a, etag="2", modified_on="t2"), (Drift("etag"),)),)
    assert (found.gone_scripts, found.gone_resources, found.unchanged) == (("c",), (("kv_namespace", "cache"),), 1)


def test_verify_names_each_binding_that_differs_and_never_shows_a_secret() -> None:
    sent = [
        {"type": "kv_namespace", "name": "CACHE", "namespace_id": NAMESPACE_ID},
        {"type": "plain_text", "name": "ENV", "text": "prod"},
        {"type": "secret_text", "name": "KEY", "text": "s3cret"},
        {"type": "plain_text", "name": "GONE", "text": "x"},
        {"type": "plain_text", "name": "KIND", "text": "x"},
    ]
    deployed = [
        {"type": "kv_namespace", "name": "CACHE", "namespace_id": OTHER_ID},
        {"type": "plain_text", "name": "ENV", "text": "staging"},
        {"type": "secret_text", "name": "KEY"},
        {"type": "secret_text", "name": "KIND"},
        {"type": "plain_text", "name": "EXTRA", "text": "y"},
    ]
    assert binding_mismatches(sent, deployed) == [
        f"binding CACHE was sent with namespace_id {NAMESPACE_ID} but Cloudflare has {OTHER_ID}",
        'binding ENV was sent with text "prod" but Cloudflare has "staging"',
        "binding GONE (plain_text) was sent but Cloudflare does not have it",
        "binding KIND was sent as plain_text but Cloudflare has it as secret_text",
        "binding EXTRA (plain_text) is in Cloudflare but was not sent",
    ]
    assert binding_mismatches(sent[:3], deployed[:1] + deployed[2:3] + [sent[1]]) == [
        f"binding CACHE was sent with namespace_id {NAMESPACE_ID} but Cloudflare has {OTHER_ID}"
    ]
