"""``vectorize``: a Vectorize index, ``{type, name, index_name}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="vectorize",
    description="A Vectorize index the script queries with `NAME.query(vector)`.",
    keys=(Key("index_name", "The index's name."),),
)
