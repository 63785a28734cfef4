"""Cloudflare's v4 answers read defensively: the JSON envelope, its ``result`` checked for the
shape the API documents, error hints by code, ``Retry-After`` (reference §4.1, §4.2)."""
from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from deployer.errors import CloudflareApiError
from deployer.redact import scrub

SCRIPT_NOT_FOUND = 10007
ROUTING_CODES = frozenset({7000, 7003})  # malformed account/zone id: never "already gone"

HINTS: tuple[tuple[frozenset[int], str], ...] = (
    (
        frozenset({10000, 9106}),
        "authentication failed: check CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and "
        "CLOUDFLARE_API_KEY) and that the token has the permissions \"Workers Scripts Write\" "
        "and \"Workers KV Storage Write\" on this account",
    ),
    (
        frozenset({10042}),
        "a kv_namespace binding names a namespace_id that does not exist in this account: "
        "check namespace_id, or refer to a namespace declared in the manifest with namespace:",
    ),
    (
        frozenset({7003, 7000}),
        "Cloudflare could not route the request: check account_id / zone_id in the manifest "
        "(the 32-character hex id shown in the Cloudflare dashboard)",
    ),
)


def segment(value: str) -> str:
    return quote(value, safe="")


def already_gone(exc: CloudflareApiError) -> bool:
    if SCRIPT_NOT_FOUND in exc.codes:
        return True
    return exc.status == 404 and not ROUTING_CODES.intersection(exc.codes)


def malformed(method: str, path: str, what: str) -> CloudflareApiError:
    return CloudflareApiError(method, path, 200, detail=(
        f"Cloudflare answered with success, but {what}; nothing was recorded for this request "
        "(check CLOUDFLARE_API_BASE_URL points at the Cloudflare API, then retry)"))


def _kind(value: object) -> str:
    match value:
        case None:
            return "null"
        case dict():
            return "an object"
        case list():
            return "a list"
        case str():
            return "a string"
        case _:
            return type(value).__name__


def _has(item: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return all(isinstance(item.get(key), str) and item[key] for key in keys)


def result_items(body: dict[str, Any], method: str, path: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The envelope's ``result`` as a list of objects that each carry ``keys`` as strings
    (a missing or null result is an empty list); CloudflareApiError naming the request otherwise."""
    result = body.get("result")
    if result is None:
        return []
    if not isinstance(result, list):
        raise malformed(method, path, f"its result is {_kind(result)} where a list was expected")
    for index, item in enumerate(result):
        if not isinstance(item, dict) or not _has(item, keys):
            wanted = " and ".join(repr(key) for key in keys)
            raise malformed(method, path, f"item {index} of its result is not an object with {wanted}")
    return result


def result_object(body: dict[str, Any], method: str, path: str, keys: tuple[str, ...], *,
            optional: bool = False) -> dict[str, Any]:
    """The envelope's ``result`` as an object carrying ``keys`` as strings (with ``optional``,
    a missing or null result is an empty object); CloudflareApiError naming the request otherwise."""
    result = body.get("result")
    if result is None and optional:
        return {}
    if not isinstance(result, dict):
        raise malformed(method, path, f"its result is {_kind(result)} where an object was expected")
    if not _has(result, keys):
        wanted = " and ".join(repr(key) for key in keys)
        raise malformed(method, path, f"its result has no {wanted}")
    return result


def decode(response: requests.Response) -> dict[str, Any] | None:
    """The JSON envelope, or None when the body is not a JSON object."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def describe_non_json(response: requests.Response) -> str:
    kind = scrub(response.headers.get("Content-Type", "").split(";")[0].strip()) or "no content type"
    # Scrubbed before it is cut to size: a secret cut in half would no longer be recognised.
    text = scrub(response.content.decode("utf-8", "replace"))
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        summary = f"\"{' '.join(title.group(1).split())[:120]}\""
    elif text.strip() and not kind.startswith("text/html"):
        summary = f"\"{' '.join(text.split())[:120]}\""
    else:
        summary = "empty body" if not text.strip() else "an HTML page"
    parts = [f"Cloudflare answered with {kind} instead of JSON: {summary}"]
    if response.headers.get("cf-mitigated"):
        parts.append(f"blocked by a Cloudflare challenge (cf-mitigated: {scrub(response.headers['cf-mitigated'])[:80]})")
    if response.headers.get("cf-ray"):
        parts.append(f"cf-ray {scrub(response.headers['cf-ray'])[:80]}")
    return ", ".join(parts)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta seconds or an HTTP-date), else None.

    A date is measured against the answer's own ``Date`` header when present, so a skewed
    local clock does not matter.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = datetime.now(UTC)
    if response.headers.get("Date"):
        try:
            now = email.utils.parsedate_to_datetime(response.headers["Date"])
        except (TypeError, ValueError):
            pass
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
