"""The state lock's holder record (pid, host, user, start time, command) and the file lock a
state file uses: an flock on ``state.json.lock`` that holds the record while taken.
The PostgreSQL backend keeps the same record in a table beside its advisory lock."""
from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deployer.errors import LockHeldError, StateError
from deployer.files import open_regular, parse_json

LOCK_POLL_SECONDS = 0.1
HOLDER_KEYS = ("pid", "host", "user", "started", "command")
_MAX_HOLDER_BYTES = 65536

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (some containers)
        return str(os.getuid())


def current_holder(command: str) -> dict[str, Any]:
    """Who is taking a lock now: this process, host, user, the time (UTC) and the command."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": current_user(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
    }


def describe_holder(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process (its holder record is empty or unreadable)"
    return (f"pid {holder['pid']} on host {holder['host']} (user {holder['user']}) since "
            f"{holder['started']}, running {holder['command']!r}")


def held_message(state: str, holder: dict[str, Any] | None, timeout: float) -> str:
    """The LockHeldError text: which state, who holds it, and what to do."""
    who = describe_holder(holder)
    if timeout > 0:
        return (f"state {state} is still locked after {timeout:g} s by {who}; wait for it to "
                f"finish or pass a longer --lock-timeout SECONDS")
    return f"state {state} is locked by {who}; wait for it to finish or pass --lock-timeout SECONDS"


class FileLock:
    """An exclusive flock on ``path`` whose file names its holder while taken.

    The file is never deleted: on release it is emptied and unlocked. A holder record still
    in the file when the flock is free means its process died (the kernel dropped its flock):
    the lock is taken over with a warning.
    """

    def __init__(self, path: Path, state: str) -> None:
        self.path = path
        self._state = state  # how messages name the state this lock protects
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, command: str, timeout: float, warn: Warn) -> None:
        """Fail at once with LockHeldError naming the holder, or after polling ``timeout`` s."""
        lock_file = shown_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot open the lock file {lock_file}: {exc.strerror or exc}") from exc
        # Never through a symlink (truncating the lock would empty its target), never a FIFO.
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, f"the lock file {lock_file}", StateError)
        assert fd is not None  # O_CREAT: a missing file was created
        try:
            deadline = time.monotonic() + max(timeout, 0.0)
            while not _try_flock(fd):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockHeldError(held_message(self._state, _parse_holder(os.pread(fd, _MAX_HOLDER_BYTES, 0)),
                                                     timeout))
                time.sleep(min(LOCK_POLL_SECONDS, remaining))
            # We hold the flock. A holder record still in the file means its writer died before
            # releasing (release empties the file first); the kernel dropped its flock for us.
            previous = os.pread(fd, _MAX_HOLDER_BYTES, 0)
            if previous.strip():
                warn(_stale_message(previous, lock_file))
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(current_holder(command), sort_keys=True) + "\n").encode("utf-8"), 0)
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot take the lock {lock_file}: {exc.strerror or exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        # Never unlink the lock file: another process may already be waiting on this inode, and an
        # unlink + re-create would let two holders in. Emptying it marks a clean release.
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # if this fails, the next run merely warns about a stale lock
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _parse_holder(raw: bytes) -> dict[str, Any] | None:
    """The holder record, or None for anything else (garbage, a cut-off write, a hostile file):
    a lock file is never trusted beyond naming who holds it."""
    try:
        holder = parse_json(raw, limit=2)
    except ValueError:
        return None
    if not isinstance(holder, dict) or any(key not in holder for key in HOLDER_KEYS):
        return None
    if not isinstance(holder["pid"], int) or isinstance(holder["pid"], bool):
        return None
    if not all(isinstance(holder[key], str) and len(holder[key]) <= 1024 and holder[key].isprintable()
               for key in HOLDER_KEYS[1:]):
        return None
    return {key: holder[key] for key in HOLDER_KEYS}


def _stale_message(raw: bytes, lock_file: str) -> str:
    holder = _parse_holder(raw)
    if holder is None:
        return f"took over a stale lock {lock_file} with an unreadable holder record, whose process is gone"
    return (f"took over a stale lock left by pid {holder['pid']} on host {holder['host']} "
            f"(started {holder['started']}), whose process is gone")


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, as users typed it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)
