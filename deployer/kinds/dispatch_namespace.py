"""``dispatch_namespace``: a Workers for Platforms dispatch namespace, ``{type, name,
namespace}`` (+ ``outbound``). Here ``namespace`` is Cloudflare's field (the dispatch
namespace's name), not a reference to ``kv_namespaces``."""
from deployer.kinds.binding import BindingKind, Key

_OUTBOUND = {
    "type": "object",
    "additionalProperties": False,
    "required": ["worker"],
    "properties": {
        "worker": {
            "description": "The outbound Worker.",
            "type": "object",
            "additionalProperties": False,
            "required": ["service"],
            "properties": {
                "service": {"description": "Its name.", "type": "string", "minLength": 1},
                "environment": {"description": "Its environment.", "type": "string", "minLength": 1},
            },
        },
        "params": {
            "description": "Parameters the dispatching Worker passes to it.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"description": "The parameter's name.", "type": "string", "minLength": 1}},
            },
        },
    },
}

KIND = BindingKind(
    type="dispatch_namespace",
    description="A Workers for Platforms dispatch namespace: the script calls its Workers with `NAME.get(name)`.",
    keys=(
        Key("namespace", "The dispatch namespace's name (Cloudflare's field, not a key of kv_namespaces)."),
        Key("outbound", "An outbound Worker that sees every request the namespace's Workers make: "
                        "{worker: {service, environment}, params: [{name}]}.", kind="object", required=False,
            shape=_OUTBOUND),
    ),
)
