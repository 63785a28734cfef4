"""``secrets_store_secret``: a secret of a Secrets Store, ``{type, name, store_id,
secret_name}``. Only the store and the secret's name are sent; its value stays in the store."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="secrets_store_secret",
    description="A Secrets Store secret the script reads with `await NAME.get()` (its value never passes here).",
    keys=(
        Key("store_id", "The Secrets Store's id."),
        Key("secret_name", "The secret's name in that store."),
    ),
)
