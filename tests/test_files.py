"""Every file deployer writes is the file it means: a symlink, FIFO or device in its place is
refused with an error naming it, and nothing is written through it (deployer.files).

Each case runs a real ``python -m deployer`` process with a time limit, so a FIFO that made it
block would fail the test instead of hanging it.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.errors import DeployerError
from deployer.files import nesting_fits, parse_json, read_regular
from deployer.state.store import StateStore
from tests.factories import make_script, recorded
from tests.fake_cloudflare import FakeCloudflare

VICTIM_TEXT = "a file outside the project that must stay as it is\n"

# (command, file it writes, relative to the project)
WRITTEN = [
    ("apply", ".deployer/state.json"),
    ("apply", ".deployer/state.json.backup"),
    ("apply", ".deployer/state.json.journal"),
    ("apply", ".deployer/state.json.lock"),
    ("plan", "plan.json"),
    ("init", "workers.schema.json"),
    ("init", "src/index.js"),
    ("init", ".gitignore"),
]
ARGS = {"apply": ["apply", "--auto-approve"], "plan": ["plan", "--out", "plan.json"], "init": ["init"]}


def _symlink(path: Path, victim: Path) -> str:
    path.symlink_to(victim)
    return "is a symlink"


def _fifo(path: Path, victim: Path) -> str:
    os.mkfifo(path)
    return "is a FIFO"


def _device(path: Path, victim: Path) -> str:
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs root")
    return "is a character device"


KINDS: dict[str, Callable[[Path, Path], str]] = {"symlink": _symlink, "fifo": _fifo, "device": _device}


def _kind(path: Path) -> str:
    mode = path.lstat().st_mode
    return "symlink" if stat.S_ISLNK(mode) else "fifo" if stat.S_ISFIFO(mode) else \
        "device" if stat.S_ISCHR(mode) else "regular"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("command, written", WRITTEN)
def test_a_file_deployer_writes_is_never_a_link_fifo_or_device(
        project: Path, api: FakeCloudflare, tmp_path: Path, command: str, written: str, kind: str) -> None:
    if command == "init":
        project = tmp_path / "fresh"
        project.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    target = project / written
    target.parent.mkdir(parents=True, exist_ok=True)
    words = KINDS[kind](target, victim)

    result = subprocess.run([sys.executable, "-m", "deployer", *ARGS[command]], check=False, cwd=project, capture_output=True,
                            text=True, timeout=30, env={**os.environ, **api.environ()})

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert f"{written} {words}, not a regular file" in result.stderr, result.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert _kind(target) == kind
    assert api.count() == 0  # refused before anything changed in Cloudflare


def test_init_refuses_a_dangling_symlink_where_the_manifest_goes(tmp_path: Path) -> None:
    (tmp_path / "workers.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    result = subprocess.run([sys.executable, "-m", "deployer", "init"], check=False, cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "workers.yaml already exists" in result.stderr
    assert not (tmp_path / "elsewhere.yaml").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe odd bytes\n", b"node_modules/", "# ünïcode\n".encode("latin-1")])
def test_init_appends_to_a_gitignore_in_any_encoding(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ".gitignore").write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "deployer", "init"], check=False, cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / ".gitignore").read_bytes()
    assert written.startswith(content) and written.endswith(b"\n.deployer/*.lock\n")


def test_state_backup_journal_and_lock_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    state = tmp_path / ".deployer" / "state.json"
    state.parent.mkdir()
    (state.parent / "state.json.lock").write_text("")
    os.chmod(state.parent / "state.json.lock", 0o644)  # as an older deployer left it
    store = StateStore(state)
    with store.lock(command="test"):
        store.record(scripts=[recorded(make_script("a"))])
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in state.parent.iterdir()}
        store.commit()
        store.record(scripts=[recorded(make_script("b"))])
        store.commit()
    modes.update({path.name: stat.S_IMODE(path.stat().st_mode) for path in state.parent.iterdir()})
    assert modes == {name: 0o600 for name in
                     ("state.json", "state.json.backup", "state.json.journal", "state.json.lock")}


@pytest.mark.parametrize("garbage", [
    b"[" * 100_000,
    b"\x00\xff" * 1000,
    b'{"pid": "1", "host": "h", "user": "u", "started": "s", "command": "c"}',
    b'{"pid": 1, "host": "\\u001b]0;pwned\\u0007", "user": "u", "started": "s", "command": "c"}',
    b'{"pid": 1, "host": {"a": 1}, "user": "u", "started": "s", "command": "c"}',
])
def test_a_garbage_lock_file_is_taken_over_as_stale_with_a_warning(tmp_path: Path, garbage: bytes) -> None:
    state = tmp_path / ".deployer" / "state.json"
    state.parent.mkdir()
    (state.parent / "state.json.lock").write_bytes(garbage)
    warnings: list[str] = []
    store = StateStore(state)
    with store.lock(command="test", warn=warnings.append):
        store.record(scripts=[recorded(make_script("a"))])
        store.commit()
    assert len(warnings) == 1 and "unreadable holder record" in warnings[0]
    assert store.load().script("a") is not None


@pytest.mark.parametrize("text, fits", [
    (b"[]", True), (b"[" * 64 + b"]" * 64, True), (b"[" * 65 + b"]" * 65, False),
    (b"[" * 5000, False), (b'["' + b"[" * 5000 + b'"]', True), (b'["\\"' + b"[" * 5000 + b'"]', True),
    (b'{"a": "\\\\", "b": "[[["}', True), (b"]" * 70 + b"[" * 70, False),
    (b'{"a":[' * 32 + b"]}" * 32, True), (b'{"a":[' * 33 + b"]}" * 33, False),  # one level a round, either kind
])
def test_json_nesting_is_measured_without_parsing(text: bytes, fits: bool) -> None:
    assert nesting_fits(text) is fits


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_tricky_strings = st.sampled_from(["", "[", "]", "{", "}", '"', "\\", '\\"', "[{", "]}", "a", '""', "[]"])
_json_values = st.recursive(
    st.none() | st.integers(-2, 2) | _tricky_strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_strings, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.integers(0, 6), st.booleans())
def test_json_nesting_counts_only_brackets_outside_strings(value: object, limit: int, spaced: bool) -> None:
    text = json.dumps(value, indent=1 if spaced else None).encode()
    assert nesting_fits(text, limit) is (_depth(value) <= limit)


def test_deeply_nested_json_is_a_value_error_not_a_recursion_error() -> None:
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        parse_json(b"[" * 1_000_000 + b"]" * 1_000_000)


def test_a_file_read_whole_even_when_it_grew_after_its_size_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_regular reads the size fstat gives (reading up to the limit sets the limit aside
    first), then whatever the file grew by since, up to the limit."""
    target = tmp_path / "state.json"
    target.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def smaller(fd: int) -> os.stat_result:
        found = real_fstat(fd)
        return os.stat_result((*found[:6], 10, *found[7:]))  # st_size: as if taken when it was 10 bytes

    monkeypatch.setattr(os, "fstat", smaller)
    assert read_regular(target, "state.json", max_bytes=1000) == b"x" * 1000
    with pytest.raises(DeployerError, match="state.json grew past 999 bytes while it was read"):
        read_regular(target, "state.json", max_bytes=999)
