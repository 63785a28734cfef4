"""``send_email``: Email Routing's outbound mail, ``{type, name}`` with optional
``destination_address`` or ``allowed_destination_addresses``, and ``allowed_sender_addresses``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="send_email",
    description="Outbound email through Email Routing: the script sends with `NAME.send(message)`.",
    keys=(
        Key("destination_address", "The one verified address the script may send to.", required=False),
        Key("allowed_destination_addresses", "The verified addresses the script may send to.", kind="strings",
            required=False),
        Key("allowed_sender_addresses", "The addresses the script may send from.", kind="strings", required=False),
    ),
)
