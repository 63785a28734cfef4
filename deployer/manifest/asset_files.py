"""The files of a script's assets directory: found by one walk that stays inside the
manifest's directory, skips what ``.assetsignore`` excludes, and checks Cloudflare's limits;
then hashed (``kinds/assets.file_hash``), each file read once per change only.

A hash cache, ``.deployer/cache/assets-<id>.json`` beside the manifest, maps each file to its
size, mtime, ctime, inode and hash, so an unchanged file is not read again (reading 10,000
files costs about half a second, a stat each a tenth of that). An entry is trusted only when
its file was last changed at least ``_RACY_NS`` before the walk that hashed it, so a file
rewritten within the same timestamp tick is hashed again (git's "racily clean" rule). The
cache is an optimisation: unreadable or odd, it is ignored; unwritable, it is not written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deployer.errors import DeployerError
from deployer.files import parse_json, read_regular, write_atomically
from deployer.kinds import assets as kind
from deployer.manifest.assetsignore import IgnoreRules
from deployer.models import AssetFile

_RACY_NS = 2_000_000_000  # coarser than any file system's timestamps (FAT: 2 s)
_CACHE_VERSION = 1
_MAX_CACHE_BYTES = 64 * 1024 * 1024
_MAX_CONFIG_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Found:
    path: str  # relative to the assets directory, "/"-separated
    file: Path
    size: int
    key: tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode: what the cache compares


@dataclass(slots=True)
class Scan:
    """One walk of an assets directory: its files, the text of ``_headers``/``_redirects`` at
    its root, and what is wrong (``problems``: the manifest cannot be used; ``warnings``)."""

    files: list[_Found] = field(default_factory=list)
    config_files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def scan_assets(directory: Path, base: Path, shown: str) -> Scan:
    """Walk ``directory`` (resolved, inside ``base``, the manifest's directory); ``shown`` is
    how messages name it (as the manifest writes it). A symlink is followed only when it
    leads inside ``base``; deployer's own ``.deployer`` folder there is never uploaded."""
    scan = Scan()
    own = base / ".deployer"
    text = _read_root_file(directory / kind.IGNORE_FILE, shown, scan)
    rules = IgnoreRules(text or "")
    pending: list[tuple[Path, str]] = [(directory, "")]
    seen = {directory}
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            scan.problems.append(f"cannot read {shown}/{prefix}: {exc.strerror or exc}")
            continue
        for entry in entries:
            relative = prefix + entry.name
            if not prefix and entry.name == kind.IGNORE_FILE:
                continue
            if not prefix and entry.name in kind.CONFIG_FILES:
                config = _read_root_file(Path(entry.path), shown, scan)
                if config is not None:
                    scan.config_files[entry.name] = config
                continue
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                scan.problems.append(f"{shown}: the name of {relative.encode('utf-8', 'surrogateescape')!r} is "
                                     "not UTF-8, so it cannot be a URL path: rename it or list it in .assetsignore")
                continue
            target = Path(entry.path)
            try:
                if entry.is_symlink():
                    target = target.resolve(strict=True)
                    if not target.is_relative_to(base):
                        scan.problems.append(f"{shown}/{relative} is a symlink leading outside the manifest's "
                                             "directory; copy the file in, or list it in .assetsignore")
                        continue
                info = target.stat()
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
                scan.problems.append(f"cannot read {shown}/{relative}: {getattr(exc, 'strerror', None) or exc}")
                continue
            if stat.S_ISDIR(info.st_mode):
                resolved = target.resolve()
                if resolved == own or resolved in seen or rules.ignored(relative, True):
                    continue
                seen.add(resolved)
                pending.append((target, relative + "/"))
            elif rules.ignored(relative, False):
                continue
            elif not stat.S_ISREG(info.st_mode):
                scan.problems.append(f"{shown}/{relative} is not a regular file; list it in .assetsignore")
            elif info.st_size > kind.MAX_FILE_BYTES:
                scan.problems.append(f"{shown}/{relative} is {info.st_size} bytes; Cloudflare serves asset files "
                                     f"of at most 25 MiB ({kind.MAX_FILE_BYTES} bytes)")
            else:
                key = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
                scan.files.append(_Found(relative, target, info.st_size, key))
    count = len(scan.files)
    if count > kind.MAX_FILES:
        scan.problems.append(f"{shown} holds {count} files; a Worker serves at most {kind.MAX_FILES} assets "
                             "(paid plans); list the rest in .assetsignore")
    elif count > kind.FREE_PLAN_FILES:
        scan.warnings.append(f"{shown} holds {count} files: more than the {kind.FREE_PLAN_FILES} assets a Worker "
                             "on the Free plan may have (paid plans: 100,000)")
    return scan


def _read_root_file(path: Path, shown: str, scan: Scan) -> str | None:
    """The UTF-8 text of ``.assetsignore``, ``_headers`` or ``_redirects`` (None: absent)."""
    try:
        data = read_regular(path, f"{shown}/{path.name}", max_bytes=_MAX_CONFIG_FILE_BYTES, follow=True)
        return data.decode("utf-8") if data is not None else None
    except DeployerError as exc:
        scan.problems.append(str(exc))
    except UnicodeDecodeError:
        scan.problems.append(f"{shown}/{path.name} is not UTF-8 text")
    return None


Hasher = Callable[[Path, str], tuple[str, int]]


def hash_assets(scan: Scan, directory: Path, base: Path, *, hasher: Hasher = kind.file_hash) -> list[AssetFile]:
    """Every file of ``scan`` with its hash, from the cache where it can be trusted.

    Raises DeployerError when a file cannot be read or changed size while it was hashed."""
    cache_file = _cache_path(directory, base)
    cached = _load_cache(cache_file)
    started = time.time_ns()
    entries: dict[str, list[object]] = {}
    files = []
    hashed = 0
    for found in scan.files:
        entry = cached.get(found.path)
        if entry is not None and tuple(entry[:4]) == found.key and max(found.key[1], found.key[2]) < int(entry[5]):
            file_hash, trusted_before = str(entry[4]), int(entry[5])
        else:
            file_hash, size = hasher(found.file, found.path)
            if size != found.size:
                raise DeployerError(f"asset file {found.file} changed while it was hashed; run again once it is "
                                    "written")
            # Trusted next time only if the file was not changed within the margin before now.
            trusted_before = started - _RACY_NS
            hashed += 1
        entries[found.path] = [*found.key, file_hash, trusted_before]
        files.append(AssetFile("/" + found.path, found.file, file_hash, found.size))
    if hashed or len(entries) != len(cached):
        _save_cache(cache_file, entries)
    return files


def _cache_path(directory: Path, base: Path) -> Path:
    name = hashlib.sha256(str(directory.relative_to(base)).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return base / ".deployer" / "cache" / f"assets-{name}.json"


def _load_cache(path: Path) -> dict[str, list[int | str]]:
    try:
        raw = read_regular(path, str(path), max_bytes=_MAX_CACHE_BYTES)
        doc = parse_json(raw) if raw is not None else None
    except (DeployerError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != _CACHE_VERSION or not isinstance(doc.get("files"), dict):
        return {}
    good = {}
    for name, entry in doc["files"].items():
        if (isinstance(entry, list) and len(entry) == 6 and isinstance(entry[4], str)
                and all(isinstance(v, int) and not isinstance(v, bool) for i, v in enumerate(entry) if i != 4)):
            good[name] = entry
    return good


def _save_cache(path: Path, entries: dict[str, list[object]]) -> None:
    data = json.dumps({"version": _CACHE_VERSION, "files": entries}, separators=(",", ":")).encode("utf-8")
    try:
        write_atomically(path, data, f"asset hash cache {path}", mode=0o644)
    except DeployerError:  # a read-only checkout plans without a cache
        with contextlib.suppress(OSError):
            os.unlink(path)  # never leave an entry that could be stale
