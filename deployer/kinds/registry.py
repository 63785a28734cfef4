"""The registry: every binding type, owned resource kind and attachment kind deployer knows, by its ``type``. A
new kind is one module in this package and one line here; the core looks kinds up here and
never names one."""
from __future__ import annotations

from collections.abc import Mapping

from deployer.kinds import (
    ai,
    assets,
    analytics_engine,
    browser,
    crons,
    custom_domain,
    d1,
    dispatch_namespace,
    durable_object_namespace,
    hyperdrive,
    json_value,
    kv_namespace,
    mtls_certificate,
    plain_text,
    queue,
    queue_consumer,
    r2_bucket,
    route,
    secret_text,
    secrets_store_secret,
    send_email,
    service,
    vectorize,
    version_metadata,
    workers_dev,
)
from deployer.kinds.attachment import AttachmentKind
from deployer.kinds.binding import BindingKind
from deployer.kinds.resource import ResourceKind
from deployer.kinds.settings import SETTINGS, SettingKind

BINDING_KINDS: Mapping[str, BindingKind] = {
    kind.type: kind
    for kind in (
        kv_namespace.KIND,
        plain_text.KIND,
        secret_text.KIND,
        r2_bucket.KIND,
        d1.KIND,
        queue.KIND,
        service.KIND,
        durable_object_namespace.KIND,
        analytics_engine.KIND,
        json_value.KIND,
        version_metadata.KIND,
        ai.KIND,
        browser.KIND,
        hyperdrive.KIND,
        vectorize.KIND,
        mtls_certificate.KIND,
        dispatch_namespace.KIND,
        secrets_store_secret.KIND,
        send_email.KIND,
        assets.KIND,  # made by a script's assets: {binding: NAME}, not written in bindings
    )
}


RESOURCE_KINDS: Mapping[str, ResourceKind] = {
    kind.type: kind
    for kind in (
        kv_namespace.RESOURCE,
        r2_bucket.RESOURCE,
        d1.RESOURCE,
        queue.RESOURCE,
    )
}


# The upload settings a script may set (placement, limits, ...), all declared in kinds/settings.py.
SETTING_KINDS: Mapping[str, SettingKind] = {kind.key: kind for kind in SETTINGS}
ATTACHMENT_KINDS: Mapping[str, AttachmentKind] = {
    kind.type: kind
    for kind in (
        route.KIND,
        custom_domain.KIND,
        crons.KIND,
        workers_dev.KIND,
        queue_consumer.KIND,
    )
}
"""What is attached to scripts after their upload (triggers, queue consumers), in plan order."""


def binding_kind(binding_type: str) -> BindingKind:
    """The kind of a binding type that passed validation (KeyError: a bug or a newer state)."""
    return BINDING_KINDS[binding_type]


def resource_kind(resource_type: str) -> ResourceKind:
    return RESOURCE_KINDS[resource_type]


def resource_kind_of_section(section: str) -> ResourceKind | None:
    """The kind whose manifest section is ``section`` (``kv_namespaces``), if any."""
    return next((kind for kind in RESOURCE_KINDS.values() if kind.section == section), None)
