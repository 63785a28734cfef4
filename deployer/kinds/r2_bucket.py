"""``r2_bucket``: an R2 bucket, ``{type, name, bucket_name}`` (+ ``jurisdiction``)."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="r2_bucket",
    description="An R2 bucket: the script reads and writes objects with `NAME.get(key)` / `NAME.put(key, value)`.",
    keys=(
        Key("bucket_name", "The bucket's name in the account."),
        Key("jurisdiction", "Where the bucket's data is kept, when not the default.", required=False,
            enum=("eu", "fedramp")),
    ),
)
