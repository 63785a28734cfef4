"""Workers KV namespaces: list (paged), create or adopt by title, rename (reference §3)."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.transport import (
    Attempts,
    Transport,
    result_items,
    result_object,
    segment,
)
from deployer.errors import CloudflareApiError

_KV_PAGE_SIZE = 100
_NAMESPACE_EXISTS = 10014  # "a namespace with this account ID and title already exists"


class KvApi(Transport):
    def list_kv_namespaces(self, account_id: str) -> list[dict[str, Any]]:
        """Every namespace of the account, following pages until a short or empty page."""
        path = f"/accounts/{segment(account_id)}/storage/kv/namespaces"
        namespaces: list[dict[str, Any]] = []
        seen: set[str] = set()
        page = 1
        while True:
            body = self._request("GET", path, params={"page": page, "per_page": _KV_PAGE_SIZE})
            items = result_items(body, "GET", path, ("id", "title"))
            fresh = [item for item in items if item["id"] not in seen]
            namespaces += fresh
            seen.update(item["id"] for item in fresh)
            total = (body.get("result_info") or {}).get("total_count")
            if len(items) < _KV_PAGE_SIZE or not fresh or (
                isinstance(total, int) and page * _KV_PAGE_SIZE >= total
            ):
                return namespaces
            page += 1

    def ensure_kv_namespace(self, account_id: str, title: str) -> tuple[dict[str, Any], bool]:
        """Create the namespace ``title``, or adopt the existing one; returns (namespace, adopted).

        ``adopted`` is True when Cloudflare reported the title as taken (code 10014). The
        create POST is not idempotent, so after a lost answer or a 5xx the namespaces are
        listed first and the POST is repeated only when the title is still absent.
        """
        path = f"/accounts/{segment(account_id)}/storage/kv/namespaces"
        attempts = Attempts("POST", path, self._max_attempts, self._max_retry_wait)
        while True:
            try:
                body = self._request("POST", path, json={"title": title}, idempotent=False, attempts=attempts)
                return result_object(body, "POST", path, ("id",)), False
            except CloudflareApiError as exc:
                if _NAMESPACE_EXISTS in exc.codes:
                    existing = self._find_namespace(account_id, title)
                    if existing is None:
                        raise
                    return existing, True
                if exc.status is not None and exc.status < 500:
                    raise
                # The create may have happened even though no answer said so.
                if attempts.count >= attempts.max_attempts:
                    raise attempts.give_up(exc) from None
                self._pause(attempts, self._backoff(attempts.count), exc)
                existing = self._find_namespace(account_id, title)
                if existing is not None:
                    return existing, False

    def rename_kv_namespace(self, account_id: str, namespace_id: str, title: str) -> None:
        """Give a namespace a new title (PUT is idempotent, so it is retried like an upload)."""
        path = f"/accounts/{segment(account_id)}/storage/kv/namespaces/{segment(namespace_id)}"
        self._request("PUT", path, json={"title": title})

    def _find_namespace(self, account_id: str, title: str) -> dict[str, Any] | None:
        return next((ns for ns in self.list_kv_namespaces(account_id) if ns.get("title") == title), None)
