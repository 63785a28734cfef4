"""Show a Plan: ``render_json`` (format_version 1, for machines), ``render_text`` (a terminal)
and ``render_markdown`` (a pull-request comment). Strings only: no printing, no secret values."""
from __future__ import annotations

import json
from collections.abc import Iterator

from deployer.kinds import assets, migrations, settings
from deployer.kinds.registry import RESOURCE_KINDS, binding_kind
from deployer.models import SCRIPT, Action, Change, DeployedBinding, Manifest, Plan, Reason, SettingChange
from deployer.plan.diagram import markdown_section

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


def _change_document(change: Change) -> dict[str, object]:
    doc: dict[str, object] = {"type": change.type, "name": change.name, "action": change.action.value}
    kind = RESOURCE_KINDS.get(change.type)
    if kind is None:
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
        if change.assets is not None and not change.assets.unchanged:
            doc["assets"] = assets.change_document(change.assets)
    else:
        doc[kind.plan_name] = change.resource_name
        if kind.plan_id_key:  # none for a kind whose name is its id
            doc[kind.plan_id_key] = change.resource_id
        if change.reasons:
            doc["reasons"] = [reason.value for reason in change.reasons]
    return doc


def _setting_document(setting: SettingChange) -> dict[str, object]:
    doc: dict[str, object] = {"name": setting.name, "action": setting.action.value}
    if setting.value is not None:
        doc["value"] = settings.thawed(setting.value)
    return doc


def render_json(plan: Plan) -> str:
    return json.dumps(plan_document(plan), indent=2) + "\n"


def render_text(plan: Plan, *, color: bool = False, refreshed: bool = False) -> str:
    """Terraform-like text: one line per change with binding details; no-ops are only counted.
    ``refreshed``: the plan was made with ``--refresh`` (Cloudflare was read, not only the state)."""

    def paint(action: Action, text: str) -> str:
        return f"\x1b[{_COLORS[action]}m{text}\x1b[0m" if color else text

    where = f" (environment: {plan.environment})" if plan.environment else ""
    lines = [f"deployer plan{where}", ""]
    shown = [change for change in plan.changes if change.action is not Action.NO_OP]
    if not shown:
        lines.append(f"No changes: {_no_changes(refreshed)}.")
    for change in shown:
        symbol = _SYMBOLS[change.action]
        lines.append(paint(change.action, f"  {symbol} {_headline(change)}"))
        lines += [f"      {detail}" for detail in _details(change)]
    lines += ["", _summary_line(plan)]
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan, manifest: Manifest | None = None, *, refreshed: bool = False) -> str:
    """A pull-request comment: summary, a table of the changes (no-ops only counted), then the
    dependency graph in a collapsed section (``manifest``, the one planned, adds the edges to
    resources this plan creates)."""
    where = f" — `{plan.environment}`" if plan.environment else ""
    lines = [f"### deployer plan{where}", "", f"**{_summary_line(plan)}**", ""]
    shown = [change for change in plan.changes if change.action is not Action.NO_OP]
    if shown:
        lines += ["| action | type | name | details |", "|---|---|---|---|"]
        for change in shown:
            details = "<br>".join(_escape_cell(d) for d in (_reason_text(change), *_details(change)) if d)
            lines.append(
                f"| {_SYMBOLS[change.action]} {change.action.value} | {change.type} "
                f"| `{_escape_cell(change.name)}` | {details} |"
            )
    else:
        lines.append("No changes: " + _no_changes(refreshed).replace("'", "`") + ".")
    return "\n".join(lines) + "\n" + markdown_section(plan, manifest)


def _no_changes(refreshed: bool) -> str:
    # Without --refresh only the state was compared: say so rather than claim what is deployed.
    if refreshed:
        return "the manifest matches the recorded state, and Cloudflare matches the state"
    return ("the manifest matches the recorded state (Cloudflare was not read; "
            "'deployer plan --refresh' compares with what is deployed)")


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _summary_line(plan: Plan) -> str:
    counts = plan.summary()
    parts = [f"{counts[action.value]} {_VERBS[action]}" for action in (Action.CREATE, Action.UPDATE, Action.DELETE)]
    parts += [f"{counts[action.value]} {_VERBS[action]}" for action in (Action.FORGET, Action.ADOPT)
              if action.value in counts]
    parts.append(f"{counts[Action.NO_OP.value]} unchanged")
    return "Plan: " + ", ".join(parts) + "."


def _headline(change: Change) -> str:
    head = f"{change.type} {change.name}"
    kind = RESOURCE_KINDS.get(change.type)
    if kind is not None:
        head += kind.headline(change.action.value, change.resource_name, change.resource_id)
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
        if change.overwrites_remote:
            warnings.append(
                f"script {change.name} exists in Cloudflare but not in the state: apply would overwrite it. "
                f"Adopt it with 'deployer import {change.name}', or pass --allow-overwrite to apply"
            )
        elif gone and change.type in RESOURCE_KINDS and change.action is Action.ADOPT:
            name_key = RESOURCE_KINDS[change.type].name_key
            warnings.append(f"{change.type} {change.name}: the recorded one is gone from Cloudflare, but one with "
                            f"{name_key} {change.resource_name!r} exists; apply adopts it")
        elif gone and change.type in RESOURCE_KINDS:
            name_key = RESOURCE_KINDS[change.type].name_key
            warnings.append(f"{change.type} {change.name} ({name_key} {change.resource_name!r}) was deleted outside "
                            "deployer; it will be created again, empty")
        elif gone:
            warnings.append(f"script {change.name} was deleted outside deployer; it will be uploaded again")
        elif Reason.DRIFT in change.reasons:
            warnings.append(f"script {change.name} was changed outside deployer; apply uploads the manifest's "
                            "version again")
    with_assets = [c.name for c in plan.changes if c.assets is not None and c.assets.files]
    if refreshed and with_assets:
        # Cloudflare has no endpoint listing a Worker's asset files (reference §7.6).
        warnings.append(f"--refresh cannot read static assets back from Cloudflare: the assets of "
                        f"{', '.join(with_assets)} are compared with the state only")
    return warnings


def _reason_text(change: Change) -> str:
    return ", ".join(reason.value for reason in change.reasons)


def _details(change: Change) -> Iterator[str]:
    if change.type != SCRIPT or change.action is Action.DELETE:
        return
    before = {b.name: b for b in change.previous_bindings}
    after = {b.name: b for b in change.bindings}
    for name, binding in after.items():
        old = before.get(name)
        if old is None:
            yield f"+ binding {name}: {_describe(binding)}"
        elif old != binding or not binding.known:
            yield f"~ binding {name}: {_describe(old)} -> {_describe(binding)}"
    for name, binding in before.items():
        if name not in after:
            yield f"- binding {name}: {_describe(binding)}"
    for secret in change.removed_secrets:
        yield f"- secret {secret} (deleted from the script's secrets)"
    for setting in change.settings:
        if setting.action is not Action.NO_OP:
            yield settings.describe(setting)
    if change.migrations is not None:
        pending = change.migrations
        for step in pending.steps:
            yield f"+ {migrations.describe(step)}"
        if not pending.old_tag_known:
            yield ("  (the script's current migration tag is read from Cloudflare at apply; only the steps after "
                   "it are sent)")
        else:
            yield f"  (after the script's current migration tag {pending.old_tag})"
    if change.assets is not None:
        yield from assets.describe(change.assets)


def _describe(binding: DeployedBinding) -> str:
    return binding_kind(binding.type).describe(binding)
