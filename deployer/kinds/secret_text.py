"""``secret_text``: a script secret, ``{type, name, text}``. Its value reaches only the upload
request; the state keeps a salted fingerprint, and removing it deletes the secret."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="secret_text",
    description="A secret value, normally ${VAR} from the environment; never stored or printed.",
    secret=Key("text", "The secret, normally ${VAR} from the environment; never stored or printed.", quoted=True),
)
