"""``durable_object_namespace``: a Durable Object class, ``{type, name, class_name}`` (+
``script_name``, ``environment``). Without ``script_name``/``script:`` the class is the
script's own; ``script: <key>`` names a script of this manifest, uploaded first."""
from deployer.kinds.binding import BindingKind, Key, Reference
from deployer.manifest.rules import CLASS_NAME, SCRIPT_NAME

KIND = BindingKind(
    type="durable_object_namespace",
    description="A Durable Object namespace: the script gets objects with `NAME.get(NAME.idFromName(name))`.",
    keys=(
        Key("class_name", "The Durable Object class.", rule=CLASS_NAME),
        Key("script_name", "The Worker that defines the class, when it is not this script. Give this or `script`, "
                           "not both.", required=False, rule=SCRIPT_NAME),
        Key("environment", "The environment of that Worker (Cloudflare's legacy service environments).",
            required=False),
    ),
    reference=Reference("script", "scripts", "script_name",
                        "A script of this manifest that defines the class (its key under scripts); it is uploaded "
                        "first. Give this or `script_name`, not both.", rule=SCRIPT_NAME, optional=True),
)
