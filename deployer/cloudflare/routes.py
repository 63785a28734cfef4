"""Workers routes of a zone: list, create, re-point, delete (reference §7.4)."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.transport import (
    Transport,
    result_items,
    result_object,
    segment,
)


class RoutesApi(Transport):
    def list_routes(self, zone_id: str) -> list[dict[str, Any]]:
        """Every route of the zone: ``id``, ``pattern`` and ``script`` (absent: Workers off)."""
        path = f"/zones/{segment(zone_id)}/workers/routes"
        return result_items(self._request("GET", path), "GET", path, ("id", "pattern"))

    def create_route(self, zone_id: str, pattern: str, script: str) -> dict[str, Any]:
        """Create a route; Cloudflare refuses a pattern the zone has already (code 10020).
        Not retried after a 5xx: the route may exist then, and a retry would be refused."""
        path = f"/zones/{segment(zone_id)}/workers/routes"
        body = self._request("POST", path, json={"pattern": pattern, "script": script}, idempotent=False)
        return result_object(body, "POST", path, ("id",))

    def update_route(self, zone_id: str, route_id: str, pattern: str, script: str) -> dict[str, Any]:
        """Point an existing route at ``script`` (one PUT, retried like an upload)."""
        path = f"/zones/{segment(zone_id)}/workers/routes/{segment(route_id)}"
        body = self._request("PUT", path, json={"pattern": pattern, "script": script})
        return result_object(body, "PUT", path, ("id",))

    def delete_route(self, zone_id: str, route_id: str) -> None:
        """Delete a route; one already gone counts as deleted."""
        self._delete(f"/zones/{segment(zone_id)}/workers/routes/{segment(route_id)}")
