"""Cloudflare credentials from the environment: an API token, or the legacy email + global
key pair (reference §5). Values are ``Secret``s: they reach only the request headers."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import requests
from requests.auth import AuthBase

from deployer.errors import CredentialsError
from deployer.models import Secret


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API token, or the legacy global key pair (email + key)."""

    token: Secret | None = None
    email: str | None = None
    api_key: Secret | None = None

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token.value}"}
        if self.email is not None and self.api_key is not None:
            return {"X-Auth-Email": self.email, "X-Auth-Key": self.api_key.value}
        raise CredentialsError("no Cloudflare credentials: set CLOUDFLARE_API_TOKEN")

    def secret_values(self) -> tuple[str, ...]:
        return tuple(s.value for s in (self.token, self.api_key) if s is not None and s.value)


def credentials_from_env(environ: Mapping[str, str]) -> tuple[Credentials, list[str]]:
    """Read credentials; the token wins over the key pair (with a warning). Empty = unset.

    Raises CredentialsError naming what to set when no usable credentials are present.
    """
    token, email, api_key = (
        _header_value(environ, name) for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY")
    )
    if token is not None:
        warnings = []
        if email is not None and api_key is not None:
            warnings.append(
                "CLOUDFLARE_API_TOKEN is set, so CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY were ignored"
            )
        return Credentials(token=Secret(token)), warnings
    if email is not None and api_key is not None:
        return Credentials(email=email, api_key=Secret(api_key)), []
    if email is not None:
        raise CredentialsError("CLOUDFLARE_EMAIL is set but CLOUDFLARE_API_KEY is not: set both, "
                               "or use CLOUDFLARE_API_TOKEN instead")
    if api_key is not None:
        raise CredentialsError("CLOUDFLARE_API_KEY is set but CLOUDFLARE_EMAIL is not: set both, "
                               "or use CLOUDFLARE_API_TOKEN instead")
    raise CredentialsError("no Cloudflare credentials: set CLOUDFLARE_API_TOKEN "
                           "(or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)")


def _header_value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable without surrounding whitespace (None when empty); it must fit in a header."""
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.isprintable() or any(ord(char) > 0xFF for char in value):
        raise CredentialsError(f"{name} contains characters that cannot be sent in an HTTP header "
                               "(a control character or a non-Latin-1 letter): check how it was copied")
    return value


class CredentialsAuth(AuthBase):
    """Adds the auth headers per request; as an explicit auth it also keeps ~/.netrc out."""

    def __init__(self, credentials: Credentials) -> None:
        self._headers = credentials.headers()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request
