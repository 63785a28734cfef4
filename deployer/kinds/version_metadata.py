"""``version_metadata``: the id, tag and time of the running version, ``{type, name}``."""
from deployer.kinds.binding import BindingKind

KIND = BindingKind(
    type="version_metadata",
    description="The running version's metadata (`NAME.id`, `NAME.tag`, `NAME.timestamp`).",
)
