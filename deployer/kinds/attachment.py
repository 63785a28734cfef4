"""What every attachment kind declares: something attached to a script after its upload (a
route, a custom domain, its crons, its workers.dev switch, a queue consumer), planned as a
change of its own, applied by its own requests, recorded one by one, read back and adopted.

An ``AttachmentKind`` owns its manifest key under a script (schema fragment and checks), how
the manifest's value becomes ``Attachment``s, what differs between two of them (the reasons),
its requests (apply, read back for ``--refresh``, adopt for ``import``, find foreign owners for
the guard), its state form and how it is shown. The core only calls these methods.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from deployer.models import Action, Attachment, Change, JsonValue, Reason, Value
from deployer.state.fields import Invalid, array, join, json_kind, object_fields, string

if TYPE_CHECKING:
    from deployer.manifest.validate import AttachmentDraft, Field

T = TypeVar("T")
Report = Callable[["Field", str], None]
Sections = Mapping[str, "Mapping[str, Field] | None"]
"""The keys each manifest section declares (``queues`` -> {key: Field}); None: not known."""
Names = Callable[[str, str], "str | None"]
"""``names(section, key)``: the Cloudflare name of the resource declared as ``section.key``."""


class TriggerClient(Protocol):
    """The endpoints attachments use (``deployer/cloudflare``: zones, routes, domains,
    schedules, subdomain, queue_consumers); tests may pass a fake."""

    def find_zone_id(self, zone_name: str) -> str: ...
    def list_routes(self, zone_id: str) -> list[dict[str, Any]]: ...
    def create_route(self, zone_id: str, pattern: str, script: str) -> dict[str, Any]: ...
    def update_route(self, zone_id: str, route_id: str, pattern: str, script: str) -> dict[str, Any]: ...
    def delete_route(self, zone_id: str, route_id: str) -> None: ...
    def list_custom_domains(self, account_id: str) -> list[dict[str, Any]]: ...
    def attach_custom_domain(self, account_id: str, hostname: str, service: str,
                             zone: Mapping[str, str]) -> dict[str, Any]: ...
    def detach_custom_domain(self, account_id: str, domain_id: str) -> None: ...
    def get_schedules(self, account_id: str, script: str) -> list[str]: ...
    def put_schedules(self, account_id: str, script: str, crons: Sequence[str]) -> list[str]: ...
    def get_workers_dev(self, account_id: str, script: str) -> bool: ...
    def set_workers_dev(self, account_id: str, script: str, enabled: bool) -> bool: ...
    def find_queue_id(self, account_id: str, queue_name: str) -> str | None: ...
    def list_queue_consumers(self, account_id: str, queue_id: str) -> list[dict[str, Any]]: ...
    def create_queue_consumer(self, account_id: str, queue_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def update_queue_consumer(self, account_id: str, queue_id: str, consumer_id: str,
                              body: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete_queue_consumer(self, account_id: str, queue_id: str, consumer_id: str) -> None: ...


class Session:
    """One command's view of Cloudflare for attachments: the client, the account, and the
    lists read at most once (a zone's routes, the account's domains), shared by threads."""

    def __init__(self, client: TriggerClient, account_id: str) -> None:
        self.client = client
        self.account_id = account_id
        self._lock = threading.Lock()
        self._read: dict[tuple[str, ...], Any] = {}

    def once(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        with self._lock:
            if key in self._read:
                return self._read[key]  # type: ignore[no-any-return]
        value = read()
        with self._lock:
            return self._read.setdefault(key, value)  # type: ignore[no-any-return]

    def forget(self, key: tuple[str, ...]) -> None:
        """Drop a cached list this run has just changed."""
        with self._lock:
            self._read.pop(key, None)


@dataclass(frozen=True, slots=True)
class StateKey:
    """A field an attachment records: ``string``, ``boolean``, ``strings`` (a sorted list) or
    ``json`` (any JSON value, kept as canonical text)."""

    name: str
    kind: str = "string"


class AttachmentKind:
    """One kind of attachment; subclasses fill in the class attributes and the requests.

    ``goes_with_script``: Cloudflare removes it when its script is deleted (no request of its
    own then); else it is removed before its script. ``absent_leaves_alone``: a script without
    the manifest key leaves it as it is in Cloudflare (it is only dropped from the state).
    ``claim``: what its name is, when one name may be attached only once (``route pattern``).
    """

    type: str = ""
    manifest_key: str = ""
    state_keys: tuple[StateKey, ...] = ()
    goes_with_script: bool = False
    absent_leaves_alone: bool = False
    claim: str = ""
    diagram_shape: str = "box"  # how the plan's picture draws it: box, trigger or schedule

    # --- the manifest ----------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the manifest key under a script."""
        raise NotImplementedError

    def check(self, draft: AttachmentDraft, sections: Sections, report: Report) -> None:
        """Report what the schema cannot say, on values with variables filled in."""

    def claimed(self, draft: AttachmentDraft) -> list[Field]:
        """The names this draft claims (unique across the manifest and its environments)."""
        return []

    def build(self, script: str, value: object, names: Names) -> tuple[Attachment, ...]:
        """The attachments of ``script`` from the manifest's checked, filled-in value."""
        raise NotImplementedError

    # --- planning ---------------------------------------------------------------------------

    def differences(self, wanted: Attachment, have: Attachment) -> tuple[Reason, ...]:
        """Why ``have`` must change to be ``wanted`` (none: the same). Only the fields that
        ``wanted`` gives are compared, so a recorded id or resolved zone is no difference."""
        reasons = []
        if wanted.script != have.script:
            reasons.append(Reason.SCRIPT)
        for key, value in wanted.values:
            if value is not None and _comparable(have.get(key)) != _comparable(value):
                reasons.append(self.reason_for(key))
        return tuple(dict.fromkeys(reasons))

    def reason_for(self, key: str) -> Reason:
        return Reason.SETTINGS

    def drifted(self, seen: Attachment, have: Attachment) -> bool:
        """Whether what Cloudflare has (``seen``) differs from what was recorded (``have``)."""
        return bool(self.differences(seen, have))

    # --- Cloudflare -------------------------------------------------------------------------

    def apply(self, session: Session, change: Change) -> Attachment | None:
        """Make Cloudflare match ``change``: the attachment as recorded, or None once removed."""
        raise NotImplementedError

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        """What Cloudflare has now for a recorded attachment (None: it is gone)."""
        raise NotImplementedError

    def adopt(self, session: Session, wanted: Attachment) -> Attachment | None:
        """What Cloudflare has for ``wanted`` (``deployer import``): recorded as the state's,
        so the next plan shows only real differences; None when there is nothing to adopt."""
        found = self.read(session, wanted)
        return found if found is not None and found.script == wanted.script else None

    def foreign(self, session: Session, wanted: Sequence[Attachment], owned: Callable[[str], bool]) -> list[str]:
        """Lines naming each of ``wanted`` (new to the state) that Cloudflare attaches to a
        script ``owned`` says is not this state's: apply refuses them without --allow-overwrite."""
        return []

    # --- the state --------------------------------------------------------------------------

    def to_state(self, attachment: Attachment) -> dict[str, Any]:
        doc: dict[str, Any] = {"script": attachment.script}
        if attachment.id is not None:
            doc["id"] = attachment.id
        for key in self.state_keys:
            value = attachment.get(key.name)
            if value is not None:
                doc[key.name] = thawed(value)
        return doc

    def from_state(self, name: str, doc: object, where: str) -> Attachment:
        fields = object_fields(doc, where, ("script",), optional=("id", *(k.name for k in self.state_keys)))
        values: list[tuple[str, Value]] = []
        for key in self.state_keys:  # every key, None when not recorded: the shape apply records
            value = fields.get(key.name)
            values.append((key.name, None if value is None else _recorded(value, key, join(where, key.name))))
        attachment_id = fields.get("id")
        return Attachment(self.type, name, string(fields["script"], join(where, "script")), tuple(values),
                          None if attachment_id is None else string(attachment_id, join(where, "id")))

    # --- display ----------------------------------------------------------------------------

    def summary(self, attachment: Attachment) -> str:
        """What follows ``<type> <name>`` in the plan: the script and the kind's fields."""
        shown = [f"{key}: {shown_value(attachment.get(key.name))}" for key in self.state_keys
                 if key.name not in self.hidden and attachment.get(key.name) is not None]
        return f"-> {attachment.script}" + (f" ({', '.join(shown)})" if shown else "")

    hidden: tuple[str, ...] = ()  # recorded keys the plan does not show (ids)

    def details(self, change: Change) -> list[str]:
        """Lines under an update: each shown field that changes, old -> new."""
        old, new = change.previous_attachment, change.attachment
        if change.action is not Action.UPDATE or old is None or new is None:
            return []
        lines = [f"~ script: {old.script} -> {new.script}"] if old.script != new.script else []
        for key in self.state_keys:
            before, after = old.get(key.name), new.get(key.name)
            if key.name not in self.hidden and after is not None and _comparable(before) != _comparable(after):
                lines.append(f"~ {key.name}: {shown_value(before)} -> {shown_value(after)}")
        return lines


def frozen(value: object) -> Value:
    """A manifest or API value as an attachment keeps it: lists as tuples, mappings as JSON text."""
    if isinstance(value, dict):
        return JsonValue(json.dumps(value, sort_keys=True, separators=(",", ":")))
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def thawed(value: Value) -> object:
    if isinstance(value, JsonValue):
        return json.loads(value.text)
    if isinstance(value, tuple):
        return list(value)
    return value


def shown_value(value: Value) -> str:
    shown = thawed(value)
    return shown if isinstance(shown, str) else json.dumps(shown)



class ZonedKind(AttachmentKind):
    """A list of names attached in a zone (``routes``: patterns, ``custom_domains``: hostnames),
    each ``{<name_field>, zone_id | zone_name}``, claimed once across the manifest."""

    name_field: str = ""
    diagram_shape = "trigger"
    state_keys = (StateKey("zone_id"), StateKey("zone_name"))

    def claimed(self, draft: AttachmentDraft) -> list[Field]:
        return [item.entries[self.name_field][1].at for item in draft.tree.items if self.name_field in item.entries]

    def build(self, script: str, value: object, names: Names) -> tuple[Attachment, ...]:
        assert isinstance(value, list), "checked by the schema"
        return tuple(Attachment(self.type, item[self.name_field], script,
                                (("zone_id", item.get("zone_id")), ("zone_name", item.get("zone_name"))))
                     for item in value)

    def reason_for(self, key: str) -> Reason:
        return Reason.ZONE

def _comparable(value: Value) -> object:
    # A set of crons has no order; everything else compares as recorded.
    return tuple(sorted(value)) if isinstance(value, tuple) else value


def _recorded(value: object, key: StateKey, where: str) -> Value:
    match key.kind:
        case "string":
            return string(value, where)
        case "boolean" if isinstance(value, bool):
            return value
        case "strings":
            items = array(value, where)
            return tuple(string(item, f"{where}[{index}]") for index, item in enumerate(items))
        case "json":
            return frozen(object_fields(value, where))
    raise Invalid(where, f"expected {key.kind}, got {json_kind(value)}")
