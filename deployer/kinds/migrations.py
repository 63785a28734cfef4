"""Durable Object migrations, ``durable_objects: {migrations: [...]}`` on a script: the steps'
schema and checks, which steps an upload sends after the script's current tag, the
``metadata.migrations`` object, the steps' state form and how a plan shows them.

Cloudflare keeps one migration tag per script and refuses an upload whose ``old_tag`` is not
it; applied steps are append-only (reference §7.2; CONTRACT.md, "More binding types").
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployerError
from deployer.manifest.rules import JS_RESERVED_WORDS, SCRIPT_NAME, is_js_identifier
from deployer.models import MigrationStep, PendingMigrations, ScriptState
from deployer.state.fields import array, join, object_fields, string

if TYPE_CHECKING:
    from deployer.manifest.validate import Field, ValueDraft

KEY = "durable_objects"
CLASS_LISTS = ("new_classes", "new_sqlite_classes", "deleted_classes")
_CLASS = {"description": "A Durable Object class: the name its module exports.", "type": "string", "minLength": 1}


def schema_definitions() -> dict[str, dict[str, Any]]:
    """``$defs`` entries: the script key ``durable_objects`` and one migration step."""
    return {
        KEY: {
            "description": "The script's Durable Object classes come with migrations, as Cloudflare requires. "
                           "Applied steps are append-only: add a step, never edit or remove one.",
            "type": "object",
            "additionalProperties": False,
            "required": ["migrations"],
            "properties": {"migrations": {
                "description": "Every migration step of the script, oldest first. An upload sends the steps after "
                               "the script's current tag (none when it is the last one).",
                "type": "array",
                "items": {"$ref": "#/$defs/migration_step"},
            }},
        },
        "migration_step": {
            "description": "One migration step: a tag unique within the script, and what it does to its classes.",
            "type": "object",
            "additionalProperties": False,
            "required": ["tag"],
            "properties": {
                "tag": {"description": "The step's tag (v1, v2, ...), unique within the script.", "type": "string",
                        "minLength": 1},
                "new_classes": {"description": "Classes created with key-value storage.", "type": "array",
                                "items": _CLASS},
                "new_sqlite_classes": {"description": "Classes created with SQLite storage.", "type": "array",
                                       "items": _CLASS},
                "renamed_classes": {
                    "description": "Classes renamed, their objects kept: {from, to}.",
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                              "properties": {"from": {**_CLASS, "description": "The class's name before."},
                                             "to": {**_CLASS, "description": "Its name from this step on."}}},
                },
                "deleted_classes": {"description": "Classes deleted with all their objects.", "type": "array",
                                    "items": _CLASS},
                "transferred_classes": {
                    "description": "Classes moved here from another Worker, their objects kept: {from, from_script, "
                                   "to} (from_script is the Worker's name as deployed).",
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": False,
                              "required": ["from", "from_script", "to"],
                              "properties": {
                                  "from": {**_CLASS, "description": "The class's name in the other Worker."},
                                  "from_script": {**_CLASS, "description": "The other Worker's name."},
                                  "to": {**_CLASS, "description": "The class's name in this script."}}},
                },
            },
        },
    }


def steps_from_manifest(value: Mapping[str, Any]) -> tuple[MigrationStep, ...]:
    """The steps of a checked ``durable_objects`` value."""
    return tuple(_step(doc) for doc in value.get("migrations") or ())


def _step(doc: Mapping[str, Any]) -> MigrationStep:
    return MigrationStep(
        tag=str(doc["tag"]),
        new_classes=tuple(doc.get("new_classes") or ()),
        new_sqlite_classes=tuple(doc.get("new_sqlite_classes") or ()),
        renamed_classes=tuple((r["from"], r["to"]) for r in doc.get("renamed_classes") or ()),
        deleted_classes=tuple(doc.get("deleted_classes") or ()),
        transferred_classes=tuple((t["from"], t["from_script"], t["to"]) for t in doc.get("transferred_classes") or ()),
    )


def step_metadata(step: MigrationStep) -> dict[str, Any]:
    """One step as ``metadata.migrations.steps`` carries it (Cloudflare's keys; empty ones left out)."""
    doc: dict[str, Any] = {}
    if step.new_classes:
        doc["new_classes"] = list(step.new_classes)
    if step.new_sqlite_classes:
        doc["new_sqlite_classes"] = list(step.new_sqlite_classes)
    if step.renamed_classes:
        doc["renamed_classes"] = [{"from": old, "to": new} for old, new in step.renamed_classes]
    if step.deleted_classes:
        doc["deleted_classes"] = list(step.deleted_classes)
    if step.transferred_classes:
        doc["transferred_classes"] = [{"from": old, "from_script": script, "to": new}
                                      for old, script, new in step.transferred_classes]
    return doc


def step_document(step: MigrationStep) -> dict[str, Any]:
    """A step with its tag, as the state and the JSON plan write it."""
    return {"tag": step.tag, **step_metadata(step)}


def step_from_state(doc: object, where: str) -> MigrationStep:
    """A recorded step, field by field; ``Invalid`` names the field."""
    fields = object_fields(doc, where, ("tag",), optional=(*CLASS_LISTS, "renamed_classes", "transferred_classes"))

    def names(key: str) -> tuple[str, ...]:
        at = join(where, key)
        return tuple(string(item, f"{at}[{i}]") for i, item in enumerate(array(fields.get(key, []), at)))

    def pairs(key: str, keys: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        at = join(where, key)
        found = []
        for index, item in enumerate(array(fields.get(key, []), at)):
            item_fields = object_fields(item, f"{at}[{index}]", keys, optional=())
            found.append(tuple(string(item_fields[k], f"{at}[{index}].{k}") for k in keys))
        return tuple(found)

    renamed = pairs("renamed_classes", ("from", "to"))
    transferred = pairs("transferred_classes", ("from", "from_script", "to"))
    return MigrationStep(
        tag=string(fields["tag"], join(where, "tag")),
        new_classes=names("new_classes"),
        new_sqlite_classes=names("new_sqlite_classes"),
        renamed_classes=tuple((r[0], r[1]) for r in renamed),
        deleted_classes=names("deleted_classes"),
        transferred_classes=tuple((t[0], t[1], t[2]) for t in transferred),
    )


# --- validate: what the manifest alone shows ---------------------------------------------------


def check(draft: ValueDraft) -> list[tuple[Field, str]]:
    """Tags unique and not empty, class names JavaScript identifiers, and each step possible
    after the ones before it (a class is created once, renamed or deleted only while it exists,
    never created and deleted in one step). The steps are the whole history, from the first."""
    problems: list[tuple[Field, str]] = []
    steps = draft.value.get("migrations") if isinstance(draft.value, dict) else None
    tags: dict[str, Field] = {}
    classes: dict[str, str] = {}  # class -> the tag of the step that made it
    for index, step in enumerate(steps if isinstance(steps, list) else ()):
        if not isinstance(step, dict):
            continue  # the schema reports it
        at = _locator(draft, index)
        tag_field = at("tag")
        if tag_field is None or tag_field.value is None:
            continue
        tag = tag_field.value
        if not tag:
            problems.append((tag_field, "must not be empty"))
        first = tags.setdefault(tag, tag_field)
        if first is not tag_field:
            problems.append((tag_field, f"duplicate migration tag {tag_field.raw!r} (first at line {first.line}); "
                                        "each step needs its own tag"))
        class_fields = [(key, at(key, i)) for key in CLASS_LISTS for i in range(len(step.get(key) or ()))]
        for kind in ("renamed_classes", "transferred_classes"):
            for i in range(len(step.get(kind) or ())):
                class_fields += [(kind, at(kind, i, end)) for end in ("from", "to")]
        named = [(key, field) for key, field in class_fields if field is not None and field.value is not None]
        bad = [(key, field) for key, field in named if not _is_class_name(field.value or "")]
        problems += [(field, f"{field.subject()} is not a valid JavaScript class name") for _, field in bad]
        for i in range(len(step.get("transferred_classes") or ())):
            source = at("transferred_classes", i, "from_script")
            if source is not None and source.value is not None and not SCRIPT_NAME.accepts(source.value):
                problems.append((source, f"{source.subject()} is not {SCRIPT_NAME.words}"))
        problems += _replay(tag, at, step, classes)
    return problems


def _locator(draft: ValueDraft, index: int) -> Callable[..., Field | None]:
    """The Field at a path inside step ``index`` (None: not a string, or not given)."""
    def at(*path: str | int) -> Field | None:
        return draft.fields.get(("migrations", index, *path))

    return at


def _replay(tag: str, at: Callable[..., Field | None], step: Mapping[str, Any], classes: dict[str, str]
            ) -> list[tuple[Field, str]]:
    """Apply one step to ``classes`` in Cloudflare's order (create, rename, delete, transfer),
    reporting what it could not do."""
    problems: list[tuple[Field | None, str]] = []
    created = set()
    for key in ("new_classes", "new_sqlite_classes"):
        for i, name in enumerate(step.get(key) or ()):
            if name in classes:
                problems.append((at(key, i), f"class {name!r} already exists (created by step "
                                             f"{classes[name]!r}); a class is created once"))
            classes[name] = tag
            created.add(name)
    for i, rename in enumerate(step.get("renamed_classes") or ()):
        old, new = rename.get("from"), rename.get("to")
        if old not in classes:
            problems.append((at("renamed_classes", i, "from"), f"class {old!r} does not exist before step {tag!r}: "
                                                              "only a class an earlier step created can be renamed"))
        elif new in classes:
            problems.append((at("renamed_classes", i, "to"), f"class {new!r} already exists (created by step "
                                                            f"{classes[new]!r})"))
        else:
            classes[new] = classes.pop(old)
    for i, name in enumerate(step.get("deleted_classes") or ()):
        if name in created:
            problems.append((at("deleted_classes", i), f"class {name!r} is both created and deleted in step {tag!r}"))
        elif name not in classes:
            problems.append((at("deleted_classes", i), f"class {name!r} does not exist before step {tag!r}: only a "
                                                      "class an earlier step created can be deleted"))
        else:
            del classes[name]
    for i, transfer in enumerate(step.get("transferred_classes") or ()):
        new = transfer.get("to")
        if new in classes:
            problems.append((at("transferred_classes", i, "to"), f"class {new!r} already exists (created by step "
                                                                f"{classes[new]!r})"))
        classes[new] = tag
    return [(field, message) for field, message in problems if field is not None]  # None: not written as a string


def _is_class_name(name: str) -> bool:
    return is_js_identifier(name) and name not in JS_RESERVED_WORDS


# --- plan and apply ----------------------------------------------------------------------------


def pending_migrations(name: str, steps: Sequence[MigrationStep], recorded: ScriptState | None
                       ) -> PendingMigrations | None:
    """The steps an upload of script ``name`` will send, as far as the state knows (None: none).

    Raises DeployerError when a step the state records as applied was edited or removed."""
    if recorded is None or recorded.migration_tag is None:
        if not steps:
            return None
        # The state does not know the tag (a new script, an older state, an import): apply reads it.
        return PendingMigrations(None, steps[-1].tag, tuple(steps), old_tag_known=False)
    check_applied(name, steps, recorded)
    after = steps_after(name, steps, recorded.migration_tag)
    return PendingMigrations(recorded.migration_tag, steps[-1].tag, after) if after else None


def check_applied(name: str, steps: Sequence[MigrationStep], recorded: ScriptState) -> None:
    """Raise DeployerError naming the step when an applied one is no longer in the manifest as
    it was applied (Cloudflare would refuse the next upload, or the classes would differ)."""
    for index, applied in enumerate(recorded.migrations):
        where = f"scripts.{name}.durable_objects.migrations[{index}]"
        written = steps[index] if index < len(steps) else None
        if written is None or written.tag != applied.tag:
            if any(step.tag == applied.tag for step in steps):
                problem = f"is now at another position (the state records it as step {index + 1})"
            else:
                problem = "was removed"
            raise DeployerError(
                f"script {name}: migration step {applied.tag!r} was applied to Cloudflare but {problem}; applied "
                f"steps are append-only: put it back at {where} as it was ({_shown(applied)}) and add a new step "
                "for any change")
        if written != applied:
            raise DeployerError(
                f"script {name}: migration step {applied.tag!r} ({where}) was applied to Cloudflare as "
                f"{_shown(applied)} but now says {_shown(written)}; applied steps are append-only: restore it and "
                "add a new step (renamed_classes, deleted_classes, ...) for the change")


def steps_after(name: str, steps: Sequence[MigrationStep], current: str | None) -> tuple[MigrationStep, ...]:
    """The steps after tag ``current`` (every step when None). DeployerError when ``current``
    is not a tag of the manifest's steps."""
    if current is None:
        return tuple(steps)
    tags = [step.tag for step in steps]
    if current not in tags:
        raise DeployerError(
            f"script {name} is at migration tag {current!r} in Cloudflare, which is not a tag of its "
            f"durable_objects.migrations ({', '.join(map(repr, tags)) or 'none'}): list every step applied so far, "
            "oldest first, then the new ones")
    return tuple(steps[tags.index(current) + 1:])


def migrations_metadata(current: str | None, pending: Sequence[MigrationStep]) -> dict[str, Any]:
    """``metadata.migrations``: ``old_tag`` (absent when the script has none yet), ``new_tag``
    and the steps after ``old_tag``."""
    doc: dict[str, Any] = {}
    if current is not None:
        doc["old_tag"] = current
    doc["new_tag"] = pending[-1].tag
    doc["steps"] = [step_metadata(step) for step in pending]
    return doc


def describe(step: MigrationStep) -> str:
    """One plan line: ``migration v2: renamed_classes Counter -> Tally``."""
    parts = [f"{key} {', '.join(getattr(step, key))}" for key in ("new_classes", "new_sqlite_classes")
             if getattr(step, key)]
    if step.renamed_classes:
        parts.append("renamed_classes " + ", ".join(f"{old} -> {new}" for old, new in step.renamed_classes))
    if step.deleted_classes:
        parts.append("deleted_classes " + ", ".join(step.deleted_classes))
    if step.transferred_classes:
        parts.append("transferred_classes " + ", ".join(f"{old} (script {script}) -> {new}"
                                                       for old, script, new in step.transferred_classes))
    return f"migration {step.tag}: " + ("; ".join(parts) or "no class changes")


def _shown(step: MigrationStep) -> str:
    return describe(step).partition(": ")[2]
