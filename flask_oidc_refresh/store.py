"""Where a signed-in user's tokens live, and the lock that lets only one request renew them.

The tokens are a record in the session backend's own store, under a key of their own. The
Flask-Session session keeps a copy of what every request needs (the record's key, the renewal
deadline and the claims) and nothing else, so a request that saves its whole session at the end
can never write old tokens back over fresh ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from authlib.common.security import generate_token

T = TypeVar("T")
LOGIN_KEY = "_oidc_login"
log = logging.getLogger("flask_oidc_refresh")
RECORD_PREFIX = "oidc-tokens:"


@dataclass(frozen=True)
class Tokens:
    """A signed-in user's tokens and claims, and when they must be renewed."""

    claims: dict[str, Any]
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_at: float | None
    renew_at: float
    retry_at: float = 0.0

    @classmethod
    def from_response(
        cls,
        token: Mapping[str, Any],
        claims: dict[str, Any],
        renew_after: int,
        use_refresh: bool | None,
    ) -> Tokens:
        """A record for a token response whose ID token gave ``claims``."""
        now = time.time()
        expires_in = token.get("expires_in")
        expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else None
        refresh_token = token.get("refresh_token") if use_refresh is not False else None
        return cls(
            claims=claims,
            id_token=str(token["id_token"]),
            access_token=str(token["access_token"]),
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            expires_at=expires_at,
            renew_at=renewal_deadline(now, renew_after, expires_at, bool(refresh_token)),
        )

    def renewed(self, token: Mapping[str, Any], claims: dict[str, Any], renew_after: int) -> Tokens:
        """This record after a refresh: a rotated refresh token replaces the old one."""
        return Tokens.from_response(
            {"id_token": self.id_token, "refresh_token": self.refresh_token, **token},
            {**self.claims, **claims},
            renew_after,
            use_refresh=True,
        )

    def replace(self, **changes: Any) -> Tokens:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def access_token_valid(self, now: float) -> bool:
        """Whether the access token has not expired (unknown expiry counts as valid)."""
        return self.expires_at is None or self.expires_at > now


def renewal_deadline(
    now: float, renew_after: int, expires_at: float | None, refreshable: bool
) -> float:
    """``renew_after`` from now; with a refresh token, never later than the access token's
    expiry less a small margin (a quarter of its lifetime, at most 30 s)."""
    deadline = now + renew_after
    if refreshable and expires_at is not None:
        margin = min(30.0, max(expires_at - now, 0.0) / 4)
        deadline = min(deadline, expires_at - margin)
    return deadline


@dataclass(frozen=True)
class SessionLogin:
    """The session's copy of a sign-in: read on every request, without I/O."""

    record: str
    renew_at: float
    claims: dict[str, Any]
    silent_attempt_for: float | None = None


def current_login(session: Mapping[str, Any]) -> SessionLogin | None:
    """The session's sign-in, or None."""
    return _build(SessionLogin, session.get(LOGIN_KEY))


def _build(cls: type[T], data: Any) -> T | None:
    """``cls`` from a stored dict; None when the data is not one (gone, or from another version)."""
    if not isinstance(data, dict):
        return None
    try:
        return cls(**data)
    except TypeError:
        return None


def remember_login(
    session: MutableMapping[str, Any],
    record: str,
    tokens: Tokens,
    silent_attempt_for: float | None = None,
) -> None:
    """Copy into the session what each request needs of ``tokens``."""
    login = SessionLogin(record, tokens.renew_at, tokens.claims, silent_attempt_for)
    session[LOGIN_KEY] = asdict(login)


def new_record_key() -> str:
    """A fresh, unguessable record key."""
    return RECORD_PREFIX + generate_token(32)


class LockTimeout(Exception):
    """Another request held the renewal lock for too long."""


class TokenStore(ABC):
    """Token records, with a per-record lock shared by every process that shares the store;
    and, for back-channel logout, an index from ``sid`` and ``sub`` to sessions."""

    #: Whether every process and host of the app sees the same store (back-channel logout
    #: needs that).
    shared = True

    @abstractmethod
    def get(self, key: str) -> Tokens | None:
        """The record, or None when it is gone."""

    @abstractmethod
    def put(self, key: str, tokens: Tokens, ttl: int) -> None:
        """Write the record, kept for ``ttl`` seconds."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the record."""

    @abstractmethod
    def add_once(self, key: str, ttl: int) -> bool:
        """Mark ``key`` for ``ttl`` seconds; False when it was already marked (a replay)."""

    @abstractmethod
    def index_add(self, key: str, member: str, ttl: int) -> None:
        """Add ``member`` to the set at ``key``, which expires ``ttl`` seconds from now."""

    @abstractmethod
    def index_pop(self, key: str) -> list[str]:
        """Remove the set at ``key`` and return its members."""

    @abstractmethod
    def index_discard(self, key: str, unwanted: Callable[[str], bool], ttl: int) -> None:
        """Remove the members of the set at ``key`` for which ``unwanted`` is true (the set
        then expires ``ttl`` seconds from now)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether anything is stored at ``key``."""

    @abstractmethod
    def lock(self, key: str, wait: float, hold: float) -> contextlib.AbstractContextManager[None]:
        """Hold the record's lock for at most ``hold`` seconds; :class:`LockTimeout` after
        waiting ``wait`` seconds for it."""


def _decode(data: Any) -> Tokens | None:
    return _build(Tokens, json.loads(data) if isinstance(data, bytes | str) else data)


#: Lock files of the file cache: keys share a fixed number of them, so they never pile up.
#: Records and index entries have separate files, since an index entry is locked while its
#: record's lock is held (a second lock on the same file would wait for itself).
LOCK_BUCKETS = 256


class CacheLibTokenStore(TokenStore):
    """Records in a cachelib cache (the embedded default); a file lock beside a file cache.

    A cache that is not a file cache (``SimpleCache``) lives in one process: its lock is a
    thread lock and it is not shared.
    """

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        path = getattr(cache, "_path", None)
        self.lock_dir = os.path.join(path, "locks") if isinstance(path, str) else None
        self.shared = self.lock_dir is not None
        self._thread_lock = threading.RLock()  # reentrant: an index entry is locked under a record

    def get(self, key: str) -> Tokens | None:
        return _decode(self.cache.get(key))

    def put(self, key: str, tokens: Tokens, ttl: int) -> None:
        self.cache.set(key, asdict(tokens), timeout=ttl)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def add_once(self, key: str, ttl: int) -> bool:
        with self.lock(key, wait=5, hold=5):
            return bool(self.cache.add(key, 1, timeout=ttl))

    def index_add(self, key: str, member: str, ttl: int) -> None:
        with self.lock(key, wait=5, hold=5):
            members = set(self.cache.get(key) or ())
            self.cache.set(key, sorted(members | {member}), timeout=ttl)

    def index_pop(self, key: str) -> list[str]:
        with self.lock(key, wait=5, hold=5):
            members = list(self.cache.get(key) or ())
            self.cache.delete(key)
            return members

    def index_discard(self, key: str, unwanted: Callable[[str], bool], ttl: int) -> None:
        with self.lock(key, wait=5, hold=5):
            members = list(self.cache.get(key) or ())
            kept = [member for member in members if not unwanted(member)]
            if len(kept) != len(members):
                self.cache.set(key, kept, timeout=ttl)

    def exists(self, key: str) -> bool:
        return bool(self.cache.has(key))

    @contextlib.contextmanager
    def lock(self, key: str, wait: float, hold: float) -> Iterator[None]:
        if self.lock_dir is None:
            with _thread_locked(self._thread_lock, key, wait):
                yield
            return
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        deadline = time.monotonic() + wait
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS
        kind = "record" if key.startswith(RECORD_PREFIX) else "index"
        with open(os.path.join(self.lock_dir, f"{kind}-{bucket:03d}"), "a") as file:
            while True:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(key) from None
                    time.sleep(0.005)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)


class RedisTokenStore(TokenStore):
    """Records in Redis, with a Redis lock: shared by every process on every host."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, key: str) -> Tokens | None:
        return _decode(self.client.get(key))

    def put(self, key: str, tokens: Tokens, ttl: int) -> None:
        self.client.set(key, json.dumps(asdict(tokens)), ex=ttl)

    def delete(self, key: str) -> None:
        self.client.delete(key)

    def add_once(self, key: str, ttl: int) -> bool:
        return bool(self.client.set(key, 1, nx=True, ex=ttl))

    def index_add(self, key: str, member: str, ttl: int) -> None:
        with self.client.pipeline() as pipe:
            pipe.sadd(key, member).expire(key, ttl).execute()

    def index_pop(self, key: str) -> list[str]:
        with self.client.pipeline() as pipe:
            members, _ = pipe.smembers(key).delete(key).execute()
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    def index_discard(self, key: str, unwanted: Callable[[str], bool], ttl: int) -> None:
        members = [m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(key)]
        dead = [member for member in members if unwanted(member)]
        if dead:
            self.client.srem(key, *dead)

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(key))

    @contextlib.contextmanager
    def lock(self, key: str, wait: float, hold: float) -> Iterator[None]:
        lock = self.client.lock(f"{key}:lock", timeout=hold, blocking_timeout=wait, sleep=0.005)
        if not lock.acquire():
            raise LockTimeout(key)
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception as exc:  # it expired while held: another request may have renewed
                log.warning("the renewal lock expired before it was released: %s", exc)


class SessionTokenStore(TokenStore):
    """For other Flask-Session backends: records inside the session, a lock per process.

    Tokens still never reach the cookie, but concurrent requests of one session on several
    processes may each renew, a concurrent session save may write old tokens back, and
    back-channel logout cannot reach other sessions.
    """

    shared = False

    def __init__(self) -> None:
        self._thread_lock = threading.RLock()

    def get(self, key: str) -> Tokens | None:
        from flask import session

        return _decode(session.get(key))

    def put(self, key: str, tokens: Tokens, ttl: int) -> None:
        from flask import session

        session[key] = asdict(tokens)

    def delete(self, key: str) -> None:
        from flask import session

        session.pop(key, None)

    def add_once(self, key: str, ttl: int) -> bool:
        raise NotImplementedError("back-channel logout needs the embedded store or Redis")

    def index_add(self, key: str, member: str, ttl: int) -> None:
        """Nothing: there is no store shared by all sessions to keep the index in."""

    def index_pop(self, key: str) -> list[str]:
        raise NotImplementedError("back-channel logout needs the embedded store or Redis")

    def index_discard(self, key: str, unwanted: Callable[[str], bool], ttl: int) -> None:
        """Nothing: there is no index."""

    def exists(self, key: str) -> bool:
        from flask import session

        return key in session

    @contextlib.contextmanager
    def lock(self, key: str, wait: float, hold: float) -> Iterator[None]:
        with _thread_locked(self._thread_lock, key, wait):
            yield


@contextlib.contextmanager
def _thread_locked(lock: threading.RLock, key: str, wait: float) -> Iterator[None]:
    """Hold ``lock`` (one process only); :class:`LockTimeout` after ``wait`` seconds."""
    if not lock.acquire(timeout=wait):
        raise LockTimeout(key)
    try:
        yield
    finally:
        lock.release()


def token_store_for(session_interface: Any) -> TokenStore:
    """The token store that fits the app's Flask-Session backend."""
    cache = getattr(session_interface, "cache", None)
    if cache is not None and hasattr(cache, "set"):
        return CacheLibTokenStore(cache)
    client = getattr(session_interface, "client", None)
    if client is not None and hasattr(client, "lock"):
        return RedisTokenStore(client)
    return SessionTokenStore()
