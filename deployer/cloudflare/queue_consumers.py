"""Queue consumers: a queue's id by its name (once per client), and its consumers: list,
create, replace, delete (reference §7.3). Queues themselves belong to ``queues:``."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from deployer.cloudflare.transport import (
    Transport,
    result_items,
    result_object,
    segment,
)


class QueueConsumersApi(Transport):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue_ids: dict[tuple[str, str], str] = {}
        self._queue_ids_lock = threading.Lock()

    def find_queue_id(self, account_id: str, queue_name: str) -> str | None:
        """The id of the queue named ``queue_name`` (``GET /accounts/{a}/queues?name=``), or
        None when the account has none; a found id is remembered for the client's life."""
        with self._queue_ids_lock:
            known = self._queue_ids.get((account_id, queue_name))
        if known is not None:
            return known
        path = f"/accounts/{segment(account_id)}/queues"
        items = result_items(self._request("GET", path, params={"name": queue_name}), "GET", path, ("queue_id",))
        found = [item["queue_id"] for item in items if item.get("queue_name") == queue_name]
        if not found:
            return None
        with self._queue_ids_lock:
            return self._queue_ids.setdefault((account_id, queue_name), str(found[0]))

    def list_queue_consumers(self, account_id: str, queue_id: str) -> list[dict[str, Any]]:
        path = f"/accounts/{segment(account_id)}/queues/{segment(queue_id)}/consumers"
        return result_items(self._request("GET", path), "GET", path, ("consumer_id",))

    def create_queue_consumer(self, account_id: str, queue_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Add a consumer; not retried after a 5xx (it may exist then, and Cloudflare refuses a
        second consumer of the same script)."""
        path = f"/accounts/{segment(account_id)}/queues/{segment(queue_id)}/consumers"
        answer = self._request("POST", path, json=dict(body), idempotent=False)
        return result_object(answer, "POST", path, ("consumer_id",))

    def update_queue_consumer(self, account_id: str, queue_id: str, consumer_id: str,
                              body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/accounts/{segment(account_id)}/queues/{segment(queue_id)}/consumers/{segment(consumer_id)}"
        return result_object(self._request("PUT", path, json=dict(body)), "PUT", path, ("consumer_id",))

    def delete_queue_consumer(self, account_id: str, queue_id: str, consumer_id: str) -> None:
        """Remove a consumer; one already gone counts as removed."""
        self._delete(f"/accounts/{segment(account_id)}/queues/{segment(queue_id)}/consumers/{segment(consumer_id)}")
