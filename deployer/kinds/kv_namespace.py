"""``kv_namespace``: the seed's binding, ``{type, name, namespace_id}``, whose namespace is a
literal id or ``namespace: <key>`` of ``kv_namespaces`` (its id resolved at apply); and the
namespaces a project owns under ``kv_namespaces:``, created or adopted by title."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.kinds.resource import ResourceKind
from deployer.manifest.rules import HEX_ID, NAMESPACE_KEY, TITLE

KIND = BindingKind(
    type="kv_namespace",
    description="A Workers KV namespace: the script reads it as `NAME.get(key)`.",
    keys=(Key("namespace_id", "The id of an existing namespace (32 lowercase hex characters). Give this or "
                              "`namespace`, not both.", rule=HEX_ID),),
    reference=Reference("namespace", "kv_namespaces", "namespace_id",
                        "The key of a namespace declared under kv_namespaces; its id is resolved at apply. "
                        "Give this or `namespace_id`, not both.", rule=NAMESPACE_KEY),
)

RESOURCE = ResourceKind(
    type="kv_namespace",
    section="kv_namespaces",
    plural="namespaces",
    description="KV namespaces this project owns, by key. Each is created by title when missing (needs "
                "account_id); bindings refer to it with `namespace: <key>`.",
    item_description="A KV namespace owned by this project, found (or created) by its title.",
    name_key="title",
    name_description="The namespace's title in the Cloudflare account, 1 to 512 characters, unique among the "
                     "namespaces declared here.",
    name_rule=TITLE,
    plan_id_key="namespace_id",
    forgotten_key="forgotten_namespaces",
    renamable=True,
    always_in_state=True,
    ensure="ensure_kv_namespace",
    rename="rename_kv_namespace",
    list="list_kv_namespaces",
)
