"""Calls to the provider: a total deadline on each one, and cached fetches that stay contained
on a bad provider day (one fetch at a time, failures remembered, the last good answer kept)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests.utils import default_user_agent
from urllib3.exceptions import HTTPError, ReadTimeoutError
from urllib3.util import Timeout

from . import clock

if TYPE_CHECKING:
    from .config import Settings

T = TypeVar("T")


def _version() -> str:
    try:
        return version("Flask-OIDC-Refresh")
    except PackageNotFoundError:  # a copy that was not installed
        return "unknown"


#: How long a failed fetch is remembered: meanwhile, callers get its error (or the last good
#: answer) at once instead of another wait.
FAILURE_MEMORY_SECONDS = 10.0
#: Sent with every call to the provider.
USER_AGENT = f"Flask-OIDC-Refresh/{_version()} {default_user_agent()}"
#: The largest answer read from the provider.
MAX_ANSWER_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


class DeadlineAdapter(HTTPAdapter):
    """Each call ends within ``seconds``: connecting and waiting for the answer share one
    deadline (urllib3's total timeout), and an answer that trickles in is cut off at it. The
    answer is read whole here, so the caller's ``stream`` is not honoured; name resolution is
    the system's. ``verify``, when given, is the TLS verification of every call."""

    def __init__(self, seconds: float, verify: bool | str | None = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.verify = verify

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        deadline = time.monotonic() + self.seconds
        kwargs["timeout"] = Timeout(total=self.seconds)
        if self.verify is not None:  # requests lets REQUESTS_CA_BUNDLE override the session's
            kwargs["verify"] = self.verify
        response = super().send(request, stream=True, **kwargs)
        body = bytearray()
        try:
            while chunk := response.raw.read1(16384, decode_content=True):
                body += chunk
                if time.monotonic() > deadline:
                    raise requests.Timeout(f"no whole answer within {self.seconds} s")
                if len(body) > MAX_ANSWER_BYTES:
                    raise requests.ConnectionError("the answer is too large")
        except ReadTimeoutError as exc:
            raise requests.Timeout(str(exc)) from exc
        except HTTPError as exc:  # urllib3's, raised while reading: the connection broke
            raise requests.ConnectionError(str(exc)) from exc
        finally:
            response.close()
        response._content = bytes(body)
        return response


S = TypeVar("S", bound=requests.Session)


def provider_session(session: S, settings: Settings) -> S:
    """``session`` set up for calls to the provider: what the app's own ``OIDC_HTTP_SESSION``
    sets (headers, TLS verification and client certificate, proxies, whether the environment
    counts), then ``OIDC_HTTP_CA_BUNDLE``, ``OIDC_HTTP_VERIFY`` and ``OIDC_HTTP_PROXY``, a
    ``User-Agent`` naming the extension, and a total deadline on every call."""
    own = settings.http_session
    if own is not None:
        session.headers.update(own.headers)
        session.cert, session.trust_env = own.cert, own.trust_env
        session.proxies.update(own.proxies)
    verify: bool | str | None = None
    if settings.http_ca_bundle is not None:
        verify = settings.http_ca_bundle
    elif not settings.http_verify:
        verify = False
    elif own is not None and own.verify is not True:
        verify = own.verify
    if settings.http_proxy is not None:
        session.proxies.update(http=settings.http_proxy, https=settings.http_proxy)
    session.headers["User-Agent"] = USER_AGENT
    adapter = DeadlineAdapter(settings.http_timeout_seconds, verify)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class CachedFetch(Generic[T]):
    """A value fetched from the provider and kept for ``max_age`` seconds (None: until it is
    refreshed).

    One fetch at a time: concurrent callers wait for it and share its result. A failure is
    remembered for ``FAILURE_MEMORY_SECONDS``, and the last good value keeps serving meanwhile,
    except to a caller that asked for a new one (it gets the failure).
    """

    def __init__(self, fetch: Callable[[], T], max_age: float | None) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._lock = threading.Lock()
        self._value: T | None = None
        self._fetched_at = float("-inf")
        self._failed_at = float("-inf")
        self._failure: Exception | None = None

    def get(self, *, refresh: bool = False) -> T:
        """The value; ``refresh``: fetched again now, unless another caller just did."""
        asked_at = clock.monotonic()
        if self._value is not None and not refresh:
            if self._fresh(asked_at):
                return self._value
            if not self._lock.acquire(blocking=False):
                return self._value  # another caller is fetching: serve the last good meanwhile
        else:
            self._lock.acquire()
        try:
            return self._get_locked(asked_at, refresh)
        finally:
            self._lock.release()

    def _get_locked(self, asked_at: float, refresh: bool) -> T:
        now = clock.monotonic()
        if self._value is not None and self._fetched_at >= asked_at:
            return self._value  # fetched while this caller waited
        if self._value is not None and not refresh and self._fresh(now):
            return self._value
        if now - self._failed_at < FAILURE_MEMORY_SECONDS and self._failure is not None:
            return self._last_good(self._failure, refresh)
        try:
            value = self._fetch()
        except Exception as exc:
            self._failed_at, self._failure = clock.monotonic(), exc
            return self._last_good(exc, refresh)
        self._value, self._fetched_at = value, clock.monotonic()
        return value

    def _fresh(self, now: float) -> bool:
        return self._max_age is None or now - self._fetched_at < self._max_age

    def _last_good(self, failure: Exception, refresh: bool) -> T:
        if self._value is None or refresh:
            raise failure
        log.warning("serving the last good answer; fetching a new one failed: %s", failure)
        return self._value
