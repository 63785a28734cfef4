"""Salted, deliberately slow fingerprints of secret values, so the state can tell when a secret
changed without ever holding it (CONTRACT.md, "Plan output").

A fingerprint names its encoding and parameters: ``scrypt+sha256$n=2048,r=8,p=1$<salt b64>$<digest b64>``.
scrypt keys an HMAC with the password, and HMAC pads a short key with zero bytes, so ``"\x00"``
and ``""`` gave the same digest under the first encoding (``scrypt$...``, the raw UTF-8 bytes).
The current one feeds scrypt the SHA-256 of those bytes: always 32 bytes, so nothing is padded.
Fingerprints of the first encoding are still read (a state written before keeps working).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

# n=2048, r=8, p=1 costs about 3 ms here, so a plan with 100 secrets spends ~0.3 s on them:
# "well under a second" as the contract asks, yet each guess at a secret costs the same.
_N, _R, _P = 2048, 8, 1
_SALT_BYTES = 16
_DIGEST_BYTES = 32

_SCHEME = "scrypt+sha256"
_LEGACY_SCHEME = "scrypt"  # the raw UTF-8 bytes as scrypt's password (see the module docstring)

# Bounds for parameters read back from a state or plan file (possibly hand-edited or hostile),
# so a fingerprint cannot make a check allocate much or run long: scrypt needs about 128*n*r
# bytes and time in proportion to n*r*p. Four times our own cost is still ~10 ms a check.
_MAX_MEMORY = 16 * 1024 * 1024
_MAX_COST = 4 * _N * _R * _P
_MAX_FIELD_BYTES = 128  # base64 of the salt or digest: 96 bytes, more than anyone needs


def fingerprint_secret(value: str, *, salt: bytes | None = None) -> str:
    """Fingerprint ``value`` with a fresh random 16-byte salt (or ``salt``).

    The result holds the parameters, the salt and the digest, never the value itself.
    """
    if salt is None:
        salt = os.urandom(_SALT_BYTES)
    if not salt:
        raise ValueError("a fingerprint salt must not be empty")
    digest = _scrypt(_password(value), salt, _N, _R, _P, _DIGEST_BYTES)
    return f"{_SCHEME}$n={_N},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def secret_matches(value: str, fingerprint: str) -> bool:
    """Whether ``value`` is the secret behind ``fingerprint``.

    Recomputes with the parameters and salt stored in the fingerprint, so they can change in a
    later release. A malformed fingerprint never raises: it returns False, so the planner sees
    the secret as changed and uploads it again.
    """
    parsed = _parse(fingerprint)
    if parsed is None:
        return False
    scheme, n, r, p, salt, expected = parsed
    if scheme == _SCHEME:
        password = _password(value)
    elif "\x00" in value:
        # The first encoding cannot tell trailing NULs apart: call it changed, so the secret is
        # uploaded again and recorded with the current encoding.
        return False
    else:
        password = _utf8(value)
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def _utf8(value: str) -> bytes:
    # surrogatepass: a value read from the environment may carry undecodable bytes as
    # surrogates; they must still fingerprint the same way every time instead of raising.
    return value.encode("utf-8", "surrogatepass")


def _password(value: str) -> bytes:
    return hashlib.sha256(_utf8(value)).digest()


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAX_MEMORY + 1024 * 1024)


def _parse(fingerprint: object) -> tuple[str, int, int, int, bytes, bytes] | None:
    if not isinstance(fingerprint, str) or len(fingerprint) > 4 * _MAX_FIELD_BYTES:
        return None
    parts = fingerprint.split("$")
    if len(parts) != 4 or parts[0] not in (_SCHEME, _LEGACY_SCHEME):
        return None
    params = _parse_params(parts[1])
    salt = _unb64(parts[2])
    digest = _unb64(parts[3])
    if params is None or salt is None or digest is None or len(digest) < 16:
        return None
    n, r, p = params
    return parts[0], n, r, p, salt, digest


def _parse_params(text: str) -> tuple[int, int, int] | None:
    values: dict[str, int] = {}
    for item in text.split(","):
        key, sep, number = item.partition("=")
        if not sep or key in values or not (number.isascii() and number.isdigit()) or len(number) > 10:
            return None
        values[key] = int(number)
    if set(values) != {"n", "r", "p"}:
        return None
    n, r, p = values["n"], values["r"], values["p"]
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r > _MAX_MEMORY or n * r * p > _MAX_COST:
        return None
    return n, r, p


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text or len(text) > _MAX_FIELD_BYTES:
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
