"""What ``deployer apply`` shows while it works: one whole line per finished change as
``[n/N] ... (elapsed)``, a "still uploading X (10 s)" note for a slow request, and on a terminal
a progress bar (rich, installed with typer). In CI (no terminal) only plain lines."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from deployer.apply.executor import ProgressEvent, Step
from deployer.cli.shared import stderr
from deployer.escape import escape_text
from deployer.models import SCRIPT, Action, Change, Plan

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SLOW_SECONDS = 10.0  # a request running this long gets a note, and another every as many seconds

class ApplyReporter:
    """Receives the executor's ProgressEvents (from its worker threads) and writes lines.

    ``write`` gets whole lines (``stderr`` writes each under one lock, so parallel uploads never
    run into each other). A watcher thread notes requests running longer than ``slow`` seconds.
    """

    def __init__(
        self,
        total: int,
        write: Callable[[str], None] = stderr,
        *,
        clock: Callable[[], float] = time.monotonic,
        slow: float = SLOW_SECONDS,
        watch: bool = True,
    ) -> None:
        self.total = total
        # Every line names a change, and the executor's messages may quote a title: escaped.
        self._write: Callable[[str], None] = lambda line: write(escape_text(line))
        self._clock = clock
        self._slow = slow
        self._started = clock()
        self._done = 0
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Change, float, int]] = {}  # name -> (change, start, notes so far)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if watch:
            self._watcher = threading.Thread(target=self._watch, name="deployer-progress", daemon=True)
            self._watcher.start()

    @classmethod
    def for_plan(cls, plan: Plan, stream: TextIO) -> ApplyReporter:
        """A reporter for the changes of ``plan``: with a progress bar when ``stream`` is a terminal."""
        total = sum(1 for change in plan.changes if change.action is not Action.NO_OP)
        if _is_terminal(stream):
            return BarReporter(total, stream)
        return cls(total)

    def __call__(self, event: ProgressEvent) -> None:
        key = _key(event.change)
        with self._lock:
            match event.step:
                case Step.START:
                    assert event.change is not None
                    self._running[key] = (event.change, self._clock(), 0)
                    return
                case Step.FAILED:
                    self._running.pop(key, None)
                    return
                case Step.DONE:
                    began = self._running.pop(key, None)
                    self._done += 1
                    took = f"in {self._clock() - began[1]:.1f} s, " if began else ""
                    self._write(f"[{self._done}/{self.total}] {event.message} ({took}{self.elapsed():.1f} s elapsed)")
                    self._advanced()
                case Step.NOTE:
                    self._write(event.message)

    def elapsed(self) -> float:
        return self._clock() - self._started

    def close(self) -> None:
        """Stop the watcher; what is still running is no longer noted."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()

    def check_slow(self) -> None:
        """Note each request that has run another ``slow`` seconds since it started."""
        now = self._clock()
        with self._lock:  # lines are written under it too, so [n/N] appear in order
            for key, (change, began, noted) in self._running.items():
                due = int((now - began) // self._slow)
                if due > noted:
                    self._running[key] = (change, began, due)
                    self._write(f"still {_doing(change)} {change.type} {change.name} ({due * self._slow:.0f} s)")

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self._slow / 4)):
            self.check_slow()

    def _advanced(self) -> None:
        """Called under the lock after a change finished (the bar moves)."""


class BarReporter(ApplyReporter):
    """On a terminal: the same lines, printed above a rich progress bar."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=stream, highlight=False)
        self._bar: Progress = Progress(
            TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True, redirect_stdout=False,
        )
        self._task: TaskID = self._bar.add_task("apply", total=total)
        self._bar.start()  # stderr written meanwhile (warnings, retry notes) is printed above the bar
        super().__init__(total, self._print)

    def _print(self, line: str) -> None:
        self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _advanced(self) -> None:
        self._bar.advance(self._task)

    def close(self) -> None:
        super().close()
        self._bar.stop()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _key(change: Change | None) -> str:
    return f"{change.type} {change.name}" if change is not None else ""


def _doing(change: Change) -> str:
    if change.action is Action.DELETE:
        return "deleting"
    if change.type == SCRIPT:
        return "uploading"
    if change.attachment is not None or change.previous_attachment is not None:
        return "attaching" if change.action is Action.CREATE else "updating"
    return {Action.CREATE: "creating", Action.ADOPT: "adopting"}.get(change.action, "renaming")
