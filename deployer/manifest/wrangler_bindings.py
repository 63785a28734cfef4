"""A wrangler config's bindings, triggers and settings in the manifest's forms (CONTRACT.md,
"More binding types", "Triggers", script settings), for ``wrangler.py``.

Pure: wrangler's parsed values in, manifest values out; whatever has no manifest form is
reported through ``Context.warn`` with the path it was written at, never dropped silently.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

# Fields that only `wrangler dev` (or wrangler's own D1 migration command) reads.
_DEV_ONLY = {
    "preview_id": "used by wrangler dev only",
    "preview_bucket_name": "used by wrangler dev only",
    "preview_database_id": "used by wrangler dev only",
    "remote": "used by wrangler dev only",
    "experimental_remote": "used by wrangler dev only",
    "local_dev": "used by wrangler dev only",
    "migrations_dir": "D1 migrations are applied by 'wrangler d1 migrations apply', not by deployer",
    "migrations_table": "D1 migrations are applied by 'wrangler d1 migrations apply', not by deployer",
    "migrations_pattern": "D1 migrations are applied by 'wrangler d1 migrations apply', not by deployer",
}


@dataclass(frozen=True, slots=True)
class Context:
    """How one Worker (or one environment of it) is being converted: ``origin(key)`` is the
    path where its top-level ``key`` was written (the base or ``env.<name>``)."""

    origin: Callable[[str], Path]
    warn: Callable[[Path, str], None]
    scripts: frozenset[str]  # the manifest's script names (wrangler `name`s)
    environment: str | None

    def at(self, key: str, *rest: str | int) -> Path:
        return (*self.origin(key), *rest)

    def script_reference(self, worker: str) -> str | None:
        """The manifest script that wrangler's Worker name ``worker`` means here (an
        environment's Worker is ``<name>-<env>``), or None when it is not one of them."""
        if self.environment is None:
            return worker if worker in self.scripts else None
        suffix = f"-{self.environment}"
        base = worker[: -len(suffix)] if worker.endswith(suffix) else None
        return base if base in self.scripts else None


@dataclass(frozen=True, slots=True)
class _Kind:
    """A list of one binding type in wrangler: which field names the binding, which fields
    carry over (wrangler's name -> the manifest's) and which must be there."""

    type: str
    fields: Mapping[str, str]
    required: tuple[str, ...] = ()
    name_field: str = "binding"
    ignored: frozenset[str] = frozenset()  # says nothing the carried fields do not


_LISTS = {
    "kv_namespaces": _Kind("kv_namespace", {"id": "namespace_id"}, ("id",)),
    "r2_buckets": _Kind("r2_bucket", {"bucket_name": "bucket_name", "jurisdiction": "jurisdiction"},
                        ("bucket_name",)),
    "d1_databases": _Kind("d1", {"database_id": "id"}, ("database_id",), ignored=frozenset({"database_name"})),
    "analytics_engine_datasets": _Kind("analytics_engine", {"dataset": "dataset"}),
    "hyperdrive": _Kind("hyperdrive", {"id": "id"}, ("id",)),
    "vectorize": _Kind("vectorize", {"index_name": "index_name"}, ("index_name",)),
    "mtls_certificates": _Kind("mtls_certificate", {"certificate_id": "certificate_id"}, ("certificate_id",)),
    "dispatch_namespaces": _Kind("dispatch_namespace", {"namespace": "namespace"}, ("namespace",)),
    "send_email": _Kind("send_email", {key: key for key in ("destination_address", "allowed_destination_addresses",
                                                            "allowed_sender_addresses")}, name_field="name"),
    "secrets_store_secrets": _Kind("secrets_store_secret", {"store_id": "store_id", "secret_name": "secret_name"},
                                   ("store_id", "secret_name")),
}
_SINGLES = {"ai": "ai", "browser": "browser", "version_metadata": "version_metadata"}

BINDING_KEYS = frozenset({"vars", "secrets", "queues", "services", "durable_objects", *_LISTS, *_SINGLES})
SETTING_KEYS = frozenset({"routes", "route", "triggers", "workers_dev", "placement", "limits", "observability",
                          "logpush", "tail_consumers", "migrations"})


def convert_bindings(body: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Every binding of ``body`` in the manifest's form, in a fixed order of types."""
    out: list[dict[str, Any]] = []
    for name, value in _mapping(body, "vars", ctx).items():
        if isinstance(value, str):
            out.append({"type": "plain_text", "name": name, "text": value})
        else:
            out.append({"type": "json", "name": name, "json": value})
    secrets = _mapping(body, "secrets", ctx)
    for key in secrets:
        if key != "required":
            ctx.warn(ctx.at("secrets", key), "not carried over")
    for index, name in enumerate(_items(secrets, "required", ctx, ("secrets",))):
        if isinstance(name, str):
            # Never a value: the manifest names the variable that will hold it.
            out.append({"type": "secret_text", "name": name, "text": Placeholder(f"${{{name}}}")})
        else:
            ctx.warn(ctx.at("secrets", "required", index), "a secret name must be a string; skipped")
    for key in ("kv_namespaces", "r2_buckets", "d1_databases"):
        out += _list_bindings(body, key, ctx)
    for index, item in _entries(_mapping(body, "queues", ctx), "producers", ctx, ("queues",)):
        out += _binding(item, ("queues", "producers", index), _Kind("queue", {"queue": "queue_name"}, ("queue",)),
                        ctx)
    for index, item in _entries(body, "services", ctx):
        out += _service(item, index, ctx)
    for index, item in _entries(_mapping(body, "durable_objects", ctx), "bindings", ctx, ("durable_objects",)):
        out += _durable_object(item, index, ctx)
    out += _list_bindings(body, "analytics_engine_datasets", ctx)
    for key, kind in _SINGLES.items():
        single = _mapping(body, key, ctx)
        if single:
            out += _binding(single, (key,), _Kind(kind, {}), ctx)
    for key in ("hyperdrive", "vectorize", "mtls_certificates", "dispatch_namespaces", "send_email",
                "secrets_store_secrets"):
        out += _list_bindings(body, key, ctx)
    return out


class Placeholder(str):
    """A ``${VAR}`` the manifest means literally (written without escaping its ``${``)."""


def _list_bindings(body: Mapping[str, Any], key: str, ctx: Context) -> list[dict[str, Any]]:
    kind = _LISTS[key]
    out = []
    for index, item in _entries(body, key, ctx):
        if key == "analytics_engine_datasets" and "dataset" not in item and isinstance(item.get("binding"), str):
            item = {**item, "dataset": item["binding"]}  # Cloudflare's default: the binding's name
        out += _binding(item, (key, index), kind, ctx)
    return out


def _binding(item: Mapping[str, Any], where: Path, kind: _Kind, ctx: Context,
             extra: Mapping[str, Any] | None = None, handled: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    path = ctx.at(str(where[0]), *where[1:])
    name = item.get(kind.name_field)
    if not isinstance(name, str):
        ctx.warn(path, f"a {kind.type} binding without a '{kind.name_field}' name; skipped")
        return []
    missing = [field for field in kind.required if field not in item]
    if missing:
        ctx.warn(path, f"{kind.type} binding {name} has no {missing[0]} (wrangler creates or looks it up at "
                       f"deploy); skipped: add it with its {kind.fields[missing[0]]}")
        return []
    binding: dict[str, Any] = {"type": kind.type, "name": name}
    for field, value in item.items():
        if field == kind.name_field or field in kind.ignored or field in handled:
            continue
        if field in kind.fields:
            binding[kind.fields[field]] = value
        elif field in _DEV_ONLY:
            ctx.warn((*path, field), f"not carried over: {_DEV_ONLY[field]}")
        else:
            ctx.warn((*path, field), f"not carried over ({kind.type} binding {name})")
    binding.update(extra or {})
    return [binding]


def _service(item: Mapping[str, Any], index: int, ctx: Context) -> list[dict[str, Any]]:
    service = item.get("service")
    if not isinstance(service, str):
        return _binding(item, ("services", index), _Kind("service", {}, ("service",)), ctx)
    target = ctx.script_reference(service)
    extra = {"script": target} if target is not None else {"service": service}
    if "entrypoint" in item:
        extra["entrypoint"] = item["entrypoint"]
    return _binding(item, ("services", index), _Kind("service", {}), ctx, extra,
                    frozenset({"service", "entrypoint"}))


def _durable_object(item: Mapping[str, Any], index: int, ctx: Context) -> list[dict[str, Any]]:
    kind = _Kind("durable_object_namespace", {"class_name": "class_name"}, ("class_name",), name_field="name")
    other = item.get("script_name")
    extra = {}
    if isinstance(other, str):
        target = ctx.script_reference(other)
        extra = {"script": target} if target is not None else {"script_name": other}
    return _binding(item, ("durable_objects", "bindings", index), kind, ctx, extra, frozenset({"script_name"}))


# --- triggers and settings ------------------------------------------------------------------


def convert_settings(body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Durable Object migrations, queue consumers, triggers and script settings, in the order
    the manifest shows them."""
    out: dict[str, Any] = {}
    steps = [_migration(item, index, ctx) for index, item in _entries(body, "migrations", ctx)]
    if steps:
        out["durable_objects"] = {"migrations": steps}
    if "queues" in body:
        consumers = _entries(_mapping(body, "queues", ctx), "consumers", ctx, ("queues",))
        out["queue_consumers"] = [c for index, item in consumers if (c := _consumer(item, index, ctx))]
        if not out["queue_consumers"]:
            del out["queue_consumers"]
    routes, domains = _routes(body, ctx)
    if routes is not None:
        out["routes"] = routes
    if domains:
        out["custom_domains"] = domains
    triggers = _mapping(body, "triggers", ctx)
    for key in triggers:
        if key != "crons":
            ctx.warn(ctx.at("triggers", key), "not carried over")
    if "crons" in triggers:
        out["crons"] = list(triggers["crons"] or [])
    if "workers_dev" in body:
        out["workers_dev"] = body["workers_dev"]
    out.update(_settings(body, ctx))
    return out


def _migration(item: Mapping[str, Any], index: int, ctx: Context) -> dict[str, Any]:
    keys = ("tag", "new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", "transferred_classes")
    for key in item:
        if key not in keys:
            ctx.warn(ctx.at("migrations", index, key), "not carried over")
    return {key: item[key] for key in keys if key in item}


def _consumer(item: Mapping[str, Any], index: int, ctx: Context) -> dict[str, Any] | None:
    path = ctx.at("queues", "consumers", index)
    if not isinstance(item.get("queue"), str):
        ctx.warn(path, "a queue consumer without a 'queue'; skipped")
        return None
    carried = ("queue", "max_batch_size", "max_retries", "dead_letter_queue")
    for key in item:
        if key not in carried and key != "type":
            ctx.warn((*path, key), "not carried over (a queue consumer takes max_batch_size, max_retries and "
                                   "dead_letter_queue)")
    return {key: item[key] for key in carried if key in item}


def _routes(body: Mapping[str, Any], ctx: Context) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    if "routes" in body:
        key, items = "routes", body["routes"]
    elif "route" in body:
        key, items = "route", [body["route"]]
    else:
        return None, []
    routes, domains = [], []
    for index, item in enumerate(items if isinstance(items, list) else []):
        path = ctx.at(key, index) if key == "routes" else ctx.at(key)
        if isinstance(item, str):
            item = {"pattern": item}
        pattern = item.get("pattern") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(pattern, str):
            ctx.warn(path, "a route without a pattern; skipped")
            continue
        zone = {k: item[k] for k in ("zone_id", "zone_name") if k in item}
        for extra in sorted(set(item) - {"pattern", "zone_id", "zone_name", "custom_domain"}):
            ctx.warn((*path, extra), "not carried over")
        if item.get("custom_domain"):
            domains.append({"hostname": pattern, **zone})
            continue
        if not zone:
            zone = {"zone_name": _guess_zone(pattern)}
            ctx.warn(path, f"route {pattern!r} names no zone (wrangler looks it up): zone_name "
                           f"{zone['zone_name']} was guessed from its host; check it")
        routes.append({"pattern": pattern, **zone})
    return routes, domains


def _guess_zone(pattern: str) -> str:
    host = pattern.split("://", 1)[-1].split("/", 1)[0].lstrip("*.")
    return ".".join(host.split(".")[-2:])


def _settings(body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    placement = _mapping(body, "placement", ctx)
    if placement.get("mode") == "smart":
        out["placement"] = {"mode": "smart"}
    for key in placement:
        if key != "mode" or placement[key] not in ("smart", "off"):
            ctx.warn(ctx.at("placement", key), f"{placement[key]!r} is not carried over (only mode smart is)")
    limits = _mapping(body, "limits", ctx)
    out.update(_carry(limits, ("cpu_ms",), "limits", ctx))
    observability = _mapping(body, "observability", ctx)
    out.update(_carry(observability, ("enabled", "head_sampling_rate"), "observability", ctx))
    if "logpush" in body:
        out["logpush"] = body["logpush"]
    consumers = []
    for index, item in _entries(body, "tail_consumers", ctx):
        if isinstance(item.get("service"), str):
            consumers.append({"service": item["service"]})
        for key in set(item) - {"service"}:
            ctx.warn(ctx.at("tail_consumers", index, key), "not carried over")
    if consumers or "tail_consumers" in body:
        out["tail_consumers"] = consumers
    return out


def _carry(value: Mapping[str, Any], keys: tuple[str, ...], name: str, ctx: Context) -> dict[str, Any]:
    for key in value:
        if key not in keys:
            ctx.warn(ctx.at(name, key), "not carried over")
    carried = {key: value[key] for key in keys if key in value}
    return {name: carried} if carried else {}


# --- reading wrangler's shapes -------------------------------------------------------------------


def _mapping(body: Mapping[str, Any], key: str, ctx: Context) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.warn(ctx.at(key), f"{key} must be a table (a JSON object); skipped")
        return {}
    return value


def _items(body: Mapping[str, Any], key: str, ctx: Context, parent: Path = ()) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        path: Path = (*parent, key)
        ctx.warn(ctx.at(str(path[0]), *path[1:]), f"{key} must be a list; skipped")
        return []
    return value


def _entries(body: Mapping[str, Any], key: str, ctx: Context, parent: Path = ()) -> list[tuple[int, dict[str, Any]]]:
    """``(index, table)`` of each table in the list at ``key`` (others are reported)."""
    out = []
    for index, item in enumerate(_items(body, key, ctx, parent)):
        if isinstance(item, dict):
            out.append((index, item))
        else:
            path: Path = (*parent, key, index)
            ctx.warn(ctx.at(str(path[0]), *path[1:]), f"an entry of {key} must be a table; skipped")
    return out
