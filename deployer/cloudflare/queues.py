"""Queues: list (paged), create or adopt by name (reference §7.3). Bindings send a queue's name;
its ``queue_id`` is what consumers are attached to."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.owned import OwnedApi
from deployer.cloudflare.transport import result_items, segment

_QUEUE_PAGE_SIZE = 100


class QueuesApi(OwnedApi):
    def list_queues(self, account_id: str, name: str | None = None) -> list[dict[str, Any]]:
        """Every queue of the account (``queue_id``, ``queue_name``, ...), or the one named
        ``name``, following pages until a short or empty one."""
        path = f"/accounts/{segment(account_id)}/queues"
        queues: list[dict[str, Any]] = []
        seen: set[str] = set()
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "per_page": _QUEUE_PAGE_SIZE, **({"name": name} if name else {})}
            body = self._request("GET", path, params=params)
            items = result_items(body, "GET", path, ("queue_id", "queue_name"))
            fresh = [item for item in items if item["queue_id"] not in seen]
            queues += fresh
            seen.update(item["queue_id"] for item in fresh)
            if len(items) < _QUEUE_PAGE_SIZE or not fresh:
                return queues
            page += 1

    def ensure_queue(self, account_id: str, name: str) -> tuple[dict[str, Any], bool]:
        """Create the queue ``name``, or adopt the existing one; returns (queue, adopted)."""
        path = f"/accounts/{segment(account_id)}/queues"

        def find() -> dict[str, Any] | None:
            return next((q for q in self.list_queues(account_id, name) if q["queue_name"] == name), None)

        return self._create_or_adopt(path, {"queue_name": name}, "queue_id", find)
