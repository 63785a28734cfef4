"""The one error family: every expected failure is a DeployerError whose message says what to fix.

Modules raise these; only cli.py renders them (``error: ...`` on stderr, exit code 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from deployer.redact import scrub


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem in a manifest, rendered ``file:line:col: json.path: message``.

    Field order makes diagnostics sort by file, then position.
    """

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DeployerError(Exception):
    """An expected failure; ``str()`` is the message shown to the user."""


class ManifestError(DeployerError):
    """The manifest is invalid; carries every diagnostic at once, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        count = len(self.diagnostics)
        head = f"{count} problem{'s' if count != 1 else ''} in the manifest"
        super().__init__("\n".join([head, *(str(d) for d in self.diagnostics)]))


class StateError(DeployerError):
    """The state file cannot be read, trusted or written."""


class LockHeldError(DeployerError):
    """Another live process holds the state lock."""


class StalePlanError(DeployerError):
    """A saved plan no longer matches the state, the script files or the secrets."""


class ApprovalRefused(DeployerError):
    """The user (or the lack of a terminal) did not approve an apply."""


class CredentialsError(DeployerError):
    """No usable Cloudflare credentials in the environment."""


class CloudflareApiError(DeployerError):
    """Cloudflare refused a request, or could not be reached.

    ``status`` is the HTTP status (None when no answer came); ``errors`` are Cloudflare's
    ``(code, message)`` pairs from the v4 envelope.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        errors: tuple[tuple[int, str], ...] = (),
        detail: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        # Cloudflare's messages may echo a request body or a URL with credentials: scrubbed here,
        # whoever builds the error (deployer.redact). ``detail`` is in our words, with any text
        # from the answer scrubbed where the client quotes it.
        self.errors = tuple((code, scrub(message)) for code, message in errors)
        self.detail = detail
        super().__init__(self._message())

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(code for code, _ in self.errors)

    def _message(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        parts = [f"Cloudflare API {self.method} {self.path} failed ({status})"]
        parts += [f"{message} [code: {code}]" for code, message in self.errors]
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts[:1]) + ("" if len(parts) == 1 else ": " + "; ".join(parts[1:]))
