"""Secret fingerprints: they recognise the same value, tell a changed one apart, and never hold it.

Correctness only; what they cost is measured in benchmarks, not asserted here.
"""
from __future__ import annotations

import base64
import hashlib
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.fingerprint import fingerprint_secret, secret_matches

FORMAT = re.compile(r"scrypt\+sha256\$n=2048,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*")


def test_fingerprint_names_its_parameters_salt_and_digest() -> None:
    assert FORMAT.fullmatch(fingerprint_secret("hunter2"))


def test_same_value_matches_its_fingerprint() -> None:
    assert secret_matches("hunter2", fingerprint_secret("hunter2"))


def test_different_value_does_not_match() -> None:
    fingerprint = fingerprint_secret("hunter2")
    assert not secret_matches("hunter3", fingerprint)
    assert not secret_matches("", fingerprint)


def test_two_fingerprints_of_one_value_differ_by_their_salt() -> None:
    first, second = fingerprint_secret("hunter2"), fingerprint_secret("hunter2")
    assert first != second
    assert first.split("$")[2] != second.split("$")[2]
    assert secret_matches("hunter2", first) and secret_matches("hunter2", second)


def test_a_given_salt_makes_the_fingerprint_reproducible() -> None:
    salt = b"0123456789abcdef"
    assert fingerprint_secret("hunter2", salt=salt) == fingerprint_secret("hunter2", salt=salt)
    assert fingerprint_secret("hunter2", salt=salt).split("$")[2] == base64.b64encode(salt).decode()


def test_fingerprint_never_contains_the_value() -> None:
    value = "CANARY-s3cr3t-value-0123456789"
    fingerprint = fingerprint_secret(value)
    assert value not in fingerprint
    assert base64.b64encode(value.encode()).decode().rstrip("=") not in fingerprint
    assert value.encode().hex() not in fingerprint


def test_parameters_are_read_from_the_fingerprint_not_assumed() -> None:
    salt = b"another-salt-16b"
    password = hashlib.sha256(b"hunter2").digest()
    digest = hashlib.scrypt(password, salt=salt, n=16, r=1, p=1, dklen=24)
    fingerprint = f"scrypt+sha256$n=16,r=1,p=1${_b64(salt)}${_b64(digest)}"
    assert secret_matches("hunter2", fingerprint)
    assert not secret_matches("hunter3", fingerprint)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _legacy(value: str, salt: bytes = b"0123456789abcdef") -> str:
    """A fingerprint as deployer wrote it before the SHA-256 step (``scrypt$...``)."""
    digest = hashlib.scrypt(value.encode(), salt=salt, n=2048, r=8, p=1, dklen=32)
    return f"scrypt$n=2048,r=8,p=1${_b64(salt)}${_b64(digest)}"


@pytest.mark.parametrize("value, other", [("\x00", ""), ("", "\x00"), ("a", "a\x00\x00"),
                                          ("k" * 65, hashlib.sha256(b"k" * 65).digest().decode("latin-1"))])
def test_values_that_hmac_key_padding_confuses_have_different_fingerprints(value: str, other: str) -> None:
    fingerprint = fingerprint_secret(value)
    assert secret_matches(value, fingerprint)
    assert not secret_matches(other, fingerprint)


def test_a_fingerprint_of_the_first_encoding_is_still_read() -> None:
    old = _legacy("hunter2")
    assert secret_matches("hunter2", old)
    assert not secret_matches("hunter3", old)


def test_a_value_with_a_nul_against_a_first_encoding_fingerprint_counts_as_changed() -> None:
    # Under the first encoding "" and "\x00" share a digest: the safe answer is "changed".
    assert not secret_matches("\x00", _legacy(""))


@pytest.mark.parametrize("params", ["n=16384,r=8,p=1", "n=2048,r=8,p=16", "n=2048,r=64,p=1",
                                    "n=1048576,r=1,p=1", "n=2,r=1,p=99999999"])
def test_a_state_cannot_choose_a_costly_fingerprint(params: str) -> None:
    fingerprint = f"scrypt+sha256${params}${_SALT}${_DIGEST}"
    started = time.monotonic()
    assert not secret_matches("hunter2", fingerprint)
    assert time.monotonic() - started < 0.05  # refused before any work


def test_secret_with_undecodable_bytes_from_the_environment_still_fingerprints() -> None:
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert secret_matches(value, fingerprint_secret(value))


def test_empty_salt_is_refused() -> None:
    with pytest.raises(ValueError):
        fingerprint_secret("hunter2", salt=b"")


GOOD = fingerprint_secret("hunter2", salt=b"0123456789abcdef")
_, _PARAMS, _SALT, _DIGEST = GOOD.split("$")


@pytest.mark.parametrize(
    "fingerprint",
    [
        "",
        "hunter2",
        "scrypt",
        f"bcrypt${_PARAMS}${_SALT}${_DIGEST}",
        f"scrypt${_PARAMS}${_SALT}",
        f"scrypt${_PARAMS}${_SALT}${_DIGEST}$extra",
        f"scrypt$n=2048,r=8${_SALT}${_DIGEST}",
        f"scrypt$n=2048,r=8,p=1,q=2${_SALT}${_DIGEST}",
        f"scrypt$n=2048,n=2048,r=8${_SALT}${_DIGEST}",
        f"scrypt$n=2000,r=8,p=1${_SALT}${_DIGEST}",  # n must be a power of two
        f"scrypt$n=-2048,r=8,p=1${_SALT}${_DIGEST}",
        f"scrypt$n=²,r=8,p=1${_SALT}${_DIGEST}",
        f"scrypt$n=1073741824,r=8,p=1${_SALT}${_DIGEST}",  # would need gigabytes
        f"scrypt$n=2048,r=8,p=1000${_SALT}${_DIGEST}",
        f"scrypt${_PARAMS}$not base64!${_DIGEST}",
        f"scrypt${_PARAMS}$${_DIGEST}",
        f"scrypt${_PARAMS}${_SALT}$AAAA",  # digest too short to mean anything
        f"scrypt${_PARAMS}${_SALT}${'A' * 4 + _DIGEST[4:]}",  # tampered digest
        f"scrypt${_PARAMS}${_SALT}${'é' * 8}",
    ],
)
def test_malformed_fingerprint_is_a_mismatch_not_an_error(fingerprint: str) -> None:
    assert not secret_matches("hunter2", fingerprint)


@settings(max_examples=40, deadline=None)
@given(value=st.text(max_size=64), other=st.text(max_size=64))
def test_any_value_matches_only_its_own_fingerprint(value: str, other: str) -> None:
    fingerprint = fingerprint_secret(value)
    assert secret_matches(value, fingerprint)
    assert secret_matches(other, fingerprint) == (other == value)
