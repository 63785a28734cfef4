"""The apply scheduler: dependency order, listed order among ready jobs, a job starts only after
what it waits for is recorded, the first failure stops new starts, and a cycle is refused."""
from __future__ import annotations

import threading
import time

import pytest

from deployer.apply.scheduler import Job, run_jobs
from deployer.errors import DeployerError


def recording_jobs(specs: list[tuple[str, frozenset[str]]], started: list[str], recorded: list[str],
                   fail: str | None = None) -> list[Job[str]]:
    def body(key: str, after: frozenset[str]):  # type: ignore[no-untyped-def]
        def run() -> str:
            assert after <= set(recorded), f"{key} started before {sorted(after - set(recorded))} was recorded"
            started.append(key)
            if key == fail:
                raise DeployerError(f"{key} failed")
            return key
        return run

    return [Job(key, body(key, after), after) for key, after in specs]


def test_jobs_start_in_listed_order_once_what_they_wait_for_is_recorded() -> None:
    started: list[str] = []
    recorded: list[str] = []
    specs = [("c", frozenset({"a", "b"})), ("a", frozenset()), ("d", frozenset({"c"})), ("b", frozenset())]
    errors = run_jobs(recording_jobs(specs, started, recorded), 1, recorded.extend)
    assert errors == []
    assert started == ["a", "b", "c", "d"]
    assert recorded == ["a", "b", "c", "d"]


def test_thousands_of_jobs_waiting_on_one_all_run_after_it() -> None:
    started: list[str] = []
    recorded: list[str] = []
    specs = [("root", frozenset())] + [(f"j{n}", frozenset({"root"})) for n in range(5000)]
    assert run_jobs(recording_jobs(specs, started, recorded), 8, recorded.extend) == []
    assert started[0] == "root" and sorted(recorded) == sorted(key for key, _ in specs)


def test_the_first_failure_starts_nothing_new_and_returns_the_failure() -> None:
    started: list[str] = []
    recorded: list[str] = []
    specs = [("a", frozenset()), ("b", frozenset()), ("c", frozenset()), ("d", frozenset({"a"}))]
    errors = run_jobs(recording_jobs(specs, started, recorded, fail="b"), 1, recorded.extend)
    assert [str(e) for e in errors] == ["b failed"]
    assert started == ["a", "b"] and recorded == ["a"]


def test_jobs_waiting_on_each_other_are_refused_by_name() -> None:
    started: list[str] = []
    specs = [("a", frozenset({"b"})), ("b", frozenset({"a"})), ("c", frozenset())]
    with pytest.raises(DeployerError, match="wait on each other and cannot start: a, b"):
        run_jobs(recording_jobs(specs, started, []), 2, lambda outcomes: None)
    assert started == ["c"]


def test_at_most_parallelism_jobs_run_at_once() -> None:
    running, most, lock = [0], [0], threading.Lock()
    release = threading.Barrier(3, timeout=5)

    def run() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait()  # three at a time, or the barrier breaks
        with lock:
            running[0] -= 1

    assert run_jobs([Job(f"j{n}", run) for n in range(9)], 3, lambda outcomes: None) == []
    assert most[0] == 3


def test_outcomes_that_finish_while_a_batch_is_written_are_recorded_together() -> None:
    """Group commit: while the first outcome is being recorded, the two that finish meanwhile
    wait for it and then go as one batch (one journal line, one sync), not one each."""
    together = threading.Barrier(3, timeout=5)
    finished = {key: threading.Event() for key in ("b", "c")}
    recording_a = threading.Event()
    batches: list[list[str]] = []

    def job(key: str):  # type: ignore[no-untyped-def]
        def run() -> str:
            together.wait()
            if key in finished:
                recording_a.wait(5)  # so "a" is the first to finish
                finished[key].set()
            return key
        return run

    def record(outcomes: list[str]) -> None:
        if not batches:
            recording_a.set()
            assert all(event.wait(5) for event in finished.values())
            time.sleep(0.05)  # from returning to queueing its outcome: a few microseconds
        batches.append(sorted(outcomes))

    assert run_jobs([Job(key, job(key)) for key in ("a", "b", "c")], 3, record) == []
    assert batches == [["a"], ["b", "c"]]


def two_step_jobs(keys: list[str], log: list[str], *, slow_prepare: dict[str, float] | None = None,
                  fail_prepare: str | None = None, fail_send: str | None = None) -> list[Job[str]]:
    """Jobs whose ``prepare`` logs "prepared KEY" and whose sending part logs "sent KEY"."""
    lock = threading.Lock()

    def prepare_of(key: str):  # type: ignore[no-untyped-def]
        def prepare():  # type: ignore[no-untyped-def]
            time.sleep((slow_prepare or {}).get(key, 0.0))
            if key == fail_prepare:
                raise DeployerError(f"{key}: its file changed after it was planned")
            with lock:
                log.append(f"prepared {key}")

            def send() -> str:
                with lock:
                    log.append(f"sent {key}")
                if key == fail_send:
                    raise DeployerError(f"{key} failed")
                return key
            return send
        return prepare

    return [Job.in_two_steps(key, prepare_of(key)) for key in keys]


def test_the_next_jobs_are_prepared_while_the_slots_wait_for_answers() -> None:
    """With one slot, the second job is prepared before the first one's answer comes back,
    and it is sent only after the first one is recorded."""
    log: list[str] = []
    answer = threading.Event()
    jobs = two_step_jobs(["b"], log)

    def first() -> str:
        log.append("sent a")
        assert answer.wait(5)
        return "a"
    jobs.insert(0, Job("a", first))
    watcher = threading.Thread(target=lambda: (_wait_for(lambda: "prepared b" in log), answer.set()))
    watcher.start()
    assert run_jobs(jobs, 1, lambda outcomes: log.append(f"recorded {outcomes[0]}")) == []
    watcher.join()
    assert log == ["sent a", "prepared b", "recorded a", "sent b", "recorded b"]


def test_slots_go_in_listed_order_even_to_a_job_that_prepares_slower() -> None:
    log: list[str] = []
    jobs = two_step_jobs(["a", "b", "c", "d"], log, slow_prepare={"a": 0.2, "c": 0.2})
    assert run_jobs(jobs, 1, lambda outcomes: None) == []
    assert [entry for entry in log if entry.startswith("sent")] == ["sent a", "sent b", "sent c", "sent d"]


def test_a_failed_preparation_is_that_jobs_failure_and_nothing_prepared_is_sent_after_it() -> None:
    log: list[str] = []
    recorded: list[str] = []
    jobs = two_step_jobs(["a", "b", "c", "d"], log, fail_prepare="b")
    errors = run_jobs(jobs, 1, recorded.extend)
    assert [str(e) for e in errors] == ["b: its file changed after it was planned"]
    assert "sent b" not in log
    # "a" may have been sent before the failure; "c", even if prepared meanwhile, never is.
    assert [entry for entry in log if entry.startswith("sent")] in ([], ["sent a"])
    assert recorded == [entry.removeprefix("sent ") for entry in log if entry.startswith("sent")]


def test_jobs_prepared_when_a_request_fails_are_dropped_unsent() -> None:
    log: list[str] = []
    recorded: list[str] = []
    jobs = two_step_jobs([f"j{n}" for n in range(6)], log, slow_prepare={"j0": 0.1}, fail_send="j0")
    errors = run_jobs(jobs, 1, recorded.extend)
    assert [str(e) for e in errors] == ["j0 failed"]
    assert "prepared j1" in log  # prepared while j0 was slow to prepare and send ...
    assert [entry for entry in log if entry.startswith("sent")] == ["sent j0"]  # ... but never sent
    assert recorded == []


def _wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_jobs_are_prepared_but_not_sent_until_go_returns_and_not_at_all_when_it_raises() -> None:
    log: list[str] = []
    jobs = two_step_jobs(["a", "b", "c"], log)

    def go() -> None:
        _wait_for(lambda: len(log) >= 2)  # prepared meanwhile ...
        assert not [entry for entry in log if entry.startswith("sent")]  # ... and nothing sent

    assert run_jobs(jobs, 2, lambda outcomes: None, go=go) == []
    assert sorted(entry for entry in log if entry.startswith("sent")) == ["sent a", "sent b", "sent c"]

    log.clear()

    def refuse() -> None:
        _wait_for(lambda: len(log) >= 2)
        raise DeployerError("refused")

    with pytest.raises(DeployerError, match="refused"):
        run_jobs(two_step_jobs(["a", "b", "c"], log), 2, lambda outcomes: None, go=refuse)
    assert not [entry for entry in log if entry.startswith("sent")]


def test_a_freed_slot_sends_the_next_prepared_job_in_the_same_thread() -> None:
    """No hand-over between threads from an answer to the slot's next request: the thread that
    recorded "a" sends "b" (prepared meanwhile by another thread, which goes back to preparing)."""
    threads: dict[str, str] = {}
    prepared_b = threading.Event()

    def job(key: str):  # type: ignore[no-untyped-def]
        def prepare():  # type: ignore[no-untyped-def]
            threads[f"prepared {key}"] = threading.current_thread().name
            if key == "b":
                prepared_b.set()

            def send() -> str:
                if key == "a":
                    assert prepared_b.wait(5)  # "b" is ready before "a" is answered
                threads[f"sent {key}"] = threading.current_thread().name
                return key
            return send
        return prepare

    assert run_jobs([Job.in_two_steps(key, job(key)) for key in ("a", "b")], 1, lambda outcomes: None) == []
    assert threads["sent b"] == threads["sent a"]
    assert threads["prepared b"] != threads["sent a"]
