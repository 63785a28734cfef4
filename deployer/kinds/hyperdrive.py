"""``hyperdrive``: a Hyperdrive configuration, ``{type, name, id}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="hyperdrive",
    description="A Hyperdrive configuration: pooled access to a database (`NAME.connectionString`).",
    keys=(Key("id", "The Hyperdrive configuration's id."),),
)
