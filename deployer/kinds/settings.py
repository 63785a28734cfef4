"""Script settings the upload metadata carries besides bindings (reference §7.2): ``placement``,
``limits``, ``observability``, ``logpush``, ``tail_consumers`` and ``tags``. Each is declared
once here: its manifest key and schema fragment, its checks, what the metadata gets, and how
``GET .../settings`` reports it. The core reaches them through the registry (``SETTING_KINDS``).

A setting is sent as written (a tail consumer's ``script:`` resolved to that script's name in
the environment); the state keeps a digest per setting, so a change is seen without storing it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.kinds.binding import Resolve
from deployer.manifest.rules import SCRIPT_NAME, Rule, schema_pattern
from deployer.models import Action, JsonValue, SettingChange

if TYPE_CHECKING:
    from deployer.manifest.validate import Field, ValueDraft

OWNER_TAG_PREFIX = "deployer:project="  # the ownership tag: shared/CONTRACT.md, "Safe by default"

Problem = tuple["Field", str]


def _as_written(value: object, resolve: Resolve) -> object:
    return value


def _no_checks(draft: ValueDraft, scripts: Mapping[str, Field] | None) -> list[Problem]:
    return []


@dataclass(frozen=True)
class SettingKind:
    """One upload setting. ``default``: what ``GET .../settings`` reports when it was not sent
    (read back as not set); ``send``: the metadata value from the manifest's; ``check``: the
    rules the schema cannot express (``scripts``: the script keys of the manifest, None when a
    key is unknown); ``read``: Cloudflare's report in the sent form; ``names``: the Workers a
    sent value names (an upload waits for those of the same apply); ``in_versions``: whether a
    version upload (``apply --gradual``) may carry it, or only a script upload (reference §7.5)."""

    key: str
    description: str
    schema: Mapping[str, Any]
    default: object = None
    send: Callable[[object, Resolve], object] = _as_written
    check: Callable[[ValueDraft, Mapping[str, Field] | None], list[Problem]] = _no_checks
    read: Callable[[object], object] = lambda value: value
    names: Callable[[object], Iterable[str]] = lambda value: ()
    in_versions: bool = True

    def schema_fragment(self) -> dict[str, Any]:
        return {"description": self.description, **self.schema}

    def from_remote(self, settings: Mapping[str, Any]) -> object | None:
        """The setting as Cloudflare reports it, or None when it has the default (not set)."""
        return self.normal(self.read(settings.get(self.key)))

    def normal(self, value: object) -> object | None:
        """``value`` with the default counted as not set."""
        return None if value is None or value == self.default else value


# --- tail_consumers: a Worker by name, or a script of this manifest ------------------------


def _send_tail_consumers(value: object, resolve: Resolve) -> object:
    sent = []
    for item in value if isinstance(value, list) else ():
        # A script of this manifest is named as the environment names it (its suffix added).
        name = resolve("scripts", str(item["script"])) if "script" in item else item["service"]
        sent.append({"service": name})
    return sent


def _check_tail_consumers(draft: ValueDraft, scripts: Mapping[str, Field] | None) -> list[Problem]:
    problems: list[Problem] = []
    for index, item in enumerate(draft.value if isinstance(draft.value, list) else ()):
        if not isinstance(item, dict):
            continue  # the schema reports it
        service, script = draft.fields.get((index, "service")), draft.fields.get((index, "script"))
        where = draft.fields.get((index,))
        if service is not None and script is not None:
            problems.append((script, "a tail consumer takes service (a Worker's name) or script (a script of "
                                     "this manifest), not both"))
        elif service is None and script is None and where is not None:
            problems.append((where, "a tail consumer needs service (a Worker's name) or script (a script of "
                                    "this manifest)"))
        for field in (service, script):
            problems += _recheck(field, SCRIPT_NAME)
        if script is not None and script.value is not None and scripts is not None and script.value not in scripts:
            problems.append((script, f"script {script.raw!r} is not a script of this manifest (a Worker deployed "
                                     "elsewhere is named with service:)"))
    return problems


def _read_tail_consumers(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [{"service": item.get("service")} for item in value if isinstance(item, dict)]


# --- tags: the script's own, beside deployer's ownership tag --------------------------------


def _check_tags(draft: ValueDraft, scripts: Mapping[str, Field] | None) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, Field] = {}
    for index in range(len(draft.value) if isinstance(draft.value, list) else 0):
        tag = draft.fields.get((index,))
        if tag is None or tag.value is None:
            continue
        if tag.value.startswith(OWNER_TAG_PREFIX):
            problems.append((tag, f"{tag.subject()} starts with {OWNER_TAG_PREFIX!r}, which deployer keeps for "
                                  "the ownership tag: set the top-level project: key instead"))
        elif not tag.value:
            problems.append((tag, "must not be empty"))
        first = seen.setdefault(tag.value, tag)
        if first is not tag:
            problems.append((tag, f"duplicate tag {tag.raw!r} (first at line {first.line})"))
    return problems


def _read_tags(value: object) -> object:
    if not isinstance(value, list):
        return value
    # The ownership tag is deployer's own (CONTRACT.md, "Safe by default"), not a setting.
    return [tag for tag in value if not (isinstance(tag, str) and tag.startswith(OWNER_TAG_PREFIX))]


def _recheck(field: Field | None, rule: Rule) -> list[Problem]:
    """A filled-in placeholder checked now (the schema saw only ``${...}``)."""
    if field is not None and field.filled_in and field.value is not None and not rule.accepts(field.value):
        return [(field, f"{field.subject()} is not {rule.words}")]
    return []


_RATE = {"type": "number", "minimum": 0, "maximum": 1}

SETTINGS = (
    SettingKind(
        "placement",
        "Smart Placement: {mode: smart} runs the Worker close to the back ends it calls. Sent as metadata.placement.",
        {"type": "object", "additionalProperties": False, "required": ["mode"],
         "properties": {"mode": {"description": "smart (leave placement out for Cloudflare's default).",
                                 "enum": ["smart"]}}},
        default={},
    ),
    SettingKind(
        "limits",
        "Runtime limits: {cpu_ms: N}, the CPU time one invocation may use, in milliseconds (Paid plans). Sent as "
        "metadata.limits.",
        {"type": "object", "additionalProperties": False, "required": ["cpu_ms"],
         "properties": {"cpu_ms": {"description": "Milliseconds of CPU time per invocation, 1 to 300000.",
                                   "type": "integer", "minimum": 1, "maximum": 300000}}},
        default={},
    ),
    SettingKind(
        "observability",
        "Workers Logs: {enabled, head_sampling_rate, logs: {enabled, head_sampling_rate, invocation_logs}}. Sent "
        "as metadata.observability.",
        {"type": "object", "additionalProperties": False, "required": ["enabled"],
         "properties": {
             "enabled": {"description": "Whether the Worker's logs and invocations are recorded.", "type": "boolean"},
             "head_sampling_rate": {"description": "The share of requests recorded, 0 to 1 (default 1).", **_RATE},
             "logs": {
                 "description": "Settings for logs alone.",
                 "type": "object", "additionalProperties": False,
                 "properties": {
                     "enabled": {"description": "Whether logs are recorded.", "type": "boolean"},
                     "head_sampling_rate": {"description": "The share of requests whose logs are recorded, 0 to 1.",
                                            **_RATE},
                     "invocation_logs": {"description": "Whether an invocation log is recorded per request.",
                                         "type": "boolean"},
                 },
             },
         }},
        default={"enabled": False},
    ),
    SettingKind(
        "logpush",
        "Whether the Worker's trace events are sent to its account's Logpush jobs. Sent as metadata.logpush.",
        {"type": "boolean"},
        default=False,
        in_versions=False,
    ),
    SettingKind(
        "tail_consumers",
        "Workers that receive this Worker's events (Tail Workers): {service: <Worker name>} for a Worker deployed "
        "elsewhere, or {script: <script of this manifest>} (named with the environment's name_suffix and uploaded "
        "first). Sent as metadata.tail_consumers [{service}].",
        {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "service": {"description": "The name of a Worker of the account.", "type": "string",
                            "pattern": schema_pattern(SCRIPT_NAME)},
                "script": {"description": "A script of this manifest.", "type": "string",
                           "pattern": schema_pattern(SCRIPT_NAME)},
            },
        }},
        default=[],
        send=_send_tail_consumers,
        check=_check_tail_consumers,
        read=_read_tail_consumers,
        names=lambda value: [str(item["service"]) for item in value if isinstance(item, dict)]
        if isinstance(value, list) else [],
        in_versions=False,
    ),
    SettingKind(
        "tags",
        "The script's tags in Cloudflare (the script list filters by them), beside the ownership tag "
        "deployer:project=NAME that project: adds. Sent as metadata.tags.",
        {"type": "array", "items": {"type": "string", "minLength": 1}},
        default=[],
        check=_check_tags,
        read=_read_tags,
        in_versions=False,
    ),
)


_BY_KEY = {kind.key: kind for kind in SETTINGS}


# --- what the core calls ----------------------------------------------------------------------


def frozen(value: object) -> JsonValue:
    """A setting's value as scripts and plans keep it: canonical JSON text."""
    return JsonValue(json.dumps(value, sort_keys=True, separators=(",", ":")))


def thawed(value: JsonValue) -> object:
    return json.loads(value.text)


def deployed_settings(settings: Iterable[tuple[str, JsonValue]], resolve: Resolve) -> tuple[tuple[str, JsonValue], ...]:
    """The settings as the upload sends them, in the registry's order."""
    written = dict(settings)
    return tuple((key, frozen(kind.send(thawed(written[key]), resolve)))
                 for key, kind in _BY_KEY.items() if key in written)


def settings_metadata(deployed: Iterable[tuple[str, JsonValue]]) -> dict[str, object]:
    """The metadata keys the settings add (none when the script sets none)."""
    return {key: thawed(value) for key, value in deployed}


def setting_digests(deployed: Iterable[tuple[str, JsonValue]]) -> tuple[tuple[str, str], ...]:
    """What the state records per setting: the sha256 of its canonical value."""
    return tuple(sorted((key, hashlib.sha256(value.text.encode()).hexdigest()) for key, value in deployed))


def setting_changes(deployed: tuple[tuple[str, JsonValue], ...], recorded: Iterable[tuple[str, str]]
                    ) -> tuple[SettingChange, ...]:
    """Each setting sent now or recorded before, with what happens to it."""
    before = dict(recorded)
    now = dict(setting_digests(deployed))
    changes = []
    for key, value in deployed:
        old = before.get(key)
        action = Action.CREATE if old is None else Action.NO_OP if old == now[key] else Action.UPDATE
        changes.append(SettingChange(key, action, value))
    changes += [SettingChange(key, Action.DELETE) for key in sorted(before) if key not in now]
    return tuple(changes)


def version_metadata(deployed: Iterable[tuple[str, JsonValue]]) -> dict[str, object]:
    """The metadata keys a version upload sends: the settings a version may carry (the others
    belong to the script and stay as they are)."""
    return {key: thawed(value) for key, value in deployed if _BY_KEY[key].in_versions}


def not_in_versions(changes: Iterable[SettingChange]) -> list[str]:
    """The settings that change but that only a script upload can change, not a version."""
    return [change.name for change in changes
            if change.action is not Action.NO_OP and not _BY_KEY[change.name].in_versions]


def remote_settings(settings: Mapping[str, Any]) -> tuple[tuple[str, JsonValue], ...]:
    """The settings ``GET .../settings`` reports as set (defaults left out), as deployed."""
    found = ((key, kind.from_remote(settings)) for key, kind in _BY_KEY.items())
    return tuple((key, frozen(value)) for key, value in found if value is not None)


def settings_mismatches(deployed: Iterable[tuple[str, JsonValue]], settings: Mapping[str, Any]) -> list[str]:
    """How Cloudflare's settings differ from those an upload sent (``apply --verify``)."""
    sent = dict(deployed)
    problems = []
    for key, kind in _BY_KEY.items():
        wanted = kind.normal(thawed(sent[key])) if key in sent else None
        found = kind.from_remote(settings)
        if wanted != found:
            problems.append(f"setting {key} was sent as {_shown(wanted)} but Cloudflare has {_shown(found)}")
    return problems


def _shown(value: object) -> str:
    return "(not set)" if value is None else json.dumps(value, sort_keys=True)


def referenced_scripts(deployed: Iterable[tuple[str, JsonValue]]) -> set[str]:
    """Every script name the settings send (a tail consumer): the upload waits for those of its apply."""
    return {name for key, value in deployed for name in _BY_KEY[key].names(thawed(value))}


def describe(change: SettingChange) -> str:
    """One plan line for a setting that changes."""
    match change.action:
        case Action.DELETE:
            return f"- setting {change.name} (no longer sent: Cloudflare's default)"
        case Action.CREATE:
            assert change.value is not None
            return f"+ setting {change.name}: {change.value.text}"
        case _:
            assert change.value is not None
            return f"~ setting {change.name}: now {change.value.text}"
