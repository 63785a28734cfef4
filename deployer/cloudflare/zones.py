"""Zones: a zone's id by its name (``GET /zones?name=``), looked up once per client, so once
per command run however many routes name the zone (reference §7.4)."""
from __future__ import annotations

import threading
from typing import Any

from deployer.cloudflare.transport import Transport, result_items
from deployer.errors import DeployerError


class ZonesApi(Transport):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._zone_ids: dict[str, str] = {}
        self._zone_ids_lock = threading.Lock()

    def find_zone_id(self, zone_name: str) -> str:
        """The id of the zone named ``zone_name``; DeployerError when the token sees none."""
        with self._zone_ids_lock:
            known = self._zone_ids.get(zone_name)
        if known is not None:
            return known
        path = "/zones"
        items = result_items(self._request("GET", path, params={"name": zone_name}), "GET", path, ("id",))
        found = [item["id"] for item in items if item.get("name") == zone_name]
        if not found:
            raise DeployerError(f"zone_name {zone_name!r}: Cloudflare has no zone of that name that this token can "
                                "see (GET /zones?name=); check the name and the token's Zone permissions, or give "
                                "zone_id")
        with self._zone_ids_lock:
            return self._zone_ids.setdefault(zone_name, str(found[0]))
