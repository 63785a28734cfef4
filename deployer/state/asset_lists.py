"""The file lists of asset uploads, kept beside the manifest as ``.deployer/assets/<digest>.json``
while the state records only the digest (a state stays small with 10,000 files): with the list
of the last upload at hand, a plan counts the files added, changed and removed.

Each file is exactly the upload session's manifest, named by its sha256, so it is checked when
read and can never be stale: environments and state backends share them. Where it is missing
(a fresh checkout, a state kept in PostgreSQL and applied elsewhere) the plan says the counts
are not known. Only the most recently used ``KEEP`` lists are kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from deployer.errors import DeployerError
from deployer.files import parse_json, read_regular, write_atomically
from deployer.kinds.assets import manifest_document
from deployer.models import Assets, State

KEEP = 64
_MAX_BYTES = 64 * 1024 * 1024


def lists_directory(manifest_path: Path) -> Path:
    return manifest_path.resolve().parent / ".deployer" / "assets"


def read_asset_lists(manifest_path: Path, state: State) -> dict[str, dict[str, str]]:
    """The file lists (path -> hash) of the uploads ``state`` records, by digest, where they
    are kept and intact; never raises."""
    found: dict[str, dict[str, str]] = {}
    for script in state.scripts:
        digest = script.assets.manifest_sha256 if script.assets is not None else None
        if digest is None or digest in found or not _is_digest(digest):
            continue
        listed = _read(lists_directory(manifest_path) / f"{digest}.json", digest)
        if listed is not None:
            found[digest] = listed
    return found


def _read(path: Path, digest: str) -> dict[str, str] | None:
    try:
        raw = read_regular(path, str(path), max_bytes=_MAX_BYTES)
        if raw is None or hashlib.sha256(raw).hexdigest() != digest:
            return None
        doc = parse_json(raw)
    except (DeployerError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    listed = {}
    for name, entry in doc.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
            return None
        listed[name] = entry["hash"]
    return listed


def write_asset_list(manifest_path: Path, assets: Assets) -> None:
    """Keep the file list of ``assets`` for later plans; a failure only costs those counts."""
    directory = lists_directory(manifest_path)
    path = directory / f"{assets.manifest_sha256}.json"
    try:
        if path.is_file() and not path.is_symlink():
            os.utime(path)  # most recently used: kept by the pruning below
        else:
            write_atomically(path, manifest_document(assets.files), f"asset list {path}", mode=0o644)
        _prune(directory)
    except (DeployerError, OSError):
        return


def _prune(directory: Path) -> None:
    kept = [(entry.stat().st_mtime_ns, entry.path) for entry in os.scandir(directory)
            if entry.name.endswith(".json") and _is_digest(entry.name[:-5]) and entry.is_file(follow_symlinks=False)]
    for _, path in sorted(kept, reverse=True)[KEEP:]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
