"""Static assets, ``assets: {directory, binding, html_handling, not_found_handling,
run_worker_first}`` on a script (reference §7.6): the key's schema and checks, the ``assets``
binding it makes, the hash Cloudflare expects per file, the upload session's manifest and its
digest, the ``metadata.assets`` config, the state form and how a plan shows a change.

Which files there are is ``manifest/asset_files.py``'s business; the upload flow is
``apply/assets.py`` over ``cloudflare/assets.py``.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from deployer.errors import DeployerError
from deployer.kinds.binding import BindingKind
from deployer.manifest.rules import JS_RESERVED_WORDS, is_js_identifier
from deployer.models import AssetFile, Assets, AssetsChange, AssetsState, JsonValue
from deployer.state.fields import count, join, object_fields, string

if TYPE_CHECKING:
    from deployer.manifest.validate import Field, ValueDraft

KEY = "assets"
HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("none", "404-page", "single-page-application")
# Cloudflare's limits (Workers platform limits): 25 MiB per file; 20,000 files per version on
# the Free plan, 100,000 on paid plans. deployer cannot see the account's plan, so it refuses
# what no plan allows and warns past the Free plan's count (Cloudflare then decides).
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_FILES = 100_000
FREE_PLAN_FILES = 20_000
# Files at the directory's root that wrangler sends as config text instead of serving them.
CONFIG_FILES = ("_headers", "_redirects")
IGNORE_FILE = ".assetsignore"

KIND = BindingKind(
    type="assets",
    description="The script's static assets (`NAME.fetch(request)`): declared with `assets: {binding: NAME}` "
                "on the script, never in bindings.",
    in_bindings=False,
)

_HASH_CHUNK = 3 * 256 * 1024  # a multiple of 3: the base64 of the chunks is the base64 of the file


def schema_fragment() -> dict[str, Any]:
    """The script key ``assets``."""
    return {
        "description": "Static assets served with the Worker (Workers Static Assets): every file under "
                       "`directory` (but those .assetsignore lists) is uploaded, only those Cloudflare lacks.",
        "type": "object",
        "additionalProperties": False,
        "required": ["directory"],
        "properties": {
            "directory": {"description": "The folder of files to serve, relative to the manifest's directory "
                                         "and inside it.", "type": "string", "minLength": 1},
            "binding": {"description": "The JavaScript global through which the script fetches its assets "
                                       "(an `assets` binding); optional.", "type": "string", "minLength": 1},
            "html_handling": {"description": "Trailing slashes of HTML pages (Cloudflare's default: "
                                             "auto-trailing-slash).", "enum": list(HTML_HANDLING)},
            "not_found_handling": {"description": "What a request that matches no file gets (Cloudflare's "
                                                  "default: none, a 404).", "enum": list(NOT_FOUND_HANDLING)},
            "run_worker_first": {
                "description": "true: the script runs before any asset is served; or a list of route "
                               "patterns it runs first for (Cloudflare's default: false).",
                "anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string", "minLength": 1}}],
            },
        },
    }


# --- validate ---------------------------------------------------------------------------------


def check(draft: ValueDraft, binding_names: dict[str, Field]) -> list[tuple[Field, str]]:
    """The binding's name: a JavaScript identifier, not a reserved word, unique among the
    script's bindings (``binding_names``, the others' first fields by name)."""
    name = draft.fields.get(("binding",))
    if name is None or name.value is None or not (name.value or name.filled_in):
        return []
    if not is_js_identifier(name.value):
        return [(name, f"{name.subject()} is not a valid JavaScript identifier")]
    if name.value in JS_RESERVED_WORDS:
        return [(name, f"{name.subject()} is a reserved word in JavaScript; choose another name")]
    first = binding_names.get(name.value)
    if first is not None:
        return [(name, f"binding name {name.raw!r} is already used by the binding at line {first.line}")]
    return []


# --- the files --------------------------------------------------------------------------------


def file_hash(path: Path, name: str) -> tuple[str, int]:
    """``(hash, size)`` of one asset file as Cloudflare expects it (wrangler's): blake3 of
    the file's base64 followed by the extension of ``name`` (the path it is served at) without
    the dot, hex, first 32 characters. Streams the file; DeployerError when it cannot be read."""
    digest = blake3.blake3()
    size = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(base64.b64encode(chunk))
                size += len(chunk)
    except OSError as exc:
        raise DeployerError(f"cannot read asset file {path}: {exc.strerror or exc}") from exc
    digest.update(_extension(name).encode())
    return digest.hexdigest()[:32], size


def bytes_hash(data: bytes, name: str) -> str:
    """The hash of ``data`` served at ``name`` (apply checks what it sends)."""
    digest = blake3.blake3(base64.b64encode(data))
    digest.update(_extension(name).encode())
    return digest.hexdigest()[:32]


def _extension(name: str) -> str:
    # As Node's path.extname of the last path segment: a leading dot alone (.htaccess) is no extension.
    base = name.rsplit("/", 1)[-1]
    stem = base[1:] if base.startswith(".") else base
    dot = stem.rfind(".")
    return stem[dot + 1:] if dot >= 0 else ""


def manifest_document(files: Iterable[AssetFile]) -> bytes:
    """The upload session's manifest ``{"/path": {"hash", "size"}}`` as canonical JSON: what
    is sent, what its digest covers and what ``state/asset_lists.py`` keeps."""
    doc = {f.path: {"hash": f.hash, "size": f.size} for f in files}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_assets(directory: Path, files: Iterable[AssetFile], value: Mapping[str, Any],
                config_files: Mapping[str, str]) -> Assets:
    """The Assets of a checked ``assets:`` value; ``config_files``: the text of ``_headers``
    and ``_redirects`` at the directory's root, sent in the config as wrangler does."""
    ordered = tuple(sorted(files, key=lambda f: f.path))
    config: dict[str, Any] = {key: value[key] for key in ("html_handling", "not_found_handling", "run_worker_first")
                              if key in value}
    config.update(config_files)
    return Assets(directory, ordered, _frozen(config), hashlib.sha256(manifest_document(ordered)).hexdigest())


def _frozen(value: object) -> JsonValue:
    return JsonValue(json.dumps(value, sort_keys=True, separators=(",", ":")))


def binding_name(value: Mapping[str, Any]) -> str | None:
    name = value.get("binding")
    return name if isinstance(name, str) else None


# --- apply ------------------------------------------------------------------------------------


def assets_metadata(jwt: str, assets: Assets) -> dict[str, Any]:
    """``metadata.assets``: the completion token and the config."""
    return {"jwt": jwt, "config": json.loads(assets.config.text)}


def assets_state(assets: Assets) -> AssetsState:
    """What the state records once the upload carried ``assets``."""
    return AssetsState(assets.manifest_sha256, len(assets.files), config_sha256(assets.config))


def config_sha256(config: JsonValue) -> str:
    return hashlib.sha256(config.text.encode()).hexdigest()


# --- plan -------------------------------------------------------------------------------------


def assets_change(assets: Assets | None, recorded: AssetsState | None,
                  previous: Mapping[str, str] | None) -> AssetsChange | None:
    """What an upload does to the script's assets (None: it has none now or before);
    ``previous``: the files last uploaded (path -> hash), when that list is at hand."""
    if assets is None and recorded is None:
        return None
    if assets is None:
        assert recorded is not None
        return AssetsChange(0, 0, 0, recorded.files)
    if recorded is None:
        return AssetsChange(len(assets.files), len(assets.files), 0, 0, config_changed=assets.config.text != "{}")
    config_changed = config_sha256(assets.config) != recorded.config_sha256
    if assets.manifest_sha256 == recorded.manifest_sha256:
        return AssetsChange(len(assets.files), 0, 0, 0, config_changed, unchanged=not config_changed)
    if previous is None:
        return AssetsChange(len(assets.files), config_changed=config_changed)
    now = {f.path: f.hash for f in assets.files}
    added = sum(path not in previous for path in now)
    changed = sum(path in previous and previous[path] != file_hash for path, file_hash in now.items())
    removed = sum(path not in now for path in previous)
    return AssetsChange(len(now), added, changed, removed, config_changed)


def differs(change: AssetsChange | None) -> bool:
    """Whether the upload must carry new assets (or drop them): the plan's reason ``assets``."""
    return change is not None and not change.unchanged


def describe(change: AssetsChange) -> list[str]:
    """Plan lines for a change of the assets (none when they are unchanged)."""
    if change.unchanged:
        return []
    if change.files == 0:
        return [f"- assets ({change.removed} file(s) no longer served)"]
    lines = []
    if change.added is None:
        lines.append(f"~ assets: {change.files} file(s); the list last uploaded is not kept here, so which "
                     "were added, changed or removed is not known (only what Cloudflare lacks is uploaded)")
    elif change.added or change.changed or change.removed:
        lines.append(f"~ assets: {change.added} added, {change.changed} changed, {change.removed} removed "
                     f"({change.files} file(s))")
    if change.config_changed:
        lines.append("~ assets config (html_handling, not_found_handling, run_worker_first, _headers, _redirects)")
    return lines


def change_document(change: AssetsChange) -> dict[str, Any]:
    """The JSON plan's ``assets`` of a script change (counts null when not known)."""
    return {"files": change.files, "added": change.added, "changed": change.changed, "removed": change.removed,
            "config_changed": change.config_changed}


# --- state ------------------------------------------------------------------------------------


def to_state(recorded: AssetsState) -> dict[str, Any]:
    return {"manifest_sha256": recorded.manifest_sha256, "files": recorded.files,
            "config_sha256": recorded.config_sha256}


def from_state(doc: object, where: str) -> AssetsState:
    fields = object_fields(doc, where, ("manifest_sha256", "files", "config_sha256"))
    return AssetsState(string(fields["manifest_sha256"], join(where, "manifest_sha256")),
                       count(fields["files"], join(where, "files")),
                       string(fields["config_sha256"], join(where, "config_sha256")))
