"""A script's cron schedules: read, and replace the whole set (reference §7.4)."""
from __future__ import annotations

from collections.abc import Sequence

from deployer.cloudflare.transport import Transport, malformed, result_object, segment


class SchedulesApi(Transport):
    def get_schedules(self, account_id: str, script: str) -> list[str]:
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(script)}/schedules"
        return _crons(result_object(self._request("GET", path), "GET", path, ()), "GET", path)

    def put_schedules(self, account_id: str, script: str, crons: Sequence[str]) -> list[str]:
        """Replace the script's crons with ``crons`` (``[]`` removes them all)."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(script)}/schedules"
        body = self._request("PUT", path, json=[{"cron": cron} for cron in crons])
        return _crons(result_object(body, "PUT", path, ()), "PUT", path)


def _crons(result: dict[str, object], method: str, path: str) -> list[str]:
    schedules = result.get("schedules", [])
    if not isinstance(schedules, list) or not all(
            isinstance(item, dict) and isinstance(item.get("cron"), str) for item in schedules):
        raise malformed(method, path, 'its result\'s schedules are not a list of {"cron": ...}')
    return [str(item["cron"]) for item in schedules]
