"""``crons: [...]`` on a script: its whole set of cron triggers, sent with one ``PUT`` only when
the set changed; ``[]`` removes them all, no ``crons`` key leaves them as they are. Named by
the script. Each expression is checked as Cloudflare's parser reads it (reference §7.4)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from deployer.kinds.attachment import (
    AttachmentKind,
    Names,
    Report,
    Sections,
    Session,
    StateKey,
)
from deployer.models import Action, Attachment, Change, Reason

if TYPE_CHECKING:
    from deployer.manifest.validate import AttachmentDraft

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # 1-7: Cloudflare counts Sunday as 1
# (name, lowest, highest, names for the values from lowest)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
)
_ITEM = re.compile(r"(?P<start>\*|[0-9A-Za-z]+)(?:-(?P<end>[0-9A-Za-z]+))?(?:/(?P<step>[0-9]+))?")


def cron_problem(expression: str) -> str | None:
    """Why Cloudflare would refuse ``expression`` (None: it would not): 5 fields (minute hour
    day-of-month month day-of-week), each ``*``, values, ranges, steps and lists within the
    field's range, month and weekday names (JAN-DEC, SUN-SAT), and the extras of the two day
    fields (``L``, ``LW``, ``L-n``, ``nW``; ``nL``, ``n#k``)."""
    fields = expression.split()
    if len(fields) != 5:
        return (f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}; a cron has 5 (minute hour "
                "day-of-month month day-of-week)")
    for text, (name, low, high, names) in zip(fields, _FIELDS):
        problem = _field_problem(text.upper(), name, low, high, names)
        if problem is not None:
            return problem
    return None


def _field_problem(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    if name == "day-of-month" and re.fullmatch(r"L(W|-([1-9]|[12][0-9]|30)W?)?|([1-9]|[12][0-9]|3[01])W", text):
        return None
    if name == "day-of-week" and re.fullmatch(r"[1-7]L|[1-7]#[1-5]|(SUN|MON|TUE|WED|THU|FRI|SAT)(L|#[1-5])", text):
        return None
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    if name == "day-of-week":
        allowed += " (Sunday is 1 or SUN)"
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            return f"{name} {item!r} is not a value, range or step"
        values = [match["start"]] if match["start"] != "*" else []
        if match["end"] is not None:
            if match["start"] == "*":
                return f"{name} {item!r} is not a value, range or step"
            values.append(match["end"])
        for value in values:
            number = int(value) if value.isdigit() else (names.index(value) + low if value in names else None)
            if number is None or not low <= number <= high:
                return f"{name} {value} is outside {allowed}"
        if match["step"] is not None and not 1 <= int(match["step"]) <= high - low:
            return f"{name} step /{match['step']} is outside 1-{high - low}"
    return None


class CronsKind(AttachmentKind):
    type = "crons"
    diagram_shape = "schedule"
    manifest_key = "crons"
    state_keys = (StateKey("crons", "strings"),)
    goes_with_script = True
    absent_leaves_alone = True

    def schema(self) -> dict[str, Any]:
        return {
            "description": "The script's cron triggers, the whole set (UTC): 5 fields, minute hour day-of-month "
                           "month day-of-week (1-7 or SUN-SAT). [] removes them all; without this key they are "
                           "left as they are.",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
        }

    def check(self, draft: AttachmentDraft, sections: Sections, report: Report) -> None:
        seen: dict[str, int] = {}
        for item in draft.tree.items:
            field = item.at
            if field.value is None:
                continue
            problem = cron_problem(field.value)
            if problem is not None:
                report(field, f"{field.subject()} is not a valid cron: {problem}")
            elif " ".join(field.value.split()) in seen:
                report(field, f"cron {field.raw!r} is listed twice (first at line {seen[' '.join(field.value.split())]})")
            else:
                seen[" ".join(field.value.split())] = field.line

    def build(self, script: str, value: object, names: Names) -> tuple[Attachment, ...]:
        assert isinstance(value, list), "checked by the schema"
        crons = tuple(sorted({" ".join(str(cron).split()) for cron in value}))
        return (Attachment(self.type, script, script, (("crons", crons),)),)

    def reason_for(self, key: str) -> Reason:
        return Reason.CRONS

    def summary(self, attachment: Attachment) -> str:
        crons = attachment.get("crons")
        shown = ", ".join(f'"{c}"' for c in crons) if isinstance(crons, tuple) and crons else "none"
        return f"({shown})"  # named by its script already

    def apply(self, session: Session, change: Change) -> Attachment | None:
        want, have = change.attachment, change.previous_attachment
        if change.action is Action.DELETE:
            assert have is not None
            session.client.put_schedules(session.account_id, have.script, [])
            return None
        assert want is not None
        crons = want.get("crons")
        assert isinstance(crons, tuple)
        found = session.client.put_schedules(session.account_id, want.script, list(crons))
        return _crons(want, found)

    def read(self, session: Session, recorded: Attachment) -> Attachment | None:
        return _crons(recorded, session.client.get_schedules(session.account_id, recorded.script))


def _crons(attachment: Attachment, crons: list[str]) -> Attachment:
    return Attachment(attachment.type, attachment.name, attachment.script,
                      (("crons", tuple(sorted({" ".join(c.split()) for c in crons}))),))


KIND = CronsKind()
