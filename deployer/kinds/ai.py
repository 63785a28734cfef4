"""``ai``: Workers AI, ``{type, name}``."""
from deployer.kinds.binding import BindingKind

KIND = BindingKind(
    type="ai",
    description="Workers AI: the script runs models with `NAME.run(model, inputs)`.",
)
