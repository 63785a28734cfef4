"""``d1``: a D1 database, ``{type, name, id}``, named by its id or by ``database: <key>`` of
``d1_databases``; and the databases a project owns under ``d1_databases:``, created or adopted
by name (Cloudflare answers with the database's ``uuid``)."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.kinds.resource import ResourceKind
from deployer.manifest.rules import DATABASE_NAME, NAMESPACE_KEY, UUID

KIND = BindingKind(
    type="d1",
    description="A D1 database: the script queries it with `NAME.prepare(sql)`.",
    keys=(Key("id", "The database's id (a UUID). Give this or `database`, not both.", rule=UUID),),
    reference=Reference("database", "d1_databases", "id",
                        "The key of a database declared under d1_databases; its id is resolved at apply. Give "
                        "this or `id`, not both.", rule=NAMESPACE_KEY),
)

RESOURCE = ResourceKind(
    type="d1_database",
    section="d1_databases",
    plural="databases",
    description="D1 databases this project owns, by key. Each is created by name when missing (needs "
                "account_id); bindings refer to it with `database: <key>`.",
    item_description="A D1 database owned by this project, found (or created) by its name.",
    name_key="name",
    name_description="The database's name in the Cloudflare account (1 to 64 letters, digits, '-' and '_').",
    name_rule=DATABASE_NAME,
    plan_id_key="database_id",
    plan_name_key="database_name",
    remote_id_key="uuid",
    ensure="ensure_d1_database",
    list="list_d1_databases",
)
