"""``plain_text``: a string the script reads as a global, ``{type, name, text}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="plain_text",
    description="A plain text value (not secret: it is stored in the state and shown in plans).",
    keys=(Key("text", "The text.", quoted=True),),
)
