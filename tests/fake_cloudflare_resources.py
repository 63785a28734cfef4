"""The second-round half of the loopback fake: every binding type, owned resources (R2, D1,
queues and their consumers), Durable Object migrations, triggers (zones, routes, custom domains,
schedules, workers.dev), versions and deployments, static assets, and request counters.

``tests/fake_cloudflare.py`` routes requests here and documents the rules and the helpers for
tests; this module holds the rules and the in-memory records. Every function runs under the
fake's lock (the server thread holds it while it judges a request)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import TYPE_CHECKING, Any

from tests.fake_cloudflare import (
    FAKE_EMAIL,
    SCRIPT_NAME,
    Account,
    ApiError,
    Part,
    RecordedRequest,
    _allow,
    _check_bindings,
    _check_compatibility,
    _entry_part,
    _json_body,
    _multipart,
    _settings,
    _upload_parts,
)

if TYPE_CHECKING:
    from tests.fake_cloudflare import FakeCloudflare

# Bounds that keep the fake's memory finite (Cloudflare's own limits where they are known).
MAX_VERSIONS = 100  # versions kept per script; the live ones are never dropped
MAX_DEPLOYMENTS = 100
MAX_CRONS = 100  # fake's bound
MAX_ASSET_FILES = 100_000  # files per upload session (Cloudflare's paid limit)
MAX_ASSET_SIZE = 25 * 1024 * 1024  # bytes per asset file
MAX_STORED_ASSETS = 500_000  # hashes remembered per account (fake's bound)
MAX_ASSET_SESSIONS = 1_000  # open sessions and completion tokens per account; the oldest go first

# type -> (required fields, optional fields) besides "type" and "name" (reference §7.1)
BINDING_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "r2_bucket": (frozenset({"bucket_name"}), frozenset({"jurisdiction"})),
    "d1": (frozenset({"id"}), frozenset()),
    "queue": (frozenset({"queue_name"}), frozenset({"delivery_delay"})),
    "service": (frozenset({"service"}), frozenset({"environment", "entrypoint"})),
    "durable_object_namespace": (frozenset({"class_name"}), frozenset({"script_name", "environment"})),
    "analytics_engine": (frozenset({"dataset"}), frozenset()),
    "json": (frozenset({"json"}), frozenset()),
    "version_metadata": (frozenset(), frozenset()),
    "ai": (frozenset(), frozenset()),
    "browser": (frozenset(), frozenset()),
    "hyperdrive": (frozenset({"id"}), frozenset()),
    "vectorize": (frozenset({"index_name"}), frozenset()),
    "mtls_certificate": (frozenset({"certificate_id"}), frozenset()),
    "dispatch_namespace": (frozenset({"namespace"}), frozenset({"outbound"})),
    "secrets_store_secret": (frozenset({"store_id", "secret_name"}), frozenset()),
    "send_email": (frozenset(), frozenset({"destination_address", "allowed_destination_addresses",
                                           "allowed_sender_addresses"})),
    "assets": (frozenset(), frozenset()),  # reference §7.6: only with assets in the upload
}
JURISDICTIONS = ("eu", "fedramp", "fedramp-high")
STEP_KEYS = ("new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", "transferred_classes")
# What a version upload may carry (reference §7.5); these four are refused by name.
VERSION_REFUSED_KEYS = ("migrations", "logpush", "tail_consumers", "tags")
VERSION_KEYS = frozenset({"main_module", "bindings", "compatibility_date", "compatibility_flags",
                          "keep_bindings", "usage_model", "annotations", "assets", "keep_assets",
                          "placement", "limits", "observability"})
ASSET_CONFIG_CHOICES = {
    "html_handling": ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none"),
    "not_found_handling": ("none", "404-page", "single-page-application"),
}
ASSET_HASH = re.compile(r"^[0-9a-f]{32}$")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
R2_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,63}$")
SUBDOMAIN_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
CONSUMER_SETTINGS = {  # key -> (lowest, highest, Cloudflare's default or None)
    "batch_size": (1, 100, 10), "max_retries": (0, 100, 3), "max_wait_time_ms": (0, 60_000, 5_000),
    "max_concurrency": (1, 250, None), "retry_delay": (0, 43_200, 0), "visibility_timeout_ms": (0, 43_200_000, None),
}
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SUBDOMAIN_REQUIRED = ("You need a workers.dev subdomain in order to proceed. Please go to the dashboard and "
                      "open the Workers menu. Opening the Workers landing page for the first time will create "
                      "a workers.dev subdomain automatically.")
# What a version keeps of an upload; the script record is this plus secrets and dates.
SNAPSHOT_KEYS = ("content", "parts", "main_module", "metadata", "bindings", "etag", "assets")

PATH_TEMPLATES = tuple(t.split("/")[1:] for t in (
    "/accounts/{account_id}/workers/scripts",
    "/accounts/{account_id}/workers/scripts/{script_name}",
    "/accounts/{account_id}/workers/scripts/{script_name}/settings",
    "/accounts/{account_id}/workers/scripts/{script_name}/content/v2",
    "/accounts/{account_id}/workers/scripts/{script_name}/secrets",
    "/accounts/{account_id}/workers/scripts/{script_name}/secrets/{secret_name}",
    "/accounts/{account_id}/workers/scripts/{script_name}/schedules",
    "/accounts/{account_id}/workers/scripts/{script_name}/subdomain",
    "/accounts/{account_id}/workers/scripts/{script_name}/versions",
    "/accounts/{account_id}/workers/scripts/{script_name}/versions/{version_id}",
    "/accounts/{account_id}/workers/scripts/{script_name}/deployments",
    "/accounts/{account_id}/workers/scripts/{script_name}/assets-upload-session",
    "/accounts/{account_id}/workers/assets/upload",
    "/accounts/{account_id}/workers/services/{script_name}",
    "/accounts/{account_id}/workers/subdomain",
    "/accounts/{account_id}/workers/domains",
    "/accounts/{account_id}/workers/domains/{domain_id}",
    "/accounts/{account_id}/storage/kv/namespaces",
    "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}",
    "/accounts/{account_id}/r2/buckets",
    "/accounts/{account_id}/r2/buckets/{bucket_name}",
    "/accounts/{account_id}/d1/database",
    "/accounts/{account_id}/d1/database/{database_id}",
    "/accounts/{account_id}/queues",
    "/accounts/{account_id}/queues/{queue_id}",
    "/accounts/{account_id}/queues/{queue_id}/consumers",
    "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
    "/zones",
    "/zones/{zone_id}",
    "/zones/{zone_id}/workers/script",
    "/zones/{zone_id}/workers/routes",
    "/zones/{zone_id}/workers/routes/{route_id}",
))


def path_template(path: str) -> str:
    """``/accounts/0123.../workers/scripts/w`` -> ``/accounts/{account_id}/workers/scripts/{script_name}``;
    a path the fake does not serve counts as ``(unknown)``, so counters stay bounded."""
    segments = path.strip("/").split("/")
    for template in PATH_TEMPLATES:
        if len(template) == len(segments) and all(
                t.startswith("{") or t == s for t, s in zip(template, segments)):
            return "/" + "/".join(template)
    return "(unknown)"


def is_assets_upload(path: str) -> bool:
    """The one endpoint authorised by an upload session's token instead of the API token."""
    return path_template(path) == "/accounts/{account_id}/workers/assets/upload"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bad(message: str) -> ApiError:
    return ApiError(400, 10021, message)


def _not_found(what: str) -> ApiError:
    return ApiError(404, 10005, f"{what} not found")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _json_value(headers: Message, body: bytes, record: RecordedRequest) -> Any:
    """A JSON body of any shape (``_json_body`` insists on an object)."""
    if headers.get_content_type() != "application/json":
        raise ApiError(400, 10001, "Content-Type must be application/json")
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, 10001, "Request body is not valid JSON") from None
    record.json = data
    return data


def _page(query: dict[str, list[str]], default: int, largest: int) -> tuple[int, int]:
    try:
        page = int(query.get("page", ["1"])[0])
        per_page = int(query.get("per_page", [str(default)])[0])
    except ValueError:
        raise ApiError(400, 10001, "page and per_page must be integers") from None
    if page < 1 or not 1 <= per_page <= largest:
        raise ApiError(400, 10001, f"page must be >= 1 and per_page between 1 and {largest}")
    return page, per_page


def _paginate(items: list, page: int, per_page: int) -> tuple[list, dict]:
    chunk = items[(page - 1) * per_page: page * per_page]
    return chunk, {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items)}


# --- per-script records ---------------------------------------------------------------------


@dataclass
class WorkerState:
    """What Cloudflare keeps beside a script's code: its Durable Object classes and migration
    tag, versions and deployments (oldest first), cron schedules and workers.dev setting."""

    migration_tag: str | None = None
    classes: dict[str, str] = field(default_factory=dict)  # class name -> "sqlite" | "kv"
    versions: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    schedules: list[dict] = field(default_factory=list)
    subdomain: dict[str, bool] = field(default_factory=lambda: {"enabled": False, "previews_enabled": False})


@dataclass
class AssetSession:
    """One assets upload session: the manifest, the hashes still missing, and its tokens."""

    script: str
    manifest: dict[str, dict]
    sizes: dict[str, int]  # hash -> size
    pending: set[str]
    created: float
    completion: str | None = None


@dataclass
class Migration:
    """The outcome of an upload's ``migrations``: checked, not yet committed."""

    tag: str | None
    classes: dict[str, str]
    transfers: list[tuple[str, str]] = field(default_factory=list)  # (from script, class) leaving it


@dataclass
class UploadContext:
    """What a binding check needs to know about the upload it belongs to."""

    script: str
    classes: dict[str, str] | None  # the script's classes after this upload; None in zone mode
    has_assets: bool = False


def worker_of(account: Account, name: str) -> WorkerState | None:
    """The records of an existing script; a script planted straight into ``scripts`` gets a
    first version and a 100% deployment of what it holds. None when there is no such script."""
    script = account.scripts.get(name)
    if script is None:
        return None
    worker = account.workers.get(name)
    if worker is None:
        worker = account.workers[name] = WorkerState()
    if not worker.versions:
        version = _add_version(worker, snapshot(script), {}, "upload")
        _add_deployment(worker, [{"version_id": version["id"], "percentage": 100}], {})
    return worker


def snapshot(script: dict) -> dict:
    return {key: script.get(key) for key in SNAPSHOT_KEYS}


def _add_version(worker: WorkerState, code: dict, annotations: dict, triggered_by: str) -> dict:
    now = _now()
    number = worker.versions[-1]["number"] + 1 if worker.versions else 1
    version = {"id": str(uuid.uuid4()), "number": number, "created_on": now, "source": "api",
               "annotations": {**annotations, "workers/triggered_by": triggered_by}, "snapshot": code}
    worker.versions.append(version)
    if len(worker.versions) > MAX_VERSIONS:
        live = {v["version_id"] for d in worker.deployments[-1:] for v in d["versions"]}
        for old in [v for v in worker.versions if v["id"] not in live][: len(worker.versions) - MAX_VERSIONS]:
            worker.versions.remove(old)
    return version


def _add_deployment(worker: WorkerState, versions: list[dict], annotations: dict) -> dict:
    deployment = {"id": str(uuid.uuid4()), "created_on": _now(), "source": "api", "strategy": "percentage",
                  "author_email": FAKE_EMAIL, "annotations": dict(annotations),
                  "versions": [dict(v) for v in versions]}
    worker.deployments.append(deployment)
    del worker.deployments[:-MAX_DEPLOYMENTS]
    return deployment


def live_version(worker: WorkerState) -> dict:
    """The version with the larger share of the newest deployment (the first listed on a tie)."""
    split = worker.deployments[-1]["versions"]
    chosen = max(split, key=lambda v: v["percentage"])  # max keeps the first of equals
    return next(v for v in worker.versions if v["id"] == chosen["version_id"])


def _make_live(account: Account, name: str, worker: WorkerState) -> None:
    """Serve (download, content/v2, settings, script list) what the live version holds."""
    script = account.scripts[name]
    script.update(live_version(worker)["snapshot"])
    script["modified_on"] = _now()


def forget_script(account: Account, name: str, query: dict[str, list[str]]) -> None:
    """Checks and clean-up of ``DELETE .../scripts/{name}``: another script that binds this one
    blocks the delete unless ``?force=true`` (reference §2.5); its schedules, workers.dev
    setting, versions, classes and queue consumers go with it. Routes and custom domains stay."""
    if query.get("force", ["false"])[0] != "true":
        dependants = sorted(other for other, script in account.scripts.items() if other != name and any(
            (b.get("type") == "service" and b.get("service") == name)
            or (b.get("type") == "durable_object_namespace" and b.get("script_name") == name)
            for b in script.get("bindings", [])))
        if dependants:
            raise _bad(f"Cannot delete script '{name}': bound by {', '.join(dependants)} "
                       "(delete or change those first, or pass ?force=true)")
    account.workers.pop(name, None)
    for queue in account.queues.values():
        for consumer_id in [c for c, consumer in queue["consumers"].items() if consumer.get("script") == name]:
            del queue["consumers"][consumer_id]


# --- upload checks -----------------------------------------------------------------------


def check_binding(binding: dict, account: Account, context: UploadContext | None) -> None:
    """Fields, their shapes and the things a binding names (reference §7.1)."""
    kind, name = binding["type"], binding["name"]
    required, optional = BINDING_RULES[kind]
    missing = sorted(required - set(binding))
    if missing:
        raise _bad(f"Binding '{name}' of type {kind} needs '{missing[0]}'")
    for key in sorted((required | optional) & set(binding)):
        value = binding[key]
        if key == "json":
            continue
        if key == "jurisdiction":
            if value not in JURISDICTIONS:
                raise _bad(f"Binding '{name}': jurisdiction must be one of {', '.join(JURISDICTIONS)}, not {value!r}")
        elif key == "delivery_delay":
            if not _is_int(value) or not 0 <= value <= 43_200:
                raise _bad(f"Binding '{name}': delivery_delay must be whole seconds from 0 to 43200")
        elif key == "outbound":
            if not isinstance(value, dict):
                raise _bad(f"Binding '{name}': outbound must be an object")
        elif key in ("allowed_destination_addresses", "allowed_sender_addresses"):
            if not isinstance(value, list) or not all(_text(v) for v in value):
                raise _bad(f"Binding '{name}': {key} must be an array of addresses")
        elif not _text(value):
            raise _bad(f"Binding '{name}': {key} must be a non-empty string")
    script = context.script if context else None
    match kind:
        case "r2_bucket":
            jurisdiction = binding.get("jurisdiction", "default")
            if (jurisdiction, binding["bucket_name"]) not in account.r2_buckets:
                where = "" if jurisdiction == "default" else f" in jurisdiction '{jurisdiction}'"
                raise _bad(f"Binding '{name}': R2 bucket '{binding['bucket_name']}'{where} does not exist")
        case "d1":
            if binding["id"] not in account.d1_databases:
                raise _bad(f"Binding '{name}': D1 database '{binding['id']}' does not exist")
        case "queue":
            if not any(q["queue_name"] == binding["queue_name"] for q in account.queues.values()):
                raise _bad(f"Binding '{name}': queue '{binding['queue_name']}' does not exist")
        case "service":
            if binding["service"] not in account.scripts and binding["service"] != script:
                raise _bad(f"Binding '{name}': service '{binding['service']}' is not a Worker of this account "
                           "(upload it first)")
        case "durable_object_namespace":
            _check_durable_object(binding, account, context)
        case "send_email":
            if "destination_address" in binding and "allowed_destination_addresses" in binding:
                raise _bad(f"Binding '{name}': give destination_address or allowed_destination_addresses, not both")
        case "assets":
            if not (context and context.has_assets):
                raise _bad(f"Binding '{name}': an assets binding needs assets in this upload (metadata.assets)")


def _check_durable_object(binding: dict, account: Account, context: UploadContext | None) -> None:
    name, class_name = binding["name"], binding["class_name"]
    owner = binding.get("script_name")
    if context is not None and owner in (None, context.script):
        if context.classes is None or class_name not in context.classes:
            raise _bad(f"Binding '{name}': Durable Object class '{class_name}' is not declared by a migration of "
                       f"script '{context.script}' (add it with new_classes or new_sqlite_classes)")
        return
    other = worker_of(account, owner) if owner else None
    if other is None:
        raise _bad(f"Binding '{name}': script '{owner}' holding Durable Object class '{class_name}' does not exist")
    if class_name not in other.classes:
        raise _bad(f"Binding '{name}': script '{owner}' has no Durable Object class '{class_name}'")


def check_settings(metadata: dict, account: Account, script: str) -> None:
    """The script settings an upload may carry (reference §7.2) and ``annotations`` (§7.5)."""
    if "placement" in metadata:
        placement = metadata["placement"]
        if not isinstance(placement, dict) or placement.get("mode") not in ("smart", "off") \
                or set(placement) - {"mode", "hint"}:
            raise _bad('placement must be {"mode": "smart"}')
    if "limits" in metadata:
        limits = metadata["limits"]
        if not isinstance(limits, dict) or set(limits) - {"cpu_ms", "subrequests"} or not all(
                _is_int(v) and v > 0 for v in limits.values()):
            raise _bad('limits must be {"cpu_ms": <positive integer>}')
        if limits.get("cpu_ms", 1) > 300_000:
            raise _bad("limits.cpu_ms must be at most 300000")
    if "observability" in metadata:
        observability = metadata["observability"]
        if not isinstance(observability, dict) or not isinstance(observability.get("enabled"), bool):
            raise _bad("observability must be an object with a boolean enabled")
        unknown = sorted(set(observability) - {"enabled", "head_sampling_rate", "logs", "traces"})
        if unknown:
            raise _bad(f"Unknown field '{unknown[0]}' in observability")
        rate = observability.get("head_sampling_rate", 1)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise _bad("observability.head_sampling_rate must be a number from 0 to 1")
        for key in ("logs", "traces"):
            if key in observability and not isinstance(observability[key], dict):
                raise _bad(f"observability.{key} must be an object")
    if "logpush" in metadata and not isinstance(metadata["logpush"], bool):
        raise _bad("logpush must be a boolean")
    if "tail_consumers" in metadata:
        consumers = metadata["tail_consumers"]
        if not isinstance(consumers, list) or not all(
                isinstance(c, dict) and _text(c.get("service")) and not set(c) - {"service", "environment", "namespace"}
                for c in consumers):
            raise _bad('tail_consumers must be an array of {"service": <Worker name>}')
        for consumer in consumers:
            if consumer["service"] not in account.scripts and consumer["service"] != script:
                raise _bad(f"Tail consumer '{consumer['service']}' is not a Worker of this account")
    if "usage_model" in metadata and metadata["usage_model"] not in ("standard", "bundled", "unbound"):
        raise _bad("usage_model must be standard (or the legacy bundled/unbound)")
    if "keep_assets" in metadata and not isinstance(metadata["keep_assets"], bool):
        raise _bad("keep_assets must be a boolean")
    if "annotations" in metadata:
        check_annotations(metadata["annotations"], ("workers/message", "workers/tag"))


def check_annotations(annotations: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(annotations, dict):
        raise _bad("annotations must be an object")
    for key, value in annotations.items():
        if key not in allowed:
            raise _bad(f"Unknown annotation '{key}': use {' or '.join(allowed)}")
        limit = 1000 if key == "workers/message" else 100
        if not isinstance(value, str) or len(value.encode()) > limit:
            raise _bad(f"Annotation {key} must be a string of at most {limit} bytes")


def plan_migrations(account: Account, script: str | None, spec: Any) -> Migration:
    """Check ``metadata.migrations`` against the script's current tag and classes and work out
    the classes after it (reference §7.2). ``script`` is None in zone mode. Nothing is changed
    until ``commit_upload``: a refused upload leaves the tag and classes as they were."""
    worker = worker_of(account, script) if script else None
    current = worker.migration_tag if worker else None
    classes = dict(worker.classes) if worker else {}
    if spec is None:
        return Migration(current, classes)
    if script is None:
        raise _bad("migrations need the account API (/accounts/{account_id}/workers/scripts/{name})")
    if not isinstance(spec, dict):
        raise _bad("migrations must be an object")
    unknown = sorted(set(spec) - {"old_tag", "new_tag", "steps", *STEP_KEYS})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in migrations")
    if "steps" in spec and set(spec) & set(STEP_KEYS):
        raise _bad("migrations: give steps, or one step's keys at the top level, not both")
    old_tag, new_tag = spec.get("old_tag"), spec.get("new_tag")
    for key, tag in (("old_tag", old_tag), ("new_tag", new_tag)):
        if tag is not None and not _text(tag):
            raise _bad(f"migrations.{key} must be a non-empty string")
    if old_tag != current:
        raise _bad(f"Migration tag precondition failed: old_tag is {_tag(old_tag)} but the script's current "
                   f"migration tag is {_tag(current)}")
    steps = spec.get("steps", [{k: v for k, v in spec.items() if k in STEP_KEYS}])
    if not isinstance(steps, list):
        raise _bad("migrations.steps must be an array")
    migration = Migration(new_tag if new_tag is not None else current, classes)
    for index, step in enumerate(steps):
        _apply_step(account, script, step, index, migration)
    return migration


def _tag(tag: str | None) -> str:
    return "(none)" if tag is None else f"'{tag}'"


def _class_list(step: dict, key: str, where: str) -> list:
    value = step.get(key, [])
    if not isinstance(value, list):
        raise _bad(f"{where}.{key} must be an array")
    return value


def _apply_step(account: Account, script: str, step: Any, index: int, migration: Migration) -> None:
    where, classes = f"migrations step {index}", migration.classes
    if not isinstance(step, dict):
        raise _bad(f"{where} must be an object")
    unknown = sorted(set(step) - set(STEP_KEYS))
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in {where}")
    for key, storage in (("new_classes", "kv"), ("new_sqlite_classes", "sqlite")):
        for class_name in _class_list(step, key, where):
            if not isinstance(class_name, str) or not IDENTIFIER.match(class_name):
                raise _bad(f"{where}.{key}: {class_name!r} is not a class name")
            if class_name in classes:
                raise _bad(f"Cannot create Durable Object class '{class_name}' ({where}): it already exists")
            classes[class_name] = storage
    for rename in _class_list(step, "renamed_classes", where):
        if not isinstance(rename, dict) or set(rename) != {"from", "to"} or not all(
                isinstance(v, str) and IDENTIFIER.match(v) for v in rename.values()):
            raise _bad(f'{where}.renamed_classes items must be {{"from": <class>, "to": <class>}}')
        if rename["from"] not in classes:
            raise _bad(f"Cannot rename Durable Object class '{rename['from']}' ({where}): it does not exist")
        if rename["to"] in classes:
            raise _bad(f"Cannot rename Durable Object class to '{rename['to']}' ({where}): it already exists")
        classes[rename["to"]] = classes.pop(rename["from"])
    for class_name in _class_list(step, "deleted_classes", where):
        if not isinstance(class_name, str) or class_name not in classes:
            raise _bad(f"Cannot delete Durable Object class '{class_name}' ({where}): it does not exist")
        del classes[class_name]
    for transfer in _class_list(step, "transferred_classes", where):
        if not isinstance(transfer, dict) or set(transfer) != {"from", "from_script", "to"} or not all(
                _text(v) for v in transfer.values()):
            raise _bad(f'{where}.transferred_classes items must be {{"from", "from_script", "to"}}')
        source = worker_of(account, transfer["from_script"]) if transfer["from_script"] != script else None
        if source is None or transfer["from"] not in source.classes:
            raise _bad(f"Cannot transfer Durable Object class '{transfer['from']}' ({where}): script "
                       f"'{transfer['from_script']}' has no such class")
        if transfer["to"] in classes:
            raise _bad(f"Cannot transfer to Durable Object class '{transfer['to']}' ({where}): it already exists")
        classes[transfer["to"]] = source.classes[transfer["from"]]
        migration.transfers.append((transfer["from_script"], transfer["from"]))


def take_assets(fake: FakeCloudflare, account: Account, script: str, metadata: dict,
                previous: dict | None) -> dict | None:
    """The assets an upload ends up with: those of ``metadata.assets`` (its completion token
    checked), the previous version's with ``keep_assets``, or None."""
    spec = metadata.get("assets")
    if spec is None:
        if metadata.get("keep_assets"):
            if not previous or not previous.get("assets"):
                raise _bad("keep_assets: the previous version of this script has no assets")
            return dict(previous["assets"])
        return None
    if not isinstance(spec, dict):
        raise _bad('metadata.assets must be {"jwt": <completion token>, "config": {...}}')
    unknown = sorted(set(spec) - {"jwt", "config"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in metadata.assets")
    token = spec.get("jwt")
    if not _text(token):
        raise _bad("metadata.assets needs the jwt that completed an assets upload session")
    session = account.asset_completions.get(token)
    if session is None:
        open_session = account.asset_sessions.get(token)
        if open_session is not None:
            raise _bad(f"metadata.assets.jwt is an upload session's token, not a completion token: "
                       f"{len(open_session.pending)} file(s) still to upload")
        raise _bad("metadata.assets.jwt is not a token this account issued")
    if session.script != script:
        raise _bad(f"metadata.assets.jwt was issued for script '{session.script}', not '{script}'")
    if time.monotonic() - session.created > fake.assets_jwt_ttl:
        raise _bad("metadata.assets.jwt has expired: start a new assets upload session")
    config = spec.get("config", {})
    _check_asset_config(config)
    return {"manifest": dict(session.manifest), "config": dict(config)}


def _check_asset_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise _bad("metadata.assets.config must be an object")
    for key, value in config.items():
        if key in ASSET_CONFIG_CHOICES:
            if value not in ASSET_CONFIG_CHOICES[key]:
                raise _bad(f"assets.config.{key} must be one of {', '.join(ASSET_CONFIG_CHOICES[key])}")
        elif key == "run_worker_first":
            if not isinstance(value, bool) and not (isinstance(value, list) and all(_text(v) for v in value)):
                raise _bad("assets.config.run_worker_first must be a boolean or an array of route patterns")
        elif key == "serve_directly":
            if not isinstance(value, bool):
                raise _bad("assets.config.serve_directly must be a boolean")
        elif key in ("_headers", "_redirects"):
            if not isinstance(value, str):
                raise _bad(f"assets.config.{key} must be a string")
        else:
            raise _bad(f"Unknown field '{key}' in assets.config")


def commit_upload(account: Account, name: str, metadata: dict, migration: Migration, *, new: bool) -> dict:
    """After a classic upload was stored: the migration takes effect, and the upload becomes a
    version deployed at 100% (reference §7.5). Returns the deployment."""
    # A new name starts clean; an existing script's records were made (or seeded) while planning.
    worker = account.workers.get(name)
    if new or worker is None:
        worker = account.workers[name] = WorkerState()
    for source_script, class_name in migration.transfers:
        account.workers[source_script].classes.pop(class_name, None)
    worker.migration_tag, worker.classes = migration.tag, migration.classes
    version = _add_version(worker, snapshot(account.scripts[name]), metadata.get("annotations", {}), "upload")
    return _add_deployment(worker, [{"version_id": version["id"], "percentage": 100}], {})


def upload_answer(account: Account, name: str, deployment: dict) -> dict:
    """The second-round fields of a successful upload's ``result``."""
    script, worker = account.scripts[name], account.workers[name]
    answer = {"has_assets": bool(script.get("assets")), "has_modules": script.get("main_module") is not None,
              "deployment_id": deployment["id"]}
    if worker.migration_tag is not None:
        answer["migration_tag"] = worker.migration_tag
    return answer


def settings(script: dict) -> dict:
    """``GET .../settings``: the seed's fields plus the second round's settings (reference §2.4)."""
    meta = script["metadata"]
    return {**_settings(script), "placement": meta.get("placement", {}), "limits": meta.get("limits", {}),
            "observability": meta.get("observability", {"enabled": False}),
            "tail_consumers": meta.get("tail_consumers", []), "usage_model": meta.get("usage_model", "standard")}


# --- routing -------------------------------------------------------------------------------


def route_account(fake: FakeCloudflare, account_id: str, method: str, rest: list[str],
                  query: dict[str, list[str]], headers: Message, body: bytes,
                  record: RecordedRequest) -> tuple[Any, dict | None]:
    """The second round's account endpoints; 404, 7000 for anything else."""
    account = fake.accounts[account_id]
    match rest:
        case ["workers", "scripts", name, "schedules"]:
            return _schedules(account, name, method, headers, body, record), None
        case ["workers", "scripts", name, "subdomain"]:
            return _script_subdomain(account, name, method, headers, body, record), None
        case ["workers", "scripts", name, "versions"]:
            _allow(method, "GET", "POST")
            if method == "GET":
                return {"items": [_version_view(v) for v in reversed(_worker(account, name).versions)]}, None
            return _upload_version(fake, account, name, headers, body, record), None
        case ["workers", "scripts", name, "versions", version_id]:
            _allow(method, "GET")
            for version in _worker(account, name).versions:
                if version["id"] == version_id:
                    return _version_view(version, detail=True), None
            raise _not_found(f"Version '{version_id}' of script '{name}'")
        case ["workers", "scripts", name, "deployments"]:
            _allow(method, "GET", "POST")
            worker = _worker(account, name)
            if method == "GET":
                return {"deployments": [_deployment_view(d) for d in reversed(worker.deployments)]}, None
            return _deploy(account, name, worker, headers, body, record), None
        case ["workers", "scripts", name, "assets-upload-session"]:
            _allow(method, "POST")
            return _assets_session(fake, account, name, headers, body, record), None
        case ["workers", "assets", "upload"]:
            _allow(method, "POST")
            return _assets_upload(fake, account, query, headers, body, record), None
        case ["workers", "services", name]:
            _allow(method, "GET")
            return _service(account, name), None
        case ["workers", "subdomain"]:
            _allow(method, "GET", "PUT")
            if method == "PUT":
                wanted = _json_body(headers, body, record).get("subdomain")
                if not isinstance(wanted, str) or not SUBDOMAIN_NAME.match(wanted):
                    raise _bad("subdomain must be a DNS label: a-z, 0-9 and '-', at most 63 characters")
                account.workers_subdomain = wanted
            if account.workers_subdomain is None:
                raise ApiError(404, 10007, "workers.api.error.subdomain_not_found")
            return {"subdomain": account.workers_subdomain}, None
        case ["workers", "domains"]:
            _allow(method, "GET", "PUT")
            if method == "PUT":
                return _attach_domain(fake, account_id, _json_body(headers, body, record)), None
            return [dict(d) for d in account.custom_domains.values() if all(
                query[key][0] == d.get(key) for key in ("hostname", "service", "zone_id", "zone_name", "environment")
                if key in query)], None
        case ["workers", "domains", domain_id]:
            _allow(method, "GET", "DELETE")
            if domain_id not in account.custom_domains:
                raise _not_found(f"Custom domain '{domain_id}'")
            if method == "DELETE":
                del account.custom_domains[domain_id]
                return None, None
            return dict(account.custom_domains[domain_id]), None
        case ["r2", "buckets"]:
            _allow(method, "GET", "POST")
            jurisdiction = _jurisdiction(headers)
            if method == "POST":
                return _create_bucket(account, jurisdiction, _json_body(headers, body, record)), None
            return _list_buckets(account, jurisdiction, query)
        case ["r2", "buckets", bucket]:
            _allow(method, "GET")
            found = account.r2_buckets.get((_jurisdiction(headers), bucket))
            if found is None:
                raise ApiError(404, 10006, "The specified bucket does not exist.")
            return dict(found), None
        case ["d1", "database"]:
            _allow(method, "GET", "POST")
            if method == "POST":
                return _create_database(account, _json_body(headers, body, record)), None
            wanted = query.get("name", [""])[0]
            page, per_page = _page(query, 1000, 10_000)
            # Cloudflare's name filter is a search: "shop" also finds "shop-staging".
            found = [dict(d) for d in account.d1_databases.values() if wanted in d["name"]]
            return _paginate(found, page, per_page)
        case ["d1", "database", database_id]:
            _allow(method, "GET")
            if database_id not in account.d1_databases:
                raise ApiError(404, 7404, "The database could not be found")
            return dict(account.d1_databases[database_id]), None
        case ["queues"]:
            _allow(method, "GET", "POST")
            if method == "POST":
                return _create_queue(account, _json_body(headers, body, record)), None
            page, per_page = _page(query, 100, 1000)
            wanted = query.get("name", [None])[0]
            found = [_queue_view(account, q) for q in account.queues.values() if wanted in (None, q["queue_name"])]
            return _paginate(found, page, per_page)
        case ["queues", queue_id]:
            _allow(method, "GET")
            return _queue_view(account, _queue(account, queue_id)), None
        case ["queues", queue_id, "consumers"]:
            _allow(method, "GET", "POST")
            queue = _queue(account, queue_id)
            if method == "GET":
                return [dict(c) for c in queue["consumers"].values()], None
            return _save_consumer(account, queue, None, _json_body(headers, body, record)), None
        case ["queues", queue_id, "consumers", consumer_id]:
            _allow(method, "GET", "PUT", "DELETE")
            queue = _queue(account, queue_id)
            if consumer_id not in queue["consumers"]:
                raise _not_found(f"Consumer '{consumer_id}' of queue '{queue['queue_name']}'")
            if method == "DELETE":
                del queue["consumers"][consumer_id]
                return None, None
            if method == "PUT":
                return _save_consumer(account, queue, consumer_id, _json_body(headers, body, record)), None
            return dict(queue["consumers"][consumer_id]), None
    raise ApiError(404, 7000, "No route for that URI")


def route_zone(fake: FakeCloudflare, method: str, zone: str, rest: list[str], headers: Message,
               body: bytes, record: RecordedRequest) -> tuple[Any, dict | None]:
    """``/zones/{zone_id}`` and its Workers routes (reference §7.4)."""
    if rest and (rest[:2] != ["workers", "routes"] or len(rest) > 3):
        raise ApiError(404, 7000, "No route for that URI")
    if zone not in fake.zones:
        raise ApiError(403, 10000, "Authentication error")
    if not rest:
        _allow(method, "GET")
        return _zone_view(fake, zone), None
    routes = fake.zone_routes.setdefault(zone, {})
    if len(rest) == 2:
        _allow(method, "GET", "POST")
        if method == "GET":
            return [dict(r) for r in routes.values()], None
        return _save_route(fake, zone, None, _json_body(headers, body, record)), None
    route_id = rest[2]
    _allow(method, "GET", "PUT", "DELETE")
    if route_id not in routes:
        raise _not_found(f"Route '{route_id}'")
    if method == "DELETE":
        del routes[route_id]
        return {"id": route_id}, None
    if method == "PUT":
        return _save_route(fake, zone, route_id, _json_body(headers, body, record)), None
    return dict(routes[route_id]), None


def list_zones(fake: FakeCloudflare, method: str, query: dict[str, list[str]]) -> tuple[Any, dict | None]:
    """``GET /zones?name=``: the zones this token sees, by exact name."""
    _allow(method, "GET")
    page, per_page = _page(query, 20, 50)
    wanted = query.get("name", [None])[0]
    found = [_zone_view(fake, zone) for zone, name in fake.zone_names.items() if wanted in (None, name)]
    return _paginate(found, page, per_page)


def _zone_view(fake: FakeCloudflare, zone: str) -> dict:
    return {"id": zone, "name": fake.zone_names.get(zone), "status": "active", "account": {"id": fake.zones[zone]}}


# --- scripts: schedules, workers.dev, services ---------------------------------------------


def _worker(account: Account, name: str) -> WorkerState:
    worker = worker_of(account, name)
    if worker is None:
        raise ApiError(404, 10007, "workers.api.error.script_not_found")
    return worker


def _schedules(account: Account, name: str, method: str, headers: Message, body: bytes,
               record: RecordedRequest) -> dict:
    _allow(method, "GET", "PUT")
    worker = _worker(account, name)
    if method == "PUT":
        wanted = _json_value(headers, body, record)
        if not isinstance(wanted, list) or not all(isinstance(s, dict) and set(s) == {"cron"} for s in wanted):
            raise _bad('schedules must be a JSON array of {"cron": "<expression>"}')
        if len(wanted) > MAX_CRONS:
            raise _bad(f"at most {MAX_CRONS} schedules per script")
        for schedule in wanted:
            cron = schedule["cron"]
            fields = cron.split() if isinstance(cron, str) else []
            if len(fields) != 5 or not all(CRON_FIELD.match(f) for f in fields):
                raise _bad(f"Invalid cron expression {cron!r}: give 5 fields (minute hour day month weekday)")
        now, before = _now(), {s["cron"]: s for s in worker.schedules}
        worker.schedules = [{"cron": s["cron"], "created_on": before.get(s["cron"], {}).get("created_on", now),
                             "modified_on": now} for s in wanted]
    return {"schedules": [dict(s) for s in worker.schedules]}


def _script_subdomain(account: Account, name: str, method: str, headers: Message, body: bytes,
                      record: RecordedRequest) -> dict:
    _allow(method, "GET", "POST")
    worker = _worker(account, name)
    if method == "POST":
        wanted = _json_body(headers, body, record)
        unknown = sorted(set(wanted) - {"enabled", "previews_enabled"})
        if unknown or not isinstance(wanted.get("enabled"), bool) or not isinstance(
                wanted.get("previews_enabled", False), bool):
            raise _bad('subdomain takes {"enabled": bool, "previews_enabled"?: bool}')
        turned_on = wanted["enabled"] or wanted.get("previews_enabled", False)
        if turned_on and account.workers_subdomain is None:
            raise ApiError(400, 10063, SUBDOMAIN_REQUIRED)
        worker.subdomain = {"enabled": wanted["enabled"],
                            "previews_enabled": wanted.get("previews_enabled", worker.subdomain["previews_enabled"])}
    return dict(worker.subdomain)


def _service(account: Account, name: str) -> dict:
    worker = worker_of(account, name)
    if worker is None:
        raise ApiError(404, 10090, "workers.api.error.service_not_found")
    script = account.scripts[name]
    details = {"id": name, "etag": script["etag"], "tag": live_version(worker)["id"].replace("-", ""),
               "created_on": script["created_on"], "modified_on": script["modified_on"]}
    if worker.migration_tag is not None:
        details["migration_tag"] = worker.migration_tag
    return {"id": name, "created_on": script["created_on"], "modified_on": script["modified_on"],
            "default_environment": {"environment": "production", "created_on": script["created_on"],
                                    "modified_on": script["modified_on"], "script": details}}


# --- versions and deployments --------------------------------------------------------------


def _version_view(version: dict, *, detail: bool = False) -> dict:
    view = {"id": version["id"], "number": version["number"], "annotations": dict(version["annotations"]),
            "metadata": {"created_on": version["created_on"], "modified_on": version["created_on"],
                         "source": version["source"], "author_email": FAKE_EMAIL, "has_preview": False}}
    if detail:
        code = version["snapshot"]
        meta = code.get("metadata") or {}
        view["resources"] = {
            "bindings": [dict(b) for b in code.get("bindings") or []],
            "script": {"etag": code.get("etag"), "handlers": ["fetch"]},
            "script_runtime": {"compatibility_date": meta.get("compatibility_date", "2021-11-02"),
                               "compatibility_flags": meta.get("compatibility_flags", []),
                               "usage_model": meta.get("usage_model", "standard"),
                               "limits": meta.get("limits", {})},
        }
    return view


def _deployment_view(deployment: dict) -> dict:
    return {**deployment, "versions": [dict(v) for v in deployment["versions"]],
            "annotations": dict(deployment["annotations"])}


def _upload_version(fake: FakeCloudflare, account: Account, name: str, headers: Message, body: bytes,
                    record: RecordedRequest) -> dict:
    """``POST .../versions``: a version that is stored but not deployed (reference §7.5)."""
    worker = _worker(account, name)
    parts, metadata = _upload_parts(headers, body, record)
    for key in metadata:
        if key in VERSION_REFUSED_KEYS:
            raise _bad(f"'{key}' cannot be set by a version upload: upload the script (PUT) to change it")
        if key == "body_part":
            raise _bad("Version uploads take ES modules only: name the entry in main_module")
        if key not in VERSION_KEYS:
            raise _bad(f"Unknown field '{key}' in metadata")
    if "main_module" not in metadata:
        raise _bad("Version uploads take ES modules only: metadata needs main_module")
    entry = _entry_part(metadata, parts)
    assert entry is not None
    _check_compatibility(metadata)
    check_settings(metadata, account, name)
    bindings = metadata.get("bindings", [])
    if not isinstance(bindings, list):
        raise _bad("bindings must be an array")
    newest = worker.versions[-1]["snapshot"]
    assets = take_assets(fake, account, name, metadata, newest)
    _check_bindings(bindings, account, UploadContext(name, dict(worker.classes), assets is not None))
    keep = metadata.get("keep_bindings", [])
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise _bad("keep_bindings must be an array of binding types")
    sent = {b["name"] for b in bindings}
    kept = [b for b in newest.get("bindings") or [] if b["type"] in keep and b["name"] not in sent]
    stored = [dict(b) for b in bindings if b["type"] != "secret_text" and b["name"] not in fake.ignore_bindings]
    # Secrets stay per script in this fake: a version's secret_text joins the script's secrets.
    account.scripts[name]["secrets"].update({b["name"]: b["text"] for b in bindings if b["type"] == "secret_text"})
    code = [parts[entry]] + [p for n, p in parts.items() if n not in ("metadata", entry)]
    version = _add_version(worker, {
        "content": parts[entry].data, "parts": code, "main_module": entry, "metadata": metadata,
        "bindings": kept + stored, "etag": _etag(code), "assets": assets,
    }, metadata.get("annotations", {}), "version_upload")
    return {**_version_view(version, detail=True), "startup_time_ms": 0}


def _etag(code: list[Part]) -> str:
    digest = hashlib.sha256()
    for part in code:
        digest.update(part.name.encode() + b"\0" + part.content_type.encode() + b"\0" + part.data)
    return digest.hexdigest()


def _deploy(account: Account, name: str, worker: WorkerState, headers: Message, body: bytes,
            record: RecordedRequest) -> dict:
    """``POST .../deployments``: one or two versions of this script, integer percentages
    summing to 100; the one with the larger share is served from then on."""
    wanted = _json_body(headers, body, record)
    unknown = sorted(set(wanted) - {"strategy", "versions", "annotations"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the deployment")
    if wanted.get("strategy") != "percentage":
        raise _bad('A deployment needs "strategy": "percentage"')
    split = wanted.get("versions")
    if not isinstance(split, list) or not 1 <= len(split) <= 2:
        raise _bad("A deployment names one or two versions")
    known = {v["id"] for v in worker.versions}
    for item in split:
        if not isinstance(item, dict) or set(item) != {"version_id", "percentage"} or not _text(item["version_id"]):
            raise _bad('Each deployed version is {"version_id": ..., "percentage": ...}')
        if not _is_int(item["percentage"]) or not 0 <= item["percentage"] <= 100:
            raise _bad(f"percentage must be a whole number from 0 to 100, not {item['percentage']!r}")
        if item["version_id"] not in known:
            raise _bad(f"Version '{item['version_id']}' is not a version of script '{name}'")
    if len({item["version_id"] for item in split}) != len(split):
        raise _bad("A deployment names each version once")
    total = sum(item["percentage"] for item in split)
    if total != 100:
        raise _bad(f"The percentages of a deployment must sum to 100, not {total}")
    annotations = wanted.get("annotations", {})
    check_annotations(annotations, ("workers/message",))
    deployment = _add_deployment(worker, split, annotations)
    _make_live(account, name, worker)
    return _deployment_view(deployment)


# --- static assets -------------------------------------------------------------------------


def _assets_session(fake: FakeCloudflare, account: Account, name: str, headers: Message, body: bytes,
                    record: RecordedRequest) -> dict:
    """Open an upload session: answer the buckets of hashes this account does not hold yet."""
    if not SCRIPT_NAME.match(name) or len(name) > 63:
        raise _bad(f"Invalid script name '{name}'")
    manifest = _json_body(headers, body, record).get("manifest")
    if not isinstance(manifest, dict):
        raise _bad('The body must be {"manifest": {"/path": {"hash": ..., "size": ...}}}')
    if len(manifest) > MAX_ASSET_FILES:
        raise _bad(f"An assets manifest holds at most {MAX_ASSET_FILES} files")
    sizes: dict[str, int] = {}
    for path, entry in manifest.items():
        if not path.startswith("/"):
            raise _bad(f"Asset path '{path}' must start with '/'")
        if not isinstance(entry, dict) or set(entry) != {"hash", "size"}:
            raise _bad(f'Asset {path}: give exactly {{"hash", "size"}}')
        if not isinstance(entry["hash"], str) or not ASSET_HASH.match(entry["hash"]):
            raise _bad(f"Asset {path}: hash must be 32 lowercase hex characters")
        if not _is_int(entry["size"]) or not 0 <= entry["size"] <= MAX_ASSET_SIZE:
            raise _bad(f"Asset {path}: size must be a whole number of bytes up to {MAX_ASSET_SIZE}")
        if sizes.setdefault(entry["hash"], entry["size"]) != entry["size"]:
            raise _bad(f"Asset {path}: hash {entry['hash']} is given two different sizes")
    missing = [h for h in sizes if h not in account.asset_hashes]
    session = AssetSession(name, {p: dict(e) for p, e in manifest.items()}, sizes, set(missing), time.monotonic())
    token = _remember(account.asset_sessions, f"fake-assets-session-{uuid.uuid4().hex}", session)
    if not missing:
        return {"jwt": _complete(account, session), "buckets": []}
    size = fake.assets_per_bucket
    return {"jwt": token, "buckets": [missing[i:i + size] for i in range(0, len(missing), size)]}


def _remember(tokens: OrderedDict[str, AssetSession], token: str, session: AssetSession) -> str:
    tokens[token] = session
    while len(tokens) > MAX_ASSET_SESSIONS:
        tokens.popitem(last=False)
    return token


def _complete(account: Account, session: AssetSession) -> str:
    if session.completion is None:
        session.completion = _remember(account.asset_completions, f"fake-assets-done-{uuid.uuid4().hex}", session)
    return session.completion


def _assets_upload(fake: FakeCloudflare, account: Account, query: dict[str, list[str]], headers: Message,
                   body: bytes, record: RecordedRequest) -> dict:
    """One bucket: parts named by hash holding base64, authorised by the session's token."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    session = account.asset_sessions.get(token) if scheme == "Bearer" else None
    if session is None or time.monotonic() - session.created > fake.assets_jwt_ttl:
        raise ApiError(401, 10000, "Authentication error: send Authorization: Bearer <upload session jwt>")
    if query.get("base64", [""])[0] != "true":
        raise _bad("Upload assets as base64 with ?base64=true")
    parts = _multipart(headers, body)
    record.parts = parts
    if not parts:
        raise _bad("An assets upload needs at least one file part")
    decoded: dict[str, int] = {}
    for file_hash, part in parts.items():
        if file_hash not in session.sizes:
            raise _bad(f"Asset {file_hash} is not part of this upload session")
        try:
            size = len(base64.b64decode(part.data, validate=True))
        except (binascii.Error, ValueError):
            raise _bad(f"Asset {file_hash} is not valid base64") from None
        if size != session.sizes[file_hash]:
            raise _bad(f"Asset {file_hash} is {size} bytes, the manifest said {session.sizes[file_hash]}")
        decoded[file_hash] = size
    if len(account.asset_hashes) + len(decoded) > MAX_STORED_ASSETS:
        raise _bad(f"this fake keeps at most {MAX_STORED_ASSETS} asset files per account")
    account.asset_hashes.update(decoded)
    session.pending.difference_update(decoded)
    return {"jwt": _complete(account, session)} if not session.pending else {}


# --- owned resources -----------------------------------------------------------------------


def _jurisdiction(headers: Message) -> str:
    jurisdiction = headers.get("cf-r2-jurisdiction", "default")
    if jurisdiction not in ("default", *JURISDICTIONS):
        raise _bad(f"cf-r2-jurisdiction must be one of default, {', '.join(JURISDICTIONS)}")
    return jurisdiction


def new_bucket(account: Account, name: str, jurisdiction: str, location: str | None = None) -> dict:
    if not R2_NAME.match(name):
        raise _bad("Bucket names are 3-63 characters: a-z, 0-9 and '-', starting and ending with a letter or digit")
    if (jurisdiction, name) in account.r2_buckets:
        raise _bad("The bucket you tried to create already exists, and you own it.")
    bucket = {"name": name, "creation_date": _now(), "location": (location or "enam").upper(),
              "storage_class": "Standard", "jurisdiction": jurisdiction}
    account.r2_buckets[(jurisdiction, name)] = bucket
    return bucket


def _create_bucket(account: Account, jurisdiction: str, data: dict) -> dict:
    unknown = sorted(set(data) - {"name", "locationHint", "storageClass"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the bucket")
    if not isinstance(data.get("name"), str):
        raise _bad("A bucket needs a name")
    hint = data.get("locationHint")
    if hint is not None and hint not in ("apac", "eeur", "enam", "weur", "wnam", "oc"):
        raise _bad("locationHint must be one of apac, eeur, enam, weur, wnam, oc")
    return dict(new_bucket(account, data["name"], jurisdiction, hint))


def _list_buckets(account: Account, jurisdiction: str, query: dict[str, list[str]]) -> tuple[Any, dict]:
    """``result.buckets[]``, 20 a page by default, the next page named by ``cursor``."""
    try:
        per_page = int(query.get("per_page", ["20"])[0])
        start = int(query.get("cursor", ["0"])[0] or 0)
    except ValueError:
        raise ApiError(400, 10001, "per_page must be an integer and cursor one this API gave") from None
    if not 1 <= per_page <= 1000 or start < 0:
        raise ApiError(400, 10001, "per_page must be between 1 and 1000")
    contains = query.get("name_contains", [""])[0]
    names = sorted(n for j, n in account.r2_buckets if j == jurisdiction and contains in n)
    chunk = [dict(account.r2_buckets[(jurisdiction, n)]) for n in names[start:start + per_page]]
    info: dict[str, Any] = {"per_page": per_page}
    if start + per_page < len(names):
        info["cursor"] = str(start + per_page)
    return {"buckets": chunk}, info


def new_database(account: Account, name: str) -> dict:
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
        raise _bad("A D1 database name is 1-64 characters: letters, digits, '-' and '_'")
    if any(d["name"] == name for d in account.d1_databases.values()):
        raise ApiError(400, 7502, "A database with that name already exists")
    database = {"uuid": str(uuid.uuid4()), "name": name, "created_at": _now(), "version": "production",
                "num_tables": 0, "file_size": 0}
    account.d1_databases[database["uuid"]] = database
    return database


def _create_database(account: Account, data: dict) -> dict:
    unknown = sorted(set(data) - {"name", "primary_location_hint", "jurisdiction"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the database")
    return dict(new_database(account, data.get("name")))  # type: ignore[arg-type]


def new_queue(account: Account, name: str) -> dict:
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise _bad("A queue name is 1-63 characters: letters, digits, '-' and '_'")
    if any(q["queue_name"] == name for q in account.queues.values()):
        raise _bad(f"A queue named '{name}' already exists")
    now = _now()
    queue = {"queue_id": uuid.uuid4().hex, "queue_name": name, "created_on": now, "modified_on": now,
             "settings": {"delivery_delay": 0}, "consumers": {}}
    account.queues[queue["queue_id"]] = queue
    return queue


def _create_queue(account: Account, data: dict) -> dict:
    unknown = sorted(set(data) - {"queue_name", "settings"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the queue")
    return _queue_view(account, new_queue(account, data.get("queue_name")))  # type: ignore[arg-type]


def _queue(account: Account, queue_id: str) -> dict:
    if queue_id not in account.queues:
        raise _not_found(f"Queue '{queue_id}'")
    return account.queues[queue_id]


def _queue_view(account: Account, queue: dict) -> dict:
    producers = [{"type": "worker", "script": name} for name, script in account.scripts.items() if any(
        b.get("type") == "queue" and b.get("queue_name") == queue["queue_name"] for b in script.get("bindings", []))]
    consumers = [dict(c) for c in queue["consumers"].values()]
    return {**{k: v for k, v in queue.items() if k != "consumers"}, "settings": dict(queue["settings"]),
            "producers": producers, "producers_total_count": len(producers),
            "consumers": consumers, "consumers_total_count": len(consumers)}


def _save_consumer(account: Account, queue: dict, consumer_id: str | None, data: dict) -> dict:
    """Create (``consumer_id`` None) or replace a consumer: a Worker of this account, once per
    queue, settings in Cloudflare's ranges and defaults, an existing dead letter queue."""
    unknown = sorted(set(data) - {"type", "script_name", "script", "dead_letter_queue", "settings"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the consumer")
    kind = data.get("type", "worker")
    if kind not in ("worker", "http_pull"):
        raise _bad("A consumer's type is worker or http_pull")
    script = data.get("script_name", data.get("script"))
    if kind == "worker":
        if not _text(script) or script not in account.scripts:
            raise _bad(f"Consumer script {script!r} is not a Worker of this account (upload it first)")
        if any(c.get("script") == script and cid != consumer_id for cid, c in queue["consumers"].items()):
            raise _bad(f"Script '{script}' already consumes queue '{queue['queue_name']}'")
    settings_in = data.get("settings", {})
    if not isinstance(settings_in, dict):
        raise _bad("A consumer's settings must be an object")
    settings_out: dict[str, Any] = {}
    for key, value in settings_in.items():
        if key not in CONSUMER_SETTINGS:
            raise _bad(f"Unknown consumer setting '{key}'")
        low, high, _ = CONSUMER_SETTINGS[key]
        if not _is_int(value) or not low <= value <= high:
            raise _bad(f"Consumer setting {key} must be a whole number from {low} to {high}")
        settings_out[key] = value
    for key, (_, _, default) in CONSUMER_SETTINGS.items():
        if default is not None and key != "visibility_timeout_ms":
            settings_out.setdefault(key, default)
    dead_letter = data.get("dead_letter_queue")
    if dead_letter is not None:
        if dead_letter == queue["queue_name"]:
            raise _bad("A queue cannot be its own dead letter queue")
        if not any(q["queue_name"] == dead_letter for q in account.queues.values()):
            raise _bad(f"Dead letter queue '{dead_letter}' does not exist")
    consumer_id = consumer_id or uuid.uuid4().hex
    consumer = {"consumer_id": consumer_id, "type": kind, "queue_name": queue["queue_name"],
                "settings": settings_out, "created_on": queue["consumers"].get(consumer_id, {}).get("created_on", _now())}
    if kind == "worker":
        consumer["script"] = script
    if dead_letter is not None:
        consumer["dead_letter_queue"] = dead_letter
    queue["consumers"][consumer_id] = consumer
    return dict(consumer)


# --- triggers ------------------------------------------------------------------------------


def check_route_pattern(pattern: Any, zone_name: str | None) -> None:
    """Cloudflare's route rules: ``*`` only leading the host or ending the path, no query
    string, an optional ``http(s)://``, and a host inside the zone (reference §7.4)."""
    if not _text(pattern):
        raise _bad("A route needs a pattern")
    rest = re.sub(r"^https?://", "", pattern)
    if "?" in rest:
        raise _bad(f"Route pattern '{pattern}' has a query string: routes match host and path only")
    host, _, path = rest.partition("/")
    wildcard = host.startswith("*")
    bare = host[1:] if wildcard else host
    if "*" in bare:
        raise _bad(f"Route pattern '{pattern}': '*' may only lead the host")
    if "*" in path[:-1]:
        raise _bad(f"Route pattern '{pattern}': '*' may only end the path")
    if zone_name is None:
        raise _bad("This zone has no name in the fake: plant it with add_zone(name)")
    host_name = (bare[1:] if wildcard and bare.startswith(".") else bare).lower()
    if not host_name or not (host_name == zone_name or host_name.endswith("." + zone_name)):
        raise _bad(f"Route pattern '{pattern}': host '{host}' is not in zone '{zone_name}'")


def _save_route(fake: FakeCloudflare, zone: str, route_id: str | None, data: dict) -> dict:
    unknown = sorted(set(data) - {"pattern", "script"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the route")
    return dict(save_route(fake, zone, route_id, data.get("pattern"), data.get("script")))


def save_route(fake: FakeCloudflare, zone: str, route_id: str | None, pattern: Any, script: Any) -> dict:
    check_route_pattern(pattern, fake.zone_names.get(zone))
    routes = fake.zone_routes.setdefault(zone, {})
    if any(r["pattern"] == pattern and rid != route_id for rid, r in routes.items()):
        raise ApiError(409, 10020, f"A route with pattern '{pattern}' already exists in this zone")
    if script is not None and (not _text(script) or script not in fake.accounts[fake.zones[zone]].scripts):
        raise _bad(f"Route script {script!r} is not a Worker of this account (upload it first)")
    route_id = route_id or uuid.uuid4().hex
    routes[route_id] = {"id": route_id, "pattern": pattern, **({"script": script} if script else {})}
    return routes[route_id]


def _attach_domain(fake: FakeCloudflare, account_id: str, data: dict) -> dict:
    unknown = sorted(set(data) - {"hostname", "service", "zone_id", "zone_name", "environment"})
    if unknown:
        raise _bad(f"Unknown field '{unknown[0]}' in the custom domain")
    return dict(attach_domain(fake, account_id, data.get("hostname"), data.get("service"),
                              zone_id=data.get("zone_id"), zone_name=data.get("zone_name"),
                              environment=data.get("environment", "production")))


def attach_domain(fake: FakeCloudflare, account_id: str, hostname: Any, service: Any, *,
                  zone_id: Any = None, zone_name: Any = None, environment: Any = "production") -> dict:
    """Upsert by hostname: the Worker must exist and a zone of this account must hold the host."""
    account = fake.accounts[account_id]
    if not _text(hostname) or any(c in hostname for c in "*/:? "):
        raise _bad(f"Custom domain hostname {hostname!r} must be a plain host name (no wildcard, path or port)")
    hostname = hostname.lower()
    if not _text(service) or service not in account.scripts:
        raise _bad(f"Custom domain service {service!r} is not a Worker of this account (upload it first)")
    if environment != "production":
        raise _bad("Custom domains attach to the production environment")
    if not all(z is None or _text(z) for z in (zone_id, zone_name)):
        raise _bad("zone_id and zone_name must be strings")
    zones = {z: n for z, n in fake.zone_names.items() if fake.zones.get(z) == account_id}
    if zone_id is not None and zone_id not in zones:
        raise _bad(f"Zone '{zone_id}' is not a zone of this account")
    if zone_name is not None and zone_name not in zones.values():
        raise _bad(f"Zone '{zone_name}' is not a zone of this account")
    if zone_id is not None and zone_name is not None and zones[zone_id] != zone_name:
        raise _bad(f"zone_id '{zone_id}' is zone '{zones[zone_id]}', not '{zone_name}'")
    candidates = [z for z, n in zones.items() if (zone_id in (None, z)) and (zone_name in (None, n))]
    holding = [z for z in candidates if hostname == zones[z] or hostname.endswith("." + zones[z])]
    if not holding:
        named = zone_name or (zones.get(zone_id) if zone_id else None)
        raise _bad(f"Hostname '{hostname}' is not inside zone '{named}'" if named
                   else f"No zone of this account holds hostname '{hostname}'")
    zone = max(holding, key=lambda z: len(zones[z]))
    existing = next((d for d in account.custom_domains.values() if d["hostname"] == hostname), None)
    domain_id = existing["id"] if existing else uuid.uuid4().hex
    account.custom_domains[domain_id] = {
        "id": domain_id, "hostname": hostname, "service": service, "environment": "production",
        "zone_id": zone, "zone_name": zones[zone], "cert_id": existing["cert_id"] if existing else uuid.uuid4().hex}
    return account.custom_domains[domain_id]
