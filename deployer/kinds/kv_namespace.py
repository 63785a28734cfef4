"""``kv_namespace``: the seed's binding, ``{type, name, namespace_id}``; the namespace is a
literal id or ``namespace: <key>`` of ``kv_namespaces`` (its id resolved at apply)."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.manifest.rules import HEX_ID, NAMESPACE_KEY

KIND = BindingKind(
    type="kv_namespace",
    description="A Workers KV namespace: the script reads it as `NAME.get(key)`.",
    keys=(Key("namespace_id", "The id of an existing namespace (32 lowercase hex characters). Give this or "
                              "`namespace`, not both.", rule=HEX_ID),),
    reference=Reference("namespace", "kv_namespaces", "namespace_id",
                        "The key of a namespace declared under kv_namespaces; its id is resolved at apply. "
                        "Give this or `namespace_id`, not both.", rule=NAMESPACE_KEY),
)
