"""Workers scripts: the multipart upload, delete, secrets, settings, code download and the
account's script list (reference §1, §2)."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from deployer.apply.upload import UploadPart
from deployer.cloudflare.transport import (
    Transport,
    already_gone,
    malformed,
    result_items,
    result_object,
    segment,
)
from deployer.errors import CloudflareApiError


UploadFiles = list[tuple[str, tuple[str | None, str | bytes, str]]]


def upload_files(metadata: dict[str, Any], content: bytes | Sequence[UploadPart]) -> UploadFiles:
    """The multipart body of an upload (``requests``' ``files``): the ``metadata`` part, then the
    code: bytes as the seed's single ``script`` part, or every part under its name (as name and
    filename). A version upload (``cloudflare/versions.py``) sends the same body."""
    files: UploadFiles = [("metadata", (None, json.dumps(metadata), "application/json"))]
    if isinstance(content, bytes):
        files.append(("script", ("script.js", content, "application/javascript")))
    else:
        files += [(part.name, (part.name, part.data, part.content_type)) for part in content]
    return files


class WorkersApi(Transport):
    def upload_script(
        self,
        name: str,
        metadata: dict[str, Any],
        content: bytes | Sequence[UploadPart],
        *,
        account_id: str | None = None,
        zone_id: str | None = None,
    ) -> dict[str, Any]:
        """Upload one script as multipart/form-data; returns the envelope result.

        ``content`` as bytes is a service-worker script, sent byte for byte as the part
        ``script``; otherwise every part is sent under its name (as name and filename).
        """
        return self.prepare_upload(name, metadata, content, account_id=account_id, zone_id=zone_id)()

    def prepare_upload(
        self,
        name: str,
        metadata: dict[str, Any],
        content: bytes | Sequence[UploadPart],
        *,
        account_id: str | None = None,
        zone_id: str | None = None,
    ) -> Callable[[], dict[str, Any]]:
        """``upload_script`` in two steps: the request is built now (its body encoded) and
        the returned function sends it (retried as ``upload_script`` is) and returns the result,
        so an apply builds its next uploads while earlier ones wait for their answers."""
        path = self._script_path(name, account_id, zone_id)
        prepared = self._prepare("PUT", path, files=upload_files(metadata, content))
        return lambda: result_object(self._send("PUT", path, prepared), "PUT", path, (), optional=True)

    def delete_script(self, name: str, *, account_id: str | None = None, zone_id: str | None = None) -> None:
        """Delete a script; a script that is already gone counts as deleted."""
        self._delete(self._script_path(name, account_id, zone_id))

    def delete_secret(self, account_id: str, script_name: str, secret_name: str) -> None:
        """Delete one secret of a script; a missing secret (or script) counts as deleted."""
        self._delete(f"/accounts/{segment(account_id)}/workers/scripts/{segment(script_name)}/secrets/"
                     f"{segment(secret_name)}")

    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]:
        """A script's settings: ``bindings`` (secret_text without its text), compatibility, ..."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}/settings"
        result = result_object(self._request("GET", path), "GET", path, ())
        if not isinstance(result.get("bindings", []), list):
            raise malformed("GET", path, "its result's bindings are not a list")
        return result

    def get_migration_tag(self, account_id: str, name: str) -> str | None:
        """A script's current Durable Object migration tag, from its service (reference §7.2,
        as wrangler reads it): None when it has none, or when the script does not exist."""
        path = f"/accounts/{segment(account_id)}/workers/services/{segment(name)}"
        try:
            body = self._request("GET", path)
        except CloudflareApiError as exc:
            if already_gone(exc):
                return None
            raise
        environment = result_object(body, "GET", path, ()).get("default_environment")
        script = environment.get("script") if isinstance(environment, dict) else None
        if not isinstance(script, dict):
            raise malformed("GET", path, "its result has no default_environment.script")
        tag = script.get("migration_tag")
        if tag is not None and (not isinstance(tag, str) or not tag):
            raise malformed("GET", path, "its migration_tag is not a non-empty string")
        return tag

    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]:
        """A script's code as ``(content type, bytes)``: a service worker's bytes, or
        ``multipart/form-data`` holding every module (reference §2.3)."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}/content/v2"
        body = self._request("GET", path, raw=True, headers={"Accept": "*/*"})
        return str(body.get("content_type", "")), bytes(body.get("content", b""))

    def list_scripts(self, account_id: str) -> list[dict[str, Any]]:
        """Every script of the account (``id``, ``etag``, ``modified_on``, ...); one page."""
        path = f"/accounts/{segment(account_id)}/workers/scripts"
        return result_items(self._request("GET", path), "GET", path, ("id",))

    def zone_script_exists(self, zone_id: str) -> bool:
        """Whether the zone already runs a script (legacy single-script API, which has no list):
        ``GET /zones/{zone_id}/workers/script`` answers with its code, or 404 when there is none."""
        try:
            self._request("GET", f"/zones/{segment(zone_id)}/workers/script", raw=True, headers={"Accept": "*/*"})
        except CloudflareApiError as exc:
            if already_gone(exc):
                return False
            raise
        return True

    @staticmethod
    def _script_path(name: str, account_id: str | None, zone_id: str | None) -> str:
        if (account_id is None) == (zone_id is None):
            raise ValueError("pass exactly one of account_id and zone_id")
        if account_id is not None:
            return f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}"
        return f"/zones/{segment(zone_id or '')}/workers/script"
