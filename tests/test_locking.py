"""Two ``deployer apply`` processes on one state file: the lock keeps them apart, names its
holder, waits with ``--lock-timeout`` and is taken over when its holder was killed."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.cli_runner import finish, start_apply
from tests.factories import write_project
from tests.fake_cloudflare import FakeCloudflare

SCRIPTS = ["alpha", "beta"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    write_project(directory, SCRIPTS)
    return directory


@pytest.fixture
def holder(project: Path, fake_cloudflare: FakeCloudflare):
    """An apply frozen at its first upload, holding the lock; released (or killed) by the test."""
    hold = fake_cloudflare.hold("PUT", r"/workers/scripts/")
    process = start_apply(project, fake_cloudflare, "--parallelism", "1")
    assert hold.reached.wait(30), finish(process, 5)
    yield process, hold
    hold.release()
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_second_apply_fails_at_once_naming_the_holder(project: Path, fake_cloudflare: FakeCloudflare,
                                                      holder) -> None:
    first, hold = holder
    before = len(fake_cloudflare.requests)
    started = time.monotonic()
    code, stdout, stderr = finish(start_apply(project, fake_cloudflare))
    assert time.monotonic() - started < 10  # no waiting: Python start-up plus one flock try
    assert code == 1 and "Traceback" not in stderr
    assert stderr.startswith("error: state .deployer/state.json is locked by pid ")
    assert f"pid {first.pid} on host " in stderr and "running 'deployer apply'" in stderr
    assert "--lock-timeout" in stderr
    assert len(fake_cloudflare.requests) == before  # the second apply sent nothing

    hold.release()
    assert finish(first)[0] == 0
    assert fake_cloudflare.successful_uploads() == {name: 1 for name in SCRIPTS}


def test_lock_timeout_waits_for_a_live_holder_then_runs(project: Path, fake_cloudflare: FakeCloudflare,
                                                        holder) -> None:
    first, hold = holder
    second = start_apply(project, fake_cloudflare, "--lock-timeout", "30")
    time.sleep(0.5)
    assert second.poll() is None  # still waiting for the lock
    hold.release()
    assert finish(first)[0] == 0
    code, stdout, stderr = finish(second)
    assert code == 0, stderr
    assert "No changes" in stdout  # the first apply did it all; the second saw its state
    assert "stale" not in stderr
    assert fake_cloudflare.successful_uploads() == {name: 1 for name in SCRIPTS}


def test_lock_timeout_gives_up_naming_the_holder(project: Path, fake_cloudflare: FakeCloudflare,
                                                 holder) -> None:
    first, _ = holder
    code, _, stderr = finish(start_apply(project, fake_cloudflare, "--lock-timeout", "0.5"))
    assert code == 1
    assert "is still locked after 0.5 s by pid" in stderr and str(first.pid) in stderr


def test_lock_of_a_killed_apply_is_taken_over_with_a_warning(project: Path, fake_cloudflare: FakeCloudflare,
                                                             holder) -> None:
    first, hold = holder
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    hold.release(answer=False)
    code, stdout, stderr = finish(start_apply(project, fake_cloudflare))
    assert code == 0, stderr
    assert stderr.startswith(f"warning: took over a stale lock left by pid {first.pid} on host ")
    assert "whose process is gone" in stderr
    assert fake_cloudflare.successful_uploads() == {name: 1 for name in SCRIPTS}


def test_python_m_deployer_inherits_no_lock_from_a_previous_clean_run(project: Path,
                                                                       fake_cloudflare: FakeCloudflare) -> None:
    assert finish(start_apply(project, fake_cloudflare))[0] == 0
    (project / "alpha.js").write_text("// changed\n")
    code, _, stderr = finish(start_apply(project, fake_cloudflare))
    assert code == 0 and "warning" not in stderr
    assert (project / ".deployer" / "state.json.lock").read_bytes() == b""  # released: emptied
