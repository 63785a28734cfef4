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

# scheme://user:password@, up to the last "@" of the URL: a password may hold an unencoded "/",
# "?", "#" or "@" (masking a little more of an odd URL is the safe mistake)
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@:]*(?::\S*)?@")


def register(value: str) -> None:
    """Never show ``value`` (nor its escaped or encoded forms) in anything ``scrub`` cleans."""
    if not value:
        return
    escaped = {value}
    for _ in range(2):  # a JSON body may be quoted again inside a JSON error message
        escaped |= {json.dumps(form, ensure_ascii=ascii_only)[1:-1] for form in escaped for ascii_only in (True, False)}
    # A server may repeat a JSON body inside a URL (a redirect), so JSON forms are URL-encoded too.
    forms = escaped | {encode(form) for form in escaped for encode in (_quote_all, quote, quote_plus)}
    global _pattern
    with _lock:
        fresh = forms - _values
        if fresh:
            _values.update(fresh)
            _pattern = None


def _quote_all(text: str) -> str:
    return quote(text, safe="")


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
