"""Run an apply's requests in dependency order, in parallel where they are independent.

A job starts once every job it comes ``after`` has succeeded (a script after the scripts it
binds, a route after its script's upload), at most ``parallelism`` at a time; outcomes that
finish together are recorded together (one journal line each). On the first failure nothing
new starts, the running jobs finish and are recorded, and the failures are returned.
"""
from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from deployer.errors import DeployerError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One request (or a few that belong together) named ``key``; ``after`` names the jobs of
    this run it must wait for (keys of jobs not in the run are already done)."""

    key: str
    run: Callable[[], T]
    after: frozenset[str] = frozenset()


def run_jobs(jobs: Sequence[Job[T]], parallelism: int, record: Callable[[list[T]], None]) -> list[Exception]:
    """Run ``jobs``; ``record`` each batch of outcomes as it completes. Returns the failures.

    Raises DeployerError when interrupted (Ctrl-C): in-flight requests finish and are recorded
    first; a second Ctrl-C abandons them. A job never started (its dependency failed, or the
    run stopped) is simply not recorded, so the next apply does it.
    """
    if not jobs:
        return []
    keys = {job.key for job in jobs}
    waiting = {job.key: set(job.after) & keys - {job.key} for job in jobs}
    dependants: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        for key in waiting[job.key]:
            dependants.setdefault(key, []).append(index)
    # Jobs whose dependencies are done, by their place in ``jobs`` (a heap: no rescanning of
    # thousands of waiting jobs each time one slot frees up).
    ready = [index for index, job in enumerate(jobs) if not waiting[job.key]]
    heapq.heapify(ready)
    started = 0
    stop = threading.Event()
    errors: list[Exception] = []
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="deployer-apply")
    running: dict[Future[T], str] = {}
    abandon = False

    def top_up() -> None:
        nonlocal started
        while not stop.is_set() and len(running) < parallelism and ready:
            job = jobs[heapq.heappop(ready)]
            started += 1
            running[pool.submit(job.run)] = job.key

    try:
        top_up()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            outcomes = []
            for future in done:
                key = running.pop(future)
                try:
                    outcomes.append(future.result())
                except Exception as exc:  # noqa: BLE001 - collected, returned as one list
                    errors.append(exc)
                    stop.set()
                    continue
                for index in dependants.pop(key, ()):
                    waiting[jobs[index].key].discard(key)
                    if not waiting[jobs[index].key]:
                        heapq.heappush(ready, index)
            record(outcomes)
            top_up()
        if started < len(jobs) and not errors and not stop.is_set():
            # Only a cycle leaves jobs waiting on each other (validate refuses one; this is a guard).
            names = ", ".join(sorted(job.key for job in jobs if waiting[job.key]))
            raise DeployerError(f"these changes wait on each other and cannot start: {names}")
    except KeyboardInterrupt:
        # Ctrl-C: start nothing new, let in-flight requests finish, record them, then stop.
        stop.set()
        try:
            done, _ = wait(running)
        except KeyboardInterrupt:
            # A second Ctrl-C stops waiting, as Terraform's does: what finished is recorded; the
            # abandoned requests may or may not have happened, and the next apply repeats them
            # (uploads and deletes are idempotent).
            abandon = True
            finished = [f for f in running if f.done() and not f.cancelled() and f.exception() is None]
            record([f.result() for f in finished])
            raise DeployerError(
                f"interrupted twice: {len(running) - len(finished)} request(s) in flight were abandoned and "
                "may or may not have taken effect; finished requests were recorded; run apply again to finish"
            ) from None
        record([f.result() for f in done if not f.exception()])
        raise DeployerError(
            "interrupted: finished requests were recorded in the state; run apply again to finish"
        ) from None
    finally:
        pool.shutdown(wait=not abandon, cancel_futures=True)
    return errors
