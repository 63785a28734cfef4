"""Create a resource by name or adopt the one that has it: shared by the products whose
resources a project owns by name (R2, D1, queues; KV keeps its own in ``kv.py``).

The create POST is not idempotent, so a refused or lost create is settled by looking the name
up, never by repeating the POST blindly (reference §4.4).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from deployer.cloudflare.transport import Attempts, Transport, result_items, result_object
from deployer.errors import CloudflareApiError

Find = Callable[[], "dict[str, Any] | None"]


class OwnedApi(Transport):
    def _list_pages(self, path: str, keys: tuple[str, str], page_size: int, name: str | None = None
                    ) -> list[dict[str, Any]]:
        """Every item at ``path`` (each with ``keys``: its id and name), or those ``?name=``
        matches, following pages until a short or empty one (or one with nothing new)."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "per_page": page_size, **({"name": name} if name else {})}
            found = result_items(self._request("GET", path, params=params), "GET", path, keys)
            fresh = [item for item in found if item[keys[0]] not in seen]
            items += fresh
            seen.update(item[keys[0]] for item in fresh)
            if len(found) < page_size or not fresh:
                return items
            page += 1

    def _create_or_adopt(self, path: str, payload: Mapping[str, Any], id_key: str, find: Find
                         ) -> tuple[dict[str, Any], bool]:
        """POST ``payload`` to ``path``; returns (the resource, adopted).

        A 4xx answer may mean the name is taken (each product says so with its own code): when
        ``find`` then finds it, it is adopted, else the refusal stands. After a 5xx or a lost
        answer the create may have happened, so ``find`` is asked first and the POST repeated
        only while the name is still free.
        """
        attempts = Attempts("POST", path, self._max_attempts, self._max_retry_wait)
        while True:
            try:
                body = self._request("POST", path, json=dict(payload), idempotent=False, attempts=attempts)
                return result_object(body, "POST", path, (id_key,)), False
            except CloudflareApiError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    existing = _look_up(find, exc)
                    if existing is None:
                        raise
                    return existing, True
                if exc.status is not None and exc.status < 500:
                    raise  # a success Cloudflare answered in a shape we cannot read
                if attempts.count >= attempts.max_attempts:
                    raise attempts.give_up(exc) from None
                self._pause(attempts, self._backoff(attempts.count), exc)
                existing = _look_up(find, exc)
                if existing is not None:
                    return existing, False


def _look_up(find: Find, refusal: CloudflareApiError) -> dict[str, Any] | None:
    try:
        return find()
    except CloudflareApiError:
        raise refusal from None  # the create's own answer says more than the look-up's
