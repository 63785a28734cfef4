"""Script files named by a manifest: confined to the manifest's directory (no absolute
paths, ``..`` or symlinks leading out), and hashed in one streaming pass that also checks
the source is UTF-8 text."""
from __future__ import annotations

import codecs
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePath

from deployer.errors import DeployerError, Diagnostic
from deployer.manifest.validate import Field

HASH_CHUNK = 1024 * 1024
MAX_FILE_BYTES = 100 * 1000 * 1000  # Cloudflare's request body limit (reference §1.6)


def script_file(
    field: Field | None,
    base: Path,
    file: str,
    diagnostics: list[Diagnostic],
    *,
    missing_hint: str = "",
    on_missing: Callable[[Field], None] | None = None,
    directory: bool = False,
    known_dirs: set[str] | None = None,
) -> Path | None:
    """Resolve a script's ``path`` (or a module's) inside ``base`` (the manifest's resolved directory).

    A file that does not exist is reported with ``missing_hint`` appended, or passed to
    ``on_missing`` instead (a build command will make it). With ``directory``, the path must
    be a directory (an assets directory) instead of a regular file. ``known_dirs`` remembers the
    directories inside ``base`` found to be real ones (not symlinks), across calls."""
    what = "assets directory" if directory else "script file"
    if field is None or field.value is None:
        return None

    def refuse(message: str) -> None:
        diagnostics.append(Diagnostic(file, field.line, field.col, field.path, message))

    if not field.value:  # a literal "" is the schema's to report
        if field.filled_in:
            refuse(f"{field.raw!r} expands to an empty path")
        return None

    relative = PurePath(field.value)
    if relative.is_absolute() or relative.anchor:
        refuse(f"{field.raw!r} is an absolute path; give it relative to the manifest's directory")
        return None
    if os.path.normpath(relative).split(os.sep, 1)[0] == os.pardir:
        refuse(f"{field.raw!r} leads outside the manifest's directory")
        return None
    try:
        found = _plainly_inside(base, relative, set() if known_dirs is None else known_dirs)
        if found is not None:
            resolved, info = found
        else:
            resolved = (base / relative).resolve()
            if not resolved.is_relative_to(base):
                refuse(f"{field.raw!r} resolves through a symlink to a {'directory' if directory else 'file'} "
                       "outside the manifest's directory")
                return None
            info = resolved.stat()
    except FileNotFoundError:
        if on_missing is not None:
            on_missing(field)
        else:
            refuse(f"{what} {field.raw!r} does not exist in {base}{missing_hint}")
        return None
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        refuse(f"cannot read {what} {field.raw!r}: {getattr(exc, 'strerror', None) or exc}")
        return None
    if directory:
        if not stat.S_ISDIR(info.st_mode):
            refuse(f"{field.raw!r} is not a directory")
            return None
        return resolved
    if not stat.S_ISREG(info.st_mode):
        refuse(f"{field.raw!r} is not a regular file")
        return None
    if info.st_size > MAX_FILE_BYTES:
        # apply holds a script's parts in memory for the upload; Cloudflare refuses them anyway.
        refuse(f"script file {field.raw!r} is {info.st_size} bytes; one upload to Cloudflare carries "
               f"at most 100 MB (and a Worker at most 10 MB after gzip)")
        return None
    return resolved


def _plainly_inside(base: Path, relative: PurePath, known_dirs: set[str]) -> tuple[Path, os.stat_result] | None:
    """``base / relative`` and its status when no part of it is a symlink or ``..``: then it is
    inside ``base`` as written, found with one lstat per directory not seen before and one for
    itself (realpath takes one per part of the whole path, every time). None: a symlink or
    ``..`` is on the way, and realpath decides."""
    if not relative.parts or ".." in relative.parts:
        return None
    path = str(base)
    for part in relative.parts[:-1]:
        path = os.path.join(path, part)
        if path not in known_dirs:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None
            known_dirs.add(path)
    path = os.path.join(path, relative.parts[-1])
    info = os.lstat(path)
    return None if stat.S_ISLNK(info.st_mode) else (Path(path), info)


def script_digest(field: Field | None, path: Path | None, file: str, diagnostics: list[Diagnostic], *,
                  text_up_to: int = 0) -> tuple[str, int, str | None] | None:
    """The script's sha256, its size in bytes and (when at most ``text_up_to`` bytes) its text,
    or None (with a diagnostic) when it is not UTF-8 text: the script is uploaded as
    service-worker JavaScript source, which Cloudflare reads as UTF-8."""
    assert field is not None and path is not None
    try:
        digest, bad_offset, size, text = _hash_and_check_utf8(path, text_up_to)
    except DeployerError as exc:
        diagnostics.append(Diagnostic(file, field.line, field.col, field.path, str(exc)))
        return None
    if bad_offset is not None:
        diagnostics.append(Diagnostic(
            file, field.line, field.col, field.path,
            f"script file {field.raw!r} is not UTF-8 text (byte offset {bad_offset}): a service-worker "
            "script is uploaded as JavaScript source; is it a binary or a differently encoded file?",
        ))
        return None
    return digest, size, text


def _hash_and_check_utf8(path: Path, text_up_to: int = 0) -> tuple[str, int | None, int, str | None]:
    """Hex sha256 of the file, the offset of its first byte that is not UTF-8 (or None), its
    size and, for UTF-8 of at most ``text_up_to`` bytes, its text: one pass of 1 MiB chunks."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    bad_offset: int | None = None
    offset = 0
    pieces: list[str] | None = []
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
                if bad_offset is None:
                    pending = len(decoder.getstate()[0])
                    try:
                        piece = decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        bad_offset = offset - pending + exc.start
                    else:
                        if pieces is not None and offset + len(chunk) <= text_up_to:
                            pieces.append(piece)
                        else:
                            pieces = None  # too large to keep
                offset += len(chunk)
            if bad_offset is None:
                pending = len(decoder.getstate()[0])  # a character cut off by the end of the file
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    bad_offset = offset - pending
    except OSError as exc:
        raise DeployerError(f"cannot read script file {path}: {exc.strerror}") from exc
    text = "".join(pieces) if pieces is not None and bad_offset is None else None
    return digest.hexdigest(), bad_offset, offset, text


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (any bytes: a module may be wasm), read in 1 MiB chunks."""
    return sha256_and_size(path)[0]


def sha256_and_size(path: Path) -> tuple[str, int]:
    """Hex sha256 of a file and its size in bytes, in one pass of 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise DeployerError(f"cannot read script file {path}: {exc.strerror}") from exc
    return digest.hexdigest(), size
