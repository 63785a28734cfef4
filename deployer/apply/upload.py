"""What one script's upload request carries besides bindings: its parts (entry first), the
metadata keys that name them, and the content hash over both that the plan compares.

Reference: shared/reference/cloudflare-api.md §1.2 (parts and content types), §1.3 (metadata).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from deployer.errors import DeployerError, StalePlanError
from deployer.kinds.settings import OWNER_TAG_PREFIX as OWNER_TAG_PREFIX  # declared with the tags setting; guard.py reads it here
from deployer.models import Script, ScriptFormat

JS_MODULE = "application/javascript+module"
SERVICE_WORKER_PART = "script"  # the seed's part name, named by body_part
SERVICE_WORKER_TYPE = "application/javascript"

_TYPE_BY_SUFFIX = {
    ".js": JS_MODULE,
    ".mjs": JS_MODULE,
    ".wasm": "application/wasm",
    ".txt": "text/plain",
    ".html": "text/plain",
}


def module_type(name: str) -> str:
    """The content type of a module part by its extension (``application/octet-stream`` else)."""
    return _TYPE_BY_SUFFIX.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


@dataclass(frozen=True, slots=True)
class UploadPart:
    """One multipart part of an upload: sent with ``name`` as its name and filename."""

    name: str
    content_type: str
    data: bytes


def content_digest(
    script_format: ScriptFormat,
    parts: Sequence[tuple[str, str, str]],
    compatibility_date: str | None = None,
    compatibility_flags: Sequence[str] = (),
) -> str:
    """The ``content_sha256`` of a script from its parts' ``(name, content type, sha256)``,
    entry first (none for a script that only serves assets). A service-worker script without
    compatibility settings keeps the plain sha256 of its file, so states recorded before
    modules existed still match."""
    if script_format is ScriptFormat.SERVICE_WORKER and compatibility_date is None and not compatibility_flags and parts:
        return parts[0][2]
    ordered = [list(parts[0]), *sorted(list(part) for part in parts[1:])] if parts else []
    doc = {
        "format": script_format.value,
        "parts": ordered,
        "compatibility_date": compatibility_date,
        "compatibility_flags": sorted(compatibility_flags),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def entry_part(script_format: ScriptFormat, path: Path) -> tuple[str, str]:
    """The entry file's part name and content type: the seed's ``script`` part for a
    service-worker script, its file name (what ``main_module`` names) for modules."""
    if script_format is ScriptFormat.SERVICE_WORKER:
        return SERVICE_WORKER_PART, SERVICE_WORKER_TYPE
    return path.name, JS_MODULE


def read_parts(script: Script) -> tuple[UploadPart, ...]:
    """Every part of ``script``'s upload, entry first, bytes unchanged.

    Raises StalePlanError when the files no longer give the planned ``content_sha256``.
    A script that only serves assets has none.
    """
    if script.path is None:
        return ()
    entry = UploadPart(*entry_part(script.format, script.path), _read(script.path))
    parts = (entry, *(UploadPart(m.name, m.content_type, _read(m.path)) for m in script.modules))
    digest = content_digest(
        script.format,
        [(p.name, p.content_type, hashlib.sha256(p.data).hexdigest()) for p in parts],
        script.compatibility_date,
        script.compatibility_flags,
    )
    if digest != script.content_sha256:
        if not script.modules:
            raise StalePlanError(f"script file {script.path} changed after it was planned; run plan again")
        raise StalePlanError(
            f"a file of script {script.name} (its entry {script.path.name} or a module) changed after "
            "it was planned; run plan again"
        )
    return parts


def upload_metadata(script: Script, bindings: list[dict[str, object]], *, project: str | None = None,
                    settings: Mapping[str, object] | None = None, migrations: Mapping[str, object] | None = None,
                    ) -> dict[str, Any]:
    """The metadata part: the seed's ``{"body_part": "script", "bindings": [...]}`` for a
    service-worker script, ``main_module`` for modules, plus compatibility settings if set, the
    script's upload ``settings`` (``kinds/settings.py``), the ownership tag
    ``deployer:project=NAME`` first among the tags when the manifest sets ``project:``, and
    ``migrations`` when steps are pending (without any of these the metadata is exactly the
    seed's). A script that only serves assets names no entry part (reference §7.6)."""
    metadata: dict[str, Any]
    if script.path is None:
        metadata = {"bindings": bindings}
    elif script.format is ScriptFormat.SERVICE_WORKER:
        metadata = {"body_part": SERVICE_WORKER_PART, "bindings": bindings}
    else:
        metadata = {"main_module": script.path.name, "bindings": bindings}
    if script.compatibility_date is not None:
        metadata["compatibility_date"] = script.compatibility_date
    if script.compatibility_flags:
        metadata["compatibility_flags"] = list(script.compatibility_flags)
    extra = dict(settings or {})
    tags = [OWNER_TAG_PREFIX + project] if project is not None else []
    own = extra.pop("tags", None)
    tags += [str(tag) for tag in own] if isinstance(own, list) else []
    metadata.update(extra)
    if tags:
        metadata["tags"] = tags
    if migrations is not None:
        metadata["migrations"] = dict(migrations)
    return metadata


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeployerError(f"cannot read script file {path}: {exc.strerror}") from exc
