"""Planning static assets, pure: the state's digest decides, the kept file list counts."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deployer.kinds.assets import assets_state, make_assets
from deployer.models import Action, AssetFile, AssetsChange, Reason, Script
from deployer.plan.planner import make_plan
from tests.factories import make_manifest, make_script, make_state, recorded

PUBLIC = Path("/project/public")


def _assets(files: dict[str, str], **config: object) -> Script:
    listed = [AssetFile(path, PUBLIC / path.lstrip("/"), digest, 10) for path, digest in files.items()]
    return dataclasses.replace(make_script("site"), assets=make_assets(PUBLIC, listed, config, {}))


BEFORE = {"/index.html": "a" * 32, "/a.css": "b" * 32, "/old.js": "c" * 32}


def _plan(now: Script, before: Script | None, *, kept: bool = True):  # type: ignore[no-untyped-def]
    state = make_state(*([] if before is None else [dataclasses.replace(
        recorded(before), assets=assets_state(before.assets) if before.assets else None)]))
    lists = {before.assets.manifest_sha256: {f.path: f.hash for f in before.assets.files}} \
        if kept and before is not None and before.assets is not None else {}
    return make_plan(make_manifest(now), state, asset_lists=lists).changes[0]


def test_unchanged_assets_are_a_no_op() -> None:
    change = _plan(_assets(BEFORE), _assets(BEFORE))
    assert change.action is Action.NO_OP and change.assets == AssetsChange(3, 0, 0, 0, False, unchanged=True)


@pytest.mark.parametrize(("kept", "expected"), [
    (True, AssetsChange(3, 1, 1, 1)),
    (False, AssetsChange(3)),  # only the digest is known: counts unknown
])
def test_changed_files_are_an_update_for_assets_counted_when_the_list_is_kept(
        kept: bool, expected: AssetsChange) -> None:
    now = {"/index.html": "a" * 32, "/a.css": "d" * 32, "/new.js": "e" * 32}
    change = _plan(_assets(now), _assets(BEFORE), kept=kept)
    assert change.action is Action.UPDATE and change.reasons == (Reason.ASSETS,) and change.assets == expected


def test_a_config_change_alone_is_an_update_for_assets() -> None:
    change = _plan(_assets(BEFORE, html_handling="none"), _assets(BEFORE))
    assert change.reasons == (Reason.ASSETS,) and change.assets == AssetsChange(3, 0, 0, 0, config_changed=True)


def test_new_and_dropped_assets() -> None:
    assert _plan(_assets(BEFORE), None).assets == AssetsChange(3, 3, 0, 0)
    dropped = _plan(make_script("site"), _assets(BEFORE))
    assert dropped.reasons == (Reason.ASSETS,) and dropped.assets == AssetsChange(0, 0, 0, 3)


def test_a_script_without_assets_plans_as_before() -> None:
    assert _plan(make_script("site"), make_script("site")).assets is None
