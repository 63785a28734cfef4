"""``r2_bucket``: an R2 bucket, ``{type, name, bucket_name}`` (+ ``jurisdiction``), named
literally or by ``bucket: <key>`` of ``r2_buckets``; and the buckets a project owns under
``r2_buckets:``, created or adopted by name (a bucket's name is its only id)."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.kinds.resource import ResourceKind
from deployer.manifest.rules import BUCKET_NAME, NAMESPACE_KEY

KIND = BindingKind(
    type="r2_bucket",
    description="An R2 bucket: the script reads and writes objects with `NAME.get(key)` / `NAME.put(key, value)`.",
    keys=(
        Key("bucket_name", "The bucket's name in the account. Give this or `bucket`, not both.", rule=BUCKET_NAME),
        Key("jurisdiction", "Where the bucket's data is kept, when not the default.", required=False,
            enum=("eu", "fedramp", "fedramp-high")),
    ),
    reference=Reference("bucket", "r2_buckets", "bucket_name",
                        "The key of a bucket declared under r2_buckets; its name is resolved at apply. Give this "
                        "or `bucket_name`, not both.", rule=NAMESPACE_KEY),
)

RESOURCE = ResourceKind(
    type="r2_bucket",
    section="r2_buckets",
    plural="buckets",
    description="R2 buckets this project owns, by key. Each is created by name when missing (needs account_id); "
                "bindings refer to it with `bucket: <key>`.",
    item_description="An R2 bucket owned by this project, found (or created) by its name.",
    name_key="name",
    name_description="The bucket's name in the Cloudflare account (3 to 63 lowercase letters, digits and '-').",
    name_rule=BUCKET_NAME,
    plan_id_key="",
    plan_name_key="bucket_name",
    remote_id_key="name",
    reference="name",
    ensure="ensure_r2_bucket",
    list="list_r2_buckets",
)
