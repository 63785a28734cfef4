"""The retrying transport every Cloudflare product module uses: one ``requests`` session per
client, auth, the shared request budget and 429 pause, retries with backoff for 429 (by the
wait budget), 5xx and dropped connections, and every failure as a ``CloudflareApiError`` whose
text is scrubbed of secrets (reference §4.3, §4.4).
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from deployer import __version__
from deployer.cloudflare.credentials import (
    Credentials,
    CredentialsAuth,
    credentials_from_env,
)
from deployer.cloudflare.envelope import (
    HINTS,
    already_gone,
    decode,
    describe_non_json,
    malformed,
    result_items,
    result_object,
    retry_after_seconds,
    segment,
)
from deployer.errors import CloudflareApiError, DeployerError
from deployer.models import Secret
from deployer.redact import scrub

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

log = logging.getLogger("deployer.cloudflare")

_BACKOFF_CAP = 30.0
_ANNOUNCE_WAIT = 1.0  # budget waits at least this long are announced (shorter ones are pacing)

__all__ = ["DEFAULT_BASE_URL", "Attempts", "Transport", "already_gone", "malformed", "result_items", "result_object", "segment"]


class Attempts:
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


class Transport:
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
        self._auth = CredentialsAuth(credentials)
        self._timeout = timeout
        self._pool_size = pool_size
        self._max_retry_wait = max_retry_wait
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._session = requests.Session()
        # requests would read the proxy and CA bundle variables again on every request (scanning the
        # whole environment twice: ~0.2 ms each); read them once for the one host this client uses.
        self._session.proxies.update(requests.utils.get_environ_proxies(self._base_url))
        self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._session.trust_env = False
        # pool_block: a request finding every connection taken waits for one to come back rather
        # than opening one more, which the pool would then throw away (with a warning on stderr).
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0, pool_block=True)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = f"deployer/{__version__}"
        self._session.headers["Accept"] = "application/json"
        # Shared between threads, guarded by _lock: the 429 pause and what the budget counts.
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)  # a request counted by the budget ended
        self._not_before = float("-inf")
        self._rate_limit = rate_limit
        self._in_flight = 0  # requests started (or about to) and not answered yet
        self._leaving: deque[float] = deque()  # when each answered request leaves the window, oldest first
        self._announced_until = float("-inf")  # budget waits already announced, up to this time

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **kwargs: Any) -> tuple[Self, list[str]]:
        """Build a client from CLOUDFLARE_API_BASE_URL and the credential variables."""
        credentials, warnings = credentials_from_env(environ)
        base_url = (environ.get("CLOUDFLARE_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(credentials, base_url=base_url, **kwargs), warnings

    def close(self) -> None:
        self._session.close()

    def open_connections(self, count: int) -> None:
        """Start opening up to ``count`` more connections to the API (TCP, and TLS for https),
        each on a thread of its own, and return: what an apply's first uploads would otherwise
        each begin with, done while its checks read. A request needing a connection meanwhile
        waits for one (the pool blocks: never more than ``pool_size``). Best effort: a connection
        that cannot be opened now is opened (or its failure reported) by the request using it."""
        count = min(count, self._pool_size - 1)  # one is the checks' reads'
        if count < 1:
            return
        try:
            request = requests.Request("GET", self._base_url + "/").prepare()
            # The pool requests will use for this host (the same TLS settings), not a look-alike.
            pool = self._session.get_adapter(request.url or "").get_connection_with_tls_context(  # type: ignore[attr-defined]
                request, self._session.verify, proxies=self._session.proxies)
        except Exception:  # noqa: BLE001 - an older requests, or a test's mock adapter: nothing to open
            return
        connections = []
        for _ in range(count):  # all taken before any is given back: each is one of its own
            try:
                connections.append(pool._get_conn(timeout=0))
            except Exception:  # noqa: BLE001 - none free: the rest are in use already
                break
        for number, connection in enumerate(connections):
            threading.Thread(target=_connect, args=(pool, connection, self._timeout[0]),
                             name=f"deployer-connect-{number}", daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        attempts: Attempts | None = None,
        raw: bool = False,
        bearer: Secret | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send one API request with retries; returns the decoded envelope (maybe empty).

        429 is always retried (Cloudflare refused before doing anything); 5xx and lost
        answers only when ``idempotent``. Other statuses raise at once. ``kwargs`` are
        ``requests``' (``json``, ``params``, ``files``, ``headers``, ...).
        """
        prepared = self._prepare(method, path, bearer=bearer, **kwargs)
        return self._send(method, path, prepared, raw=raw, idempotent=idempotent, attempts=attempts)

    def _delete(self, path: str) -> None:
        """DELETE ``path``; what is already gone counts as deleted (a retried delete, or one
        made outside deployer)."""
        try:
            self._request("DELETE", path)
        except CloudflareApiError as exc:
            if not already_gone(exc):
                raise

    def _prepare(self, method: str, path: str, *, bearer: Secret | None = None,
                 **kwargs: Any) -> requests.PreparedRequest:
        """The request as it goes on the wire (URL, headers, auth, body), made once and sent
        as often as it is tried. With ``bearer`` it is authorised by that token instead of the
        credentials (an assets upload session's: reference §7.6), never by both."""
        auth = _Bearer(bearer) if bearer is not None else self._auth
        return self._session.prepare_request(requests.Request(method, self._base_url + path, auth=auth, **kwargs))

    def _send(self, method: str, path: str, prepared: requests.PreparedRequest, *, raw: bool = False,
              idempotent: bool = True, attempts: Attempts | None = None) -> dict[str, Any]:
        """``_request`` for a request already prepared (``_prepare``)."""
        attempts = attempts or Attempts(method, path, self._max_attempts, self._max_retry_wait)
        while True:
            try:
                with self._turn(attempts):
                    attempts.count += 1
                    return self._attempt(method, path, prepared, raw=raw)
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

    def _attempt(self, method: str, path: str, prepared: requests.PreparedRequest, *,
                 raw: bool = False) -> dict[str, Any]:
        """One try; with ``raw`` a success is ``{"content_type", "content"}`` (code, not JSON)."""
        try:
            # The session reads no environment (trust_env is off): its proxies and CA bundle are all.
            response = self._session.send(prepared, timeout=self._timeout, allow_redirects=False,
                                          proxies=self._session.proxies, verify=self._session.verify)
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = CloudflareApiError(method, path, None, detail=self._scrub(self._describe_failure(exc)))
            raise _Retryable(error, None) from None
        except requests.RequestException as exc:
            raise CloudflareApiError(method, path, None, detail=self._scrub(type(exc).__name__)) from None
        status = response.status_code
        if raw and 200 <= status < 300:
            return {"content_type": response.headers.get("Content-Type", ""), "content": response.content}
        envelope = decode(response)
        if 200 <= status < 300 and envelope is not None and envelope.get("success", True) is not False:
            return envelope
        if 200 <= status < 300 and envelope is None and not response.content.strip():
            return {}
        error = self._error(method, path, response, envelope)
        if status == 429 or status >= 500:
            raise _Retryable(error, retry_after_seconds(response) if status == 429 else None)
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
            notes.append(describe_non_json(response))
        if response.status_code in range(300, 400):
            notes.append(f"unexpected redirect to {scrub(response.headers.get('Location', '?'))}")
        codes = {code for code, _ in errors}
        notes += [hint for hint_codes, hint in HINTS if codes & hint_codes]
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

    def _pause(self, attempts: Attempts, delay: float, error: CloudflareApiError) -> None:
        """Sleep before a retry, or give up when the wait budget would be exceeded."""
        if delay > attempts.remaining:
            raise attempts.give_up(error)
        log.info("%s %s failed (%s); retrying in %.1f s", error.method, error.path,
                 f"HTTP {error.status}" if error.status else "no answer", delay)
        self._sleep(delay)
        attempts.waited += delay

    @contextlib.contextmanager
    def _turn(self, attempts: Attempts) -> Iterator[None]:
        """Wait for this attempt's turn (``_wait_for_turn``); once it is answered (or fails), it
        counts against the budget for one more window."""
        self._wait_for_turn(attempts)
        try:
            yield
        finally:
            self._end_turn(sent=True)

    def _end_turn(self, *, sent: bool) -> None:
        if self._rate_limit is None:
            return
        with self._lock:
            self._in_flight -= 1
            if sent:  # it may have reached Cloudflare
                self._leaving.append(self._clock() + self._rate_limit[1])
            self._answered.notify()

    def _wait_for_turn(self, attempts: Attempts) -> None:
        """Hold this thread until the shared pause is over and the request budget has room.

        At most ``limit`` requests count at any time, and a request counts from its start until
        ``window`` seconds after its answer. Cloudflare counts a request when it arrives, which is
        somewhere between the two, so no window of theirs can hold more than ``limit`` of ours
        whatever the network does (counting from our starts alone, one slow connection set up
        early let two requests a window apart arrive closer than that: a 429 for five minutes).
        It starts full: the first ``limit`` requests go at once, then each takes the place of
        the one that leaves first. The start is reserved under the lock and slept for outside
        it. Time spent in the pause counts against the retry budget; time throttled does not.
        """
        with self._lock:
            while True:
                now = self._clock()
                pause = max(0.0, self._not_before - now)
                _check_shared_pause(attempts, pause)
                start = now + pause
                throttled = False
                if self._rate_limit is None:
                    break
                limit, window = self._rate_limit
                while self._leaving and self._leaving[0] <= start:
                    self._leaving.popleft()
                if self._in_flight + len(self._leaving) < limit:
                    break
                if self._leaving:
                    start, throttled = max(start, self._leaving.popleft()), True
                    break
                self._answered.wait()  # every request the budget counts is still in flight
            if self._rate_limit is not None:
                self._in_flight += 1
            target = self._not_before
            if throttled and start - now >= _ANNOUNCE_WAIT and start > self._announced_until:
                # Once per stretch of waiting, not once per waiting thread.
                self._announced_until = start + _ANNOUNCE_WAIT
                log.info("request budget used up (%d requests per %.0f s, --rate-limit): waiting %.1f s",
                         limit, window, start - now)
        try:
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
        except BaseException:
            self._end_turn(sent=False)  # given up (or interrupted) before sending
            raise


# --- helpers -------------------------------------------------------------------------------


def _connect(pool: Any, connection: Any, timeout: float) -> None:
    """Connect ``connection`` (unless it is already) within ``timeout`` seconds and give it
    back to ``pool``: urllib3 has no public way to open a connection ahead of the request that
    will use it. (A request needing it meanwhile waits for it: never longer than the timeout.)"""
    try:
        if not getattr(connection, "is_connected", False):
            connection.timeout = timeout  # the pool's own default would wait for ever
            connection.connect()
    except Exception:  # noqa: BLE001 - the request that uses it connects again and reports it
        connection.close()
    finally:
        pool._put_conn(connection)


class _Bearer(AuthBase):
    """``Authorization: Bearer <token>`` alone: the API credentials' headers are not added."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token.value}"
        return request


def _check_shared_pause(attempts: Attempts, pause: float) -> None:
    if pause > attempts.remaining:
        error = CloudflareApiError(attempts.method, attempts.path, None,
                                   detail="another request was rate limited (HTTP 429)")
        raise attempts.give_up(error, f"Cloudflare asked every request to wait {pause:.0f} s, more "
                                      f"than the {attempts.remaining:.0f} s left of the retry budget")
