"""``secret_text``: a script secret, ``{type, name, text}``. Its value reaches only the upload
request; the state keeps a salted fingerprint, and removing it deletes the secret."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="secret_text",
    description="A secret value, normally ${VAR} from the environment; never stored or printed.",
    secret=Key("text", "The secret, normally ${VAR} from the environment; never stored or printed. Must not be "
                       "empty unless `allow_empty: true`.", quoted=True, empty_unless="allow_empty"),
    # CI systems set a secret that is not configured to "": uploading it would silently replace
    # the live secret, so an empty value has to be asked for.
    options=(Key("allow_empty", "true: an empty `text` is meant (otherwise it is a validation error).",
                 kind="boolean", required=False),),
)
