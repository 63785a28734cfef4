"""The check apply makes before its first change (deployer.apply.guard): pure, over a script list."""
from __future__ import annotations

import pytest

from deployer.apply.guard import CachedReads, check_before_apply, other_owners, refuse_other_owner, unrecorded_creates
from deployer.errors import DeployerError
from deployer.models import Action, Change, Plan
from tests.factories import make_manifest, make_script, make_state, recorded

SCRIPT = "script"


class ListingClient:
    def __init__(self, listed: list[dict], zone_script: bool = False) -> None:
        self.listed, self.zone_script, self.calls = listed, zone_script, []

    def list_scripts(self, account_id: str) -> list[dict]:
        self.calls.append(("list", account_id))
        return self.listed

    def list_kv_namespaces(self, account_id: str) -> list[dict]:
        return []

    def get_script_settings(self, account_id: str, name: str) -> dict:
        self.calls.append(("settings", name))
        return {"tags": []}

    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]:
        return "application/javascript", b""

    def zone_script_exists(self, zone_id: str) -> bool:
        self.calls.append(("zone", zone_id))
        return self.zone_script


def test_only_creates_the_state_does_not_hold_are_checked() -> None:
    state = make_state(recorded(make_script("kept")))
    plan = Plan((Change(SCRIPT, "new", Action.CREATE), Change(SCRIPT, "kept", Action.CREATE),
                 Change(SCRIPT, "other", Action.UPDATE), Change("kv_namespace", "ns", Action.CREATE)))
    assert unrecorded_creates(plan, state) == ["new"]  # 'kept' was deleted outside: nothing to replace


def test_no_request_when_nothing_unrecorded_is_created() -> None:
    client = ListingClient([{"id": "a"}])
    check_before_apply(Plan((Change(SCRIPT, "a", Action.UPDATE),)), make_state(), make_manifest(), client)
    assert client.calls == []


def test_each_existing_script_is_named_with_its_import_command_and_owner() -> None:
    client = ListingClient([{"id": "a"}, {"id": "b", "tags": ["deployer:project=billing", "x"]}, {"id": "z"}])
    plan = Plan(tuple(Change(SCRIPT, name, Action.CREATE) for name in ("a", "b", "c")))
    with pytest.raises(DeployerError) as raised:
        check_before_apply(plan, make_state(), make_manifest(), client)
    assert str(raised.value).splitlines() == [
        "refusing to overwrite script(s) that exist in Cloudflare but not in the state: a, b. Adopt them with "
        "'deployer import NAME' (then plan again), or pass --allow-overwrite",
        "deployer import a",
        "deployer import b   (tagged by project billing: import and overwrite both need --allow-overwrite)",
    ]
    assert client.calls == [("list", make_manifest().account_id)]


def test_zone_mode_asks_the_zone_whether_it_runs_a_script() -> None:
    plan = Plan((Change(SCRIPT, "w", Action.CREATE),))
    zone = make_manifest(account_id=None, zone_id="f" * 32)
    check_before_apply(plan, make_state(account_id=None), zone, ListingClient([], zone_script=False))
    with pytest.raises(DeployerError, match=f"the script that zone {'f' * 32} already runs"):
        check_before_apply(plan, make_state(account_id=None), zone, ListingClient([], zone_script=True))


def test_owner_tags_name_other_projects_only() -> None:
    tags = ["deployer:project=shop", "deployer:project=billing", "team:x", 3]
    assert other_owners(tags, "shop") == ("billing",)
    assert other_owners(tags, None) == ("billing", "shop")
    assert other_owners(None, "shop") == ()
    refuse_other_owner("w", ["deployer:project=shop"], "shop", "import")
    with pytest.raises(DeployerError, match="refusing to import script w: it is tagged as project 'billing''s"):
        refuse_other_owner("w", ["deployer:project=billing"], "shop", "import")


def test_cached_reads_ask_once_per_account_and_script() -> None:
    client = ListingClient([{"id": "a"}])
    reads = CachedReads(client)
    assert reads.list_scripts("acc") is reads.list_scripts("acc")
    reads.get_script_settings("acc", "a")
    reads.get_script_settings("acc", "a")
    assert client.calls == [("list", "acc"), ("settings", "a")]
