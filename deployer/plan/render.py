"""Show a Plan: ``render_json`` (format_version 1, for machines), ``render_text`` (a terminal)
and ``render_markdown`` (a pull-request comment). Strings only: no printing, no secret values."""
from __future__ import annotations

import io
import json
from typing import TextIO
from collections.abc import Callable, Iterator

from deployer.escape import escape_markdown, escape_text
from deployer.kinds import assets, migrations, settings
from deployer.kinds.attachment import thawed
from deployer.kinds.registry import ATTACHMENT_KINDS, BINDING_KINDS, RESOURCE_KINDS, binding_kind
from deployer.models import (
    SCRIPT,
    Action,
    Change,
    DeployedBinding,
    Drift,
    DriftKind,
    Manifest,
    Plan,
    Reason,
    Rollout,
    SettingChange,
    VersionShare,
)

Escape = Callable[[str], str]

FORMAT_VERSION = 1

_SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.FORGET: "!",
    Action.ADOPT: "<",
    Action.NO_OP: "=",
}
_COLORS = {Action.CREATE: "32", Action.UPDATE: "33", Action.DELETE: "31", Action.FORGET: "35", Action.ADOPT: "36",
           Action.NO_OP: "2"}
_VERBS = {
    Action.CREATE: "to create",
    Action.UPDATE: "to update",
    Action.DELETE: "to delete",
    Action.FORGET: "to forget",
    Action.ADOPT: "to adopt",
    Action.NO_OP: "unchanged",
}


def plan_document(plan: Plan) -> dict[str, object]:
    """The JSON plan as data (also embedded in plan files)."""
    return {
        "format_version": FORMAT_VERSION,
        "environment": plan.environment,
        "changes": [_change_document(change) for change in plan.changes],
        "summary": plan.summary(),
    }


DETAIL_KEYS = ("content_sha256", "size", "bindings", "drift")
"""The keys a change's JSON gained with the binding details (plan files made before lack them)."""


def _change_document(change: Change) -> dict[str, object]:
    doc: dict[str, object] = {"type": change.type, "name": change.name, "action": change.action.value}
    kind = RESOURCE_KINDS.get(change.type)
    if change.type in ATTACHMENT_KINDS:
        doc["reasons"] = [reason.value for reason in change.reasons]
        doc.update(_attachment_document(change))
    elif kind is None:
        doc["reasons"] = [reason.value for reason in change.reasons]
        if change.overwrites_remote:
            doc["overwrites_remote"] = True
        if change.removed_secrets:
            doc["removed_secrets"] = list(change.removed_secrets)
        if change.settings:
            doc["settings"] = [_setting_document(setting) for setting in change.settings]
        if change.migrations is not None:
            pending = change.migrations
            doc["migrations"] = {"old_tag": pending.old_tag, "old_tag_known": pending.old_tag_known,
                                 "new_tag": pending.new_tag,
                                 "steps": [migrations.step_document(step) for step in pending.steps]}
        if change.content_sha256 is not None:
            doc["content_sha256"] = change.content_sha256
            doc["size"] = change.size
        doc["bindings"] = [_binding_document(*item) for item in _binding_changes(change)]
        # Only in --gradual plans and for scripts in a gradual deployment: other plans stay as they were.
        if change.rollout is not None:
            doc["rollout"] = _rollout_document(change.rollout)
        if change.live_split:
            doc["gradual_deployment"] = _split_document(change.live_split)
        if change.assets is not None and not change.assets.unchanged:
            doc["assets"] = assets.change_document(change.assets)
    else:
        doc[kind.plan_name] = change.resource_name
        if kind.plan_id_key:  # none for a kind whose name is its id
            doc[kind.plan_id_key] = change.resource_id
        if change.reasons:
            doc["reasons"] = [reason.value for reason in change.reasons]
    if change.drift:
        doc["drift"] = [_drift_document(drift) for drift in change.drift]
    return doc


def _setting_document(setting: SettingChange) -> dict[str, object]:
    doc: dict[str, object] = {"name": setting.name, "action": setting.action.value}
    if setting.value is not None:
        doc["value"] = settings.thawed(setting.value)
    return doc


def _attachment_document(change: Change) -> dict[str, object]:
    """An attachment's script and fields as they will be (``previous_script`` when it moves;
    ``previous`` with the recorded fields for an update)."""
    now, before = change.attachment, change.previous_attachment
    shown = now or before
    assert shown is not None
    hidden = ATTACHMENT_KINDS[change.type].hidden
    doc: dict[str, object] = {"script": shown.script}
    doc.update((key, thawed(value)) for key, value in shown.values if value is not None and key not in hidden)
    if now is not None and before is not None and before.script != now.script:
        doc["previous_script"] = before.script
    return doc


def _binding_document(name: str, action: Action, old: DeployedBinding | None, new: DeployedBinding | None
                      ) -> dict[str, object]:
    """One binding of a script change: ``old`` as deployed, ``new`` as the manifest has it
    (each present when the binding exists then), secrets as ``"(sensitive)"``."""
    current = new or old
    assert current is not None
    doc: dict[str, object] = {"name": name, "type": current.type, "action": action.value}
    if old is not None and new is not None and old.type != new.type:
        doc["old_type"] = old.type
    if old is not None:
        doc["old"] = _values(old)
    if new is not None:
        doc["new"] = _values(new)
    return doc


def _drift_document(drift: Drift) -> dict[str, object]:
    doc: dict[str, object] = {"what": drift.what, "change": drift.change.value}
    if drift.name is not None:
        doc["name"] = drift.name
    binding = drift.deployed or drift.recorded
    if binding is not None:
        doc["type"] = binding.type
    if drift.recorded is not None:
        doc["old"] = _values(drift.recorded)
    if drift.deployed is not None and drift.deployed.type in BINDING_KINDS:
        doc["new"] = _values(drift.deployed)
    return doc


def _values(binding: DeployedBinding) -> object:
    return binding_kind(binding.type).plan_values(binding)


def without_details(doc: object) -> object:
    """A JSON plan without the keys ``DETAIL_KEYS`` (to compare with a plan file made before
    deployer wrote them)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("changes"), list):
        return doc
    changes = [{k: v for k, v in c.items() if k not in DETAIL_KEYS} if isinstance(c, dict) else c
               for c in doc["changes"]]
    return {**doc, "changes": changes}


def _rollout_document(rollout: Rollout) -> dict[str, object]:
    if rollout.percentage is None:
        return {"method": "upload", "percentage": 100, "because": rollout.because}
    return {"method": "version", "percentage": rollout.percentage}


def _split_document(split: tuple[VersionShare, ...]) -> dict[str, object]:
    new, *previous = split
    doc: dict[str, object] = {"version_id": new.version_id, "percentage": new.percentage}
    for share in previous:
        doc.update(previous_version_id=share.version_id, previous_percentage=share.percentage)
    return doc


def render_json(plan: Plan) -> str:
    out = io.StringIO()
    write_json(plan, out)
    return out.getvalue()


def write_json(plan: Plan, stream: TextIO) -> None:
    """``render_json`` written to ``stream`` chunk by chunk: json.dumps keeps a list of every
    chunk (a million small strings for 5,000 scripts) and a StringIO four bytes per character,
    either the peak memory of a large plan."""
    json.dump(plan_document(plan), stream, indent=2)
    stream.write("\n")


def render_text(plan: Plan, *, color: bool = False, refreshed: bool = False) -> str:
    """Terraform-like text: one line per change with binding details; no-ops are only counted.
    ``refreshed``: the plan was made with ``--refresh`` (Cloudflare was read, not only the state)."""

    def paint(action: Action, text: str) -> str:
        return f"\x1b[{_COLORS[action]}m{text}\x1b[0m" if color else text

    where = f" (environment: {escape_text(plan.environment)})" if plan.environment else ""
    lines = [f"deployer plan{where}", ""]
    shown = [change for change in plan.changes if change.action is not Action.NO_OP]
    if not shown:
        lines.append(f"No changes: {_no_changes(refreshed)}.")
    for change in shown:
        symbol = _SYMBOLS[change.action]
        lines.append(paint(change.action, f"  {symbol} {_headline(change)}"))
        lines += [f"      {detail}" for detail in _details(change, escape_text)]
    gradual = _gradual_lines(plan)
    if gradual:
        lines += ["", "Gradual deployments in progress (apply changes none of these until it is promoted or "
                      "rolled back):", *(f"  {escape_text(line)}" for line in gradual)]
    lines += ["", _summary_line(plan)]
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan, manifest: Manifest | None = None, *, refreshed: bool = False) -> str:
    """A pull-request comment: summary, a table of the changes (no-ops only counted), then the
    dependency graph in a collapsed section (``manifest``, the one planned, adds the edges to
    resources this plan creates)."""
    where = f" — {escape_markdown(plan.environment, code=True)}" if plan.environment else ""
    lines = [f"### deployer plan{where}", "", f"**{_summary_line(plan)}**", ""]
    shown = [change for change in plan.changes if change.action is not Action.NO_OP]
    if shown:
        lines += ["| action | type | name | details |", "|---|---|---|---|"]
        for change in shown:
            # Each value in the details is escaped for markdown already; the rest is our words.
            details = "<br>".join(d for d in (_reason_text(change), *_details(change, escape_markdown)) if d)
            lines.append(
                f"| {_SYMBOLS[change.action]} {change.action.value} | {change.type} "
                f"| {escape_markdown(change.name, code=True)} | {details} |"
            )
    else:
        lines.append("No changes: " + _no_changes(refreshed).replace("'", "`") + ".")
    gradual = _gradual_lines(plan)
    if gradual:
        lines += ["", "**Gradual deployments in progress** (apply changes none of these until it is promoted or "
                      "rolled back):", ""]
        lines += [f"- {escape_markdown(line).replace(chr(39), '`')}" for line in gradual]
    from deployer.plan.diagram import markdown_section  # the graph modules: only a markdown plan has a diagram

    return "\n".join(lines) + "\n" + markdown_section(plan, manifest)


def _gradual_lines(plan: Plan) -> list[str]:
    """One line per script in a gradual deployment: its split and the commands that end it."""
    return [f"script {change.name}: {describe_split(change.live_split)}; end it with 'deployer promote "
            f"{change.name}' or 'deployer rollback {change.name}'"
            for change in plan.changes if change.live_split]


def describe_split(split: tuple[VersionShare, ...]) -> str:
    """``new version 1a2b3c4d at 10%, previous version 5e6f7a8b at 90%``."""
    new, *previous = split
    text = f"new version {short_id(new.version_id)} at {new.percentage}%"
    return text + "".join(f", previous version {short_id(s.version_id)} at {s.percentage}%" for s in previous)


def short_id(version_id: str) -> str:
    """A version id as people read it: its first 8 characters (Cloudflare's dashboard does the same)."""
    return version_id[:8]


def _no_changes(refreshed: bool) -> str:
    # Without --refresh only the state was compared: say so rather than claim what is deployed.
    if refreshed:
        return "the manifest matches the recorded state, and Cloudflare matches the state"
    return ("the manifest matches the recorded state (Cloudflare was not read; "
            "'deployer plan --refresh' compares with what is deployed)")


def _summary_line(plan: Plan) -> str:
    counts = plan.summary()
    parts = [f"{counts[action.value]} {_VERBS[action]}" for action in (Action.CREATE, Action.UPDATE, Action.DELETE)]
    parts += [f"{counts[action.value]} {_VERBS[action]}" for action in (Action.FORGET, Action.ADOPT)
              if action.value in counts]
    parts.append(f"{counts[Action.NO_OP.value]} unchanged")
    return "Plan: " + ", ".join(parts) + "."


def _headline(change: Change) -> str:
    head = f"{escape_text(change.type)} {escape_text(change.name)}"
    kind = RESOURCE_KINDS.get(change.type)
    if kind is not None:
        head += kind.headline(change.action.value, change.resource_name, change.resource_id, escape_text)
    attachment = change.attachment or change.previous_attachment
    if change.type in ATTACHMENT_KINDS and attachment is not None:
        head += " " + escape_text(ATTACHMENT_KINDS[change.type].summary(attachment))
        if change.action is Action.FORGET:
            head += " (dropped from the state; left as it is in Cloudflare)"
    reasons = _reason_text(change)
    if change.overwrites_remote:
        head += " (OVERWRITES a script of that name that exists in Cloudflare but not in the state)"
    return f"{head} ({reasons})" if reasons and kind is None else head


def render_warnings(plan: Plan, *, refreshed: bool = False) -> list[str]:
    """Warnings for what ``--refresh`` found (printed on stderr, never mixed into the plan);
    with ``refreshed``, also what it could not read."""
    warnings = []
    for change in plan.changes:
        gone = change.action in (Action.CREATE, Action.ADOPT) and Reason.DRIFT in change.reasons
        name = escape_text(change.name)
        if change.overwrites_remote:
            warnings.append(
                f"script {name} exists in Cloudflare but not in the state: apply would overwrite it. "
                f"Adopt it with 'deployer import {name}', or pass --allow-overwrite to apply"
            )
        elif gone and change.type in RESOURCE_KINDS and change.action is Action.ADOPT:
            name_key = RESOURCE_KINDS[change.type].name_key
            warnings.append(f"{change.type} {change.name}: the recorded one is gone from Cloudflare, but one with "
                            f"{name_key} {change.resource_name!r} exists; apply adopts it")
        elif change.type in ATTACHMENT_KINDS and Reason.DRIFT in change.reasons:
            what = "removed" if gone else "changed"
            warnings.append(f"{change.type} {change.name} was {what} outside deployer; apply sets it as the manifest "
                            "says")
        elif gone and change.type in RESOURCE_KINDS:
            name_key = RESOURCE_KINDS[change.type].name_key
            title = escape_text(repr(change.resource_name))
            warnings.append(f"{change.type} {name} ({name_key} {title}) was deleted outside "
                            "deployer; it will be created again, empty")
        elif gone:
            warnings.append(f"script {name} was deleted outside deployer; it will be uploaded again")
        elif Reason.DRIFT in change.reasons:
            warnings.append(f"script {name} was changed outside deployer; apply uploads the manifest's "
                            "version again")
    with_assets = [c.name for c in plan.changes if c.assets is not None and c.assets.files]
    if refreshed and with_assets:
        # Cloudflare has no endpoint listing a Worker's asset files (reference §7.6).
        warnings.append(f"--refresh cannot read static assets back from Cloudflare: the assets of "
                        f"{', '.join(with_assets)} are compared with the state only")
    return warnings


def _reason_text(change: Change) -> str:
    return ", ".join(reason.value for reason in change.reasons)


def _details(change: Change, escape: Escape) -> Iterator[str]:
    """The lines under a change: what drifted, then each binding that changes; every value
    through ``escape`` (the output format's)."""
    if change.type in ATTACHMENT_KINDS:
        yield from (escape(line) for line in ATTACHMENT_KINDS[change.type].details(change))
        return
    for drift in change.drift:
        yield "drift: " + _drift_text(drift, escape)
    if change.type != SCRIPT or change.action is Action.DELETE:
        return
    for name, action, old, new in _binding_changes(change):
        shown = escape(name)
        match action:
            case Action.CREATE:
                assert new is not None
                yield f"+ binding {shown}: {_describe(new, escape)}"
            case Action.UPDATE if old == new:
                assert new is not None
                yield f"~ binding {shown}: {_describe(new, escape)}, its value changes"
            case Action.UPDATE:
                assert old is not None and new is not None
                yield f"~ binding {shown}: {_describe(old, escape)} -> {_describe(new, escape)}"
            case Action.DELETE:
                assert old is not None
                yield f"- binding {shown}: {_describe(old, escape)}"
    for secret in change.removed_secrets:
        yield f"- secret {escape(secret)} (deleted from the script's secrets)"
    for setting in change.settings:
        if setting.action is not Action.NO_OP:
            yield escape(settings.describe(setting))
    if change.migrations is not None:
        pending = change.migrations
        for step in pending.steps:
            yield escape(f"+ {migrations.describe(step)}")
        if not pending.old_tag_known:
            yield ("  (the script's current migration tag is read from Cloudflare at apply; only the steps after "
                   "it are sent)")
        else:
            yield escape(f"  (after the script's current migration tag {pending.old_tag})")
    if change.live_split:
        yield (f"! in a gradual deployment ({describe_split(change.live_split)}): apply refuses to change it until "
               f"'deployer promote {change.name}' or 'deployer rollback {change.name}'")
    elif change.rollout is not None and change.rollout.percentage is not None:
        share = change.rollout.percentage
        yield (f"gradual: a new version gets {share}% of the traffic, the current one keeps {100 - share}% "
               "(then 'deployer promote' or 'deployer rollback')")
    elif change.rollout is not None:
        yield f"gradual: uploaded the usual way, 100% at once: {change.rollout.because}"
    if change.assets is not None:
        yield from assets.describe(change.assets)


def _drift_text(drift: Drift, escape: Escape) -> str:
    what = f"binding {escape(drift.name or '')}"
    match drift.what, drift.change:
        case "binding", DriftKind.ADDED:
            assert drift.deployed is not None
            return f"{what} added outside deployer: {_describe(drift.deployed, escape)}"
        case "binding", DriftKind.REMOVED:
            assert drift.recorded is not None
            return f"{what} removed outside deployer (was {_describe(drift.recorded, escape)})"
        case "binding", _:
            assert drift.recorded is not None and drift.deployed is not None
            return (f"{what} changed outside deployer: {_describe(drift.recorded, escape)} -> "
                    f"{_describe(drift.deployed, escape)}")
        case "content", _:
            return "code changed outside deployer"
        case "etag", _:
            return "a version deployed outside deployer (its code and bindings are as recorded)"
    return "deleted outside deployer"


def _binding_changes(change: Change
                     ) -> Iterator[tuple[str, Action, DeployedBinding | None, DeployedBinding | None]]:
    """``(name, action, old, new)`` per binding of a script change, the manifest's order first,
    then the removed ones. ``old`` is what is deployed (nothing for a script being created)."""
    before = {} if change.action is Action.CREATE else {b.name: b for b in change.previous_bindings}
    after = {b.name: b for b in change.bindings}
    for name, binding in after.items():
        old = before.get(name)
        if old is None:
            yield name, Action.CREATE, None, binding
        elif old != binding or not binding.known or name in change.changed_secrets:
            yield name, Action.UPDATE, old, binding
        else:
            yield name, Action.NO_OP, old, binding
    for name, binding in before.items():
        if name not in after:
            yield name, Action.DELETE, binding, None


def _describe(binding: DeployedBinding, escape: Escape) -> str:
    kind = BINDING_KINDS.get(binding.type)
    # A type deployer does not manage is only ever seen as drift (added in the dashboard).
    return kind.describe(binding, escape) if kind is not None else escape(binding.type)
