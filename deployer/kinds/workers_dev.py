"""``workers_dev: true|false`` on a script: its ``<script>.<subdomain>.workers.dev`` URL on or
off, sent (one ``POST``) only when it changed; no key leaves it as it is. Named by the script."""
from __future__ import annotations

from typing import Any

from deployer.kinds.attachment import AttachmentKind, Names, Session, StateKey
from deployer.models import Action, Attachment, Change, Reason


class WorkersDevKind(AttachmentKind):
    type = "workers_dev"
    diagram_shape = "trigger"
    manifest_key = "workers_dev"
    state_keys = (StateKey("enabled", "boolean"),)
    goes_with_script = True
    absent_leaves_alone = True

    def schema(self) -> dict[str, Any]:
        return {
            "description": "Whether the script answers on its workers.dev URL (turning it on needs the account's "
                           "workers.dev subdomain); without this key it is left as it is.",
            "type": "boolean",
        }

    def build(self, script: str, value: object, names: Names) -> tuple[Attachment, ...]:
        assert isinstance(value, bool), "checked by the schema"
        return (Attachment(self.type, script, script, (("enabled", value),)),)

    def reason_for(self, key: str) -> Reason:
        return Reason.ENABLED

    def summary(self, attachment: Attachment) -> str:
        return "(on)" if attachment.get("enabled") else "(off)"  # named by its script already

    def apply(self, session: Session, change: Change) -> Attachment | None:
        want, have = change.attachment, change.previous_attachment
        if change.action is Action.DELETE:
            assert have is not None
            session.client.set_workers_dev(session.account_id, have.script, False)
            return None
        assert want is not None
        enabled = session.client.set_workers_dev(session.account_id, want.script, want.get("enabled") is True)
        return Attachment(self.type, want.name, want.script, (("enabled", enabled),))

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        enabled = session.client.get_workers_dev(session.account_id, recorded.script)
        return Attachment(self.type, recorded.name, recorded.script, (("enabled", enabled),))


KIND = WorkersDevKind()
