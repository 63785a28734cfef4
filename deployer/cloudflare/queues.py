"""Queues: list (paged), create or adopt by name (reference §7.3). Bindings send a queue's name;
its ``queue_id`` is what consumers are attached to."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.owned import OwnedApi
from deployer.cloudflare.transport import segment

_QUEUE_PAGE_SIZE = 100


class QueuesApi(OwnedApi):
    def list_queues(self, account_id: str, name: str | None = None) -> list[dict[str, Any]]:
        """Every queue of the account (``queue_id``, ``queue_name``, ...), or the one named
        ``name``, following pages until a short or empty one."""
        path = f"/accounts/{segment(account_id)}/queues"
        return self._list_pages(path, ("queue_id", "queue_name"), _QUEUE_PAGE_SIZE, name)

    def ensure_queue(self, account_id: str, name: str) -> tuple[dict[str, Any], bool]:
        """Create the queue ``name``, or adopt the existing one; returns (queue, adopted)."""
        path = f"/accounts/{segment(account_id)}/queues"

        def find() -> dict[str, Any] | None:
            return next((q for q in self.list_queues(account_id, name) if q["queue_name"] == name), None)

        return self._create_or_adopt(path, {"queue_name": name}, "queue_id", find)
