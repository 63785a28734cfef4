"""``browser``: Browser Rendering, ``{type, name}``."""
from deployer.kinds.binding import BindingKind

KIND = BindingKind(
    type="browser",
    description="Browser Rendering: a headless browser the script drives (for example with Puppeteer).",
)
