"""``service``: another Worker the script calls, ``{type, name, service}`` (+ ``entrypoint``,
``environment``), named literally or by ``script: <key>`` of this manifest's scripts (its name
in the environment; that script is uploaded first)."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.manifest.rules import SCRIPT_NAME

KIND = BindingKind(
    type="service",
    description="Another Worker, called with `NAME.fetch(request)` or RPC.",
    keys=(
        Key("service", "The name of a Worker that exists in the account. Give this or `script`, not both.",
            rule=SCRIPT_NAME),
        Key("entrypoint", "A named entrypoint (an exported WorkerEntrypoint class) of that Worker.", required=False),
        Key("environment", "The Worker's environment (Cloudflare's legacy service environments).", required=False),
    ),
    reference=Reference("script", "scripts", "service",
                        "A script of this manifest (its key under scripts); it is uploaded first. Give this or "
                        "`service`, not both.", rule=SCRIPT_NAME),
)
