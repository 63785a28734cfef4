"""``mtls_certificate``: a client certificate for mTLS, ``{type, name, certificate_id}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="mtls_certificate",
    description="An mTLS client certificate the script presents with `NAME.fetch(request)`.",
    keys=(Key("certificate_id", "The certificate's id (uploaded to the account's mTLS certificates)."),),
)
