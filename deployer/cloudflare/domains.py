"""Workers custom domains of an account: list, attach (an upsert by hostname), detach
(reference §7.4). Attaching is known to answer 5xx now and then: the PUT is retried like any."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployer.cloudflare.transport import (
    Transport,
    result_items,
    result_object,
    segment,
)


class DomainsApi(Transport):
    def list_custom_domains(self, account_id: str) -> list[dict[str, Any]]:
        """Every custom domain of the account: ``id``, ``hostname``, ``service``, ``zone_id``, ..."""
        path = f"/accounts/{segment(account_id)}/workers/domains"
        return result_items(self._request("GET", path), "GET", path, ("id", "hostname"))

    def attach_custom_domain(self, account_id: str, hostname: str, service: str,
                             zone: Mapping[str, str]) -> dict[str, Any]:
        """Attach ``hostname`` to script ``service`` (``zone``: ``zone_id`` or ``zone_name``,
        or neither to let Cloudflare find it); an attached hostname moves to ``service``."""
        path = f"/accounts/{segment(account_id)}/workers/domains"
        body = self._request("PUT", path, json={"hostname": hostname, "service": service, **zone})
        return result_object(body, "PUT", path, ("id",))

    def detach_custom_domain(self, account_id: str, domain_id: str) -> None:
        """Detach a custom domain; one already gone counts as detached."""
        self._delete(f"/accounts/{segment(account_id)}/workers/domains/{segment(domain_id)}")
