"""D1 databases: list (paged), create or adopt by name (reference §7.3). Cloudflare's
``?name=`` is a search ("shop" finds "shop-staging"), so names are matched exactly here."""
from __future__ import annotations

from typing import Any

from deployer.cloudflare.owned import OwnedApi
from deployer.cloudflare.transport import segment

_D1_PAGE_SIZE = 1000


class D1Api(OwnedApi):
    def list_d1_databases(self, account_id: str, name: str | None = None) -> list[dict[str, Any]]:
        """Every database of the account (``uuid``, ``name``, ...), or those whose name contains
        ``name``, following pages until a short or empty one."""
        path = f"/accounts/{segment(account_id)}/d1/database"
        return self._list_pages(path, ("uuid", "name"), _D1_PAGE_SIZE, name)

    def ensure_d1_database(self, account_id: str, name: str) -> tuple[dict[str, Any], bool]:
        """Create the database ``name``, or adopt the existing one; returns (database, adopted)."""
        path = f"/accounts/{segment(account_id)}/d1/database"

        def find() -> dict[str, Any] | None:
            return next((db for db in self.list_d1_databases(account_id, name) if db["name"] == name), None)

        return self._create_or_adopt(path, {"name": name}, "uuid", find)
