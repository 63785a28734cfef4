"""``routes: [{pattern, zone_id | zone_name}]`` on a script: zone routes sending matching
requests to it. Named by pattern (one route per pattern); re-pointing a pattern from one script
of the manifest to another is one ``PUT``. Reference §7.4; contract "Triggers"."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deployer.errors import CloudflareApiError
from deployer.kinds.attachment import (
    ZonedKind,
    Report,
    Sections,
    Session,
)
from deployer.manifest.rules import HEX_ID, schema_pattern
from deployer.models import Action, Attachment, Change, Reason

if TYPE_CHECKING:
    from deployer.manifest.validate import AttachmentDraft, Field, Tree

_DUPLICATE_PATTERN = 10020
ZONE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")


def pattern_problem(pattern: str, zone_name: str | None) -> str | None:
    """Why Cloudflare would refuse ``pattern`` as a route of zone ``zone_name`` (None: it
    would not): ``*`` only leading the host or ending the path, no query string, a host, and
    that host inside the zone when the zone is known by name."""
    rest = re.sub(r"^https?://", "", pattern, flags=re.IGNORECASE)
    if "?" in rest:
        return "it has a query string (routes match the host and path only)"
    host, _, path = rest.partition("/")
    bare = host.removeprefix("*")
    if "*" in bare:
        return "'*' may only lead the host (as in *.example.com)"
    if "*" in path[:-1]:
        return "'*' may only end the path"
    if not bare.strip(".") or any(c in bare for c in " \t:@"):
        return "it names no host (host/path, as in shop.example.com/api/*)"
    host_name = bare.lstrip(".").lower()
    if zone_name is not None and host_name != zone_name and not host_name.endswith("." + zone_name):
        return f"its host {host!r} is not in zone {zone_name!r}"
    return None


def in_zone(host: str, zone_name: str) -> bool:
    return host == zone_name or host.endswith("." + zone_name)


def zone_of(item: Tree) -> tuple[Field | None, Field | None]:
    """An item's ``zone_id`` and ``zone_name`` fields, where given."""
    zone_id, zone_name = item.entries.get("zone_id"), item.entries.get("zone_name")
    return (zone_id[1].at if zone_id else None), (zone_name[1].at if zone_name else None)


def check_zone(item: Tree, what: str, report: Report, *, required: bool) -> str | None:
    """Report a zone given twice (or, when ``required``, not at all); the zone's name if given."""
    zone_id, zone_name = zone_of(item)
    if zone_id is not None and zone_name is not None:
        report(item.at, f"a {what} takes zone_id or zone_name, not both")
    elif required and zone_id is None and zone_name is None:
        report(item.at, f"a {what} needs zone_id or zone_name (the zone whose host it names)")
    if zone_id is not None and zone_id.filled_in and zone_id.value is not None and not HEX_ID.accepts(zone_id.value):
        report(zone_id, f"{zone_id.subject()} is not {HEX_ID.words}")
    if zone_name is None or zone_name.value is None:
        return None
    if not ZONE_NAME.fullmatch(zone_name.value):
        report(zone_name, f"{zone_name.subject()} is not a zone name (a domain such as example.com, lowercase)")
        return None
    return zone_name.value


def zone_schema(required: bool) -> dict[str, Any]:
    given = "Give this or zone_name, not both." if required else "Optional; give this or zone_name, not both."
    return {
        "zone_id": {"description": f"The zone's id (32 lowercase hex characters). {given}",
                    "type": "string", "pattern": schema_pattern(HEX_ID)},
        "zone_name": {"description": "The zone's name (example.com), looked up once per apply with GET "
                                     "/zones?name=. Give this or zone_id, not both.",
                      "type": "string", "minLength": 1},
    }


class RouteKind(ZonedKind):
    type = "route"
    manifest_key = "routes"
    name_field = "pattern"
    claim = "route pattern"

    def schema(self) -> dict[str, Any]:
        return {
            "description": "Zone routes sending matching requests to this script; a route that leaves the "
                           "manifest is deleted. '*' may lead the host or end the path; no query string.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["pattern"],
                "properties": {
                    "pattern": {"description": "host/path, as in shop.example.com/api/* or *.example.com/img/*; "
                                               "the host must be in the zone.",
                                "type": "string", "minLength": 1},
                    **zone_schema(required=True),
                },
            },
        }

    def check(self, draft: AttachmentDraft, sections: Sections, report: Report) -> None:
        for item in draft.tree.items:
            zone_name = check_zone(item, "route", report, required=True)
            pattern = item.entries.get("pattern")
            if pattern is None or pattern[1].at.value is None:
                continue
            field = pattern[1].at
            problem = pattern_problem(field.value or "", zone_name)
            if problem is not None:
                report(field, f"{field.subject()} is not a valid route pattern: {problem}")

    def summary(self, attachment: Attachment) -> str:
        zone = attachment.get("zone_name") or attachment.get("zone_id") or "?"
        return f"-> {attachment.script or '(no script)'} (zone {zone})"

    # --- Cloudflare -------------------------------------------------------------------------

    def apply(self, session: Session, change: Change) -> Attachment | None:
        client, want, have = session.client, change.attachment, change.previous_attachment
        if change.action is Action.DELETE:
            assert have is not None and have.id is not None
            client.delete_route(str(have.get("zone_id")), have.id)
            return None
        assert want is not None
        zone = self._zone_id(session, want)
        recorded = dataclasses.replace(want, values=(("zone_id", zone), ("zone_name", want.get("zone_name"))))
        if have is not None and have.id is not None and have.get("zone_id") == zone:
            if set(change.reasons) <= {Reason.ZONE}:
                return dataclasses.replace(recorded, id=have.id)  # the same zone, written another way
            try:
                route = client.update_route(zone, have.id, want.name, want.script)
            except CloudflareApiError as exc:
                if exc.status != 404:
                    raise
                route = self._create(session, zone, want)  # deleted outside deployer meanwhile
        else:
            if have is not None and have.id is not None:
                client.delete_route(str(have.get("zone_id")), have.id)  # it moved to another zone
            route = self._create(session, zone, want)
        return dataclasses.replace(recorded, id=str(route["id"]))

    def _create(self, session: Session, zone: str, want: Attachment) -> dict[str, Any]:
        try:
            return session.client.create_route(zone, want.name, want.script)
        except CloudflareApiError as exc:
            if _DUPLICATE_PATTERN not in exc.codes:
                raise
        # The pattern exists already: the guard found no other script owning it (or
        # --allow-overwrite), so point it here.
        existing = next((r for r in session.client.list_routes(zone) if r.get("pattern") == want.name), None)
        if existing is None:
            raise CloudflareApiError("POST", f"/zones/{zone}/workers/routes", 409,
                                     detail=f"route {want.name!r} exists but the zone's route list does not show it")
        return session.client.update_route(zone, str(existing["id"]), want.name, want.script)

    @staticmethod
    def _zone_id(session: Session, attachment: Attachment) -> str:
        zone_id = attachment.get("zone_id")
        if isinstance(zone_id, str):
            return zone_id
        return session.client.find_zone_id(str(attachment.get("zone_name")))

    def _routes(self, session: Session, zone: str) -> list[dict[str, Any]]:
        return session.once(("routes", zone), lambda: session.client.list_routes(zone))

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        zone = self._zone_id(session, recorded)
        routes = self._routes(session, zone)
        found = next((r for r in routes if r.get("id") == recorded.id), None) or next(
            (r for r in routes if r.get("pattern") == recorded.name), None)
        if found is None:
            return None
        return dataclasses.replace(recorded, name=str(found["pattern"]), script=str(found.get("script") or ""),
                                   values=(("zone_id", zone), ("zone_name", recorded.get("zone_name"))),
                                   id=str(found["id"]))

    def foreign(self, session: Session, wanted: Sequence[Attachment], owned: Callable[[str], bool]) -> list[str]:
        lines = []
        for want in wanted:
            zone = self._zone_id(session, want)
            owner = _owners(self._routes(session, zone)).get(want.name)
            if owner and owner != want.script and not owned(owner):
                zone_shown = want.get("zone_name") or zone
                lines.append(f"route {want.name} (zone {zone_shown}) is attached to script {owner}")
        return lines


def _owners(routes: list[dict[str, Any]]) -> Mapping[str, str]:
    return {str(r["pattern"]): str(r.get("script") or "") for r in routes}


KIND = RouteKind()
