"""The Cloudflare v4 API client: URLs, auth headers, the multipart upload, retries and the
shared request budget. Every failure becomes a ``CloudflareApiError`` naming the request,
the HTTP status and Cloudflare's codes; no secret ever reaches a message or a log.

Reference: shared/reference/cloudflare-api.md (envelope §4.1, codes §4.2, rate limits §4.3).
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from deployer import __version__
from deployer.errors import CloudflareApiError, CredentialsError, DeployerError
from deployer.models import Secret
from deployer.apply.upload import UploadPart
from deployer.redact import scrub

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

log = logging.getLogger(__name__)

_KV_PAGE_SIZE = 100
_BACKOFF_CAP = 30.0
_ANNOUNCE_WAIT = 1.0  # budget waits at least this long are announced (shorter ones are pacing)
_NAMESPACE_EXISTS = 10014  # KV: "a namespace with this account ID and title already exists"
_SCRIPT_NOT_FOUND = 10007
_ROUTING_CODES = frozenset({7000, 7003})  # malformed account/zone id: never "already gone"

_HINTS: tuple[tuple[frozenset[int], str], ...] = (
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


class _CredentialsAuth(AuthBase):
    """Adds the auth headers per request; as an explicit auth it also keeps ~/.netrc out."""

    def __init__(self, credentials: Credentials) -> None:
        self._headers = credentials.headers()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request


class _Attempts:
    """One logical request's retry budget: attempts made and seconds spent waiting."""

    def __init__(self, method: str, path: str, max_attempts: int, max_wait: float) -> None:
        self.method, self.path = method, path
        self.max_attempts, self.max_wait = max_attempts, max_wait
        self.count = 0
        self.waited = 0.0

    @property
    def remaining(self) -> float:
        return self.max_wait - self.waited

    def give_up(self, failure: CloudflareApiError, why: str = "") -> CloudflareApiError:
        tries = f"{self.count} attempt{'s' if self.count != 1 else ''}"
        summary = f"gave up after {tries}, {self.waited:.1f} s of waiting in total"
        detail = "; ".join(part for part in (failure.detail, why, summary) if part)
        return CloudflareApiError(failure.method, failure.path, failure.status, failure.errors, detail)


class _Retryable(Exception):
    """Internal: the attempt failed in a way worth retrying (429, 5xx, no answer)."""

    def __init__(self, error: CloudflareApiError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class CloudflareClient:
    """A thread-safe client shared by up to ``pool_size`` worker threads.

    Requests made through one client share a request budget (``rate_limit`` requests per
    window, Cloudflare's 1200 per 300 s by default) and a pause: a 429 with ``Retry-After``
    seen by any thread holds every thread until then.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        pool_size: int = 4,
        timeout: tuple[float, float] = (10.0, 120.0),
        max_retry_wait: float = 300.0,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: tuple[int, float] | None = (1200, 300.0),
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DeployerError(f"the Cloudflare API base URL (CLOUDFLARE_API_BASE_URL) must start with "
                                f"https:// or http://, got {scrub(repr(base_url))}")
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._auth = _CredentialsAuth(credentials)
        self._timeout = timeout
        self._max_retry_wait = max_retry_wait
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = f"deployer/{__version__}"
        self._session.headers["Accept"] = "application/json"
        # Shared between threads, guarded by _lock: the 429 pause and the recent start times.
        self._lock = threading.Lock()
        self._not_before = float("-inf")
        self._rate_limit = rate_limit
        self._starts: deque[float] = deque()
        self._announced_until = float("-inf")  # budget waits already announced, up to this time

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **kwargs: Any) -> tuple[CloudflareClient, list[str]]:
        """Build a client from CLOUDFLARE_API_BASE_URL and the credential variables."""
        credentials, warnings = credentials_from_env(environ)
        base_url = (environ.get("CLOUDFLARE_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(credentials, base_url=base_url, **kwargs), warnings

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CloudflareClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- KV namespaces -----------------------------------------------------------------

    def list_kv_namespaces(self, account_id: str) -> list[dict[str, Any]]:
        """Every namespace of the account, following pages until a short or empty page."""
        path = f"/accounts/{_seg(account_id)}/storage/kv/namespaces"
        namespaces: list[dict[str, Any]] = []
        seen: set[str] = set()
        page = 1
        while True:
            body = self._request("GET", path, params={"page": page, "per_page": _KV_PAGE_SIZE})
            items = _items(body, "GET", path, ("id", "title"))
            fresh = [item for item in items if item["id"] not in seen]
            namespaces += fresh
            seen.update(item["id"] for item in fresh)
            total = (body.get("result_info") or {}).get("total_count")
            if len(items) < _KV_PAGE_SIZE or not fresh or (
                isinstance(total, int) and page * _KV_PAGE_SIZE >= total
            ):
                return namespaces
            page += 1

    def ensure_kv_namespace(self, account_id: str, title: str) -> tuple[dict[str, Any], bool]:
        """Create the namespace ``title``, or adopt the existing one; returns (namespace, adopted).

        ``adopted`` is True when Cloudflare reported the title as taken (code 10014). The
        create POST is not idempotent, so after a lost answer or a 5xx the namespaces are
        listed first and the POST is repeated only when the title is still absent.
        """
        path = f"/accounts/{_seg(account_id)}/storage/kv/namespaces"
        attempts = _Attempts("POST", path, self._max_attempts, self._max_retry_wait)
        while True:
            try:
                body = self._request("POST", path, json={"title": title}, idempotent=False, attempts=attempts)
                return _object(body, "POST", path, ("id",)), False
            except CloudflareApiError as exc:
                if _NAMESPACE_EXISTS in exc.codes:
                    existing = self._find_namespace(account_id, title)
                    if existing is None:
                        raise
                    return existing, True
                if exc.status is not None and exc.status < 500:
                    raise
                # The create may have happened even though no answer said so.
                if attempts.count >= attempts.max_attempts:
                    raise attempts.give_up(exc) from None
                self._pause(attempts, self._backoff(attempts.count), exc)
                existing = self._find_namespace(account_id, title)
                if existing is not None:
                    return existing, False

    def rename_kv_namespace(self, account_id: str, namespace_id: str, title: str) -> None:
        """Give a namespace a new title (PUT is idempotent, so it is retried like an upload)."""
        path = f"/accounts/{_seg(account_id)}/storage/kv/namespaces/{_seg(namespace_id)}"
        self._request("PUT", path, json={"title": title})

    def _find_namespace(self, account_id: str, title: str) -> dict[str, Any] | None:
        return next((ns for ns in self.list_kv_namespaces(account_id) if ns.get("title") == title), None)

    # --- scripts -----------------------------------------------------------------------

    def upload_script(
        self,
        name: str,
        metadata: dict[str, Any],
        content: bytes | Sequence[UploadPart],
        *,
        account_id: str | None = None,
        zone_id: str | None = None,
    ) -> dict[str, Any]:
        """Upload one script as multipart/form-data; returns the envelope result.

        ``content`` as bytes is a service-worker script, sent byte for byte as the part
        ``script``; otherwise every part is sent under its name (as name and filename).
        """
        files: list[tuple[str, tuple[str | None, str | bytes, str]]] = [
            ("metadata", (None, json.dumps(metadata), "application/json"))
        ]
        if isinstance(content, bytes):
            files.append(("script", ("script.js", content, "application/javascript")))
        else:
            files += [(part.name, (part.name, part.data, part.content_type)) for part in content]
        path = self._script_path(name, account_id, zone_id)
        body = self._request("PUT", path, files=files)
        return _object(body, "PUT", path, (), optional=True)

    def delete_script(self, name: str, *, account_id: str | None = None, zone_id: str | None = None) -> None:
        """Delete a script; a script that is already gone counts as deleted."""
        try:
            self._request("DELETE", self._script_path(name, account_id, zone_id))
        except CloudflareApiError as exc:
            if not _already_gone(exc):
                raise

    def delete_secret(self, account_id: str, script_name: str, secret_name: str) -> None:
        """Delete one secret of a script; a missing secret (or script) counts as deleted."""
        path = f"/accounts/{_seg(account_id)}/workers/scripts/{_seg(script_name)}/secrets/{_seg(secret_name)}"
        try:
            self._request("DELETE", path)
        except CloudflareApiError as exc:
            if not _already_gone(exc):
                raise

    def get_script_settings(self, account_id: str, name: str) -> dict[str, Any]:
        """A script's settings: ``bindings`` (secret_text without its text), compatibility, ..."""
        path = f"/accounts/{_seg(account_id)}/workers/scripts/{_seg(name)}/settings"
        result = _object(self._request("GET", path), "GET", path, ())
        if not isinstance(result.get("bindings", []), list):
            raise _malformed("GET", path, "its result's bindings are not a list")
        return result

    def download_script(self, account_id: str, name: str) -> tuple[str, bytes]:
        """A script's code as ``(content type, bytes)``: a service worker's bytes, or
        ``multipart/form-data`` holding every module (reference §2.3)."""
        path = f"/accounts/{_seg(account_id)}/workers/scripts/{_seg(name)}/content/v2"
        body = self._request("GET", path, raw=True, headers={"Accept": "*/*"})
        return str(body.get("content_type", "")), bytes(body.get("content", b""))

    def list_scripts(self, account_id: str) -> list[dict[str, Any]]:
        """Every script of the account (``id``, ``etag``, ``modified_on``, ...); one page."""
        path = f"/accounts/{_seg(account_id)}/workers/scripts"
        return _items(self._request("GET", path), "GET", path, ("id",))

    def zone_script_exists(self, zone_id: str) -> bool:
        """Whether the zone already runs a script (legacy single-script API, which has no list):
        ``GET /zones/{zone_id}/workers/script`` answers with its code, or 404 when there is none."""
        try:
            self._request("GET", f"/zones/{_seg(zone_id)}/workers/script", raw=True, headers={"Accept": "*/*"})
        except CloudflareApiError as exc:
            if _already_gone(exc):
                return False
            raise
        return True

    @staticmethod
    def _script_path(name: str, account_id: str | None, zone_id: str | None) -> str:
        if (account_id is None) == (zone_id is None):
            raise ValueError("pass exactly one of account_id and zone_id")
        if account_id is not None:
            return f"/accounts/{_seg(account_id)}/workers/scripts/{_seg(name)}"
        return f"/zones/{_seg(zone_id or '')}/workers/script"

    # --- the request loop --------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        attempts: _Attempts | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send one API request with retries; returns the decoded envelope (maybe empty).

        429 is always retried (Cloudflare refused before doing anything); 5xx and lost
        answers only when ``idempotent``. Other statuses raise at once.
        """
        attempts = attempts or _Attempts(method, path, self._max_attempts, self._max_retry_wait)
        while True:
            self._wait_for_turn(attempts)
            attempts.count += 1
            try:
                return self._attempt(method, path, **kwargs)
            except _Retryable as failure:
                error = failure.error
                retry_after = failure.retry_after
                if retry_after is not None and retry_after > 0:
                    # Every thread of this client holds off until then (see _wait_for_turn).
                    with self._lock:
                        self._not_before = max(self._not_before, self._clock() + retry_after)
                if error.status != 429 and not idempotent:
                    raise error from None
                if error.status != 429 and attempts.count >= attempts.max_attempts:
                    raise attempts.give_up(error) from None
                # A 429 was refused before anything was done, and Cloudflare may keep refusing for
                # minutes: only the wait budget (--max-retry-wait) ends its retries. One without a
                # positive Retry-After backs off, so that a storm of them spends the budget too.
                if retry_after is None or retry_after <= 0:
                    self._pause(attempts, self._backoff(attempts.count), error)
                elif retry_after > attempts.remaining:
                    raise attempts.give_up(
                        error, f"Cloudflare asked to wait {retry_after:.0f} s, more than "
                        f"the {attempts.remaining:.0f} s left of the {self._max_retry_wait:.0f} s retry budget"
                    ) from None
                else:
                    log.info("%s %s was rate limited (HTTP 429); waiting %.1f s as Retry-After asks", method, path,
                             retry_after)

    def _attempt(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> dict[str, Any]:
        """One try; with ``raw`` a success is ``{"content_type", "content"}`` (code, not JSON)."""
        try:
            response = self._session.request(
                method, self._base_url + path, auth=self._auth, timeout=self._timeout,
                allow_redirects=False, **kwargs,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = CloudflareApiError(method, path, None, detail=self._scrub(self._describe_failure(exc)))
            raise _Retryable(error, None) from None
        except requests.RequestException as exc:
            raise CloudflareApiError(method, path, None, detail=self._scrub(type(exc).__name__)) from None
        status = response.status_code
        if raw and 200 <= status < 300:
            return {"content_type": response.headers.get("Content-Type", ""), "content": response.content}
        envelope = _decode(response)
        if 200 <= status < 300 and envelope is not None and envelope.get("success", True) is not False:
            return envelope
        if 200 <= status < 300 and envelope is None and not response.content.strip():
            return {}
        error = self._error(method, path, response, envelope)
        if status == 429 or status >= 500:
            raise _Retryable(error, _retry_after(response) if status == 429 else None)
        raise error

    def _error(
        self, method: str, path: str, response: requests.Response, envelope: dict[str, Any] | None,
    ) -> CloudflareApiError:
        errors: list[tuple[int, str]] = []
        notes: list[str] = []
        if envelope is not None:
            items = envelope.get("errors")
            if not isinstance(items, list) and "error" in envelope:  # the {code, error} shape
                items = [{"code": envelope.get("code"), "message": envelope.get("error")}]
            for item in items if isinstance(items, list) else []:
                item = item if isinstance(item, dict) else {"message": item}
                message = str(item.get("message") or "").strip() or "(no message)"
                try:
                    errors.append((int(item["code"]), self._scrub(message)))
                except (KeyError, TypeError, ValueError):
                    notes.append(self._scrub(message))
            if not errors and not notes:
                notes.append("no error details in the answer")
        else:
            notes.append(_describe_non_json(response))
        if response.status_code in range(300, 400):
            notes.append(f"unexpected redirect to {scrub(response.headers.get('Location', '?'))}")
        codes = {code for code, _ in errors}
        notes += [hint for hint_codes, hint in _HINTS if codes & hint_codes]
        return CloudflareApiError(method, path, response.status_code, tuple(errors), "; ".join(notes))

    def _describe_failure(self, exc: requests.RequestException) -> str:
        parts = urlsplit(self._base_url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)  # never user:password@
        if isinstance(exc, requests.ConnectTimeout):
            return f"could not connect to {host} within {self._timeout[0]:g} s"
        if isinstance(exc, requests.Timeout):
            return f"no answer from {host} within {self._timeout[1]:g} s"
        text = str(exc)
        if "NewConnectionError" in text or "Failed to establish" in text or "Name or service" in text:
            return f"could not connect to {host}"
        return f"the connection to {host} closed without an answer"

    def _scrub(self, text: str) -> str:
        return scrub(text)  # the credentials are Secrets, registered as they were read

    def _backoff(self, attempt: int) -> float:
        base = min(_BACKOFF_CAP, 2.0 ** (attempt - 1))
        return base + self._random.uniform(0.0, 1.0)

    def _pause(self, attempts: _Attempts, delay: float, error: CloudflareApiError) -> None:
        """Sleep before a retry, or give up when the wait budget would be exceeded."""
        if delay > attempts.remaining:
            raise attempts.give_up(error)
        log.info("%s %s failed (%s); retrying in %.1f s", error.method, error.path,
                 f"HTTP {error.status}" if error.status else "no answer", delay)
        self._sleep(delay)
        attempts.waited += delay

    def _wait_for_turn(self, attempts: _Attempts) -> None:
        """Hold this thread until the shared pause is over and the request budget has room.

        The budget is a sliding window: at most ``limit`` requests start within any
        ``window`` seconds (a bucket that starts full and refills at limit/window would let
        twice the limit through in the first window, and Cloudflare blocks for five minutes).
        Each request reserves its start time under the lock, then sleeps outside it. Time
        spent in the pause counts against the retry budget; time spent throttled does not.
        """
        with self._lock:
            now = self._clock()
            pause = max(0.0, self._not_before - now)
            _check_shared_pause(attempts, pause)
            start = now + pause
            throttled = False
            if self._rate_limit is not None:
                limit, window = self._rate_limit
                if len(self._starts) >= limit and self._starts[0] + window > start:
                    start, throttled = self._starts[0] + window, True
                self._starts.append(start)
                while len(self._starts) > limit:
                    self._starts.popleft()
            target = self._not_before
            if throttled and start - now >= _ANNOUNCE_WAIT and start > self._announced_until:
                # Once per stretch of waiting, not once per waiting thread.
                self._announced_until = start + _ANNOUNCE_WAIT
                log.info("request budget used up (%d requests per %.0f s, --rate-limit): waiting %.1f s",
                         limit, window, start - now)
        if start > now:
            self._sleep(start - now)
            attempts.waited += min(pause, start - now)
        # Another thread may have seen a 429 while this one slept: honour the newer pause too.
        while True:
            with self._lock:
                extra = self._not_before - max(target, start)
                target = self._not_before
            if extra <= 0:
                return
            _check_shared_pause(attempts, extra)
            self._sleep(extra)
            attempts.waited += extra


# --- helpers -------------------------------------------------------------------------------


def _check_shared_pause(attempts: _Attempts, pause: float) -> None:
    if pause > attempts.remaining:
        error = CloudflareApiError(attempts.method, attempts.path, None,
                                   detail="another request was rate limited (HTTP 429)")
        raise attempts.give_up(error, f"Cloudflare asked every request to wait {pause:.0f} s, more "
                                      f"than the {attempts.remaining:.0f} s left of the retry budget")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _already_gone(exc: CloudflareApiError) -> bool:
    if _SCRIPT_NOT_FOUND in exc.codes:
        return True
    return exc.status == 404 and not _ROUTING_CODES.intersection(exc.codes)


def _malformed(method: str, path: str, what: str) -> CloudflareApiError:
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


def _items(body: dict[str, Any], method: str, path: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The envelope's ``result`` as a list of objects that each carry ``keys`` as strings
    (a missing or null result is an empty list); CloudflareApiError naming the request otherwise."""
    result = body.get("result")
    if result is None:
        return []
    if not isinstance(result, list):
        raise _malformed(method, path, f"its result is {_kind(result)} where a list was expected")
    for index, item in enumerate(result):
        if not isinstance(item, dict) or not _has(item, keys):
            wanted = " and ".join(repr(key) for key in keys)
            raise _malformed(method, path, f"item {index} of its result is not an object with {wanted}")
    return result


def _object(body: dict[str, Any], method: str, path: str, keys: tuple[str, ...], *,
            optional: bool = False) -> dict[str, Any]:
    """The envelope's ``result`` as an object carrying ``keys`` as strings (with ``optional``,
    a missing or null result is an empty object); CloudflareApiError naming the request otherwise."""
    result = body.get("result")
    if result is None and optional:
        return {}
    if not isinstance(result, dict):
        raise _malformed(method, path, f"its result is {_kind(result)} where an object was expected")
    if not _has(result, keys):
        wanted = " and ".join(repr(key) for key in keys)
        raise _malformed(method, path, f"its result has no {wanted}")
    return result


def _decode(response: requests.Response) -> dict[str, Any] | None:
    """The JSON envelope, or None when the body is not a JSON object."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _describe_non_json(response: requests.Response) -> str:
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


def _retry_after(response: requests.Response) -> float | None:
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
    now = datetime.now(timezone.utc)
    if response.headers.get("Date"):
        try:
            now = email.utils.parsedate_to_datetime(response.headers["Date"])
        except (TypeError, ValueError):
            pass
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
