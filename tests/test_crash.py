"""Crash safety, proven on a real process: ``deployer apply`` killed with SIGKILL after k
successful requests (every k), or interrupted with SIGINT, against the loopback fake.

What "succeeded" means here: the request was answered and recorded in the state journal. An
answer that reached the process but was not yet recorded is indistinguishable from a lost
answer (no client can avoid repeating such a request); with ``--parallelism 1`` and the next
request held by the fake, every answered request is recorded before the kill.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from deployer.state.store import StateStore
from tests.cli_runner import finish, kill_apply_at, run, start_apply
from tests.factories import write_project
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SCRIPTS = ["s1", "s2", "s3", "s4", "s5"]
OLD = "zz-old"  # recorded before, gone from the manifest: deleted last
TITLE = "crash-test-store"
MUTATING = ("POST", "PUT", "DELETE")
MUTATING_PATHS = r"/workers/scripts/|/storage/kv/namespaces$"
# The requests of the apply in order (parallelism 1): namespace, uploads by name, the delete.
REQUESTS = ["namespace", *SCRIPTS, OLD]


@pytest.fixture
def project(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> Path:
    """State records ``zz-old`` (applied earlier); the manifest now has a namespace and 5
    scripts, so an apply sends 7 mutating requests: POST namespace, 5 PUTs, 1 DELETE."""
    directory = tmp_path / "project"
    write_project(directory, [OLD])
    run("apply", "--auto-approve", cwd=directory, env=fake_cloudflare.environ())
    (directory / f"{OLD}.js").unlink()
    write_project(directory, SCRIPTS, namespace=TITLE)
    fake_cloudflare.clear_requests()
    return directory


@pytest.mark.parametrize("k", range(len(REQUESTS)))
def test_sigkill_after_k_successful_requests_loses_nothing_and_repeats_nothing(
    k: int, project: Path, fake_cloudflare: FakeCloudflare
) -> None:
    fake = fake_cloudflare
    hold = fake.hold(MUTATING, MUTATING_PATHS, skip=k)
    kill_apply_at(hold, project, fake, "--parallelism", "1", waiting_for=f"request {k + 1}")

    done = REQUESTS[:k]
    # The state on disk (state.json + journal) is valid and holds exactly what was answered.
    state_file = project / ".deployer" / "state.json"
    json.loads(state_file.read_text())
    recorded = StateStore(state_file).load()
    expected_scripts = {*[name for name in done if name in SCRIPTS], *([] if OLD in done else [OLD])}
    assert {s.name for s in recorded.scripts} == expected_scripts
    assert [ns.key for ns in recorded.resources] == (["store"] if "namespace" in done else [])

    # plan reads it: what was recorded is a no-op, the rest is still to do.
    plan = json.loads(run("plan", "--format", "json", cwd=project).stdout)
    actions = {change["name"]: change["action"] for change in plan["changes"]}
    assert {name for name, action in actions.items() if action == "no-op"} == (
        {name for name in done if name in SCRIPTS} | ({"store"} if "namespace" in done else set())
    )

    # The rerun takes over the dead process's lock, finishes, and repeats nothing that succeeded.
    rerun = run("apply", "--auto-approve", cwd=project, env=fake.environ())
    assert "took over a stale lock left by pid" in rerun.stderr
    assert fake.successful_uploads() == {name: 1 for name in SCRIPTS}
    deletes = fake.find("DELETE", f"/accounts/{FAKE_ACCOUNT}/workers/scripts/{OLD}")
    assert [r.status for r in deletes if r.applied] == [200]
    assert list(fake.kv_namespaces().values()) == [TITLE]
    assert sorted(fake.scripts()) == SCRIPTS
    final = json.loads(run("plan", "--format", "json", "--detailed-exitcode", cwd=project).stdout)
    assert {change["action"] for change in final["changes"]} == {"no-op"}
    assert not (project / ".deployer" / "state.json.journal").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_lets_in_flight_uploads_finish_records_them_and_exits_1(
    project: Path, fake_cloudflare: FakeCloudflare, signum: int
) -> None:
    """Ctrl-C, or SIGTERM as a CI runner sends when a job is cancelled."""
    fake = fake_cloudflare
    hold = fake.hold("PUT", r"/workers/scripts/", skip=2)  # s3 and s4 are held in flight
    process = start_apply(project, fake, "--parallelism", "2")
    try:
        assert hold.reached.wait(30)
        deadline = time.monotonic() + 10
        while hold.held < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hold.held == 2
        process.send_signal(signum)
        time.sleep(0.3)  # the process is now waiting for its in-flight requests
        assert process.poll() is None
        hold.release()
        code, stdout, stderr = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "error: interrupted" in stderr
    assert "finished requests were recorded" in stderr
    state = json.loads((project / ".deployer" / "state.json").read_text())
    assert sorted(state["scripts"]) == ["s1", "s2", "s3", "s4", OLD]
    assert not (project / ".deployer" / "state.json.journal").exists()

    run("apply", "--auto-approve", cwd=project, env=fake.environ())
    assert fake.successful_uploads() == {name: 1 for name in SCRIPTS}
    assert sorted(fake.scripts()) == SCRIPTS


def test_a_second_interrupt_abandons_in_flight_requests_and_the_rerun_finishes(
    project: Path, fake_cloudflare: FakeCloudflare
) -> None:
    fake = fake_cloudflare
    hold = fake.hold("PUT", r"/workers/scripts/", skip=2)  # s3 and s4 are held in flight
    process = start_apply(project, fake, "--parallelism", "2")
    try:
        assert hold.reached.wait(30)
        deadline = time.monotonic() + 10
        while hold.held < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert process.poll() is None  # waiting for the two requests in flight
        process.send_signal(signal.SIGINT)
        code, stdout, stderr = finish(process)  # returns while the requests are still held
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        hold.release(answer=False)  # never carried out

    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "interrupted twice: 2 request(s) in flight were abandoned" in stderr
    recorded = StateStore(project / ".deployer" / "state.json").load()
    # The two uploads the fake let through finished before the interrupts (which two depends on
    # the order the parallel requests arrived in); the two held ones were abandoned.
    assert len({s.name for s in recorded.scripts} & {"s1", "s2", "s3", "s4"}) == 2
    run("apply", "--auto-approve", cwd=project, env=fake.environ())
    assert fake.successful_uploads() == {name: 1 for name in SCRIPTS}
    assert sorted(fake.scripts()) == SCRIPTS
