"""The files deployer keeps for itself (state, its backup, journal and lock, plan files, init's
starter files): written only as regular files, never through a symlink, a FIFO or a device left
in their place; read back with bounded size and JSON nesting, so no file can hang a command,
exhaust its memory or end it in a RecursionError.

Every function raises ``error`` (a DeployerError class the caller picks) naming the file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployer.errors import DeployerError

MAX_JSON_DEPTH = 64  # a state or plan file needs about 8 levels
ErrorType = type[DeployerError]
PairsHook = Callable[[list[tuple[str, Any]]], Any]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for its other end
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def kind_of(mode: int) -> str:
    """How a message names a file type: ``a symlink``, ``a FIFO``, ..."""
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _odd(shown: str, kind: str, error: ErrorType) -> DeployerError:
    return error(f"{shown} is {kind}, not a regular file: deployer writes and reads its own files only as "
                 f"regular files, never through a link or into a device; move it away and run again")


def refuse_odd_file(path: Path, shown: str, error: ErrorType = DeployerError) -> bool:
    """Raise unless ``path`` is a regular file or absent (a symlink is refused, not followed);
    returns whether it exists."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise error(f"cannot look at {shown}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        raise _odd(shown, kind_of(mode), error)
    return True


def open_regular(path: Path, flags: int, shown: str, error: ErrorType = DeployerError, *, mode: int = 0o600,
                 follow: bool = False, fix_mode: bool = True) -> int | None:
    """``os.open`` that yields a descriptor of a regular file only: never through a symlink
    (unless ``follow``), never blocking on a FIFO. None when the file is missing and ``flags``
    do not create it. With ``fix_mode``, a file this process owns and opens for writing is
    given ``mode`` when it has another one."""
    try:
        fd = os.open(path, flags | _O_NONBLOCK | _O_CLOEXEC | (0 if follow else _O_NOFOLLOW), mode)
    except FileNotFoundError:
        if flags & os.O_CREAT:
            raise error(f"cannot open {shown}: its directory does not exist") from None
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV):
            with contextlib.suppress(OSError):
                raise _odd(shown, kind_of(path.lstat().st_mode), error) from None
        raise error(f"cannot open {shown}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _odd(shown, kind_of(info.st_mode), error)
        if fix_mode and flags & (os.O_WRONLY | os.O_RDWR) and info.st_mode & 0o7777 != mode and info.st_uid == os.getuid():
            os.fchmod(fd, mode)  # a journal or lock made by an older deployer was world-readable
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, shown: str, error: ErrorType = DeployerError, *, max_bytes: int,
                 follow: bool = False) -> bytes | None:
    """The bytes of a regular file (None when missing), refusing one larger than ``max_bytes``."""
    fd = open_regular(path, os.O_RDONLY, shown, error, follow=follow)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise error(f"{shown} is {size} bytes; at most {max_bytes} are read (is it the right file?)")
        with os.fdopen(os.dup(fd), "rb") as stream:
            # The size it has (read(n) sets n bytes aside first), then whatever it grew by.
            data = stream.read(size + 1)
            if len(data) > size:
                data += stream.read(max_bytes + 1 - len(data))
    except OSError as exc:
        raise error(f"cannot read {shown}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{shown} grew past {max_bytes} bytes while it was read")
    return data


_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"\\'))
_STRING = re.compile(rb'"[^"]*"')
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")


def nesting_fits(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests at most ``limit`` arrays/objects deep, found without parsing it
    (json.loads recurses once per level). Brackets inside strings are ignored; text that is
    not JSON may pass, json.loads then refuses it."""
    shape = raw.translate(None, _NOT_STRUCTURE)
    shape = shape.replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\", b"")  # escapes in strings
    # Quotes alternate opening and closing, so two adjacent ones are an empty string or the end
    # of one and the start of the next: dropping them keeps what is inside strings inside. That
    # leaves re.sub only the strings holding brackets (all of them cost a piece each: 15 MB
    # for a 3 MB state of 5,000 scripts).
    shape = _STRING.sub(b"", shape.replace(b'""', b""))
    # Depth does not depend on the kind of bracket; with one kind, one replace() removes exactly
    # one level (two replaces, [] then {}, peeled "{[]}" whole in one round: twice the limit passed).
    shape = shape.translate(_BRACES_AS_BRACKETS)
    for _ in range(limit):
        before = len(shape)
        if not before:
            return True
        shape = shape.replace(b"[]", b"")  # one level of innermost pairs
        if len(shape) == before:  # unbalanced: as deep as what is left at most
            return before <= limit
    return not shape


def parse_json(raw: bytes, *, pairs_hook: PairsHook | None = None, limit: int = MAX_JSON_DEPTH) -> Any:
    """Decode UTF-8 JSON text; ValueError (a message without the text itself) for anything else,
    including nesting deeper than ``limit``."""
    if not nesting_fits(raw, limit):
        raise ValueError(f"nested more than {limit} levels deep")
    text = raw.decode("utf-8")
    return json.loads(text, object_pairs_hook=pairs_hook)


def write_atomically(path: Path, data: bytes, shown: str, error: ErrorType = DeployerError, *,
                     mode: int = 0o600, backup: Path | None = None, backup_shown: str = "") -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, (copy the current
    file to ``backup``), ``os.replace``, directory fsync. Refuses when ``path`` or ``backup`` is
    anything but a regular file or absent; a crash leaves the old file or the new one."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot write {shown}: {exc.strerror or exc}") from exc
    exists = refuse_odd_file(path, shown, error)
    if backup is not None:
        refuse_odd_file(backup, backup_shown or str(backup), error)
    try:
        with _temporary_file(directory, path.name, mode) as (temp, handle):
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            if backup is not None and exists:
                _copy(path, backup, shown, error)
            os.replace(temp, path)
        fsync_directory(directory)
    except OSError as exc:
        raise error(f"cannot write {shown}: {exc.strerror or exc}") from exc


def _copy(source: Path, target: Path, shown: str, error: ErrorType) -> None:
    fd = open_regular(source, os.O_RDONLY, shown, error)
    if fd is None:
        return
    with os.fdopen(fd, "rb") as stream, _temporary_file(target.parent, target.name, 0o600) as (temp, handle):
        while chunk := stream.read(1024 * 1024):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(temp, target)


def create_new(path: Path, data: bytes, shown: str, error: ErrorType = DeployerError, *, mode: int = 0o644) -> bool:
    """Create ``path`` holding ``data``; False (nothing written) when anything, even a dangling
    symlink, is in its place already."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise error(f"cannot write {shown}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise error(f"cannot write {shown}: {exc.strerror or exc}") from exc
    return True


@contextlib.contextmanager
def _temporary_file(directory: Path, name: str, mode: int) -> Any:
    """A temp file beside ``name`` (same directory, so os.replace is atomic); removed unless
    the caller moved it into place. mkstemp creates it 0600 and never follows a link."""
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    handle = os.fdopen(fd, "wb")
    try:
        if mode != 0o600:
            os.fchmod(handle.fileno(), mode)
        yield temp, handle
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
