"""apply_plan against an in-memory client and a real StateStore on tmp_path."""
from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import pytest

from deployer.errors import CloudflareApiError, DeployerError, StalePlanError
from deployer.apply.executor import Step, apply_plan
from deployer.models import Manifest, Script
from deployer.plan.planner import make_plan
from deployer.state.store import StateStore
from tests.factories import ACCOUNT, NAMESPACE_ID, kv, namespace, plain, secret


class MemoryClient:
    """Records calls; ``fail_on`` makes the Nth upload (1-based) raise a Cloudflare error."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.fail_on = fail_on or set()
        self.uploads: list[tuple[str, dict, bytes]] = []
        self.deleted: list[str] = []
        self.deleted_secrets: list[tuple[str, str]] = []
        self.namespaces: dict[str, str] = {}
        self.calls = 0
        self.prepared: list[str] = []

    def ensure_kv_namespace(self, account_id: str, title: str) -> tuple[dict, bool]:
        adopted = title in self.namespaces
        self.namespaces.setdefault(title, hashlib.md5(title.encode()).hexdigest())
        return {"id": self.namespaces[title], "title": title}, adopted

    def rename_kv_namespace(self, account_id: str, namespace_id: str, title: str) -> None:
        pass

    def upload_script(self, name, metadata, content, *, account_id=None, zone_id=None) -> dict:
        self.calls += 1
        if self.calls in self.fail_on:
            raise CloudflareApiError("PUT", f"/accounts/{account_id}/workers/scripts/{name}", 400, ((10021, "bad"),))
        self.uploads.append((name, metadata, content))
        return {"id": name, "etag": f"etag-{len(self.uploads)}", "modified_on": "2026-11-27T00:00:00Z"}

    def prepare_upload(self, name, metadata, content, *, account_id=None, zone_id=None):  # type: ignore[no-untyped-def]
        # As CloudflareClient's: nothing is sent (or counted) until the returned function is called.
        self.prepared.append(name)
        return lambda: self.upload_script(name, metadata, content, account_id=account_id, zone_id=zone_id)

    def delete_script(self, name, *, account_id=None, zone_id=None) -> None:
        self.deleted.append(name)

    def delete_secret(self, account_id, script_name, secret_name) -> None:
        self.deleted_secrets.append((script_name, secret_name))


def _script(tmp_path: Path, name: str, content: str = "// v1", bindings=()) -> Script:
    path = tmp_path / f"{name}.js"
    path.write_text(content)
    return Script(name, path, hashlib.sha256(content.encode()).hexdigest(), tuple(bindings))


def _manifest(tmp_path: Path, *scripts: Script, namespaces=()) -> Manifest:
    return Manifest(tmp_path / "workers.yaml", ACCOUNT, None, tuple(namespaces), scripts)


def _apply(manifest: Manifest, store: StateStore, client: MemoryClient, parallelism: int = 4):
    with store.lock(command="test"):
        plan = make_plan(manifest, store.load())
        try:
            return apply_plan(plan, manifest, client, store, parallelism=parallelism)
        finally:
            store.commit()


def test_upload_metadata_is_the_seed_request(tmp_path: Path) -> None:
    script = _script(tmp_path, "my-worker", bindings=[kv("myNamespace")])
    client = MemoryClient()
    _apply(_manifest(tmp_path, script), StateStore(tmp_path / "state.json"), client)
    assert client.uploads == [
        (
            "my-worker",
            {"body_part": "script", "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": NAMESPACE_ID}]},
            b"// v1",
        )
    ]


def test_project_key_adds_the_ownership_tag_and_the_identity_is_recorded_with_the_account(tmp_path: Path) -> None:
    script = _script(tmp_path, "my-worker", bindings=[kv("myNamespace")])
    manifest = dataclasses.replace(_manifest(tmp_path, script), project="shop")
    store, client = StateStore(tmp_path / "state.json"), MemoryClient()
    with store.lock(command="test"):
        apply_plan(make_plan(manifest, store.load()), manifest, client, store, project="shop")
        store.commit()
    assert client.uploads[0][1] == {
        "body_part": "script",
        "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": NAMESPACE_ID}],
        "tags": ["deployer:project=shop"],
    }
    saved = StateStore(tmp_path / "state.json").load()
    assert (saved.project, saved.account_id, saved.serial) == ("shop", ACCOUNT, 2)  # one record each, as before


def test_progress_reports_start_and_done_for_each_change_and_failed_for_a_failure(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, _script(tmp_path, "a"), _script(tmp_path, "b"))
    store, events = StateStore(tmp_path / "state.json"), []
    with store.lock(command="test"), pytest.raises(DeployerError):
        try:
            apply_plan(make_plan(manifest, store.load()), manifest, MemoryClient(fail_on={2}), store,
                       parallelism=1, progress=events.append)
        finally:
            store.commit()
    assert [(e.step, e.message) for e in events] == [
        (Step.START, "script a"), (Step.DONE, "created script a"), (Step.START, "script b"), (Step.FAILED, "script b"),
    ]


def test_uploads_are_built_while_the_go_ahead_is_awaited_and_nothing_is_sent_or_recorded_before_it(
        tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, *(_script(tmp_path, f"s{n}") for n in range(4)))
    store, client = StateStore(tmp_path / "state.json"), MemoryClient()

    def go() -> None:  # the checks before apply, their script list still being read
        deadline = time.monotonic() + 5
        while len(client.prepared) < 2:
            assert time.monotonic() < deadline, "nothing was prepared while the go-ahead was awaited"
            time.sleep(0.001)
        assert client.uploads == [] and not (tmp_path / "state.json.journal").exists()

    with store.lock(command="test"):
        apply_plan(make_plan(manifest, store.load()), manifest, client, store, parallelism=2, go=go)
        store.commit()
    assert sorted(name for name, _, _ in client.uploads) == ["s0", "s1", "s2", "s3"]


def test_a_refused_go_ahead_sends_nothing_and_records_nothing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, _script(tmp_path, "a"), _script(tmp_path, "b"))
    store, client = StateStore(tmp_path / "state.json"), MemoryClient()

    def refuse() -> None:
        raise DeployerError("refusing to overwrite script(s) that exist in Cloudflare but not in the state: a")

    with store.lock(command="test"), pytest.raises(DeployerError, match="refusing to overwrite"):
        try:
            apply_plan(make_plan(manifest, store.load()), manifest, client, store, parallelism=2, go=refuse)
        finally:
            store.commit()
    assert client.uploads == [] and client.calls == 0
    assert not (tmp_path / "state.json").exists()  # not even the account was recorded


def test_namespace_is_created_first_and_its_id_bound(tmp_path: Path) -> None:
    script = _script(tmp_path, "w", bindings=[kv("CACHE", namespace="cache"), plain("ENV", "prod"), secret("KEY", "s3cret")])
    manifest = _manifest(tmp_path, script, namespaces=[namespace("cache", "my-cache")])
    client = MemoryClient()
    store = StateStore(tmp_path / "state.json")
    _apply(manifest, store, client)
    ns_id = client.namespaces["my-cache"]
    assert client.uploads[0][1]["bindings"] == [
        {"type": "kv_namespace", "name": "CACHE", "namespace_id": ns_id},
        {"type": "plain_text", "name": "ENV", "text": "prod"},
        {"type": "secret_text", "name": "KEY", "text": "s3cret"},
    ]
    state_text = (tmp_path / "state.json").read_text()
    assert ns_id in state_text and "s3cret" not in state_text


def test_second_apply_after_success_changes_nothing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, _script(tmp_path, "a", bindings=[secret("K", "v")]), _script(tmp_path, "b"))
    store = StateStore(tmp_path / "state.json")
    client = MemoryClient()
    _apply(manifest, store, client)
    plan = make_plan(manifest, StateStore(tmp_path / "state.json").load())
    assert not plan.has_changes
    assert len(client.uploads) == 2


def test_failure_records_what_succeeded_and_rerun_finishes_without_reuploading(tmp_path: Path) -> None:
    scripts = [_script(tmp_path, f"s{i}") for i in range(5)]
    manifest = _manifest(tmp_path, *scripts)
    store = StateStore(tmp_path / "state.json")
    failing = MemoryClient(fail_on={3})
    with pytest.raises(DeployerError, match=r"\[code: 10021\]"):
        _apply(manifest, store, failing, parallelism=1)
    saved = StateStore(tmp_path / "state.json").load()
    assert [s.name for s in saved.scripts] == ["s0", "s1"]
    second = MemoryClient()
    _apply(manifest, StateStore(tmp_path / "state.json"), second)
    assert sorted(name for name, _, _ in second.uploads) == ["s2", "s3", "s4"]


def test_removed_script_is_deleted_and_dropped_from_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    _apply(_manifest(tmp_path, _script(tmp_path, "a"), _script(tmp_path, "b")), store, MemoryClient())
    client = MemoryClient()
    _apply(_manifest(tmp_path, _script(tmp_path, "a")), StateStore(tmp_path / "state.json"), client)
    assert client.deleted == ["b"] and client.uploads == []
    assert [s.name for s in StateStore(tmp_path / "state.json").load().scripts] == ["a"]


def test_removed_secret_is_deleted_after_the_upload(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    _apply(_manifest(tmp_path, _script(tmp_path, "a", bindings=[secret("OLD", "x")])), store, MemoryClient())
    client = MemoryClient()
    _apply(_manifest(tmp_path, _script(tmp_path, "a")), StateStore(tmp_path / "state.json"), client)
    assert client.deleted_secrets == [("a", "OLD")]
    assert client.uploads[0][1]["bindings"] == []


def test_script_file_changed_after_planning_is_refused(tmp_path: Path) -> None:
    script = _script(tmp_path, "a")
    script.path.write_text("// edited after the plan")
    client = MemoryClient()
    with pytest.raises(DeployerError, match="changed after it was planned"):
        _apply(_manifest(tmp_path, script), StateStore(tmp_path / "state.json"), client)
    assert client.uploads == []


def test_existing_namespace_title_is_adopted(tmp_path: Path) -> None:
    client = MemoryClient()
    client.namespaces["my-cache"] = NAMESPACE_ID
    manifest = _manifest(tmp_path, namespaces=[namespace("cache", "my-cache")])
    store = StateStore(tmp_path / "state.json")
    _apply(manifest, store, client)
    assert StateStore(tmp_path / "state.json").load().resource("kv_namespace", "cache").id == NAMESPACE_ID


def test_stale_plan_error_is_a_deployer_error() -> None:
    assert issubclass(StalePlanError, DeployerError)
