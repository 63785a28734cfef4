"""Run the real CLI in-process, through ``main()`` and its error boundary (httpie's ``http()``),
or as a real ``python -m deployer`` process (to kill, interrupt or race it)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from deployer.cli.app import main
from tests.fake_cloudflare import FakeCloudflare, Hold


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, expect: int | None = 0) -> Result:
    """Run ``deployer ARGS``; with no terminal on stdin. Fails the test unless the exit code is
    ``expect`` (None: any), so an unexpected non-zero exit is never silently accepted."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_env, old_stdin = Path.cwd(), dict(os.environ), sys.stdin
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.environ.update(env or {})
        sys.stdin = io.StringIO("")
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        sys.stdin = old_stdin
    result = Result(code, out.getvalue(), err.getvalue())
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}\n{result}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def start_apply(project: Path, fake: FakeCloudflare, *args: str) -> subprocess.Popen[str]:
    """Start ``python -m deployer apply --auto-approve ARGS`` in ``project`` against ``fake``."""
    return subprocess.Popen(
        [sys.executable, "-m", "deployer", "apply", "--auto-approve", *args],
        cwd=project, env={**os.environ, **fake.environ()}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for a started process: (exit code, stdout, stderr)."""
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def kill_apply_at(hold: Hold, project: Path, fake: FakeCloudflare, *args: str, waiting_for: str) -> None:
    """Run ``apply --auto-approve ARGS`` until the request ``hold`` holds arrives, then SIGKILL it:
    the held request dies with the process, never carried out. ``waiting_for`` names that
    request in the failure message when it never comes."""
    process = start_apply(project, fake, *args)
    try:
        assert hold.reached.wait(30), f"{waiting_for} never came: {finish(process, 5)}"
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
        hold.release(answer=False)

