"""Run an apply's requests in dependency order, in parallel where they are independent.

A job starts once every job it comes ``after`` has succeeded and been recorded (a script after
the scripts it binds, a route after its script's upload), at most ``parallelism`` at a time:
a job makes its requests holding one of ``parallelism`` slots, and gives the slot back only once
its outcome is recorded, so a slot's next request never starts before its last success is on
disk. A job's local work (``prepare``: reading its files, building its request) is done before
it takes a slot, by one of ``parallelism`` more workers, so a freed slot goes straight to a
request already built: the worker that recorded the slot's last outcome sends it (no hand-over
to another thread between an answer and the next request). Outcomes that complete while
another batch is being written are recorded together (one journal line, one sync). On the first failure nothing new
starts, the running jobs finish and are recorded, and the failures are returned.
"""
from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from deployer.errors import DeployerError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One request (or a few that belong together) named ``key``; ``after`` names the jobs of
    this run it must wait for (keys of jobs not in the run are already done). ``run`` does it
    all; a job made ``in_two_steps`` has its local work as ``prepare``, which returns the part
    that makes the requests."""

    key: str
    run: Callable[[], T]
    after: frozenset[str] = frozenset()
    prepare: Callable[[], Callable[[], T]] | None = None

    @staticmethod
    def in_two_steps(key: str, prepare: Callable[[], Callable[[], T]], after: frozenset[str] = frozenset()) -> Job[T]:
        """A job whose ``prepare`` sends nothing (it reads files, builds the request) and returns
        what sends it: done ahead, while the slots are busy."""
        return Job(key, lambda: prepare()(), after, prepare)


def run_jobs(jobs: Sequence[Job[T]], parallelism: int, record: Callable[[list[T]], None], *,
             go: Callable[[], None] | None = None) -> list[Exception]:
    """Run ``jobs``; ``record`` the outcomes as they complete, one batch at a time (those that
    complete together go together). Returns the failures; an error raised by ``record`` is
    raised once the running jobs end.

    ``go``, when given, is called in this thread while the first jobs are prepared and before
    any is sent (the checks before a change, whose reads may still be under way): if it
    raises, no job is sent, the workers stop and its exception propagates.

    Raises DeployerError when interrupted (Ctrl-C): in-flight requests finish and are recorded
    first; a second Ctrl-C abandons them. A job never started (its dependency failed, or the
    run stopped) is simply not recorded, so the next apply does it.
    """
    if not jobs:
        if go is not None:
            go()
        return []
    run = _Run(jobs, parallelism, record, held=go is not None)
    if go is not None:
        try:
            go()
        except BaseException:
            run.cancel()
            raise
        run.send()
    return run.wait()


class _Run(Generic[T]):
    """One run of ``run_jobs``: the workers (started here) and what they share."""

    def __init__(self, jobs: Sequence[Job[T]], parallelism: int, record: Callable[[list[T]], None], *,
                 held: bool = False) -> None:
        self._jobs, self._record = jobs, record
        keys = {job.key for job in jobs}
        self._waiting = {job.key: set(job.after) & keys - {job.key} for job in jobs}
        self._dependants: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            for key in self._waiting[job.key]:
                self._dependants.setdefault(key, []).append(index)
        # Jobs whose dependencies are done, by their place in ``jobs`` (a heap: no rescanning of
        # thousands of waiting jobs each time one slot frees up).
        self._ready = [index for index, job in enumerate(jobs) if not self._waiting[job.key]]
        heapq.heapify(self._ready)
        self._changed = threading.Condition()  # guards everything below; notified on every change
        self._started = self._running = 0  # running: handed to a worker and not ended
        self._in_flight = 0  # running and holding a slot: its requests may be under way
        self._stop = False
        self._errors: list[Exception] = []
        self._fatal: BaseException | None = None  # from record(), or a job's non-Exception
        # Recording is serialised on its own lock, so workers picking up jobs do not wait on a
        # journal write; ``_abandoned`` (set under it) stops recording after a second Ctrl-C.
        self._recording = threading.Lock()
        self._abandoned = False
        self._unrecorded: list[tuple[str, T]] = []  # successes waiting for the recording lock
        # A job sends only holding a slot, and keeps it until its outcome is recorded.
        self._slots = _Slots(max(1, parallelism), held=held)
        # As many workers again as slots: while ``parallelism`` jobs wait for answers, the others
        # prepare the next jobs (bounded memory: at most 2 x parallelism bodies built at once).
        count = max(1, min(2 * parallelism, len(jobs)))
        self._alive = count
        for number in range(count):
            # Daemon threads: after a second Ctrl-C the process leaves without them.
            threading.Thread(target=self._work, name=f"deployer-apply-{number}", daemon=True).start()

    def send(self) -> None:
        """Let a run started ``held`` send: until now its workers only prepared."""
        self._slots.open()

    def cancel(self) -> None:
        """Stop a run started ``held`` before it sent anything; returns once its workers end."""
        with self._changed:
            self._stop = True
        self._slots.open()  # each waiting job gets a slot, sees the stop and gives it back
        self._until_workers_end()

    def wait(self) -> list[Exception]:
        try:
            self._until_workers_end()
        except KeyboardInterrupt:
            # Ctrl-C: start nothing new, let in-flight requests finish, record them, then stop.
            with self._changed:
                self._stop = True
            try:
                self._until_workers_end()
            except KeyboardInterrupt:
                # A second Ctrl-C stops waiting, as Terraform's does: what finished is recorded; the
                # abandoned requests may or may not have happened, and the next apply repeats them
                # (uploads and deletes are idempotent).
                finished = self._record_unrecorded()  # what has finished is recorded, as the message says
                with self._recording:  # a batch being written is finished first
                    self._abandoned = True
                with self._changed:
                    in_flight = self._in_flight - finished
                if self._fatal is not None:
                    raise self._fatal from None  # recording failed: that error names what is not recorded
                raise DeployerError(
                    f"interrupted twice: {in_flight} request(s) in flight were abandoned and "
                    "may or may not have taken effect; finished requests were recorded; run apply again to finish"
                ) from None
            if self._fatal is not None:
                raise self._fatal from None
            raise DeployerError(
                "interrupted: finished requests were recorded in the state; run apply again to finish"
            ) from None
        if self._fatal is not None:
            raise self._fatal
        if self._started < len(self._jobs) and not self._errors and not self._stop:
            # Only a cycle leaves jobs waiting on each other (validate refuses one; this is a guard).
            names = ", ".join(sorted(job.key for job in self._jobs if self._waiting[job.key]))
            raise DeployerError(f"these changes wait on each other and cannot start: {names}")
        return self._errors

    def _until_workers_end(self) -> None:
        with self._changed:
            while self._alive:
                self._changed.wait()

    def _work(self) -> None:
        try:
            while (taken := self._next()) is not None:
                self._run_one(*taken)
        finally:
            with self._changed:
                self._alive -= 1
                if not self._alive:  # what wait() waits for (the workers waiting for jobs were told)
                    self._changed.notify_all()

    def _run_one(self, index: int, job: Job[T]) -> None:
        """Prepare the job, then wait until it holds a slot (and send it) or until a worker
        whose slot came free has taken it over."""
        try:
            send = job.prepare() if job.prepare is not None else job.run
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._ended(exc)  # the run stops before the next job can take a slot
            self._slots.leave(index)
            return
        if self._slots.take(index, send):
            self._send_holding_slot(index, send)

    def _send_holding_slot(self, index: int, send: Callable[[], T]) -> None:
        """Send the job at ``index``, record its outcome, and then, keeping the slot, do the
        same for the prepared job next in line, if any: a freed slot goes on in the thread that
        holds it, with no hand-over to the waiting job's thread (it goes back to preparing)."""
        while True:
            with self._changed:
                stopped = self._stop  # the run stopped while this job was prepared: it never starts
                if stopped:
                    self._running -= 1
                    self._changed.notify_all()
                else:
                    self._in_flight += 1
            if stopped:
                self._slots.give_back()  # the next waiting job sees the stop too
                return
            try:
                outcome = send()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._ended(exc, sent=True)
                self._slots.give_back()  # after the stop: the job it goes to sees it
                return
            with self._changed:
                self._unrecorded.append((self._jobs[index].key, outcome))
            self._record_unrecorded()
            self._ended(None, sent=True)
            following = self._slots.pass_on()  # only now may this slot's next request start
            if following is None:
                return
            index, send = following

    def _next(self) -> tuple[int, Job[T]] | None:
        """The next ready job and its place, waiting while others run that may release one;
        None when done. It joins the queue for slots at once (slots go in the order jobs are taken)."""
        with self._changed:
            while not self._stop:
                if self._ready:
                    self._started += 1
                    self._running += 1
                    index = heapq.heappop(self._ready)
                    self._slots.join(index)
                    return index, self._jobs[index]
                if not self._running:
                    self._changed.notify_all()  # nothing runs, so nothing more becomes ready
                    return None
                self._changed.wait()
            return None

    def _ended(self, failure: BaseException | None, *, sent: bool = False) -> None:
        """A job ended (recorded, if it succeeded; ``sent`` if it was sent); on a failure
        nothing new starts."""
        with self._changed:
            self._running -= 1
            self._in_flight -= sent
            if failure is not None:
                self._stop = True
                if isinstance(failure, Exception):
                    self._errors.append(failure)
                else:
                    self._fatal = self._fatal or failure
            self._changed.notify_all()

    def _record_unrecorded(self) -> int:
        """Record every success not recorded yet, as one batch (group commit: outcomes that
        finish while another batch is written go together, one journal line and one sync), then
        let the jobs waiting on them start; returns how many. A worker calling it returns once
        its own outcome is recorded (by itself or by the worker that held the lock)."""
        with self._recording:
            with self._changed:
                batch, self._unrecorded = self._unrecorded, []
            if not batch or self._abandoned:
                return 0
            try:
                self._record([outcome for _, outcome in batch])
            except BaseException as exc:  # noqa: BLE001 - raised by wait() in the main thread
                with self._changed:
                    self._fatal = self._fatal or exc
                    self._stop = True
                return 0
            with self._changed:
                for key, _ in batch:
                    for index in self._dependants.pop(key, ()):
                        waiting = self._waiting[self._jobs[index].key]
                        waiting.discard(key)
                        if not waiting:
                            heapq.heappush(self._ready, index)
            return len(batch)


class _Slots:
    """``count`` slots for sending, each going to the job taken first (lowest place in the list)
    among those not sending yet, once it is prepared: requests go in the order the jobs were
    taken, whichever finished preparing first (with one slot, strictly one after another in the
    listed order). A slot that comes free goes on with the next prepared job in the thread that
    held it (``pass_on``); a free slot is handed to a waiting job's thread (``take``)."""

    def __init__(self, count: int, *, held: bool = False) -> None:
        self._lock = threading.Lock()
        self._count = count
        self._free = 0 if held else count  # held: none until open()
        self._queue: list[int] = []  # heap: places of the jobs taken and not sending yet
        self._prepared: dict[int, tuple[threading.Event, Callable[[], Any]]] = {}  # those waiting for a slot
        self._taken_over: set[int] = set()  # prepared jobs another thread sends

    def join(self, index: int) -> None:
        """The job at ``index`` was taken: it will ``take`` a slot or ``leave``."""
        with self._lock:
            heapq.heappush(self._queue, index)

    def take(self, index: int, send: Callable[[], Any]) -> bool:
        """Wait until the job at ``index`` (prepared: ``send`` sends it) holds a slot: True,
        this thread sends it; False, a thread whose slot came free sends it."""
        given = threading.Event()
        with self._lock:
            self._prepared[index] = (given, send)
            self._hand_out()
        given.wait()
        with self._lock:
            if index in self._taken_over:
                self._taken_over.discard(index)
                return False
            return True

    def leave(self, index: int) -> None:
        """The job at ``index`` will not send (its preparation failed)."""
        with self._lock:
            self._queue.remove(index)
            heapq.heapify(self._queue)
            self._hand_out()

    def open(self) -> None:
        """Hand out the slots of ``held`` slots."""
        with self._lock:
            self._free = self._count
            self._hand_out()

    def give_back(self) -> None:
        with self._lock:
            self._free += 1
            self._hand_out()

    def pass_on(self) -> tuple[int, Callable[[], Any]] | None:
        """For a thread whose job is done: the next job in line and what sends it, if it is
        prepared (this thread keeps the slot and sends it); None when it is not (the slot is
        given back)."""
        with self._lock:
            if self._queue and self._queue[0] in self._prepared:
                index = heapq.heappop(self._queue)
                given, send = self._prepared.pop(index)
                self._taken_over.add(index)
                given.set()  # its thread goes back to preparing
                return index, send
            self._free += 1
            self._hand_out()
            return None

    def _hand_out(self) -> None:
        while self._free and self._queue and self._queue[0] in self._prepared:
            self._free -= 1
            given, _ = self._prepared.pop(heapq.heappop(self._queue))
            given.set()
