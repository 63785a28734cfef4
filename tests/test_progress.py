"""What apply shows while it works (deployer.cli.progress) and whole lines on stderr."""
from __future__ import annotations

import io
import sys
import threading

import pytest

from deployer.apply.executor import ProgressEvent, Step
from deployer.cli.progress import ApplyReporter, BarReporter
from deployer.cli.shared import stderr
from deployer.models import SCRIPT, Action, Change, Plan


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def script(name: str, action: Action = Action.CREATE) -> Change:
    return Change(SCRIPT, name, action)


def test_finished_changes_are_numbered_with_their_time_and_the_time_elapsed() -> None:
    clock, lines = Clock(), []
    reporter = ApplyReporter(2, lines.append, clock=clock, watch=False)
    a, b = script("a"), script("b", Action.DELETE)
    reporter(ProgressEvent(Step.START, "script a", a))
    reporter(ProgressEvent(Step.START, "script b", b))
    clock.now += 1.5
    reporter(ProgressEvent(Step.DONE, "deleted script b", b))
    reporter(ProgressEvent(Step.NOTE, "verified script a: 1 binding(s) as sent"))
    clock.now += 0.25
    reporter(ProgressEvent(Step.DONE, "created script a", a))
    assert lines == [
        "[1/2] deleted script b (in 1.5 s, 1.5 s elapsed)",
        "verified script a: 1 binding(s) as sent",
        "[2/2] created script a (in 1.8 s, 1.8 s elapsed)",
    ]
    assert reporter.elapsed() == pytest.approx(1.75)


def test_a_slow_request_gets_a_note_every_ten_seconds_until_it_finishes() -> None:
    clock, lines = Clock(), []
    reporter = ApplyReporter(2, lines.append, clock=clock, watch=False)
    big, gone = script("big"), script("old", Action.DELETE)
    reporter(ProgressEvent(Step.START, "script big", big))
    reporter(ProgressEvent(Step.START, "script old", gone))
    clock.now += 9.9
    reporter.check_slow()
    assert lines == []
    clock.now += 0.2
    reporter.check_slow()
    reporter.check_slow()  # once per ten seconds, not once per look
    assert lines == ["still uploading script big (10 s)", "still deleting script old (10 s)"]
    reporter(ProgressEvent(Step.FAILED, "script old", gone))
    clock.now += 10
    reporter.check_slow()
    assert lines[-1] == "still uploading script big (20 s)"
    reporter(ProgressEvent(Step.DONE, "created script big", big))
    clock.now += 30
    reporter.check_slow()
    assert lines[-1].startswith("[1/2] created script big (in 20.1 s")


def test_the_watcher_thread_writes_the_notes_on_its_own() -> None:
    written = threading.Event()
    lines: list[str] = []

    def write(line: str) -> None:
        lines.append(line)
        written.set()

    reporter = ApplyReporter(1, write, slow=0.05)
    reporter(ProgressEvent(Step.START, "script big", script("big")))
    try:
        assert written.wait(5)
    finally:
        reporter.close()
    assert lines[0] == "still uploading script big (0 s)"  # 0.05 s, shown rounded


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    plan = Plan((script("a"), script("b", Action.NO_OP)))
    reporter = ApplyReporter.for_plan(plan, io.StringIO())
    try:
        assert type(reporter) is ApplyReporter and reporter.total == 1
    finally:
        reporter.close()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_with_the_same_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    reporter = ApplyReporter.for_plan(Plan((script("a"),)), terminal)
    assert isinstance(reporter, BarReporter)
    reporter(ProgressEvent(Step.START, "script a", script("a")))
    reporter(ProgressEvent(Step.DONE, "created script a", script("a")))
    reporter.close()
    assert "[1/1] created script a (in " in terminal.getvalue()


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    reporter = ApplyReporter.for_plan(Plan((script("a"),)), Terminal())
    reporter.close()
    assert type(reporter) is ApplyReporter


def test_lines_from_many_threads_never_run_into_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    class Chunky(io.StringIO):
        """A stream that yields the thread between every write, as a slow pipe would."""

        def write(self, text: str) -> int:
            for char in text:
                super().write(char)
                threading.Event().wait(0)
            return len(text)

    stream = Chunky()
    monkeypatch.setattr(sys, "stderr", stream)
    threads = [threading.Thread(target=lambda n=n: [stderr(f"created script a-{n:03}") for _ in range(20)])
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 160
    assert all(line.startswith("created script a-") and len(line) == len("created script a-000") for line in lines)

