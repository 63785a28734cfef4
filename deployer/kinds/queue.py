"""``queue``: a queue producer, ``{type, name, queue_name}`` (+ ``delivery_delay``), named
literally or by ``queue: <key>`` of ``queues``; and the queues a project owns under ``queues:``,
created or adopted by name (bindings send the name; Cloudflare's ``queue_id`` is recorded)."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.kinds.resource import ResourceKind
from deployer.manifest.rules import NAMESPACE_KEY, QUEUE_NAME

KIND = BindingKind(
    type="queue",
    description="A queue the script sends messages to with `NAME.send(body)` (a producer).",
    keys=(
        Key("queue_name", "The queue's name in the account. Give this or `queue`, not both.", rule=QUEUE_NAME),
        Key("delivery_delay", "Seconds each message waits before it is delivered (0 to 43200).", kind="integer",
            required=False, minimum=0, maximum=43_200),
    ),
    reference=Reference("queue", "queues", "queue_name",
                        "The key of a queue declared under queues; its name is resolved at apply. Give this or "
                        "`queue_name`, not both.", rule=NAMESPACE_KEY),
)

RESOURCE = ResourceKind(
    type="queue",
    section="queues",
    plural="queues",
    description="Queues this project owns, by key. Each is created by name when missing (needs account_id); "
                "bindings refer to it with `queue: <key>`.",
    item_description="A queue owned by this project, found (or created) by its name.",
    name_key="name",
    name_description="The queue's name in the Cloudflare account (1 to 63 letters, digits, '-' and '_').",
    name_rule=QUEUE_NAME,
    plan_id_key="queue_id",
    plan_name_key="queue_name",
    remote_id_key="queue_id",
    remote_name_key="queue_name",
    reference="name",
    ensure="ensure_queue",
    list="list_queues",
)
