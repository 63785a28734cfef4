"""What every owned resource kind declares (KV namespaces, R2 buckets, D1 databases, queues): its manifest section, the key naming it in Cloudflare, how it
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
    ``plan_name_key``/``plan_id_key``: the plan JSON's keys for its name and id (``title`` and
    ``namespace_id`` for KV, as in round one; no id key for a kind whose name is its id);
    ``remote_name_key``/``remote_id_key``: the same in Cloudflare's answers (a queue's
    ``queue_name`` and ``queue_id``);
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
    plan_name_key: str = ""  # "": name_key
    remote_id_key: str = "id"
    remote_name_key: str = ""  # "": name_key
    forgotten_key: str = ""
    reference: str = "id"
    renamable: bool = False
    always_in_state: bool = False  # the state file always has its section (round one wrote KV's)
    ensure: str = ""
    rename: str = ""
    list: str = ""

    @property
    def plan_name(self) -> str:
        return self.plan_name_key or self.name_key

    @property
    def id_is_name(self) -> bool:
        """Whether Cloudflare addresses it by its name alone (an R2 bucket has no other id)."""
        return self.remote_id_key == (self.remote_name_key or self.name_key)

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
        if self.name_rule.pattern.pattern != ".+":  # any title: only its length is checked
            name_schema["pattern"] = schema_pattern(self.name_rule)
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
        return str(found[self.remote_id_key]), bool(adopted)

    def rename_in(self, client: Any, account_id: str, resource_id: str, name: str) -> None:
        getattr(client, self.rename)(account_id, resource_id, name)

    def ids_in(self, client: Any, account_id: str) -> frozenset[str]:
        """Every id of this kind in the account (``--refresh``)."""
        return self.listed_in(client, account_id)[0]

    def listed_in(self, client: Any, account_id: str) -> tuple[frozenset[str], frozenset[str]]:
        """Every id and every name of this kind in the account, from one listing (``--refresh``)."""
        items = getattr(client, self.list)(account_id)
        name_key = self.remote_name_key or self.name_key
        return (frozenset(str(item[self.remote_id_key]) for item in items),
                frozenset(str(item[name_key]) for item in items if isinstance(item.get(name_key), str)))

    # --- display --------------------------------------------------------------------------

    def headline(self, action: str, name: str | None, resource_id: str | None,
                 escape: Callable[[str], str] = escape_text) -> str:
        """What the plan says after ``<type> <key>`` for each action; the name (quoted) and id
        passed through ``escape``, the output format's."""
        quoted = escape(json.dumps(name, ensure_ascii=False))
        match action:
            case "create" if self.id_is_name:
                return f' ({self.name_key} "{name}", created or adopted by {self.name_key})'
            case "create":
                return (f" ({self.name_key} {quoted}, created or adopted by {self.name_key}; "
                        "id known after apply)")
            case "adopt":
                return f' ({self.name_key} "{name}" exists in Cloudflare: adopted, not created)'
            case "update":
                return f" (rename to {quoted})"
            case "forget":
                return f" (id {escape(str(resource_id))}: dropped from the state, kept in Cloudflare with its data)"
        return ""
