"""The registry: every binding type deployer knows, by its ``type``. A new type is one module
in this package and one line here; the core looks kinds up here and never names one."""
from __future__ import annotations

from collections.abc import Mapping

from deployer.kinds import kv_namespace, plain_text, r2_bucket, secret_text
from deployer.kinds.binding import BindingKind

BINDING_KINDS: Mapping[str, BindingKind] = {
    kind.type: kind
    for kind in (
        kv_namespace.KIND,
        plain_text.KIND,
        secret_text.KIND,
        r2_bucket.KIND,
    )
}


def binding_kind(binding_type: str) -> BindingKind:
    """The kind of a binding type that passed validation (KeyError: a bug or a newer state)."""
    return BINDING_KINDS[binding_type]
