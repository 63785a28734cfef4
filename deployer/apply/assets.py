"""The assets step of a script's upload (reference §7.6): what ``metadata`` gets for its static
assets. Unchanged assets cost no request (``keep_assets``); otherwise an upload session, then
only the buckets of files Cloudflare says it lacks, each file checked against its planned hash.

A run cut off during the buckets leaves the script unrecorded, so the next apply asks again:
the new session lists only the files Cloudflare still lacks.
"""
from __future__ import annotations

import base64
import functools
import mimetypes
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from deployer.apply.upload import UploadPart
from deployer.errors import DeployerError, StalePlanError
from deployer.kinds.assets import assets_metadata, assets_state, bytes_hash, manifest_document
from deployer.models import Action, AssetFile, Change, Manifest, Script, ScriptState, Secret
from deployer.state.asset_lists import write_asset_list

@functools.cache
def _types() -> mimetypes.MimeTypes:
    """The built-in table only (the system's mime.types differs between machines); made on first
    use: the first MimeTypes() reads the system's tables (~3 ms of every apply otherwise)."""
    return mimetypes.MimeTypes(filenames=())


class AssetsClient(Protocol):
    def start_assets_session(self, account_id: str, script_name: str, manifest: bytes
                             ) -> tuple[Secret, list[list[str]]]: ...
    def upload_asset_buckets(self, account_id: str, session: Secret, buckets: Sequence[Sequence[str]],
                             read: Callable[[Sequence[str]], Sequence[UploadPart]]) -> Secret: ...


def upload_assets(change: Change, script: Script, previous: ScriptState | None, manifest: Manifest,
                  client: AssetsClient, note: Callable[[str], None]) -> dict[str, Any]:
    """The metadata keys the script's assets add: none without assets; ``keep_assets`` when an
    update keeps the assets last uploaded (no request); else ``assets`` with the completion
    token, after uploading what Cloudflare lacks. Raises StalePlanError when a file no longer
    has its planned hash, DeployerError when Cloudflare asks for a file the manifest lacks."""
    assets = script.assets
    if assets is None:
        return {}
    recorded = previous.assets if previous is not None else None
    if change.action is Action.UPDATE and recorded == assets_state(assets):
        return {"keep_assets": True}
    account_id = manifest.require_account("static assets")
    write_asset_list(manifest.path, assets)  # so later plans can count what changed
    session, buckets = client.start_assets_session(account_id, script.name, manifest_document(assets.files))
    if not buckets:
        note(f"script {script.name}: all {len(assets.files)} asset file(s) are in Cloudflare already")
        return {"assets": assets_metadata(session.value, assets)}
    by_hash = {f.hash: f for f in assets.files}
    missing = [h for bucket in buckets for h in bucket if h not in by_hash]
    if missing:
        raise DeployerError(f"script {script.name}: Cloudflare asked for asset {missing[0]}, which is not in the "
                            "manifest sent; run apply again")

    def read(hashes: Sequence[str]) -> list[UploadPart]:
        return [_part(by_hash[h]) for h in hashes]

    completion = client.upload_asset_buckets(account_id, session, buckets, read)
    sent = sum(len(bucket) for bucket in buckets)
    note(f"script {script.name}: uploaded {sent} asset file(s) in {len(buckets)} request(s); "
         f"{len(assets.files) - sent} were in Cloudflare already")
    return {"assets": assets_metadata(completion.value, assets)}


def _part(asset: AssetFile) -> UploadPart:
    """One file of a bucket: named by its hash, holding its base64, with the type it is served as."""
    try:
        data = asset.file.read_bytes()
    except OSError as exc:
        raise DeployerError(f"cannot read asset file {asset.file}: {exc.strerror or exc}") from exc
    if bytes_hash(data, asset.path) != asset.hash:
        raise StalePlanError(f"asset file {asset.file} changed after it was planned; run plan again")
    content_type = _types().guess_type(asset.path, strict=False)[0] or "application/octet-stream"
    return UploadPart(asset.hash, content_type, base64.b64encode(data))
