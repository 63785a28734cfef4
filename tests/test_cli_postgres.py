"""End to end with the state in PostgreSQL: the real CLI, the loopback fake Cloudflare API and a
throwaway PostgreSQL cluster, on a copy of sample-project/ (named 'project')."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deployer.state.backend import parse_postgres_url
from deployer.state.postgres import PgStateStore
from deployer.state.store import StateStore
from tests.cli_runner import Result, run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare
from tests.pg_server import PostgresServer

REPO = Path(__file__).resolve().parent.parent
SEED_NAMESPACE = "0f2ac74b498b48028cb68387c421e279"
SCRIPTS_URL = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"


@pytest.fixture
def password(postgres_server: PostgresServer) -> str:
    return postgres_server.user_password


# The default state name outside a repository: the manifest directory and file (deployer.state.project).
NAME = "project/workers.yaml"


def remote(url: str, name: str = NAME) -> PgStateStore:
    return PgStateStore(parse_postgres_url(url), name)


def assert_no_password(password: str, *results: Result | subprocess.CompletedProcess[str]) -> None:
    for result in results:
        assert password not in result.stdout and password not in result.stderr


def actions(result: Result) -> dict[str, str]:
    return {change["name"]: change["action"] for change in json.loads(result.stdout)["changes"]}


# --- the core flow --------------------------------------------------------------------------


def test_plan_apply_plan_with_the_state_in_postgresql(
    project: Path, api: FakeCloudflare, pg_url: str, password: str, postgres_server: PostgresServer,
    pg_database: str,
) -> None:
    first = run("plan", "--state", pg_url, "--format", "json", cwd=project)
    assert set(actions(first).values()) == {"create"}
    with postgres_server.connect(pg_database) as conn:  # a plan creates nothing
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'deployer'").fetchall() == []
    canary = "canary-Pg7-secret-value"
    applied = run("apply", "--auto-approve", "--state", pg_url, cwd=project,
                  env={**api.environ(), "COUNTER_API_KEY": canary})
    assert "Apply complete: 4 created, 0 updated, 0 deleted." in applied.stdout
    with postgres_server.connect(pg_database) as conn:  # the secret went to Cloudflare, not to the state
        stored = conn.execute("SELECT (SELECT string_agg(record::text, '') FROM deployer.journal) || "
                              "(SELECT string_agg(document::text, '') FROM deployer.history)").fetchone()[0]
    assert "API_KEY" in stored and canary not in stored
    again = run("plan", "--state", pg_url, "--detailed-exitcode", "--format", "json", cwd=project,
                env={"COUNTER_API_KEY": canary})
    assert set(actions(again).values()) == {"no-op"}
    assert not (project / ".deployer").exists()  # nothing went to a local file
    state = remote(pg_url).load()
    assert [s.name for s in state.scripts] == ["hello-modules", "my-worker", "visit-counter"]
    assert [ns.key for ns in state.resources] == ["counts"]
    listed = run("state", "list", "--state", pg_url, cwd=project)
    assert "script.my-worker" in listed.stdout
    assert_no_password(password, first, applied, again, listed)


def test_state_url_variable_and_env_name_the_state(project: Path, api: FakeCloudflare, pg_url: str) -> None:
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", "--parallelism", "1", "--env", "staging", cwd=project, env=env)
    assert remote(pg_url, f"{NAME}.staging").load().script("my-worker-staging") is not None
    assert remote(pg_url, NAME).load().serial == 0
    shown = run("state", "show", "my-worker-staging", "--state-name", f"{NAME}.staging", cwd=project, env=env)
    assert json.loads(shown.stdout)["name"] == "my-worker-staging"
    missing = run("state", "show", "nope", "--env", "staging", cwd=project, env=env, expect=1)
    assert f"'nope' is not in the state '{NAME}.staging' in postgresql://deployer:***@127.0.0.1:" in missing.stderr


def test_plan_file_is_refused_once_the_state_in_postgresql_moved(project: Path, api: FakeCloudflare,
                                                                  pg_url: str) -> None:
    run("plan", "--state", pg_url, "--out", str(project / "plan.bin"), cwd=project)
    run("apply", "--auto-approve", "--parallelism", "1", "--state", pg_url, cwd=project, env=api.environ())
    refused = run("apply", str(project / "plan.bin"), "--state", pg_url, cwd=project, env=api.environ(), expect=1)
    assert "the state changed since plan" in refused.stderr
    assert "(serial 0 -> 5)" in refused.stderr


# --- two runners ----------------------------------------------------------------------------


# Applies run with --parallelism 1 where serials are asserted: uploads that finish together
# share one record, which would make the numbers depend on timing.


def _deployer(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "deployer", *args], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_applies_at_once_one_applies_and_the_other_is_refused(
    project: Path, api: FakeCloudflare, pg_url: str, password: str
) -> None:
    api.slow("PUT", "/workers/scripts/", 1.5)  # keep the first apply inside its lock for a while
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    runners = [_deployer("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=env) for _ in range(2)]
    results = []
    for runner in runners:
        stdout, stderr = runner.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(runner.args, runner.returncode, stdout, stderr))
    assert sorted(r.returncode for r in results) == [0, 1]
    done, refused = sorted(results, key=lambda r: r.returncode)
    assert "Apply complete: 4 created" in done.stdout
    assert f"error: state '{NAME}' in postgresql://deployer:***@127.0.0.1:" in refused.stderr
    holder = next(r for r in runners if r.returncode == 0)
    assert f"is locked by pid {holder.pid} on host " in refused.stderr
    assert "running 'deployer apply'" in refused.stderr and "Traceback" not in refused.stderr
    assert api.count("PUT", f"{SCRIPTS_URL}/my-worker") == 1
    assert api.count("PUT", f"{SCRIPTS_URL}/visit-counter") == 1
    assert remote(pg_url).load().serial == 5  # account, namespace, then one record per script
    assert_no_password(password, *results)
    later = run("plan", "--detailed-exitcode", cwd=project, env={"DEPLOYER_STATE_URL": pg_url})
    assert "No changes" in later.stdout


def test_apply_killed_with_sigkill_frees_the_lock_and_the_next_apply_finishes(
    project: Path, api: FakeCloudflare, pg_url: str
) -> None:
    # Long enough to be killed in flight; short enough that the orphaned answer is written (and
    # fails: the client is gone) only after this test has finished.
    api.slow("PUT", "/workers/scripts/visit-counter", 8, times=1)
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    runner = _deployer("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=env)
    try:
        deadline = time.monotonic() + 30
        while remote(pg_url).load().script("my-worker") is None:
            assert time.monotonic() < deadline and runner.poll() is None, "my-worker was never recorded"
            time.sleep(0.1)
        while api.count("PUT", f"{SCRIPTS_URL}/visit-counter") == 0:  # the slow upload is in flight
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate()
    api.clear_requests()
    finished = run("apply", "--auto-approve", "--parallelism", "1", "--lock-timeout", "10", cwd=project, env=env)
    assert "Apply complete: 1 created, 0 updated, 0 deleted." in finished.stdout
    assert api.count("PUT", f"{SCRIPTS_URL}/my-worker") == 0  # not re-uploaded
    assert api.count("PUT", f"{SCRIPTS_URL}/hello-modules") == 0
    assert api.count("PUT", f"{SCRIPTS_URL}/visit-counter") == 1
    notes = [v.note for v in remote(pg_url).history()]
    assert notes == ["finished saving a run that was cut off", "apply"]


def test_apply_stops_when_a_writer_that_skipped_the_lock_saved_a_newer_state(
    project: Path, api: FakeCloudflare, pg_url: str, password: str
) -> None:
    api.slow("PUT", "/workers/scripts/visit-counter", 1.0)
    from tests.test_pgstate import _bypassing_writer, script

    def rogue_write() -> None:
        deadline = time.monotonic() + 30
        while remote(pg_url).load().script("my-worker") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        rogue = _bypassing_writer(pg_url, NAME)
        rogue.record(scripts=[script("hand-made")])
        rogue._conn.close()  # noqa: SLF001

    writer = threading.Thread(target=rogue_write)
    writer.start()
    result = run("apply", "--auto-approve", "--parallelism", "1", "--state", pg_url, cwd=project,
                 env=api.environ(), expect=1)
    writer.join()
    # serials: 1 account_id, 2 the namespace, 3 hello-modules, 4 my-worker; the rogue wrote 5
    assert "changed behind this run's back: it is now at serial 5, written by" in result.stderr
    assert "but this run last saw serial 4. Nothing was overwritten" in result.stderr
    state = remote(pg_url).load()
    assert state.serial == 5 and state.script("hand-made") is not None and state.script("visit-counter") is None
    assert_no_password(password, result)


# --- history, rollback, push, pull ----------------------------------------------------------


def test_history_and_rollback(project: Path, api: FakeCloudflare, pg_url: str) -> None:
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=env)
    (project / "script.js").write_text("// v2\n")
    run("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=env)
    history = run("state", "history", cwd=project, env=env).stdout.splitlines()
    assert history[0].split() == ["SERIAL", "SAVED", "(UTC)", "HOST", "USER", "RECORDS", "NOTE"]
    # serials: the first apply records 1-5 (account, namespace, three scripts); the second 6 (my-worker)
    assert [line.split()[0] for line in history[1:]] == ["5", "6"]
    assert history[1].split()[-2:] == ["5", "apply"] and history[2].split()[-2:] == ["1", "apply"]
    rolled = run("state", "rollback", "--to", "5", cwd=project, env=env)
    assert "the content of serial 5 is saved as serial 7" in rolled.stderr
    assert actions(run("plan", "--format", "json", cwd=project, env=env))["my-worker"] == "update"
    assert run("state", "history", cwd=project, env=env).stdout.splitlines()[-1].split()[-4:] == [
        "rollback", "to", "serial", "5"
    ]
    # A serial inside an apply is a version too: at serial 4 visit-counter was not uploaded yet.
    run("state", "rollback", "--to", "4", cwd=project, env=env)
    assert actions(run("plan", "--format", "json", cwd=project, env=env))["visit-counter"] == "create"
    run("state", "rollback", "--to", "6", cwd=project, env=env)
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=project, env=env).stdout
    newer = run("state", "rollback", "--to", "12", cwd=project, env=env, expect=1)
    assert "serial 12 was never saved: state " in newer.stderr and "is at serial 9; roll back" in newer.stderr


def test_history_of_a_state_file_is_an_error(project: Path) -> None:
    result = run("state", "history", cwd=project, expect=1)
    assert result.stderr.startswith("error: 'deployer state history' works on a state in PostgreSQL")


def test_push_a_local_state_then_pull_it_back(project: Path, api: FakeCloudflare, pg_url: str) -> None:
    # The team starts with a state file.
    run("apply", "--auto-approve", "--parallelism", "1", cwd=project, env=api.environ())
    local_file = project / ".deployer" / "state.json"
    local = json.loads(local_file.read_text())
    pushed = run("state", "push", "--state", pg_url, cwd=project)
    assert f"pushed .deployer/state.json to state '{NAME}' in postgresql://deployer:***@" in pushed.stderr
    assert "as serial 5" in pushed.stderr
    assert remote(pg_url).load() == StateStore(local_file).load()
    assert "nothing to push" in run("state", "push", "--state", pg_url, cwd=project).stderr
    plan = run("plan", "--state", pg_url, "--detailed-exitcode", cwd=project)
    assert "No changes" in plan.stdout

    (project / "script.js").write_text("// v2\n")
    run("apply", "--auto-approve", "--parallelism", "1", "--state", pg_url, cwd=project, env=api.environ())
    stale = run("state", "push", "--state", pg_url, cwd=project, expect=1)
    assert "(serial 6) is newer than .deployer/state.json (serial 5); pull it first" in stale.stderr
    run("state", "pull", "--state", pg_url, cwd=project)
    assert json.loads(local_file.read_text())["serial"] == 6
    assert json.loads(local_file.read_text())["lineage"] == local["lineage"]
    assert StateStore(local_file).load() == remote(pg_url).load()


def test_push_and_pull_refuse_another_lineage_unless_forced(project: Path, api: FakeCloudflare,
                                                            pg_url: str, tmp_path: Path) -> None:
    run("apply", "--auto-approve", "--parallelism", "1", "--state", pg_url, cwd=project, env=api.environ())
    other = tmp_path / "other.json"
    # A second state of the same scripts: only with --allow-overwrite (they exist in Cloudflare).
    run("apply", "--auto-approve", "--parallelism", "1", "--allow-overwrite", "--state", str(other), cwd=project,
        env=api.environ())
    refused = run("state", "push", str(other), "--state", pg_url, cwd=project, expect=1)
    assert "they are different states; pass --force to replace it anyway" in refused.stderr
    refused = run("state", "pull", str(other), "--state", pg_url, cwd=project, expect=1)
    assert "they are different states; pass --force" in refused.stderr
    forced = run("state", "push", str(other), "--state", pg_url, "--force", cwd=project)
    assert "as serial 6" in forced.stderr  # above the remote's 5: history stays append-only
    assert remote(pg_url).load().lineage == json.loads(other.read_text())["lineage"]
    assert [v.serial for v in remote(pg_url).history()] == [5, 6]
    nothing = run("state", "pull", str(tmp_path / "missing" / "x.json"), "--state", pg_url,
                  "--state-name", "nope", cwd=project, expect=1)
    assert "there is no state 'nope' in postgresql://" in nothing.stderr


# --- one state per project, even in a shared database (issue 10) ------------------------------


def _repository_with_deploy_folder(root: Path, origin: str, scripts: list[str]) -> Path:
    """``root/deploy/workers.yaml`` in a git repository whose origin is ``origin``."""
    from tests.factories import write_project
    from tests.test_project import make_repository

    make_repository(root, origin)
    return write_project(root / "deploy", scripts).parent


def test_two_repositories_with_a_deploy_folder_never_delete_each_others_scripts(
    tmp_path: Path, api: FakeCloudflare, pg_url: str
) -> None:
    a = _repository_with_deploy_folder(tmp_path / "repoA", "git@github.com:acme/a.git", ["a-api", "a-web"])
    c = _repository_with_deploy_folder(tmp_path / "repoC", "https://github.com/acme/c.git", ["c-api"])
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", cwd=a, env=env)
    run("apply", "--auto-approve", cwd=c, env=env)  # before: state 'deploy' too, and a-api, a-web deleted
    run("apply", "--auto-approve", cwd=a, env=env)  # and the other way round
    assert api.find("DELETE") == []
    assert set(api.scripts()) == {"a-api", "a-web", "c-api"}
    state_a = remote(pg_url, "github.com/acme/a:deploy/workers.yaml").load()
    state_c = remote(pg_url, "github.com/acme/c:deploy/workers.yaml").load()
    assert [s.name for s in state_a.scripts] == ["a-api", "a-web"] and [s.name for s in state_c.scripts] == ["c-api"]
    assert (state_a.project, state_c.project) == ("github.com/acme/a:deploy/workers.yaml",
                                                  "github.com/acme/c:deploy/workers.yaml")
    # The same repository cloned into another directory (a CI runner) finds the same state.
    clone = _repository_with_deploy_folder(tmp_path / "runner" / "work-1234", "https://github.com/acme/a", ["a-api", "a-web"])
    assert "No changes" in run("plan", "--detailed-exitcode", cwd=clone, env=env).stdout


def test_a_project_pointed_at_another_projects_state_is_refused_before_any_request(
    tmp_path: Path, api: FakeCloudflare, pg_url: str
) -> None:
    a = _repository_with_deploy_folder(tmp_path / "repoA", "git@github.com:acme/a.git", ["a-api", "a-web"])
    c = _repository_with_deploy_folder(tmp_path / "repoC", "https://github.com/acme/c.git", ["c-api"])
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", cwd=a, env=env)
    api.clear_requests()
    theirs = ["--state-name", "github.com/acme/a:deploy/workers.yaml"]
    for command in (["plan", *theirs], ["plan", "--refresh", *theirs], ["apply", "--auto-approve", *theirs]):
        refused = run(*command, cwd=c, env=env, expect=1)
        assert ("state 'github.com/acme/a:deploy/workers.yaml' in postgresql://deployer:***@127.0.0.1:"
                in refused.stderr), command
        assert ("was written by project 'github.com/acme/a:deploy/workers.yaml', but workers.yaml is project "
                "'github.com/acme/c:deploy/workers.yaml'") in refused.stderr
    assert api.requests == []
    assert set(api.scripts()) == {"a-api", "a-web"}


def test_a_state_under_the_former_default_name_is_pointed_out_and_kept_with_state_name(
    tmp_path: Path, api: FakeCloudflare, pg_url: str
) -> None:
    from deployer.state.backend import parse_postgres_url as parse
    from deployer.state.postgres import PgStateStore as Store

    a = _repository_with_deploy_folder(tmp_path / "repoA", "git@github.com:acme/a.git", ["a-api"])
    env = {**api.environ(), "DEPLOYER_STATE_URL": pg_url}
    run("apply", "--auto-approve", "--state-name", "deploy", cwd=a, env=env)
    old = Store(parse(pg_url), "deploy")
    with old.lock(command="an older deployer", warn=lambda _: None):  # written before states had a project
        old.replace(dataclasses.replace(old.state, project=None, serial=old.state.serial + 1))
    plan = run("plan", cwd=a, env=env)
    assert ("warning: state 'github.com/acme/a:deploy/workers.yaml' in postgresql://deployer:***@127.0.0.1:"
            in plan.stderr)
    assert ("but state 'deploy' (named after the manifest directory, the default before states were named "
            "after their project) does, at serial") in plan.stderr
    assert "keep using it with --state-name deploy" in plan.stderr
    assert "No changes" in run("plan", "--state-name", "deploy", cwd=a, env=env).stdout
    run("apply", "--auto-approve", "--state-name", "deploy", cwd=a, env=env)  # adopts it
    assert Store(parse(pg_url), "deploy").load().project == "github.com/acme/a:deploy/workers.yaml"
# --- waits that end, and stay interruptible --------------------------------------------------


def _lock_tables(postgres_server: PostgresServer, pg_database: str) -> tuple[object, threading.Event]:
    """Another session that holds an ACCESS EXCLUSIVE lock on deployer's states table (as a
    migration or a stray LOCK TABLE would) until the returned event is set."""
    ready, done = threading.Event(), threading.Event()

    def hold() -> None:
        with postgres_server.connect(pg_database) as conn:
            with conn.transaction():
                conn.execute("LOCK TABLE deployer.states IN ACCESS EXCLUSIVE MODE")
                ready.set()
                done.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread, done


def test_every_session_gets_lock_and_statement_timeouts(pg_url: str) -> None:
    store = remote(pg_url)
    conn = store._connect()
    try:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("15s",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2min",)
    finally:
        conn.close()
    own = remote(pg_url + "?options=-c%20lock_timeout%3D3s")
    conn = own._connect()
    try:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("3s",)  # the URL's own setting wins
    finally:
        conn.close()


def test_apply_blocked_by_a_table_lock_fails_naming_it_instead_of_waiting_for_ever(
    project: Path, api: FakeCloudflare, pg_url: str, postgres_server: PostgresServer, pg_database: str,
) -> None:
    run("apply", "--auto-approve", "--state", pg_url, cwd=project, env=api.environ())  # creates the tables
    (project / "counter.js").write_text("// changed\n")
    thread, done = _lock_tables(postgres_server, pg_database)
    try:
        started = time.monotonic()
        result = run("apply", "--auto-approve", "--state", pg_url + "?options=-c%20lock_timeout%3D1s",
                     cwd=project, env=api.environ(), expect=1)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join(10)
    assert elapsed < 10
    assert "canceling statement due to lock timeout" in result.stderr
    assert "another session holds a lock on deployer's tables" in result.stderr


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_run_waiting_on_a_table_lock_stops_at_once_when_interrupted(
    project: Path, api: FakeCloudflare, pg_url: str, postgres_server: PostgresServer, pg_database: str,
    how: signal.Signals,
) -> None:
    run("apply", "--auto-approve", "--state", pg_url, cwd=project, env=api.environ())
    thread, done = _lock_tables(postgres_server, pg_database)
    try:
        slow = pg_url + "?options=-c%20lock_timeout%3D60s"  # only the signal can end this wait
        process = subprocess.Popen([sys.executable, "-m", "deployer", "plan", "--state", slow], cwd=project,
                                   env={**os.environ, **api.environ()}, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.0)  # started, connected and waiting on the lock
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(how)
        _, stderr = process.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join(10)
    assert process.returncode == 1, stderr
    assert "error: interrupted" in stderr and "Traceback" not in stderr
    assert elapsed < 5
