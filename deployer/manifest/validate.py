"""Check a manifest: the packaged JSON Schema, then the rules a schema cannot express.

Both passes collect every problem as a ``Diagnostic`` and never stop at the first one. The
schema sees the manifest as written (a ``${VAR}`` placeholder passes wherever a string is
allowed, as it does in an editor); the semantic pass sees the values once variables are filled
in and checks them again with the same rules. Messages never show a value that came from the
environment: they quote what the file says (``'${API_KEY}'``) instead.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from deployer.errors import Diagnostic
from deployer.kinds.binding import Reference
from deployer.kinds import assets, migrations
from deployer.kinds.registry import ATTACHMENT_KINDS, BINDING_KINDS, RESOURCE_KINDS, SETTING_KINDS
from deployer.manifest.rules import (  # noqa: F401  (re-exported: the rules are part of validation's interface)
    COMPATIBILITY_DATE,
    HEX_ID,
    JS_RESERVED_WORDS,
    NAME_SUFFIX,
    PROJECT,
    NAMESPACE_KEY,
    PLACEHOLDER_ALTERNATIVE,
    SCRIPT_NAME,
    TITLE,
    Rule,
    is_js_identifier,
    rule_for_pattern,
    schema_pattern,
)
from deployer.manifest.quick_schema import Check, compile_schema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

JsonPath = tuple[str | int, ...]
Locate = Callable[[JsonPath, bool], tuple[int, int]]
"""``locate(path, at_key)``: the 1-based (line, col) of the value at ``path``, or of its key."""



# --- the schema -------------------------------------------------------------------------


def schema_text() -> str:
    """The packaged JSON Schema, exactly as shipped (``deployer schema`` prints it)."""
    resource = resources.files("deployer").joinpath("schemas", "workers.schema.json")
    return resource.read_text(encoding="utf-8")


@functools.cache
def _schema(definition: str | None = None) -> dict[str, Any]:
    """The schema, or one for ``#/$defs/<definition>`` alone."""
    schema: dict[str, Any] = json.loads(schema_text())
    if definition is None:
        return schema
    return {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}


@functools.cache
def _validator(definition: str | None = None) -> Draft202012Validator:
    """jsonschema's validator for ``_schema(definition)``: imported only to explain errors.
    Bindings are left to ``_binding_validator``: the schema's one branch per binding type made
    every binding pay for every type (jsonschema evaluates each ``if``), which grew with the
    registry. An empty allOf keeps the mark ``_explain`` looks for."""
    from jsonschema import Draft202012Validator

    schema = _schema(definition)
    defs = dict(schema["$defs"])
    defs["binding"] = {**defs["binding"], "allOf": []}
    return Draft202012Validator({**schema, "$defs": defs})


@functools.cache
def _is_valid(definition: str | None = None) -> Check:
    """A quick yes/no for ``_schema(definition)`` (``quick_schema``); never yes for a schema it
    cannot judge."""
    return compile_schema(_schema(definition)) or (lambda data: False)


@functools.cache
def _binding_validator(binding_type: str) -> Draft202012Validator:
    """``$defs/binding`` with only ``binding_type``'s branch (errors keep the schema's shape)."""
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    binding = schema["$defs"]["binding"]
    branches = [b for b in binding.get("allOf", []) if b["if"]["properties"]["type"].get("const") == binding_type]
    return Draft202012Validator({**binding, "allOf": branches, "$defs": schema["$defs"]})


def _bindings(data: object, definition: str | None) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """``(path, binding)`` of every binding with a known type in ``data`` (a whole manifest, or
    its ``environments`` section)."""
    def in_scripts(scripts: object, at: JsonPath) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
        for name, script in scripts.items() if isinstance(scripts, dict) else ():
            bindings = script.get("bindings") if isinstance(script, dict) else None
            for index, binding in enumerate(bindings if isinstance(bindings, list) else ()):
                if isinstance(binding, dict) and binding.get("type") in BINDING_KINDS:
                    yield (*at, name, "bindings", index), binding

    if not isinstance(data, dict):
        return
    if definition is None:
        yield from in_scripts(data.get("scripts"), ("scripts",))
        environments = data.get("environments")
    elif definition == "environments":
        environments = data
    else:
        return
    for env, body in environments.items() if isinstance(environments, dict) else ():
        if isinstance(body, dict):
            yield from in_scripts(body.get("scripts"), (env, "scripts") if definition else ("environments", env,
                                                                                            "scripts"))


def json_path(parts: Iterable[str | int]) -> str:
    """``("scripts", "my-worker", "bindings", 1, "name")`` -> ``scripts.my-worker.bindings[1].name``."""
    text = ""
    for part in parts:
        text = json_path_append(text, part)
    return text


def json_path_append(path: str, part: str | int) -> str:
    """The text of ``path`` (as json_path writes it) followed by ``part``."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    if _PLAIN_KEY.fullmatch(part):
        return f"{path}.{part}" if path else part
    return f"{path}[{json.dumps(part)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def check_schema(
    data: object,
    locate: Locate,
    file: str,
    *,
    definition: str | None = None,
    at: JsonPath = (),
    source: Callable[[JsonPath], JsonPath] = tuple,
) -> list[Diagnostic]:
    """Validate ``data`` (the manifest as written) against the schema, in our words.

    With ``definition``, ``data`` is the part of the manifest at path ``at`` and is checked
    against ``#/$defs/<definition>`` alone. ``source`` maps a path to where it was written
    (an environment overlay moves values around).
    """
    if _is_valid(definition)(data):
        return []  # jsonschema would find nothing to explain
    found: set[Diagnostic] = set()  # one 'required' error per missing key would repeat them

    def report(error: ValidationError, checked: object, prefix: JsonPath, top: bool) -> None:
        for path, at_key, message in _explain(error, checked, top=top):
            full = (*at, *prefix, *path)
            line, col = locate(full, at_key)
            found.add(Diagnostic(file, line, col, json_path(source(full)), message))

    for error in _validator(definition).iter_errors(data):
        report(error, data, (), definition is None)
    for prefix, binding in _bindings(data, definition):
        for error in _binding_validator(binding["type"]).iter_errors(binding):
            report(error, binding, prefix, False)
    return sorted(found)


_CHOICES = {"format": "a script format", "type": "a binding type"}


def _explain(error: ValidationError, data: object, *, top: bool = True) -> Iterator[tuple[JsonPath, bool, str]]:
    """Yield ``(path, at_key, message)`` for one schema error (``top``: ``data`` is a whole manifest)."""
    path: JsonPath = tuple(error.absolute_path)
    instance: Any = error.instance
    kind = error.validator
    expected: Any = error.validator_value  # what the failing keyword asked for
    schema: Any = error.schema
    if "propertyNames" in error.absolute_schema_path:
        # The instance is the offending key of the mapping at ``path``.
        key_path = (*path, str(instance))
        if kind == "enum":
            binding_type = _get(data, path).get("type", "")
            yield key_path, True, _unknown_key(str(instance), expected, f" in a {binding_type} binding")
        else:
            yield key_path, True, _value_message(error, str(instance))
        return
    match kind:
        case "additionalProperties":
            if "allOf" in schema and instance.get("type") in BINDING_KINDS:
                return  # its type's branch reports the key, naming the type
            allowed = list(schema.get("properties", {}))
            for key in instance:
                if key not in allowed:
                    yield (*path, key), True, _unknown_key(key, allowed, "")
        case "required":
            for key in expected:
                if key not in instance:
                    yield path, False, f"missing required key {key!r}"
        case "oneOf" | "not" if isinstance(instance, dict) and instance.get("type") in BINDING_KINDS:
            # A binding with a reference: exactly one (or at most one) of the literal and the reference.
            yield path, False, BINDING_KINDS[instance["type"]].alternative_message(instance)
        case "anyOf" if path == () and top:
            yield path, False, "missing 'account_id' (or 'zone_id' for the legacy single-script API)"
        case "anyOf" if isinstance(instance, dict) and all(set(choice) == {"required"} for choice in expected):
            # A script: path (its code), or assets alone; the message stays the first round's.
            yield path, False, f"missing required key {expected[0]['required'][0]!r}"
        case "type":
            if path == () and top:
                got = _kind(instance)
                yield path, False, f"the manifest must be a mapping (version: 1, scripts: ...), got {got}"
            else:
                yield path, False, _type_message(expected, instance)
        case "const" if path == ("version",):
            if isinstance(instance, str) and instance.strip() == "1":
                yield path, False, f"version must be the number 1, not the string {instance!r}: remove the quotes"
            else:
                yield path, False, f"unsupported version {instance!r}; only version 1 exists"
        case "enum" if path and path[-1] in _CHOICES:
            what = "a module type" if "modules" in path else _CHOICES[str(path[-1])]
            yield path, False, _unknown_choice(instance, what, expected)
        case "enum" if path and isinstance(path[-1], str):
            yield path, False, _unknown_choice(instance, f"a valid {path[-1]}", expected)
        case "pattern" if instance == "" and "minLength" in schema:
            return  # minLength says it: "must not be empty"
        case _:
            yield path, False, _value_message(error, instance)


def _value_message(error: ValidationError, instance: Any) -> str:
    expected: Any = error.validator_value
    match error.validator:
        case "pattern":
            rule = rule_for_pattern(expected)
            words = rule.words if rule else f"matching {expected}"
            return f"{instance!r} is not {words}"
        case "maxLength":
            return f"is {len(instance)} characters long; at most {expected} are allowed"
        case "minLength":
            return "must not be empty"
        case "minimum":
            return f"{instance!r} is below the minimum, {expected}"
        case "maximum":
            return f"{instance!r} is above the maximum, {expected}"
        case _:
            return str(error.message)


def _get(data: Any, path: JsonPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _unknown_key(key: str, allowed: Sequence[str], where: str) -> str:
    match = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {match[0]!r}?" if match else f"expected one of: {', '.join(allowed)}"
    return f"unexpected key {key!r}{where} ({hint})"


def _unknown_choice(value: object, what: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(value, choices, n=1) if isinstance(value, str) else []
    if match and what == _CHOICES["type"]:  # the list of binding types is long: it hides the likely fix
        return f"{value!r} is not {what} (did you mean {match[0]!r}?)"
    message = f"{value!r} is not {what}; expected one of: {', '.join(choices)}"
    return f"{message} (did you mean {match[0]!r}?)" if match else message


_KIND_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _kind(value: object) -> str:
    match value:
        case dict():
            return "a mapping"
        case list():
            return "a list"
        case str():
            return "a string"
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            return "a number"
        case None:
            return "null (an empty value)"
        case _:
            return type(value).__name__


def _type_message(expected: str | list[str], instance: object) -> str:
    names = [expected] if isinstance(expected, str) else expected
    wanted = " or ".join(_KIND_NAMES.get(name, name) for name in names)
    message = f"expected {wanted}, got {_kind(instance)}"
    if "string" in names and isinstance(instance, (bool, int, float)):
        message += " (put it in quotes)"
    return message


# --- the manifest as written, with positions, for the semantic pass ------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A string from the manifest: ``raw`` as written, ``value`` with variables filled in
    (None when a variable in it is unset, which is reported already)."""

    at: str  # the path holding it (then ``key`` is its place there), or its own path
    line: int
    col: int
    raw: str
    value: str | None
    key: str | int | None = None

    @property
    def path(self) -> str:
        """Where it is (``scripts.api.path``): made when a message asks, not kept for each of a
        large manifest's values."""
        return self.at if self.key is None else json_path_append(self.at, self.key)

    @property
    def filled_in(self) -> bool:
        return "${" in self.raw

    def subject(self) -> str:
        """How a message names this value without showing anything from the environment."""
        return f"{self.raw!r} expands to a value that" if self.filled_in else repr(self.raw)


@dataclass(frozen=True, slots=True)
class BindingDraft:
    """A binding as written: ``fields`` has every key besides type and name as a Field (its
    value None unless a string), ``values`` every key's filled-in value (any YAML value)."""

    path: str
    line: int
    col: int
    type: str | None
    name: Field | None = None
    fields: Mapping[str, Field] = field(default_factory=dict)
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ValueDraft:
    """A script key holding structured data (an upload setting, ``durable_objects``): the key
    as written, its filled-in value, and each string inside it as a Field by its path below the
    key (``(0, "service")``); each mapping or list item inside is there too, as a Field without
    a value, so a problem with the item as a whole has a position."""

    key: Field
    value: object
    fields: Mapping[JsonPath, Field] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModuleDraft:
    path: Field | None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class Tree:
    """A value as written, with positions: ``at`` is where it is (for a scalar its text), a
    list's ``items``, a mapping's ``entries`` (each with its key's Field), and ``value`` the
    plain value with variables filled in."""

    at: Field
    value: object = None
    items: tuple[Tree, ...] = ()
    entries: Mapping[str, tuple[Field, Tree]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttachmentDraft:
    """A script's key of an attachment kind (``routes``, ``crons``, ...) as written."""

    type: str
    key: Field
    tree: Tree


@dataclass(frozen=True, slots=True)
class ScriptDraft:
    """``modules_key`` is the ``modules`` key itself (its position), when present."""

    name: Field
    path: Field | None
    bindings: tuple[BindingDraft, ...] = ()
    format: str | None = None
    modules_key: Field | None = None
    modules: tuple[ModuleDraft, ...] = ()
    compatibility_date: Field | None = None
    compatibility_flags: tuple[Field, ...] = ()
    build: Field | None = None  # build.command, as written (never filled in)
    settings: Mapping[str, ValueDraft] = field(default_factory=dict)  # by setting key (kinds/settings.py)
    durable_objects: ValueDraft | None = None
    attachments: tuple[AttachmentDraft, ...] = ()
    assets: ValueDraft | None = None


@dataclass(frozen=True, slots=True)
class ResourceDraft:
    """An owned resource as written: its kind, key and name (``title`` for a KV namespace).
    ``inherited``: an environment with a ``name_suffix`` took the name from the base, so the
    suffix is appended (an environment never shares the base's resources by accident)."""

    type: str
    key: Field
    name: Field | None
    inherited: bool = False

    def full_name(self, suffix: str | None) -> str | None:
        """The name in Cloudflare, the environment's suffix appended when inherited."""
        if self.name is None or self.name.value is None:
            return None
        return self.name.value + (suffix or "") if self.inherited else self.name.value


@dataclass(frozen=True, slots=True)
class ManifestDraft:
    """The parts of a manifest the semantic pass looks at; whatever has the wrong shape is
    left out (the schema reports it). ``*_at`` are the positions of those top-level keys."""

    account_id: Field | None = None
    zone_id: Field | None = None
    sections_at: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # resource section -> its key
    resources: tuple[ResourceDraft, ...] = ()
    scripts_at: tuple[int, int] | None = None
    scripts: tuple[ScriptDraft, ...] = ()
    name_suffix: Field | None = None
    project: Field | None = None


ScriptChecks = dict[tuple[int, tuple[tuple[str, frozenset[str] | None], ...]], list[Diagnostic]]
"""What ``check_semantics`` found per script draft, by its identity and the keys references may
name: environments share the base's script drafts, so each is checked once, not once each."""


def check_semantics(draft: ManifestDraft, file: str, cache: ScriptChecks | None = None) -> list[Diagnostic]:
    """Rules beyond the schema, on values with variables filled in; every problem is returned.
    ``cache`` (one per manifest file) keeps each script draft's results for the next environment."""
    found: list[Diagnostic] = []

    def report(field: Field, message: str) -> None:
        found.append(Diagnostic(file, field.line, field.col, field.path, message))

    def recheck(field: Field | None, rule: Rule) -> None:
        # Literal values were checked by the schema; placeholders only now that they are filled.
        if field is not None and field.filled_in and field.value is not None:
            if not rule.accepts(field.value):
                report(field, f"{field.subject()} is not {rule.words}")

    recheck(draft.account_id, HEX_ID)
    recheck(draft.zone_id, HEX_ID)
    recheck(draft.name_suffix, NAME_SUFFIX)
    recheck(draft.project, PROJECT)
    suffix = draft.name_suffix.value if draft.name_suffix is not None else None

    # The keys references may name, per section; None: a key has an unset variable, so unknown.
    sections: dict[str, dict[str, Field] | None] = {}
    for owned in RESOURCE_KINDS.values():
        declared = [r for r in draft.resources if r.type == owned.type]
        keys: dict[str, Field] = {}
        resource_names: dict[str, Field] = {}
        for resource in declared:
            recheck(resource.key, NAMESPACE_KEY)
            recheck(resource.name, owned.name_rule)
            _check_unique(resource.key, f"{owned.plural[:-1]} key", keys, report)
            if resource.name is None:
                continue
            full = resource.full_name(suffix)
            written = resource.name.value
            if (full is not None and written is not None and full != written and draft.name_suffix is not None
                    and owned.name_rule.accepts(written) and not owned.name_rule.accepts(full)):
                report(resource.name, f"{resource.name.raw!r} with name_suffix {draft.name_suffix.raw!r} is not "
                                      f"{owned.name_rule.words}")
            _check_unique(dataclasses.replace(resource.name, value=full), owned.name_key, resource_names, report)
        sections[owned.section] = None if any(r.key.value is None for r in declared) else keys
        at = draft.sections_at.get(owned.section)
        if declared and draft.account_id is None and at is not None:
            message = f"{owned.plural} belong to an account: set account_id to declare {owned.section}"
            found.append(Diagnostic(file, *at, owned.section, message))
    zone_mode = draft.zone_id is not None and draft.account_id is None
    if zone_mode and len(draft.scripts) != 1 and draft.scripts_at:
        line, col = draft.scripts_at
        found.append(Diagnostic(
            file, line, col, "scripts",
            f"the legacy single-script API (zone_id) deploys exactly one script, found {len(draft.scripts)} "
            "(set account_id to deploy several)",
        ))

    names: dict[str, Field] = {}
    claims: dict[str, dict[str, Field]] = {kind.type: {} for kind in ATTACHMENT_KINDS.values()}
    sections["scripts"] = {s.name.value: s.name for s in draft.scripts if s.name.value is not None}
    known = tuple((section, None if keys is None else frozenset(keys)) for section, keys in sections.items())
    for script in draft.scripts:
        recheck(script.name, SCRIPT_NAME)
        _check_unique(script.name, "script name", names, report)
        if suffix and draft.name_suffix is not None and script.name.value is not None:
            if SCRIPT_NAME.accepts(script.name.value) and not SCRIPT_NAME.accepts(script.name.value + suffix):
                report(script.name, f"{script.name.raw!r} with name_suffix {draft.name_suffix.raw!r} is not "
                                    f"{SCRIPT_NAME.words}")
        key = (id(script), known)
        done = cache.get(key) if cache is not None else None
        if done is not None:
            found += done
            continue
        before = len(found)
        _check_one_script(script, sections, zone_mode, recheck, report)
        if cache is not None:
            cache[key] = found[before:]
    for script in draft.scripts:
        for attachment in script.attachments:
            attached = ATTACHMENT_KINDS[attachment.type]
            if zone_mode:
                report(attachment.key, f"{attached.manifest_key} needs account_id: the legacy single-script API (zone_id) "
                                       "has no routes, custom domains, crons, workers.dev or queue consumers")
                continue
            attached.check(attachment, sections, report)
            for claimed in attached.claimed(attachment):
                _check_unique(claimed, attached.claim, claims[attached.type], report)
    for closing, cycle in _script_cycles(draft.scripts, suffix or ""):
        report(closing, f"{' -> '.join(cycle)}: these scripts bind each other in a cycle, so none of them can be "
                   "uploaded first (Cloudflare refuses a binding to a Worker that does not exist yet); remove one "
                   "of these bindings")
    return found


def _check_one_script(
    script: ScriptDraft,
    sections: Mapping[str, Mapping[str, Field] | None],
    zone_mode: bool,
    recheck: Callable[[Field | None, Rule], None],
    report: Callable[[Field, str], None],
) -> None:
    """The rules that look at one script alone (and at the keys its references may name)."""
    _check_script_settings(script, recheck, report)
    for setting_key, setting in script.settings.items():
        for problem in SETTING_KINDS[setting_key].check(setting, sections["scripts"]):
            report(*problem)
    if script.durable_objects is not None:
        for problem in migrations.check(script.durable_objects):
            report(*problem)
        if zone_mode:
            report(script.durable_objects.key, "Durable Object migrations need account_id: the legacy "
                                               "single-script API (zone_id) cannot carry them")
    binding_names: dict[str, Field] = {}
    for binding in script.bindings:
        name = binding.name
        # A literal empty name is the schema's to report.
        if name is not None and name.value is not None and (name.value or name.filled_in):
            if not is_js_identifier(name.value):
                # Cloudflare takes ASCII identifiers only, though JavaScript allows more.
                hint = (" (Cloudflare takes ASCII letters, digits, '_' and '$' only)"
                        if name.value.replace("$", "_").isidentifier() else "")
                report(name, f"{name.subject()} is not a valid JavaScript identifier{hint}")
            elif name.value in JS_RESERVED_WORDS:
                report(name, f"{name.subject()} is a reserved word in JavaScript; choose another name")
            _check_unique(name, "binding name", binding_names, report)
        kind = BINDING_KINDS.get(binding.type or "")
        if kind is None:
            continue  # the schema reports the type
        for key in kind.keys:
            if key.rule is not None:
                recheck(binding.fields.get(key.name), key.rule)
        for key_name, wrong in kind.problems(binding.values):
            given = binding.fields.get(key_name)
            if given is not None:
                report(given, f"{given.subject()} {wrong}")
        if kind.reference is not None:
            _check_reference(binding.fields.get(kind.reference.key), kind.reference, sections, recheck, report)
    if script.assets is not None:
        for problem in assets.check(script.assets, binding_names):
            report(*problem)
        if zone_mode:
            report(script.assets.key, "static assets need account_id: the legacy single-script API (zone_id) has "
                                      "no assets upload")


def _script_cycles(scripts: Sequence[ScriptDraft], suffix: str) -> list[tuple[Field, list[str]]]:
    """Each cycle among scripts binding scripts (``script: <key>``, or a literal naming a script of
    this manifest), as the binding that closes it and the cycle's keys in order (``a -> b -> a``).
    A script binding its own Durable Object class is no cycle."""
    keys = {s.name.value for s in scripts if s.name.value is not None}
    by_name = {key + suffix: key for key in keys}
    edges: dict[str, list[tuple[str, Field]]] = {}
    for script in scripts:
        for binding in script.bindings:
            kind = BINDING_KINDS.get(binding.type or "")
            reference = kind.reference if kind is not None else None
            if script.name.value is None or reference is None or reference.section != "scripts":
                continue
            by_key, literal = binding.fields.get(reference.key), binding.fields.get(reference.fills)
            if by_key is not None and by_key.value in keys:
                target, at = by_key.value, by_key
            elif literal is not None and literal.value in by_name:
                target, at = by_name[literal.value], literal
            else:
                continue
            if target != script.name.value:
                edges.setdefault(script.name.value, []).append((target, at))
    # Depth-first, without recursion (a chain may be thousands of scripts long); an edge back to
    # a script on the current path closes a cycle.
    cycles: list[tuple[Field, list[str]]] = []
    done: set[str] = set()
    for script in scripts:
        start = script.name.value
        if start is None or start in done:
            continue
        path, on_path = [start], {start}
        pending = [iter(edges.get(start, ()))]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            target, at = step
            if target in on_path:
                cycles.append((at, [*path[path.index(target):], target]))
            elif target not in done:
                path.append(target)
                on_path.add(target)
                pending.append(iter(edges.get(target, ())))
    return cycles


def claimed_twice(targets: Sequence[tuple[str | None, ManifestDraft]], file: str) -> list[Diagnostic]:
    """Warnings for a route pattern or hostname that two deploy targets of one manifest (the
    base and its environments) would each attach to their own script: each apply would take it
    from the other. ``targets``: (environment or None for the base, its draft)."""
    first: dict[tuple[str, str], tuple[str, Field]] = {}
    found = []
    for environment, draft in targets:
        label = f"environment {environment!r}" if environment is not None else "the base manifest"
        for script in draft.scripts:
            for attachment in script.attachments:
                kind = ATTACHMENT_KINDS[attachment.type]
                for claimed in kind.claimed(attachment):
                    if claimed.value is None:
                        continue
                    seen = first.setdefault((kind.type, claimed.value), (label, claimed))
                    if seen[0] == label:
                        continue
                    if (seen[1].line, seen[1].col) == (claimed.line, claimed.col):  # inherited from the base
                        message = (f"{kind.claim} {claimed.raw!r} is deployed by both {seen[0]} and {label}, which "
                                   f"inherits it: each apply would take it from the other; give {label} its own "
                                   f"{kind.manifest_key}")
                    else:
                        message = (f"{kind.claim} {claimed.raw!r} is also declared for {seen[0]} (line {seen[1].line}): "
                                   "each apply would take it from the other")
                    found.append(Diagnostic(file, claimed.line, claimed.col, claimed.path, message))
    return found


def _check_script_settings(
    script: ScriptDraft,
    recheck: Callable[[Field | None, Rule], None],
    report: Callable[[Field, str], None],
) -> None:
    if script.modules and script.format != "modules" and script.modules_key is not None:
        report(script.modules_key, "extra modules need 'format: modules' (a service-worker script is one file)")
    date = script.compatibility_date
    recheck(date, COMPATIBILITY_DATE)
    if date is not None and date.value is not None and COMPATIBILITY_DATE.accepts(date.value):
        try:
            datetime.date.fromisoformat(date.value)
        except ValueError:
            report(date, f"{date.subject()} is not a calendar date")


def _check_unique(
    field: Field, what: str, seen: dict[str, Field], report: Callable[[Field, str], None]
) -> None:
    if field.value is None:
        return
    first = seen.setdefault(field.value, field)
    if first is field:
        return
    if field.filled_in or first.filled_in:
        report(field, f"{field.subject()} is the same {what} as line {first.line}")
    else:
        report(field, f"duplicate {what} {field.raw!r} (first at line {first.line})")


def _check_reference(
    reference: Field | None,
    spec: Reference,
    sections: Mapping[str, Mapping[str, Field] | None],
    recheck: Callable[[Field | None, Rule], None],
    report: Callable[[Field, str], None],
) -> None:
    if spec.rule is not None:
        recheck(reference, spec.rule)
    declared = sections.get(spec.section, {})
    if reference is None or reference.value is None or declared is None:
        return
    if reference.value not in declared:
        report(reference, _undeclared(reference, spec, declared))


def _undeclared(reference: Field, spec: Reference, declared: Mapping[str, Field]) -> str:
    if not declared:
        return f"{spec.key} {reference.raw!r} is not declared: add it under {spec.section}"
    message = f"{spec.key} {reference.raw!r} is not declared under {spec.section}"
    match = difflib.get_close_matches(reference.value or "", list(declared), n=1)
    return f"{message} (did you mean {declared[match[0]].raw!r}?)" if match else message
