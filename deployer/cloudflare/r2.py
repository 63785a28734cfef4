"""R2 buckets: list (paged by cursor), create or adopt by name (reference §7.3). A bucket's
name is its id; buckets here are in the default jurisdiction."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.owned import OwnedApi
from deployer.cloudflare.transport import (
    already_gone,
    malformed,
    result_object,
    segment,
)
from deployer.errors import CloudflareApiError

_R2_PAGE_SIZE = 1000


class R2Api(OwnedApi):
    def list_r2_buckets(self, account_id: str) -> list[dict[str, Any]]:
        """Every bucket of the account (``result.buckets[]``), following ``cursor`` to the end."""
        path = f"/accounts/{segment(account_id)}/r2/buckets"
        buckets: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params: dict[str, Any] = {"per_page": _R2_PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
            body = self._request("GET", path, params=params)
            items = result_object(body, "GET", path, ()).get("buckets", [])
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                      for i in items):
                raise malformed("GET", path, "its result's buckets are not a list of buckets with names")
            buckets += items
            following = (body.get("result_info") or {}).get("cursor")
            if not items or not isinstance(following, str) or not following or following == cursor:
                return buckets
            cursor = following

    def ensure_r2_bucket(self, account_id: str, name: str) -> tuple[dict[str, Any], bool]:
        """Create the bucket ``name``, or adopt the existing one; returns (bucket, adopted)."""
        path = f"/accounts/{segment(account_id)}/r2/buckets"
        return self._create_or_adopt(path, {"name": name}, "name", lambda: self._find_r2_bucket(account_id, name))

    def _find_r2_bucket(self, account_id: str, name: str) -> dict[str, Any] | None:
        path = f"/accounts/{segment(account_id)}/r2/buckets/{segment(name)}"
        try:
            found = result_object(self._request("GET", path), "GET", path, (), optional=True)
        except CloudflareApiError as exc:
            if already_gone(exc):
                return None
            raise
        return {**found, "name": name}
