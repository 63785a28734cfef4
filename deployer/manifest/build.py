"""Scripts' build commands (``build: {command: ...}``), run in the manifest's directory before
their files are hashed by ``plan`` and ``apply``; output goes to stderr as it comes.

A command is run with the shell (``/bin/sh -c``) because users write shell commands there
(``npm ci && npm run build``), exactly as written: deployer fills no ``${VAR}`` into it, so a
secret in the environment reaches the build through its environment, never through the
command's text (or through a message quoting it). A command shared by several scripts runs once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deployer.errors import DeployerError

DEFAULT_TIMEOUT = 900.0


@dataclass(frozen=True, slots=True)
class BuildStep:
    """One command to run in ``directory``, for ``scripts`` (their deployed names)."""

    command: str
    scripts: tuple[str, ...]
    directory: Path


def build_steps(commands: Sequence[tuple[str, str]], directory: Path) -> tuple[BuildStep, ...]:
    """``(script, command)`` pairs -> one step per distinct command, in first-use order."""
    grouped: dict[str, list[str]] = {}
    for script, command in commands:
        grouped.setdefault(command, []).append(script)
    return tuple(BuildStep(command, tuple(scripts), directory) for command, scripts in grouped.items())


def run_builds(steps: Sequence[BuildStep], *, timeout: float, output: Callable[[str], None]) -> None:
    """Run each step in order, passing every line it prints (stdout and stderr) to ``output``.

    Raises DeployerError naming the scripts and the exit status (or the timeout) at the first
    command that fails; nothing after it runs. Ctrl-C stops the command too.
    """
    for step in steps:
        output(f"build ({', '.join(step.scripts)}): {step.command}")
        code = _run(step, timeout, output)
        if code is None:
            raise DeployerError(f"the build command of {_scripts(step)} did not finish within {timeout:g} s "
                                f"(--build-timeout) and was stopped: {step.command}")
        if code != 0:
            status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise DeployerError(f"the build command of {_scripts(step)} {status}: {step.command} (run in "
                                f"{step.directory}); nothing was sent to Cloudflare")


def _scripts(step: BuildStep) -> str:
    return f"script{'s' if len(step.scripts) > 1 else ''} {', '.join(step.scripts)}"


def _run(step: BuildStep, timeout: float, output: Callable[[str], None]) -> int | None:
    """The command's exit status (negative: killed by that signal), or None after a timeout."""
    try:
        # shell=True: build commands are shell command lines (&&, pipes, npm scripts).
        process = subprocess.Popen(
            step.command, shell=True, cwd=step.directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,  # its own process group: stopped as a whole
        )
    except OSError as exc:
        raise DeployerError(f"cannot run the build command of {_scripts(step)} in "
                            f"{step.directory}: {exc.strerror or exc}") from exc
    assert process.stdout is not None
    reader = threading.Thread(target=_copy_lines, args=(process.stdout, output), daemon=True)
    reader.start()
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        code = None
    except BaseException:  # Ctrl-C, SIGTERM: the build must not outlive deployer
        _stop(process)
        raise
    reader.join(timeout=5)
    if reader.is_alive():  # a background process the command left holds its output open
        _stop(process)
        reader.join()
    return code


def _copy_lines(stream: IO[bytes], output: Callable[[str], None]) -> None:
    with stream:
        for line in stream:
            output(line.decode("utf-8", "replace").rstrip("\r\n"))


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
