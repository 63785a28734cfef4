"""StateStore on a real directory: the document, the journal, atomic commits and the lock.

No network and no timed assertions: waits are bounded by events, never measured.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from deployer.errors import DeployerError, LockHeldError, StateError
from deployer.models import DeployedBinding, ScriptState, State
from tests.factories import deployed_kv, deployed_plain, deployed_secret, namespace_state
from deployer.state.store import (
    STATE_FORMAT_VERSION,
    StateStore,
    default_state_path,
    state_from_json,
    state_to_json,
)

REPO = Path(__file__).resolve().parents[1]
SHA_A = "a" * 64
SHA_B = "b" * 64


def make_script(name: str = "my-worker", sha: str = SHA_A, **overrides: Any) -> ScriptState:
    fields: dict[str, Any] = {
        "bindings": (
            deployed_kv("myNamespace", "0f2ac74b"),
            deployed_plain("ENVIRONMENT", "production"),
            deployed_secret("API_KEY"),
        ),
        "secret_fingerprints": (("API_KEY", "scrypt$n=2048,r=8,p=1$c2FsdA==$ZGlnZXN0"),),
        "etag": "etag-1",
        "modified_on": "2026-01-02T03:04:05Z",
    }
    fields.update(overrides)
    return ScriptState(name=name, content_sha256=sha, **fields)


def make_state(**overrides: Any) -> State:
    fields: dict[str, Any] = {
        "lineage": "0b5e7c55-0000-4000-8000-000000000001",
        "serial": 7,
        "account_id": "acc-1",
        "scripts": (make_script("alpha"), make_script("beta", SHA_B, etag=None, modified_on=None)),
        "resources": (namespace_state("cache", "my-app-cache", "ns-1"),),
    }
    fields.update(overrides)
    return State(**fields)


def write_state(path: Path, state: State) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state_to_json(state), indent=2, sort_keys=True) + "\n")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / ".deployer" / "state.json"


@pytest.fixture
def store(state_path: Path) -> StateStore:
    return StateStore(state_path)


def ignore(message: str) -> None:
    pass


# --- paths and the document ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "expected"),
    [(None, "proj/.deployer/state.json"), ("staging", "proj/.deployer/state.staging.json")],
)
def test_default_state_path_sits_beside_the_manifest(environment: str | None, expected: str) -> None:
    assert default_state_path(Path("proj/workers.yaml"), environment) == Path(expected)


@pytest.mark.parametrize("environment", ["../prod", "a/b", "", ".hidden"])
def test_environment_that_would_escape_the_state_directory_is_refused(environment: str) -> None:
    with pytest.raises(StateError, match="--env"):
        default_state_path(Path("workers.yaml"), environment)


def test_state_json_round_trip_is_equal() -> None:
    state = make_state()
    assert state_from_json(state_to_json(state), "state.json") == state
    assert state_from_json(json.loads(json.dumps(state_to_json(state))), "state.json") == state


def test_empty_state_round_trips() -> None:
    assert state_from_json(state_to_json(State()), "state.json") == State()


def test_document_has_the_contract_shape_and_no_secret_text() -> None:
    doc = state_to_json(make_state())
    assert doc["format_version"] == STATE_FORMAT_VERSION
    assert doc["kv_namespaces"] == {"cache": {"title": "my-app-cache", "id": "ns-1"}}
    assert doc["scripts"]["alpha"]["bindings"] == [
        {"type": "kv_namespace", "name": "myNamespace", "namespace_id": "0f2ac74b"},
        {"type": "plain_text", "name": "ENVIRONMENT", "text": "production"},
        {"type": "secret_text", "name": "API_KEY"},
    ]


def test_project_is_written_once_known_and_a_state_without_it_keeps_its_old_shape() -> None:
    owned = make_state(project="github.com/acme/shop:workers.yaml")
    assert state_to_json(owned)["project"] == "github.com/acme/shop:workers.yaml"
    assert state_from_json(state_to_json(owned), "state.json") == owned
    assert "project" not in state_to_json(make_state())  # byte-identical to states written before
    assert state_from_json(state_to_json(make_state()), "state.json").project is None


def test_a_record_carries_the_project_into_the_state(store: StateStore, state_path: Path) -> None:
    with store.lock(command="test", warn=ignore):
        store.record(account_id="acc-1", project="shop")
        store.record(scripts=[make_script()])  # None leaves it as it is
        store.commit()
    assert StateStore(state_path).load().project == "shop"
    assert json.loads(state_path.read_text())["project"] == "shop"


def test_secret_text_is_never_written_even_if_a_binding_carries_it() -> None:
    leaky = make_script(bindings=(DeployedBinding("secret_text", "API_KEY", (("text", "CANARY"),)),))
    assert "CANARY" not in json.dumps(state_to_json(make_state(scripts=(leaky,))))


def test_missing_state_file_loads_as_empty_state(store: StateStore) -> None:
    assert store.load() == State()
    assert store.state == State()


def test_load_never_writes(store: StateStore, state_path: Path) -> None:
    store.load()
    assert not state_path.parent.exists()


# --- hand-edited and corrupt files --------------------------------------------------------


def test_future_format_version_asks_to_upgrade(store: StateStore, state_path: Path) -> None:
    doc = state_to_json(make_state())
    doc["format_version"] = 2
    state_path.parent.mkdir()
    state_path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match=r"newer deployer .*format_version 2.*upgrade deployer"):
        store.load()


def _edit(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for key in parents:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    if value is KeyError:
        del doc[last]
    elif isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("serial", "7", "serial: expected a whole number >= 0, got a string"),
        ("serial", -1, "serial: expected a whole number >= 0, got the number -1"),
        ("serial", True, "serial: expected a whole number >= 0, got a boolean"),
        ("format_version", 0, "format_version: expected 1, got 0"),
        ("lineage", KeyError, "lineage: missing"),
        ("account_id", 42, "account_id: expected a string, got the number 42"),
        ("scripts", [], "scripts: expected an object, got an array"),
        ("scripts/alpha/content_sha256", None, "scripts.alpha.content_sha256: expected a string, got null"),
        ("scripts/alpha/bindings/0/type", "kv", "scripts.alpha.bindings[0].type: unknown binding type 'kv'"),
        ("scripts/alpha/bindings/0/namespace_id", KeyError, "scripts.alpha.bindings[0].namespace_id: missing"),
        ("scripts/alpha/bindings/1/text", 3, "scripts.alpha.bindings[1].text: expected a string"),
        ("scripts/alpha/bindings/2/text", "s3cr3t",
         "scripts.alpha.bindings[2].text: a secret_text binding must not store its value"),
        ("scripts/alpha/secret_fingerprints/API_KEY", {}, "scripts.alpha.secret_fingerprints.API_KEY: expected a string"),
        ("scripts/alpha/colour", "blue", "scripts.alpha.colour: unknown field"),
        ("kv_namespaces/cache/id", "", "kv_namespaces.cache.id: must not be empty"),
    ],
)
def test_hand_edited_wrong_field_is_refused_naming_the_field(
    store: StateStore, state_path: Path, path: str, value: Any, message: str
) -> None:
    doc = state_to_json(make_state())
    _edit(doc, path, value)
    state_path.parent.mkdir()
    state_path.write_text(json.dumps(doc))
    with pytest.raises(StateError) as raised:
        store.load()
    assert str(raised.value).startswith(f"{state_path}: {message}")
    with pytest.raises(StateError, match="^state.json: "):
        state_from_json(doc, "state.json")


@pytest.mark.parametrize(
    "text",
    ['{"format_version": 1, "lineage": "x", "ser', "", "not json", '{"a": 1, "a": 2}', "\xff\xfe"],
    ids=["truncated", "empty", "garbage", "duplicate-key", "not-utf8"],
)
def test_corrupt_state_file_names_the_file_and_the_backup(
    store: StateStore, state_path: Path, text: str
) -> None:
    state_path.parent.mkdir()
    state_path.write_bytes(text.encode("latin-1"))
    with pytest.raises(StateError) as raised:
        store.load()
    assert str(raised.value).startswith(f"{state_path} is not valid JSON")
    assert f"there is no {state_path}.backup to restore from" in str(raised.value)

    Path(f"{state_path}.backup").write_text(json.dumps(state_to_json(make_state())))
    with pytest.raises(StateError, match=f"restore the previous copy from {state_path}.backup"):
        store.load()


def test_state_file_with_merge_conflict_markers_says_so(store: StateStore, state_path: Path) -> None:
    state_path.parent.mkdir()
    doc = json.dumps(state_to_json(make_state()), indent=2)
    state_path.write_text(f"<<<<<<< HEAD\n{doc}\n=======\n{doc}\n>>>>>>> main\n")
    with pytest.raises(StateError) as raised:
        store.load()
    assert str(raised.value).startswith(f"{state_path} holds unresolved git merge conflict markers")
    assert f"restore {state_path}.backup" in str(raised.value)


def test_unreadable_state_path_is_a_state_error_naming_it(store: StateStore, state_path: Path) -> None:
    state_path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(StateError, match=f"{state_path} is a directory, not a regular file"):
        store.load()


def test_state_directory_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    store = StateStore(tmp_path / "blocker" / "state.json")
    with pytest.raises(StateError, match="blocker"):
        with store.lock(command="deployer apply", warn=ignore):
            pass


# --- records, the journal and commits -----------------------------------------------------


def test_first_record_creates_the_lineage_and_the_directory(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        state = store.record(scripts=[make_script()], account_id="acc-1")
    assert state.lineage and state.serial == 1
    assert state.script("my-worker") == make_script()
    assert state.account_id == "acc-1"
    assert Path(f"{state_path}.journal").is_file()


def test_records_are_replayed_by_a_new_store_with_one_serial_per_record(
    store: StateStore, state_path: Path
) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(resources=[namespace_state("cache", "my-app-cache", "ns-1")], account_id="acc-1")
        store.record(scripts=[make_script("beta", SHA_B)])
        store.record(scripts=[make_script("alpha")])
        reader = StateStore(state_path).load()
    assert reader == store.state
    assert reader.serial == 3
    assert [script.name for script in reader.scripts] == ["alpha", "beta"]
    assert reader.resource("kv_namespace", "cache") == namespace_state("cache", "my-app-cache", "ns-1")
    assert not state_path.exists()  # nothing folded yet: only the journal was written


def test_records_remove_scripts_and_forget_namespaces(store: StateStore, state_path: Path) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        store.record(removed_scripts=["alpha"])
        state = store.record(forgotten=[("kv_namespace", "cache")], scripts=[make_script("beta", SHA_A)])
    assert state == make_state(serial=9, scripts=(make_script("beta", SHA_A),), resources=())
    assert StateStore(state_path).load() == state


def test_records_continue_an_existing_state(store: StateStore, state_path: Path) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        state = store.record(scripts=[make_script("gamma")])
    assert state.lineage == make_state().lineage
    assert state.serial == 8
    assert [script.name for script in state.scripts] == ["alpha", "beta", "gamma"]


def test_commit_folds_the_journal_keeps_a_backup_and_removes_the_journal(
    store: StateStore, state_path: Path
) -> None:
    write_state(state_path, make_state())
    previous = state_path.read_text()
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha", SHA_B)])
        store.record(scripts=[make_script("gamma")])
        committed = store.commit()
    assert committed.serial == 9  # commit keeps the serial reached
    assert Path(f"{state_path}.backup").read_text() == previous
    assert not Path(f"{state_path}.journal").exists()
    assert state_path.read_text() == json.dumps(state_to_json(committed), indent=2, sort_keys=True) + "\n"
    assert StateStore(state_path).load() == committed
    assert sorted(os.listdir(state_path.parent)) == ["state.json", "state.json.backup", "state.json.lock"]


def test_commit_without_records_leaves_the_state_file_alone(store: StateStore, state_path: Path) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        assert store.commit() == make_state()
    assert not Path(f"{state_path}.backup").exists()


def test_records_after_a_commit_start_a_new_journal(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha")])
        store.commit()
        store.record(scripts=[make_script("beta")])
        journal = Path(f"{state_path}.journal").read_text().splitlines()
        assert [json.loads(line)["base_serial"] for line in journal] == [1]
        assert StateStore(state_path).load() == store.state
        assert store.state.serial == 2


def test_journal_left_by_a_killed_run_is_folded_when_the_next_lock_is_taken(
    store: StateStore, state_path: Path
) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("gamma")])
        expected = store.state
    # no commit: as if the run was killed after its last record
    assert StateStore(state_path).load() == expected
    with StateStore(state_path).lock(command="deployer apply", warn=ignore):
        assert not Path(f"{state_path}.journal").exists()
        assert state_from_json(json.loads(state_path.read_text()), "state.json") == expected


def test_torn_last_journal_line_is_ignored(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha")])
        expected = store.state
        store.record(scripts=[make_script("beta")])
    journal = Path(f"{state_path}.journal")
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 25])  # kill -9 in the middle of the second write
    assert StateStore(state_path).load() == expected


def test_garbled_last_journal_line_is_ignored(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        expected = store.record(scripts=[make_script("alpha")])
    with open(f"{state_path}.journal", "ab") as journal:
        journal.write(b"\0\0\0\0\n")
    assert StateStore(state_path).load() == expected


def test_corrupt_journal_line_in_the_middle_is_refused(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        for name in ("alpha", "beta", "gamma"):
            store.record(scripts=[make_script(name)])
    journal = Path(f"{state_path}.journal")
    lines = journal.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\n"
    journal.write_text("".join(lines))
    with pytest.raises(StateError, match=f"{journal}: line 2 is not a journal record"):
        StateStore(state_path).load()


def test_journal_record_with_a_wrong_field_is_refused_naming_it(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha")])
    journal = Path(f"{state_path}.journal")
    record = json.loads(journal.read_text())
    record["scripts"]["alpha"]["content_sha256"] = 5
    journal.write_text(json.dumps(record) + "\n")
    with pytest.raises(StateError, match=r"line 1: scripts\.alpha\.content_sha256: expected a string"):
        StateStore(state_path).load()


def test_journal_of_another_lineage_is_refused(store: StateStore, state_path: Path) -> None:
    other = StateStore(state_path.parent.parent / "other" / "state.json")
    with other.lock(command="deployer apply", warn=ignore):
        other.record(scripts=[make_script("alpha")])
    write_state(state_path, make_state())
    os.replace(f"{other.path}.journal", f"{state_path}.journal")
    with pytest.raises(StateError, match="belongs to another state"):
        store.load()


def test_journal_whose_state_file_is_missing_is_refused(store: StateStore, state_path: Path) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("gamma")])
    state_path.unlink()
    with pytest.raises(StateError, match="continues serial 7 of a state file .* that is missing"):
        StateStore(state_path).load()


def test_journal_newer_than_a_restored_state_file_is_refused(store: StateStore, state_path: Path) -> None:
    write_state(state_path, make_state())
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("gamma")])
    write_state(state_path, make_state(serial=5))  # an older copy put back by hand
    with pytest.raises(StateError, match="restored from a backup"):
        StateStore(state_path).load()


def test_journal_already_folded_by_an_interrupted_commit_is_skipped(
    store: StateStore, state_path: Path
) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha")])
        store.record(scripts=[make_script("beta")])
        journal = Path(f"{state_path}.journal").read_bytes()
        committed = store.commit()
    Path(f"{state_path}.journal").write_bytes(journal)  # the commit died before deleting it
    assert StateStore(state_path).load() == committed


def test_journal_with_a_gap_in_serials_is_refused(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        for name in ("alpha", "beta", "gamma"):
            store.record(scripts=[make_script(name)])
    journal = Path(f"{state_path}.journal")
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(lines[0] + lines[2])
    with pytest.raises(StateError, match="does not follow serial 1"):
        StateStore(state_path).load()


def test_journal_from_a_newer_deployer_asks_to_upgrade(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script("alpha")])
    journal = Path(f"{state_path}.journal")
    record = json.loads(journal.read_text())
    record["format_version"] = 3
    journal.write_text(json.dumps(record) + "\n")
    with pytest.raises(StateError, match="upgrade deployer"):
        StateStore(state_path).load()


def test_journal_grows_linearly_with_the_number_of_records(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        for index in range(1000):
            store.record(scripts=[make_script(f"worker-{index:04d}")])
        journal = Path(f"{state_path}.journal")
        lines = journal.read_bytes().splitlines()
        assert len(lines) == 1000
        # Each record holds only its own change: the last line is no longer than the first
        # plus the digits its growing serial needs, and the file is their sum, not a square.
        assert len(lines[-1]) <= len(lines[0]) + 8
        assert journal.stat().st_size < 1000 * (len(lines[0]) + 10)
        assert not state_path.exists()  # state.json is not rewritten per record
        assert store.commit().serial == 1000
    assert len(StateStore(state_path).load().scripts) == 1000


def test_records_from_several_threads_each_get_their_own_serial(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        threads = [
            threading.Thread(target=lambda n=n: store.record(scripts=[make_script(f"w-{n:02d}")]))
            for n in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.state.serial == 20
        serials = [json.loads(line)["serial"] for line in Path(f"{state_path}.journal").read_text().splitlines()]
        assert serials == list(range(1, 21))
    assert len(StateStore(state_path).load().scripts) == 20


def test_record_of_an_unknown_namespace_id_is_a_bug_not_a_state(store: StateStore) -> None:
    pending = make_script(bindings=(deployed_kv("CACHE", None),))
    with store.lock(command="deployer apply", warn=ignore):
        with pytest.raises(ValueError, match=r"bindings\[0\]\.namespace_id"):
            store.record(scripts=[pending])
        assert store.state == State()


def test_record_without_the_lock_raises_an_internal_error(store: StateStore) -> None:
    with pytest.raises(RuntimeError, match="without the lock"):
        store.record(scripts=[make_script()])
    with pytest.raises(RuntimeError, match="without the lock"):
        store.commit()
    assert not issubclass(RuntimeError, DeployerError)


def test_record_after_the_lock_is_released_raises_an_internal_error(store: StateStore) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        store.record(scripts=[make_script()])
    with pytest.raises(RuntimeError):
        store.record(scripts=[make_script("beta")])


# --- the lock -----------------------------------------------------------------------------


def test_lock_file_names_its_holder_while_held(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        holder = json.loads(Path(f"{state_path}.lock").read_text())
    assert holder["pid"] == os.getpid()
    assert holder["host"] == socket.gethostname()
    assert holder["command"] == "deployer apply"
    assert holder["user"] and holder["started"].endswith("Z")


def test_second_lock_fails_at_once_naming_pid_and_host(store: StateStore, state_path: Path) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        with pytest.raises(LockHeldError) as raised:
            with StateStore(state_path).lock(command="deployer apply", warn=ignore):
                pytest.fail("two holders of one lock")
    message = str(raised.value)
    assert f"is locked by pid {os.getpid()} on host {socket.gethostname()}" in message
    assert "running 'deployer apply'" in message
    assert "pass --lock-timeout SECONDS" in message


def test_same_store_cannot_take_its_lock_twice(store: StateStore) -> None:
    with store.lock(command="deployer apply", warn=ignore):
        with pytest.raises(RuntimeError, match="already holds"):
            with store.lock(command="deployer apply", warn=ignore):
                pass


def test_lock_is_released_and_emptied_after_an_exception(store: StateStore, state_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with store.lock(command="deployer apply", warn=ignore):
            store.record(scripts=[make_script()])
            1 / 0
    lock_file = Path(f"{state_path}.lock")
    assert lock_file.exists() and lock_file.read_bytes() == b""  # emptied, never unlinked
    warnings: list[str] = []
    with StateStore(state_path).lock(command="deployer apply", warn=warnings.append):
        pass
    assert warnings == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_left_by_a_dead_process_is_taken_over_with_a_warning(store: StateStore, state_path: Path) -> None:
    pid = _dead_pid()
    state_path.parent.mkdir()
    Path(f"{state_path}.lock").write_text(json.dumps(
        {"pid": pid, "host": "ci-runner-7", "user": "ci", "started": "2026-01-02T03:04:05Z",
         "command": "deployer apply"}))
    warnings: list[str] = []
    with store.lock(command="deployer apply", warn=warnings.append):
        assert json.loads(Path(f"{state_path}.lock").read_text())["pid"] == os.getpid()
    assert warnings == [
        f"took over a stale lock left by pid {pid} on host ci-runner-7 (started 2026-01-02T03:04:05Z), "
        "whose process is gone"
    ]


def test_lock_with_an_unreadable_holder_record_is_still_taken_over(store: StateStore, state_path: Path) -> None:
    state_path.parent.mkdir()
    Path(f"{state_path}.lock").write_text('{"pid": 12')
    warnings: list[str] = []
    with store.lock(command="deployer apply", warn=warnings.append):
        pass
    assert len(warnings) == 1 and "stale lock" in warnings[0]


def test_lock_timeout_waits_for_a_holder_that_releases(store: StateStore, state_path: Path) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with StateStore(state_path).lock(command="deployer apply", warn=ignore):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(LockHeldError):
            with store.lock(command="deployer apply", warn=ignore):
                pass
        # Let the holder go only once we are waiting: the lock must be acquired by polling.
        threading.Timer(0.3, release.set).start()
        warnings: list[str] = []
        with store.lock(command="deployer apply", timeout=30, warn=warnings.append):
            assert release.is_set()
        assert warnings == []
    finally:
        release.set()
        holder.join()


def test_lock_timeout_gives_up_naming_the_holder(store: StateStore, state_path: Path) -> None:
    with StateStore(state_path).lock(command="deployer apply --auto-approve", warn=ignore):
        with pytest.raises(LockHeldError, match=r"still locked after 0\.2 s by pid .*'deployer apply --auto-approve'"):
            with store.lock(command="deployer apply", timeout=0.2, warn=ignore):
                pass


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from deployer.state.store import StateStore
    from deployer.models import ScriptState

    store = StateStore(Path(sys.argv[1]))
    with store.lock(command="deployer apply"):
        store.record(scripts=[ScriptState(name="from-child", content_sha256="c" * 64)])
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_lock_of_a_process_killed_with_sigkill_does_not_block_the_next_run(state_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(state_path)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"locked\n"
        with pytest.raises(LockHeldError, match=f"locked by pid {child.pid} on host"):
            with StateStore(state_path).lock(command="deployer apply", warn=ignore):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    warnings: list[str] = []
    store = StateStore(state_path)
    with store.lock(command="deployer apply", warn=warnings.append):
        assert store.state.script("from-child") is not None  # its record survived the kill
        store.record(scripts=[make_script()])
        store.commit()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"took over a stale lock left by pid {child.pid} on host ")
    assert warnings[0].endswith("whose process is gone")
