"""Keeps secret values and credentials out of everything deployer shows.

Every secret is registered as it is read: a ``Secret`` (manifest secrets, the API token and
key) registers itself, the PostgreSQL URL's password is registered when the URL is parsed.
``scrub`` is applied wherever outside text becomes a message or a log line (Cloudflare's
answers, connection errors, database errors, the ``--debug`` traceback): it replaces each
registered value in the forms a server may echo it (raw, JSON-escaped, URL-encoded) and the
user:password part of any URL.
"""
from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "********"

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None

# scheme://user:password@ (a password may hold an unencoded '/', '?' or '#'; a host never an '@')
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]*(?::[^\s@]*)?@")


def register(value: str) -> None:
    """Never show ``value`` (nor its escaped or encoded forms) in anything ``scrub`` cleans."""
    if not value:
        return
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    global _pattern
    with _lock:
        fresh = forms - _values
        if fresh:
            _values.update(fresh)
            _pattern = None


def scrub(text: str) -> str:
    """``text`` with every registered value and every URL's user:password masked."""
    global _pattern
    text = _URL_USERINFO.sub(lambda match: f"{match.group(1)}{MASK}@", text)
    with _lock:
        if not _values:
            return text
        if _pattern is None:
            # Longest first, so a value that contains another is masked whole.
            ordered = sorted((v for v in _values if v), key=len, reverse=True)
            _pattern = re.compile("|".join(map(re.escape, ordered)))
        pattern = _pattern
    return pattern.sub(MASK, text)
