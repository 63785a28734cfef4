"""``json``: any JSON value the script reads as a global, ``{type, name, json}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="json",
    description="A JSON value (not secret: it is stored in the state and shown in plans).",
    keys=(Key("json", "Any YAML value: a mapping, list, string, number, boolean or null, sent as JSON.",
              kind="json"),),
)
