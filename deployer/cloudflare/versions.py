"""Workers versions and deployments: upload a version without deploying it, deploy one or two
versions at a split of the traffic, and list both (reference §7.5)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployer.apply.upload import UploadPart
from deployer.cloudflare.transport import Transport, malformed, result_object, segment
from deployer.cloudflare.workers import upload_files


class VersionsApi(Transport):
    def upload_version(self, account_id: str, name: str, metadata: dict[str, Any],
                       parts: Sequence[UploadPart]) -> dict[str, Any]:
        """Upload a version of an existing ES-modules script without deploying it; returns the
        version (``id``, ``number``, ``resources``, ...).

        Not retried after a 5xx or a lost answer: each POST makes a version, and a second one
        would be a stray copy (a failed upload is simply made again by the next apply)."""
        path = self._versions_path(account_id, name)
        body = self._request("POST", path, files=upload_files(metadata, parts), idempotent=False)
        return result_object(body, "POST", path, ("id",))

    def create_deployment(self, account_id: str, name: str, split: Sequence[tuple[str, int]],
                          message: str | None = None, *, force: bool = False) -> dict[str, Any]:
        """Deploy ``split``, ``(version_id, percentage)`` pairs summing to 100 (at most two), with
        an optional ``workers/message`` annotation; ``force`` deploys a version whose secrets
        changed since (Cloudflare refuses it otherwise, code 10220). Retried like an upload:
        deploying the same split twice leaves the script as once."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}/deployments"
        wanted: dict[str, Any] = {"strategy": "percentage",
                                  "versions": [{"version_id": v, "percentage": p} for v, p in split]}
        if message:
            wanted["annotations"] = {"workers/message": message}
        params = {"force": "true"} if force else None
        return result_object(self._request("POST", path, json=wanted, params=params), "POST", path, ())

    def list_versions(self, account_id: str, name: str) -> list[dict[str, Any]]:
        """The script's recent versions, newest first (one page: Cloudflare's default size)."""
        path = self._versions_path(account_id, name)
        items = result_object(self._request("GET", path), "GET", path, ()).get("items")
        return _objects_with_id(items, "GET", path, "items")

    def list_deployments(self, account_id: str, name: str) -> list[dict[str, Any]]:
        """The script's deployments, newest (the live one) first, each with ``versions``:
        ``[{"version_id", "percentage"}]``."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}/deployments"
        deployments = result_object(self._request("GET", path), "GET", path, ()).get("deployments")
        found = _objects_with_id(deployments, "GET", path, "deployments")
        for deployment in found:
            split = deployment.get("versions")
            if not isinstance(split, list) or not all(
                isinstance(v, dict) and isinstance(v.get("version_id"), str)
                and isinstance(v.get("percentage"), (int, float)) for v in split
            ):
                raise malformed("GET", path, "a deployment's versions are not [{version_id, percentage}]")
        return found

    @staticmethod
    def _versions_path(account_id: str, name: str) -> str:
        return f"/accounts/{segment(account_id)}/workers/scripts/{segment(name)}/versions"


def _objects_with_id(value: object, method: str, path: str, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) and isinstance(item.get("id"), str)
                                              for item in value):
        raise malformed(method, path, f"its result's {key} are not a list of objects with an id")
    return [dict(item) for item in value]
