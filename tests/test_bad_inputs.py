"""Every manifest, state file and plan file in ``tests/bad_inputs/`` is refused the same careful way.

``manifests/<case>.yaml`` is used as ``workers.yaml`` of a small project; ``states/<case>.json``
(and ``<case>.journal`` when present) as its state beside a valid manifest; ``planfiles/<case>.json``
as ``plan.json`` given to ``deployer apply plan.json``. ``<case>.expected``
holds lines that must each appear in stderr. A few cases need files a repository should not
hold (a 50 MB manifest, symlinks, a FIFO, a binary script): ``SETUP`` makes them at test time.

Each case runs ``deployer apply --auto-approve`` as a real process, with 1 GiB of address
space and a time limit, against the loopback fake: exit 1, ``error: ...`` naming the file,
line or field, no traceback, no request sent, no file changed. ``plan`` in-process must agree
(for a plan file: ``apply plan.json`` in-process).
"""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_runner import run
from tests.fake_cloudflare import FakeCloudflare

CORPUS = Path(__file__).parent / "bad_inputs"
MEMORY_LIMIT = 1024 ** 3
TIME_LIMIT = 20.0
VALID_MANIFEST = """\
version: 1
account_id: 0123456789abcdef0123456789abcdef
scripts:
  my-worker:
    path: worker.js
"""
WORKER = b"addEventListener('fetch', e => e.respondWith(new Response('ok')))\n"


def _huge(project: Path) -> None:
    line = b"# padding to make this manifest 50 MB; a generated file gone wrong looks like this\n"
    with (project / "workers.yaml").open("ab") as stream:
        for _ in range(50 * 1024 * 1024 // (len(line) * 1024) + 1):
            stream.write(line * 1024)


def _symlink_outside(project: Path) -> None:
    (project.parent / "secret.txt").write_text("not for upload\n")
    (project / "link.js").symlink_to(project.parent / "secret.txt")


def _symlinked_directory(project: Path) -> None:
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "worker.js").write_bytes(WORKER)
    (project / "lib").symlink_to(elsewhere, target_is_directory=True)


def _binary(project: Path) -> None:
    (project / "binary.js").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)


def _alias_bytes_bomb(project: Path) -> None:
    """A 4 MB manifest whose aliases repeat one 4 MB string 2,000 times: 8 GB once expanded."""
    manifest = project / "workers.yaml"
    text = manifest.read_text().replace("SETUP appends 4 MB here", "x" * 4_000_000)
    text += "".join(f"      - {{type: plain_text, name: B{i}, text: *big}}\n" for i in range(2000))
    manifest.write_text(text)


def _large_modules(project: Path) -> None:
    for name in ("part1.wasm", "part2.wasm"):
        with (project / name).open("wb") as stream:
            stream.truncate(60_000_000)  # sparse: no disk space needed


def _huge_state(project: Path) -> None:
    with (project / ".deployer" / "state.json").open("wb") as stream:
        stream.truncate(64 * 1024 * 1024 + 1)


SETUP: dict[str, Callable[[Path], None]] = {
    "manifests/huge": _huge,
    "manifests/path-symlink-outside": _symlink_outside,
    "manifests/path-symlinked-directory": _symlinked_directory,
    "manifests/path-symlink-loop": lambda project: (project / "loop.js").symlink_to("loop.js"),
    "manifests/path-directory": lambda project: (project / "src").mkdir(),
    "manifests/path-fifo": lambda project: os.mkfifo(project / "pipe.js"),
    "manifests/path-dotdot": lambda project: (project.parent / "outside.js").write_bytes(WORKER),
    "manifests/script-binary": _binary,
    "manifests/alias-bytes-bomb": _alias_bytes_bomb,
    "manifests/modules-larger-than-one-upload": _large_modules,
    "states/huge-state": _huge_state,
    "planfiles/fifo": lambda project: ((project / "plan.json").unlink(), os.mkfifo(project / "plan.json")),
    "planfiles/symlink-to-directory": lambda project: ((project / "plan.json").unlink(),
                                                       (project / "plan.json").symlink_to(project / ".deployer")),
}


CASES = sorted(f"{path.parent.name}/{path.stem}" for path in CORPUS.glob("*/*") if path.suffix in (".yaml", ".json"))


def test_the_corpus_has_at_least_40_cases_each_with_its_expected_message() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        expected = CORPUS / f"{case}.expected"
        assert expected.is_file(), f"{case} has no .expected file"
        assert expected.read_text().strip(), f"{case}.expected is empty"


def _build(case: str, root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    (project / "worker.js").write_bytes(WORKER)
    (project / "other.js").write_bytes(WORKER)
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    kind, name = case.split("/")
    if kind == "manifests":
        shutil.copyfile(CORPUS / f"{case}.yaml", project / "workers.yaml")
    elif kind == "planfiles":
        (project / "workers.yaml").write_text(VALID_MANIFEST)
        (project / ".deployer").mkdir()
        shutil.copyfile(CORPUS / f"{case}.json", project / "plan.json")
    else:
        (project / "workers.yaml").write_text(VALID_MANIFEST)
        state_dir = project / ".deployer"
        state_dir.mkdir()
        shutil.copyfile(CORPUS / f"{case}.json", state_dir / "state.json")
        journal = CORPUS / f"{case}.journal"
        if journal.exists():
            shutil.copyfile(journal, state_dir / "state.json.journal")
        (state_dir / "state.json.lock").write_bytes(b"")  # as a previous clean run leaves it
    SETUP.get(case, lambda _: None)(project)
    return project


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: file content hashes, link targets, other kinds by name."""
    seen: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                seen[relative] = f"-> {os.readlink(path)}"
            elif stat.S_ISREG(mode):  # never open a FIFO: it would block
                seen[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                seen[relative] = stat.filemode(mode)
    return seen


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (int(TIME_LIMIT), int(TIME_LIMIT) + 1))


def _environment(root: Path, fake: FakeCloudflare) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "BAD_INPUT_ACCOUNT": "not-an-account-id",
        **fake.environ(),
    }


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_cleanly(case: str, tmp_path: Path, fake_cloudflare: FakeCloudflare) -> None:
    project = _build(case, tmp_path)
    expected = [line for line in (CORPUS / f"{case}.expected").read_text().splitlines() if line.strip()]
    before = _snapshot(tmp_path)
    env = _environment(tmp_path, fake_cloudflare)

    command = ["apply", "plan.json"] if case.startswith("planfiles/") else ["apply", "--auto-approve"]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "deployer", *command],
        cwd=project, env=env, capture_output=True, text=True, errors="replace",
        timeout=TIME_LIMIT, preexec_fn=_limits,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for line in expected:
        assert line in result.stderr, f"{line!r} not in:\n{result.stderr}"
    assert result.stdout == ""
    assert fake_cloudflare.count() == 0, [(r.method, r.path) for r in fake_cloudflare.requests]
    assert _snapshot(tmp_path) == before
    assert elapsed < TIME_LIMIT

    again = ["apply", "plan.json"] if case.startswith("planfiles/") else ["plan"]
    planned = run(*again, cwd=project, env={"HOME": env["HOME"], "BAD_INPUT_ACCOUNT": env["BAD_INPUT_ACCOUNT"]},
                  expect=1)
    for line in expected:
        assert line in planned.stderr, f"plan: {line!r} not in:\n{planned.stderr}"
    assert _snapshot(tmp_path) == before


def _wide_manifest(project: Path, scripts: int, environments: int) -> None:
    lines = ["version: 1", "account_id: 0123456789abcdef0123456789abcdef", "kv_namespaces:",
             "  cache: {title: cache}", "scripts:"]
    for i in range(scripts):
        lines += [f"  s{i}:", "    path: worker.js", "    bindings:",
                  f"      - {{type: plain_text, name: A, text: x{i}}}", "      - {type: kv_namespace, name: K, namespace: cache}"]
    lines.append("environments:")
    for e in range(environments):
        lines += [f"  e{e}:", f"    name_suffix: -e{e}", f"    kv_namespaces: {{cache: {{title: cache-{e}}}}}",
                  "    scripts:", f"      s{e % scripts}:", f"        bindings: [{{type: plain_text, name: A, text: e{e}}}]"]
    (project / "workers.yaml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("command", [["validate"], ["plan", "--env", "e499"]])
def test_500_scripts_times_500_environments_stay_within_time_and_memory(tmp_path: Path, command: list[str]) -> None:
    """Checking every environment used to cost scripts x environments (29 s here, 61 s on a loaded
    runner); each script shared with the base is now checked once."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "worker.js").write_bytes(WORKER)
    _wide_manifest(project, 500, 500)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "deployer", *command], cwd=project, capture_output=True,
                            text=True, timeout=TIME_LIMIT, preexec_fn=_limits, env={"PATH": os.environ["PATH"]})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 10.0, elapsed
