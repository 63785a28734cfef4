"""What every binding type declares about itself, and the behaviour most of them share.

A binding kind is like a Terraform provider's resource schema: its manifest keys (with their
JSON Schema fragments and rules), an optional reference to a resource of the manifest, and how
the binding is sent, recorded, read back and shown. ``BindingKind`` implements all of that for
the common shape ``{type, name, <a few fields>}``; a kind with more to say overrides a method.
The core (planner, executor, state, render) only ever calls these methods.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer.errors import DeployerError
from deployer.escape import escape_text
from deployer.manifest.rules import Rule, schema_pattern
from deployer.models import Binding, DeployedBinding, JsonValue, Secret, Value
from deployer.state.fields import Invalid, join, json_kind, object_fields, string

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"

Resolve = Callable[[str, str], "str | None"]
"""``resolve(section, key)``: what a reference to ``section.key`` sends (an id or a name), or
None while it is known only after apply."""


@dataclass(frozen=True, slots=True)
class Key:
    """A key of the binding in the manifest, sent to Cloudflare under the same name.

    ``kind``: ``string`` (checked by ``rule`` if given), ``boolean``, ``integer`` (within
    ``minimum``/``maximum`` if given), ``strings`` (a list of non-empty strings), ``object`` (a
    mapping of the JSON Schema ``shape``, sent as written) or ``json`` (any value). ``quoted``: shown as a JSON string (free
    text) rather than bare (an id).
    ``empty_unless``: an empty value is a validation error unless the binding sets this option
    (one of the kind's ``options``) to true."""

    name: str
    description: str
    kind: str = "string"
    required: bool = True
    rule: Rule | None = None
    enum: tuple[str, ...] = ()
    quoted: bool = False
    minimum: int | None = None
    maximum: int | None = None
    shape: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)  # an object's schema
    empty_unless: str | None = None


    def schema(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"description": self.description}
        match self.kind:
            case "string" if self.enum:
                doc["enum"] = list(self.enum)
            case "string" if self.rule is not None:
                doc.update(type="string", pattern=schema_pattern(self.rule))
            case "string":
                doc["type"] = "string"
                if not self.quoted:  # free text may be empty; an id or name may not
                    doc["minLength"] = 1
            case "boolean":
                doc["type"] = self.kind
            case "integer":
                doc["type"] = self.kind
                doc.update({k: v for k, v in (("minimum", self.minimum), ("maximum", self.maximum)) if v is not None})
            case "strings":
                doc.update(type="array", items={"type": "string", "minLength": 1})
            case "object":
                doc.update(self.shape or {"type": "object", "additionalProperties": False})
            case "json":
                pass  # any YAML value
            case other:
                raise ValueError(f"unknown key kind {other!r}")
        return doc


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest key naming a resource of this manifest (``namespace: cache``): an alternative
    to the literal key ``fills``, resolved at plan or apply time. ``optional``: the binding may
    have neither (never both)."""

    key: str
    section: str  # the manifest section it names a key of: kv_namespaces, r2_buckets, scripts, ...
    fills: str
    description: str
    rule: Rule | None = None
    optional: bool = False


@dataclass(frozen=True)
class BindingKind:
    """One binding type. ``secret``: the key holding a secret value (never stored or shown;
    the binding is a script secret, deleted explicitly when it leaves the manifest).
    ``options``: manifest-only switches (``allow_empty``), never sent, recorded or shown.
    ``in_bindings``: written in a script's ``bindings:`` list; False for a binding another
    script key makes (``assets: {binding: NAME}``), which the schema's binding types leave out."""

    type: str
    description: str
    keys: tuple[Key, ...] = ()
    reference: Reference | None = None
    secret: Key | None = None
    options: tuple[Key, ...] = ()
    in_bindings: bool = True
    _key_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [k.name for k in self.keys]
        if self.reference is not None:
            names.append(self.reference.key)
        object.__setattr__(self, "_key_names", tuple(names))

    # --- the manifest ----------------------------------------------------------------------

    @property
    def manifest_keys(self) -> tuple[str, ...]:
        """Every key a binding of this type may have, type and name first."""
        secret = (self.secret.name,) if self.secret else ()
        return ("type", "name", *self._key_names, *secret, *(option.name for option in self.options))

    @property
    def required_keys(self) -> tuple[str, ...]:
        required = [k.name for k in self.keys if k.required and not self._is_alternative(k)]
        if self.secret is not None:
            required.append(self.secret.name)
        return tuple(required)

    def _is_alternative(self, key: Key) -> bool:
        return self.reference is not None and key.name == self.reference.fills

    def schema_branch(self) -> dict[str, Any]:
        """The ``then`` of this type's branch in ``$defs/binding``: its keys and their rules."""
        properties = {k.name: k.schema() for k in self.keys}
        if self.reference is not None:
            ref = self.reference
            properties[ref.key] = {"description": ref.description, "type": "string", "minLength": 1}
            if ref.rule is not None:
                properties[ref.key] = {"description": ref.description, "pattern": schema_pattern(ref.rule),
                                       "type": "string"}
        if self.secret is not None:
            properties[self.secret.name] = self.secret.schema()
        properties.update((option.name, option.schema()) for option in self.options)
        branch: dict[str, Any] = {"propertyNames": {"enum": list(self.manifest_keys)}, "properties": properties}
        if self.required_keys:
            branch["required"] = list(self.required_keys)
        if self.reference is not None and self.reference.optional:
            branch["not"] = {"required": [self.reference.fills, self.reference.key]}
        elif self.reference is not None:
            branch["oneOf"] = [{"required": [self.reference.fills]}, {"required": [self.reference.key]}]
        return branch

    def alternative_message(self, given: Mapping[str, object]) -> str:
        """The schema's ``oneOf``/``not`` failure in words: both or neither of a literal and a
        reference."""
        assert self.reference is not None
        both = self.reference.fills in given and self.reference.key in given
        words = "takes {} or {}, not both" if both else "needs {} or {}"
        return f"a {self.type} binding " + words.format(self.reference.fills, self.reference.key)

    def scripts_named(self, binding: DeployedBinding) -> frozenset[str]:
        """The names of scripts this binding sends (a service, a Durable Object's script): they
        must exist before its upload and must not be deleted while it binds them."""
        if self.reference is None or self.reference.section != "scripts":
            return frozenset()
        value = binding.get(self.reference.fills)
        return frozenset((value,)) if isinstance(value, str) else frozenset()

    def problems(self, values: Mapping[str, object]) -> list[tuple[str, str]]:
        """``(key, what is wrong)`` for the filled-in values beyond the schema: an empty value
        where the kind needs an opt-in (``empty_unless``). The text completes "<value> ..."."""
        found = []
        for key in (*self.keys, *((self.secret,) if self.secret is not None else ())):
            if key.empty_unless is not None and values.get(key.name) == "" and values.get(key.empty_unless) is not True:
                problem = (f"is empty: a {self.type} binding would replace the deployed value with \"\" (CI "
                           "systems set a missing secret to the empty string); set it, or add "
                           f"{key.empty_unless}: true to the binding if empty is meant")
                found.append((key.name, problem))
        return found

    def build(self, name: str, values: Mapping[str, object]) -> Binding:
        """The Binding from the manifest's filled-in values (already checked)."""
        kept = tuple((key, _frozen(values.get(key), self._kind_of(key))) for key in self._key_names)
        secret = Secret(str(values[self.secret.name])) if self.secret is not None else None
        return Binding(self.type, name, kept, secret)

    def _kind_of(self, key: str) -> str:
        return next((k.kind for k in self.keys if k.name == key), "string")

    # --- planning and apply ----------------------------------------------------------------

    def deployed(self, binding: Binding, resolve: Resolve) -> DeployedBinding:
        """The binding as it will be recorded: the fields Cloudflare receives, minus a secret; a
        reference resolved (None while known only after apply)."""
        values: list[tuple[str, Value]] = []
        for key in self.keys:
            value = binding.get(key.name)
            reference = binding.get(self.reference.key) if self.reference is not None else None
            if value is None and self._is_alternative(key) and reference is not None:
                assert self.reference is not None
                values.append((key.name, resolve(self.reference.section, str(reference))))
            elif value is not None:
                values.append((key.name, value))
        return DeployedBinding(self.type, binding.name, tuple(values))

    def metadata(self, binding: Binding, resolve: Resolve) -> dict[str, object]:
        """The binding exactly as the upload's ``metadata.bindings`` carries it."""
        deployed = self.deployed(binding, resolve)
        doc: dict[str, object] = {"type": self.type, "name": binding.name}
        for key, value in deployed.values:
            if value is None:
                assert self.reference is not None
                raise DeployerError(f"{self.reference.section[:-1]} {binding.get(self.reference.key)!r} has no "
                                    f"{key} yet; was it created?")
            doc[key] = _thawed(value)
        if self.secret is not None and binding.secret is not None:
            doc[self.secret.name] = binding.secret.value
        return doc

    def planfile_record(self, binding: Binding) -> dict[str, object]:
        """The binding as a plan file records it: every manifest key, a secret by name only."""
        return {"type": self.type, "name": binding.name, **{k: _thawed(v) for k, v in binding.values}}

    # --- reading back, recording ------------------------------------------------------------

    def from_remote(self, item: Mapping[str, Any]) -> DeployedBinding:
        """The binding as Cloudflare's settings report it (a secret comes back without value)."""
        values = []
        for key in self.keys:
            if key.name in item and item[key.name] is not None:
                values.append((key.name, _frozen(item[key.name], key.kind)))
        return DeployedBinding(self.type, str(item["name"]), tuple(values))

    def mismatches(self, sent: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
        """How Cloudflare's copy of a binding differs from the one sent (never a secret's value)."""
        problems = []
        for key in self.keys:
            if key.name in sent and found.get(key.name) != sent[key.name]:
                show = json.dumps if key.quoted or key.kind != "string" else str
                problems.append(f"binding {sent['name']} was sent with {key.name} {show(sent[key.name])} but "
                                f"Cloudflare has {show(found.get(key.name))}")
        return problems

    def to_state(self, binding: DeployedBinding) -> dict[str, Any]:
        # Only the declared keys: a secret's value can never reach the state, whatever it holds.
        declared = {k.name for k in self.keys}
        values = {k: _thawed(v) for k, v in binding.values if k in declared}
        return {"type": self.type, "name": binding.name, **values}

    def from_state(self, doc: Mapping[str, Any], where: str) -> DeployedBinding:
        """Parse a recorded binding field by field; ``Invalid`` names the field."""
        if self.secret is not None and self.secret.name in doc:
            raise Invalid(join(where, self.secret.name), f"a {self.type} binding must not store its value")
        required = tuple(k.name for k in self.keys if k.required)
        optional = tuple(k.name for k in self.keys if not k.required)
        fields = object_fields(doc, where, ("type", "name", *required), optional=optional)
        values = []
        for key in self.keys:
            if key.name in fields:
                values.append((key.name, _recorded(fields[key.name], key, join(where, key.name))))
        return DeployedBinding(self.type, string(fields["name"], join(where, "name")), tuple(values))

    # --- display -------------------------------------------------------------------------

    def describe(self, binding: DeployedBinding, escape: Callable[[str], str] = escape_text) -> str:
        """One line for a person: the type, then the first value bare and the others named;
        every value passed through ``escape`` (the output format's: text or markdown)."""
        if self.secret is not None:
            return f"{self.type} (sensitive)"
        parts = [self.type]
        for index, (key, value) in enumerate(binding.values):
            shown = "(known after apply)" if value is None else escape(self._show(key, value))
            parts.append(shown if index == 0 else f"({key} {shown})")
        return " ".join(parts)

    def plan_values(self, binding: DeployedBinding) -> dict[str, object] | str:
        """The binding's values as the JSON plan shows them: a secret as ``"(sensitive)"``, a
        value known only after apply as ``"(known after apply)"``."""
        if self.secret is not None:
            return SENSITIVE
        return {key: UNKNOWN if value is None else _thawed(value) for key, value in binding.values}

    def _show(self, key: str, value: Value) -> str:
        spec = next((k for k in self.keys if k.name == key), None)
        if spec is not None and (spec.quoted or spec.kind != "string"):
            return json.dumps(_thawed(value))
        return str(value)


def _frozen(value: object, kind: str) -> Value:
    """A manifest or API value as a binding keeps it: JSON structures as canonical text."""
    if value is None and kind != "json":
        return None
    if kind in ("json", "strings", "object") or isinstance(value, (dict, list)):
        return JsonValue(json.dumps(value, sort_keys=True, separators=(",", ":")))
    return value


def _thawed(value: Value) -> object:
    return json.loads(value.text) if isinstance(value, JsonValue) else value


def _recorded(value: object, key: Key, where: str) -> Value:
    match key.kind:
        case "string":
            return string(value, where, empty=key.quoted)
        case "boolean" if isinstance(value, bool):
            return value
        case "integer" if isinstance(value, int) and not isinstance(value, bool):
            return value
        case "strings" if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
            return _frozen(value, "strings")
        case "object" if isinstance(value, dict):
            return _frozen(value, "object")
        case "json":
            return _frozen(value, "json")
    raise Invalid(where, f"expected {key.kind}, got {json_kind(value)}")
