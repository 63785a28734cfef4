"""Every kind of Cloudflare object deployer manages, one module each (see ``registry``)."""
