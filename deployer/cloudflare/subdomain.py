"""A script's workers.dev switch: ``GET/POST .../scripts/{name}/subdomain`` (reference §7.4)."""
from __future__ import annotations

from deployer.cloudflare.transport import Transport, malformed, result_object, segment


class SubdomainApi(Transport):
    def get_workers_dev(self, account_id: str, script: str) -> bool:
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(script)}/subdomain"
        return _enabled(result_object(self._request("GET", path), "GET", path, ()), "GET", path)

    def set_workers_dev(self, account_id: str, script: str, enabled: bool) -> bool:
        """Turn the script's workers.dev URL on or off. Turning it on needs the account's
        workers.dev subdomain (Cloudflare answers 10063 without one)."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(script)}/subdomain"
        body = self._request("POST", path, json={"enabled": enabled})
        return _enabled(result_object(body, "POST", path, ()), "POST", path)


def _enabled(result: dict[str, object], method: str, path: str) -> bool:
    enabled = result.get("enabled")
    if not isinstance(enabled, bool):
        raise malformed(method, path, "its result's enabled is not true or false")
    return enabled
