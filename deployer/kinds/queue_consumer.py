"""``queue_consumers: [{queue, max_batch_size, ...}]`` on a script: the script consumes those
queues. Named ``<queue>:<script>``; created with ``POST``, changed with ``PUT``, removed with
``DELETE`` (or with its script). ``queue`` (and ``dead_letter_queue``) name a queue by the key
of a ``queues:`` entry of the manifest or by its name in Cloudflare. Reference §7.3."""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployer.errors import CloudflareApiError, DeployerError
from deployer.kinds.attachment import (
    AttachmentKind,
    Names,
    Report,
    Sections,
    Session,
    StateKey,
    thawed,
)
from deployer.models import Action, Attachment, Change, JsonValue, Reason

if TYPE_CHECKING:
    from deployer.manifest.validate import AttachmentDraft, Field, Tree

QUEUES = "queues"  # the manifest section of owned queues
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
# manifest key -> (Cloudflare's settings key, lowest, highest)
SETTINGS = {
    "max_batch_size": ("batch_size", 1, 100),
    "max_retries": ("max_retries", 0, 100),
    "max_wait_time_ms": ("max_wait_time_ms", 0, 60_000),
    "max_concurrency": ("max_concurrency", 1, 250),
    "retry_delay": ("retry_delay", 0, 43_200),
}


class QueueConsumerKind(AttachmentKind):
    type = "queue_consumer"
    manifest_key = "queue_consumers"
    state_keys = (StateKey("queue"), StateKey("queue_id"), StateKey("dead_letter_queue"), StateKey("settings", "json"))
    goes_with_script = True
    hidden = ("queue_id",)

    def schema(self) -> dict[str, Any]:
        settings = {key: {"description": f"Cloudflare's {api} ({low} to {high}); Cloudflare's default when absent.",
                          "type": "integer", "minimum": low, "maximum": high}
                    for key, (api, low, high) in SETTINGS.items()}
        return {
            "description": "Queues this script consumes, each at most once; a consumer that leaves the manifest "
                           "is removed.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["queue"],
                "properties": {
                    "queue": {"description": "The key of a queue under queues:, or a queue's name in Cloudflare.",
                              "type": "string", "minLength": 1},
                    **settings,
                    "dead_letter_queue": {"description": "Where messages go after max_retries: a key under "
                                                         "queues:, or a queue's name.",
                                          "type": "string", "minLength": 1},
                },
            },
        }

    def check(self, draft: AttachmentDraft, sections: Sections, report: Report) -> None:
        declared = sections.get(QUEUES) or {}
        first: dict[str, Field] = {}
        for item in draft.tree.items:
            queue = _string(item, "queue")
            for field in (queue, _string(item, "dead_letter_queue")):
                if field is not None and field.value is not None and field.value not in declared \
                        and not QUEUE_NAME.fullmatch(field.value):
                    report(field, f"{field.subject()} is neither a queue declared under queues: nor a queue name "
                                  "(letters, digits, '-' and '_', at most 63 characters)")
            if queue is None or queue.value is None:
                continue
            seen = first.setdefault(queue.value, queue)
            if seen is not queue:
                report(queue, f"the script consumes queue {queue.raw!r} already (line {seen.line}); Cloudflare "
                              "allows one consumer per script and queue")

    def build(self, script: str, value: object, names: Names) -> tuple[Attachment, ...]:
        assert isinstance(value, list), "checked by the schema"
        built = []
        for item in value:
            queue = names(QUEUES, item["queue"]) or item["queue"]
            dead = item.get("dead_letter_queue")
            settings = {api: item[key] for key, (api, _, _) in SETTINGS.items() if key in item}
            built.append(Attachment(self.type, f"{queue}:{script}", script, (
                ("queue", queue),
                ("dead_letter_queue", (names(QUEUES, dead) or dead) if dead is not None else None),
                ("settings", _json(settings)),
            )))
        return tuple(built)

    def differences(self, wanted: Attachment, have: Attachment) -> tuple[Reason, ...]:
        # Every setting counts, a removed one too: Cloudflare then goes back to its default.
        same = (wanted.script, wanted.get("dead_letter_queue"), _settings(wanted)) == (
            have.script, have.get("dead_letter_queue"), _settings(have))
        return () if same else (Reason.SETTINGS,)

    def drifted(self, seen: Attachment, have: Attachment) -> bool:
        # Cloudflare reports its defaults too: only what was set is compared.
        found = _settings(seen)
        return (seen.script, seen.get("dead_letter_queue")) != (have.script, have.get("dead_letter_queue")) or any(
            found.get(key) != value for key, value in _settings(have).items())

    def summary(self, attachment: Attachment) -> str:
        shown = [f"{key} {value}" for key, value in sorted(_settings(attachment).items())]
        dead = attachment.get("dead_letter_queue")
        if dead is not None:
            shown.append(f"dead_letter_queue {dead}")
        return f"-> {attachment.script} (queue {attachment.get('queue')}" + "".join(f", {s}" for s in shown) + ")"

    # --- Cloudflare -------------------------------------------------------------------------

    def apply(self, session: Session, change: Change) -> Attachment | None:
        client, account, want, have = session.client, session.account_id, change.attachment, change.previous_attachment
        if change.action is Action.DELETE:
            assert have is not None and have.id is not None
            client.delete_queue_consumer(account, str(have.get("queue_id")), have.id)
            return None
        assert want is not None
        same_queue = have is not None and have.get("queue") == want.get("queue")
        queue_id = self._queue_id(session, have if have is not None and same_queue else want, required=True)
        assert queue_id is not None
        body: dict[str, Any] = {"type": "worker", "script_name": want.script, "settings": _settings(want)}
        if want.get("dead_letter_queue") is not None:
            body["dead_letter_queue"] = want.get("dead_letter_queue")
        if change.action is Action.UPDATE and have is not None and have.id is not None and same_queue:
            consumer = client.update_queue_consumer(account, queue_id, have.id, body)
        else:
            try:
                consumer = client.create_queue_consumer(account, queue_id, body)
            except CloudflareApiError as exc:
                existing = self._find(session, queue_id, want.script) if exc.status == 400 else None
                if existing is None:
                    raise
                # The script consumes the queue already (a state that lost it): replace it.
                consumer = client.update_queue_consumer(account, queue_id, str(existing["consumer_id"]), body)
        return _recorded(want, queue_id, str(consumer["consumer_id"]), _settings(want))

    @staticmethod
    def _queue_id(session: Session, attachment: Attachment, *, required: bool = False) -> str | None:
        recorded = attachment.get("queue_id")
        if isinstance(recorded, str):
            return recorded
        queue = str(attachment.get("queue"))
        found = session.client.find_queue_id(session.account_id, queue)
        if found is None and required:
            raise DeployerError(f"queue consumer {attachment.name}: the account has no queue named {queue!r}; "
                                "declare it under queues: (deployer creates it) or create it first")
        return found

    def _find(self, session: Session, queue_id: str, script: str) -> dict[str, Any] | None:
        consumers = session.once(("consumers", queue_id),
                                 lambda: session.client.list_queue_consumers(session.account_id, queue_id))
        return next((c for c in consumers if c.get("script", c.get("script_name")) == script), None)

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        queue_id = self._queue_id(session, recorded)
        found = self._find(session, queue_id, recorded.script) if queue_id is not None else None
        if queue_id is None or found is None:
            return None
        settings: dict[str, Any] = found["settings"] if isinstance(found.get("settings"), dict) else {}
        seen = _recorded(recorded, queue_id, str(found["consumer_id"]), settings)
        return dataclasses.replace(seen, values=tuple(
            (key, found.get("dead_letter_queue") if key == "dead_letter_queue" else value) for key, value in seen.values))

    def adopt(self, session: Session, wanted: Attachment) -> Attachment | None:
        found = self.read(session, wanted)
        if found is None:
            return None
        # Only the settings the manifest gives are recorded: the others are Cloudflare's defaults.
        given = _settings(wanted)
        return dataclasses.replace(found, values=tuple(
            (key, _json({k: v for k, v in _settings(found).items() if k in given}) if key == "settings" else value)
            for key, value in found.values))


def _string(item: Tree, key: str) -> Field | None:
    entry = item.entries.get(key)
    return entry[1].at if entry else None


def _json(settings: Mapping[str, Any]) -> JsonValue:
    return JsonValue(json.dumps(dict(settings), sort_keys=True, separators=(",", ":")))


def _settings(attachment: Attachment) -> dict[str, Any]:
    value = attachment.get("settings")
    settings = thawed(value) if value is not None else {}
    return dict(settings) if isinstance(settings, dict) else {}


def _recorded(want: Attachment, queue_id: str, consumer_id: str, settings: Mapping[str, Any]) -> Attachment:
    return Attachment(want.type, want.name, want.script, (
        ("queue", want.get("queue")), ("queue_id", queue_id), ("dead_letter_queue", want.get("dead_letter_queue")),
        ("settings", _json(settings))), consumer_id)


KIND = QueueConsumerKind()
