"""``deployer apply`` end to end against the loopback fake while it misbehaves: rate limits
(one 429 pauses every worker; the shared request budget), 5xx, HTML pages, dropped connections
and lost answers at random over 200 scripts, and errors that must not be retried."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from deployer.cloudflare.client import CloudflareClient
from deployer.state.store import StateStore
from tests.cli_runner import run
from tests.factories import sha, write_project
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

SCRIPTS_PATH = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Backoff of 10 ms instead of 1-30 s, so faults cost no real time; records each retry's attempt."""
    retries: list[int] = []

    def backoff(self: CloudflareClient, attempt: int) -> float:
        retries.append(attempt)
        return 0.01

    monkeypatch.setattr(CloudflareClient, "_backoff", backoff)
    return retries


def _names(count: int) -> list[str]:
    return [f"w{index:03d}" for index in range(count)]


def _puts(fake: FakeCloudflare) -> list:
    return fake.find("PUT", path_regex=r"/workers/scripts/[^/]+$")


def test_a_429_pauses_every_worker_not_just_the_one_that_got_it(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> None:
    fake = fake_cloudflare
    write_project(tmp_path, _names(8))
    # The first four start together; w002 is refused at once while the other three take 1 s,
    # so without a shared pause their workers would start the next uploads at 1 s. The margins
    # are wide (1 s of work, 2 s of Retry-After) because the pause can only begin once the client
    # has read the 429, which on a loaded 2-core runner can lag the fake's answer.
    fake.slow("PUT", r"/w00[013]$", 1.0)
    fake.fail("PUT", r"/w002$", "429", retry_after=2)
    run("apply", "--auto-approve", "--parallelism", "4", cwd=tmp_path, env=fake.environ())

    (limited,) = [r for r in _puts(fake) if r.status == 429]
    assert limited.answered is not None
    # Nothing starts while Cloudflare asked to wait (slack for reading the 429 at either end).
    during = [r.path for r in _puts(fake) if limited.answered + 0.5 < r.started < limited.answered + 1.9]
    assert during == []
    after = {r.path.rsplit("/", 1)[1] for r in _puts(fake) if r.started >= limited.answered + 1.9}
    assert after >= {"w002", "w004", "w005", "w006", "w007"}
    assert sorted(fake.scripts()) == _names(8)


def test_the_request_budget_is_shared_by_all_workers(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> None:
    fake = fake_cloudflare
    write_project(tmp_path, _names(10))
    run("apply", "--auto-approve", "--parallelism", "4", "--rate-limit", "4/1", cwd=tmp_path, env=fake.environ())
    starts = sorted(r.started for r in _puts(fake))
    assert len(starts) == 10
    # Sliding window: the 5th request starts at least a window after the 1st, and so on.
    assert all(later - earlier >= 0.8 for earlier, later in zip(starts, starts[4:]))  # unthrottled: ~0


@pytest.mark.parametrize("value", ["1200", "0/300", "ten/60", "5/0", "5/-1", "5/inf"])
def test_a_bad_rate_limit_is_refused_before_any_request(tmp_path: Path, fake_cloudflare: FakeCloudflare,
                                                        value: str) -> None:
    write_project(tmp_path, ["one"])
    result = run("apply", "--auto-approve", "--rate-limit", value, cwd=tmp_path, env=fake_cloudflare.environ(),
                 expect=1)
    assert result.stderr.startswith(f"error: --rate-limit {value!r} is not REQUESTS/SECONDS")
    assert fake_cloudflare.count() == 0


def test_200_scripts_with_5_percent_random_faults_upload_each_once_after_success(
    tmp_path: Path, fake_cloudflare: FakeCloudflare, quick_backoff: list[int]
) -> None:
    """"Uploaded exactly once after success": each script gets exactly one PUT that the client
    saw succeed (HTTP 200), and no PUT after it. A PUT whose answer was lost (carried out, then
    a 5xx or a dropped connection) may be repeated: the client cannot know it succeeded."""
    fake = fake_cloudflare
    names = _names(200)
    write_project(tmp_path, names)
    fake.fail_randomly(0.05, kinds=("429", "500", "502", "503", "504", "502-html", "reset"), seed=2024,
                       lost_answers=0.3)
    # Whatever the dice say, at least one dropped connection and one lost answer of each kind.
    fake.fail("PUT", r"/w100$", "reset")
    fake.fail("PUT", r"/w150$", "reset", after=True)
    fake.fail("PUT", r"/w199$", "503", after=True)
    result = run("apply", "--auto-approve", "--parallelism", "8", cwd=tmp_path, env=fake.environ())
    assert "Apply complete: 200 created, 0 updated, 0 deleted." in result.stdout

    puts = _puts(fake)
    succeeded = Counter(r.path.rsplit("/", 1)[1] for r in puts if r.status == 200)
    assert succeeded == {name: 1 for name in names}
    for name in names:
        mine = [r for r in puts if r.path.endswith(f"/{name}")]
        assert mine[-1].status == 200  # nothing was sent after the success
        lost = [r for r in mine if r.applied and r.status != 200]
        assert sum(r.applied for r in mine) == 1 + len(lost)

    faults = [r for r in fake.requests if r.status != 200]
    kinds = Counter("reset" if r.status is None else str(r.status) for r in faults)
    assert len(faults) >= 8 and {"429", "503", "reset"} <= set(kinds), kinds  # the run really was faulty
    assert len(puts) == 200 + len(faults)  # every fault cost exactly one retry
    print(f"\n200-script apply: {len(faults)} retries ({dict(kinds)}), "
          f"{sum(r.applied and r.status != 200 for r in puts)} lost answers")

    state = StateStore(tmp_path / ".deployer" / "state.json").load()
    assert [s.name for s in state.scripts] == names
    for script in state.scripts:
        assert script.content_sha256 == sha((tmp_path / f"{script.name}.js").read_bytes())
        assert script.content_sha256 == sha(fake.scripts()[script.name]["content"])
    plan = json.loads(run("plan", "--format", "json", cwd=tmp_path).stdout)
    assert plan["summary"] == {"create": 0, "update": 0, "delete": 0, "no-op": 200}


def test_a_persistent_html_502_ends_in_a_readable_error_with_attempts_and_wait(
    tmp_path: Path, fake_cloudflare: FakeCloudflare, quick_backoff: list[int]
) -> None:
    write_project(tmp_path, ["one", "two"])
    fake_cloudflare.fail("PUT", r"/two$", "502-html", times=100)
    result = run("apply", "--auto-approve", "--parallelism", "1", cwd=tmp_path, env=fake_cloudflare.environ(),
                 expect=1)
    assert f"\nerror: Cloudflare API PUT {SCRIPTS_PATH}/two failed (HTTP 502): " in result.stderr
    assert 'text/html instead of JSON: "502 Bad Gateway"' in result.stderr
    assert "gave up after 6 attempts, 0.1 s of waiting in total" in result.stderr
    assert "1 change(s) succeeded and were recorded" in result.stderr
    assert "<html>" not in result.stderr
    assert fake_cloudflare.count("PUT", f"{SCRIPTS_PATH}/two") == 6
    assert list(json.loads((tmp_path / ".deployer" / "state.json").read_text())["scripts"]) == ["one"]


def test_retry_wait_cap_from_the_command_line_stops_a_long_retry_after(
    tmp_path: Path, fake_cloudflare: FakeCloudflare
) -> None:
    write_project(tmp_path, ["one"])
    fake_cloudflare.fail("PUT", r"/one$", "429", retry_after=120)
    result = run("apply", "--auto-approve", "--max-retry-wait", "60", cwd=tmp_path, env=fake_cloudflare.environ(),
                 expect=1)
    assert "(HTTP 429)" in result.stderr
    assert "Cloudflare asked to wait 120 s, more than the 60 s left of the 60 s retry budget" in result.stderr
    assert "gave up after 1 attempt, 0.0 s of waiting in total" in result.stderr
    assert fake_cloudflare.count("PUT") == 1


@pytest.mark.parametrize(("token", "status", "shown"), [
    ("wrong-token", 403, "Authentication error [code: 10000]"),
])
def test_auth_errors_are_shown_at_once_without_retrying(tmp_path: Path, fake_cloudflare: FakeCloudflare,
                                                        token: str, status: int, shown: str) -> None:
    write_project(tmp_path, ["one", "two"])
    env = {**fake_cloudflare.environ(), "CLOUDFLARE_API_TOKEN": token}
    result = run("apply", "--auto-approve", "--parallelism", "1", cwd=tmp_path, env=env, expect=1)
    assert f"failed (HTTP {status}): {shown}" in result.stderr
    assert "Workers Scripts Write" in result.stderr  # the hint about token permissions
    assert fake_cloudflare.count() == 1  # not retried, and nothing new started after it


def test_a_retry_is_announced_on_stderr_while_it_waits(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> None:
    write_project(tmp_path, ["one"])
    fake_cloudflare.fail("PUT", r"/one$", "429", retry_after=1)
    result = run("apply", "--auto-approve", cwd=tmp_path, env=fake_cloudflare.environ())
    assert "note: PUT /accounts/" in result.stderr
    assert "was rate limited (HTTP 429); waiting 1.0 s" in result.stderr
    assert "Apply complete: 1 created" in result.stdout


@pytest.mark.parametrize("method, path, kind", [
    ("POST", r"/storage/kv/namespaces$", "200-missing-id"),
    ("POST", r"/storage/kv/namespaces$", "200-wrong-shape"),
    ("GET", r"/workers/scripts$", "200-wrong-shape"),
    ("GET", r"/storage/kv/namespaces$", "200-missing-id"),
    ("PUT", r"/workers/scripts/visit-counter$", "200-wrong-shape"),
    ("PUT", r"/workers/scripts/visit-counter$", "200-not-json"),
])
def test_a_malformed_success_stops_apply_with_an_error_naming_the_request(
        project: Path, api: FakeCloudflare, method: str, path: str, kind: str) -> None:
    api.fail(method, path, kind)
    result = run("apply", "--auto-approve", "--refresh", cwd=project, env=api.environ(), expect=1)
    request = api.find(method, path_regex=path)[0]
    assert f"error: Cloudflare API {method} {request.path} failed (HTTP 200): " in result.stderr
    assert "Traceback" not in result.stderr
    state = StateStore(project / ".deployer" / "state.json").load()
    assert state.script("visit-counter") is None  # what the answer did not confirm is not recorded
