"""The parts of ``schemas/workers.schema.json`` the kinds own (bindings, owned resource
sections, and each attachment kind's key under a script), generated from the registry so
that the schema, the validator and the kinds cannot disagree.

``python -m deployer.kinds.schema`` rewrites both copies of the schema (the repository's and the
package's); ``--check`` only says whether they are current (a test runs it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from deployer.kinds import assets, migrations
from deployer.kinds.registry import ATTACHMENT_KINDS, BINDING_KINDS, RESOURCE_KINDS, SETTING_KINDS

ROOT = Path(__file__).resolve().parent.parent.parent
COPIES = (ROOT / "schemas" / "workers.schema.json", ROOT / "deployer" / "schemas" / "workers.schema.json")


def binding_definition() -> dict[str, Any]:
    """``$defs/binding``: every key any type has (so unknown keys are caught once), and one
    if/then branch per type holding that type's keys, rules and required keys."""
    descriptions: dict[str, list[str]] = {}
    written = [kind for kind in BINDING_KINDS.values() if kind.in_bindings]
    for kind in written:
        for key, spec in kind.schema_branch()["properties"].items():
            descriptions.setdefault(key, []).append(f"{kind.type}: {spec['description']}")
    types = [kind.type for kind in written]
    return {
        "description": "A binding: a JavaScript global of the script bound to a resource or a value, "
                       "chosen by `type`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "name"],
        "properties": {
            "type": {"description": "What the global is bound to: " + ", ".join(types) + ".", "enum": types},
            "name": {
                "description": "The JavaScript global the script uses: a valid identifier (not a reserved "
                               "word), unique within the script.",
                "type": "string",
                "minLength": 1,
            },
            **{key: {"description": " ".join(texts)} for key, texts in sorted(descriptions.items())},
        },
        "allOf": [
            {
                "if": {"type": "object", "properties": {"type": {"const": kind.type}}, "required": ["type"]},
                "then": kind.schema_branch(),
            }
            for kind in written
        ],
    }


def generated(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the kinds' parts replaced by what the registry says now."""
    defs = dict(schema["$defs"])
    defs["binding"] = binding_definition()
    properties = dict(schema["properties"])
    environment = dict(defs["environment"])
    env_properties = dict(environment["properties"])
    for kind in RESOURCE_KINDS.values():
        defs.update(kind.schema_definitions())
        reference = {"$ref": f"#/$defs/{kind.section}"}
        properties = _with(properties, kind.section, {"description": kind.description, **reference})
        env_properties = _with(env_properties, kind.section,
                               {"description": kind.override_description(), **reference})
    defs["environment"] = {**environment, "properties": env_properties}
    # The script keys the upload settings and Durable Object migrations own, after the hand-written ones.
    script_fields = dict(defs["script_fields"])
    script_properties = dict(script_fields["properties"])
    for key, setting in SETTING_KINDS.items():
        script_properties[key] = setting.schema_fragment()
    migration_defs = migrations.schema_definitions()
    script_properties[migrations.KEY] = {"description": migration_defs[migrations.KEY]["description"],
                                         "$ref": f"#/$defs/{migrations.KEY}"}
    defs.update(migration_defs)
    for attachment in ATTACHMENT_KINDS.values():
        script_properties[attachment.manifest_key] = attachment.schema()
    script_properties[assets.KEY] = assets.schema_fragment()
    defs["script_fields"] = {**script_fields, "properties": script_properties}
    return {**schema, "properties": properties, "$defs": defs}


def _with(properties: dict[str, Any], key: str, value: dict[str, Any]) -> dict[str, Any]:
    """``properties`` with ``key`` set in place, or added just before ``scripts``."""
    if key in properties:
        return {**properties, key: value}
    ordered: dict[str, Any] = {}
    for name, existing in properties.items():
        if name == "scripts":
            ordered[key] = value
        ordered[name] = existing
    return ordered


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    current = COPIES[0].read_text(encoding="utf-8")
    wanted = schema_text(generated(json.loads(current)))
    stale = [path for path in COPIES if path.read_text(encoding="utf-8") != wanted]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is not what the registry of kinds generates: run python -m deployer.kinds.schema")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
