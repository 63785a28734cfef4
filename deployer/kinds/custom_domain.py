"""``custom_domains: [{hostname, zone_id | zone_name}]`` on a script: a hostname served by the
script alone (Cloudflare adds its DNS record and certificate). Named by hostname; attaching is
an upsert, so moving a hostname to another script is one ``PUT``. Reference §7.4."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from deployer.kinds.attachment import (
    ZonedKind,
    Report,
    Sections,
    Session,
)
from deployer.kinds.route import check_zone, in_zone, zone_schema
from deployer.models import Action, Attachment, Change

if TYPE_CHECKING:
    from deployer.manifest.validate import AttachmentDraft

HOSTNAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")
HOSTNAME_WORDS = "a hostname (lowercase letters, digits and '-' in dot-separated labels; no wildcard, path or port)"


class CustomDomainKind(ZonedKind):
    type = "custom_domain"
    manifest_key = "custom_domains"
    name_field = "hostname"
    claim = "hostname"

    def schema(self) -> dict[str, Any]:
        return {
            "description": "Hostnames this script serves as Custom Domains (no wildcard or path); one that leaves "
                           "the manifest is detached.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["hostname"],
                "properties": {
                    "hostname": {"description": "The hostname, as in api.example.com, inside the zone.",
                                 "type": "string", "minLength": 1},
                    **zone_schema(required=False),
                },
            },
        }

    def check(self, draft: AttachmentDraft, sections: Sections, report: Report) -> None:
        for item in draft.tree.items:
            zone_name = check_zone(item, "custom domain", report, required=False)
            entry = item.entries.get("hostname")
            field = entry[1].at if entry else None
            if field is None or field.value is None:
                continue
            if not HOSTNAME.fullmatch(field.value):
                report(field, f"{field.subject()} is not {HOSTNAME_WORDS}")
            elif zone_name is not None and not in_zone(field.value, zone_name):
                report(field, f"{field.subject()} is not in zone {zone_name!r}")

    def summary(self, attachment: Attachment) -> str:
        zone = attachment.get("zone_name") or attachment.get("zone_id")
        return f"-> {attachment.script or '(no script)'}" + (f" (zone {zone})" if zone else "")

    # --- Cloudflare -------------------------------------------------------------------------

    def apply(self, session: Session, change: Change) -> Attachment | None:
        client, want, have = session.client, change.attachment, change.previous_attachment
        session.forget(("domains",))
        if change.action is Action.DELETE:
            assert have is not None and have.id is not None
            client.detach_custom_domain(session.account_id, have.id)
            return None
        assert want is not None
        zone = {key: str(value) for key in ("zone_id", "zone_name") if (value := want.get(key)) is not None}
        domain = client.attach_custom_domain(session.account_id, want.name, want.script, zone)
        return _recorded(want, domain)

    def _domains(self, session: Session) -> list[dict[str, Any]]:
        return session.once(("domains",), lambda: session.client.list_custom_domains(session.account_id))

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        domains = self._domains(session)
        found = next((d for d in domains if d.get("id") == recorded.id), None) or next(
            (d for d in domains if d.get("hostname") == recorded.name), None)
        if found is None:
            return None
        return dataclasses.replace(_recorded(recorded, found), script=str(found.get("service") or ""))

    def foreign(self, session: Session, wanted: Sequence[Attachment], owned: Callable[[str], bool]) -> list[str]:
        services = {str(d["hostname"]): str(d.get("service") or "") for d in self._domains(session)}
        lines = []
        for want in wanted:
            owner = services.get(want.name)
            if owner and owner != want.script and not owned(owner):
                lines.append(f"custom domain {want.name} is attached to script {owner}")
        return lines


def _recorded(want: Attachment, domain: dict[str, Any]) -> Attachment:
    values = tuple((key, str(domain[key]) if isinstance(domain.get(key), str) else want.get(key))
                   for key in ("zone_id", "zone_name"))
    return dataclasses.replace(want, values=values, id=str(domain["id"]))


KIND = CustomDomainKind()
