"""What every owned resource kind declares (KV namespaces today; R2 buckets, D1 databases and
queues follow the same rules): its manifest section, the key naming it in Cloudflare, how it
is found or created by that name, and how the plan, state and journal write it.

Owned resources are created by name when missing and adopted when the name exists; they are
never deleted when they leave the manifest (``forget``: their data would go with them).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployer.escape import escape_text
from deployer.manifest.rules import Rule, schema_pattern


@dataclass(frozen=True)
class ResourceKind:
    """One kind of owned resource.

    ``name_key``: the manifest and state key holding its name in Cloudflare (``title`` for KV);
    ``plan_id_key``: the plan JSON's key for its id (``namespace_id`` for KV, as in round one);
    ``forgotten_key``: the journal record's key listing forgotten ones; ``reference``: what a
    binding's reference to it sends (``id``, or ``name`` for kinds addressed by name);
    ``renamable``: a name change renames it in place (else the new name is another resource).
    ``ensure``/``rename``/``list`` name the client's methods for it.
    """

    type: str
    section: str
    plural: str  # how messages name several: "namespaces"
    description: str
    item_description: str
    name_key: str
    name_description: str
    name_rule: Rule
    plan_id_key: str = "id"
    forgotten_key: str = ""
    reference: str = "id"
    renamable: bool = False
    always_in_state: bool = False  # the state file always has its section (round one wrote KV's)
    ensure: str = ""
    rename: str = ""
    list: str = ""

    def to_state(self, name: str, resource_id: str) -> dict[str, str]:
        return {self.name_key: name, "id": resource_id}

    @property
    def journal_forgotten_key(self) -> str:
        return self.forgotten_key or f"forgotten_{self.section}"

    def schema_definitions(self) -> dict[str, dict[str, Any]]:
        """``$defs`` entries: the section (key -> resource) and one resource."""
        name_schema: dict[str, Any] = {"description": self.name_description, "type": "string", "minLength": 1,
                                       "pattern": schema_pattern(self.name_rule)}
        if self.name_rule.max_length:
            name_schema["maxLength"] = self.name_rule.max_length
        return {
            self.section: {
                "description": self.description,
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/namespace_key"},
                "additionalProperties": {"$ref": f"#/$defs/{self.type}"},
            },
            self.type: {
                "description": self.item_description,
                "type": "object",
                "additionalProperties": False,
                "required": [self.name_key],
                "properties": {self.name_key: name_schema},
            },
        }

    def override_description(self) -> str:
        """How an environment's section is described."""
        singular = self.plural[:-1]
        return (f"{singular.capitalize()} overrides by key (for example another {self.name_key}, so that the "
                f"environment gets its own {singular}), or more {self.plural}.")

    # --- Cloudflare -----------------------------------------------------------------------

    def ensure_in(self, client: Any, account_id: str, name: str) -> tuple[str, bool]:
        """Find the resource by name or create it: ``(id, adopted)``."""
        found, adopted = getattr(client, self.ensure)(account_id, name)
        return str(found["id"]), bool(adopted)

    def rename_in(self, client: Any, account_id: str, resource_id: str, name: str) -> None:
        getattr(client, self.rename)(account_id, resource_id, name)

    def ids_in(self, client: Any, account_id: str) -> frozenset[str]:
        """Every id of this kind in the account (``--refresh``)."""
        return frozenset(str(item["id"]) for item in getattr(client, self.list)(account_id))

    # --- display --------------------------------------------------------------------------

    def headline(self, action: str, name: str | None, resource_id: str | None,
                 escape: Callable[[str], str] = escape_text) -> str:
        """What the plan says after ``<type> <key>`` for each action; the name (quoted) and id
        passed through ``escape``, the output format's."""
        quoted = escape(json.dumps(name, ensure_ascii=False))
        match action:
            case "create":
                return (f" ({self.name_key} {quoted}, created or adopted by {self.name_key}; "
                        "id known after apply)")
            case "update":
                return f" (rename to {quoted})"
            case "forget":
                return f" (id {escape(str(resource_id))}: dropped from the state, kept in Cloudflare with its data)"
        return ""
