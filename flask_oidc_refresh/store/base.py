"""The token store: token records and their renewal lock, and the back-channel index, written
once over the few primitives that each backend supplies."""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

from authlib.common.security import generate_token

from ..records import Tokens, from_stored

#: Token record keys start with this; a backend may lock them apart from index entries.
RECORD_PREFIX = "oidc-tokens:"
#: How long an index update or a replay check waits for, and may hold, its lock.
INDEX_LOCK_SECONDS = 5.0


class LockTimeout(Exception):
    """Another request held a lock for too long."""


class Backend(ABC):
    """Where a token store keeps its data: a few primitives over the session backend's own store.

    ``shared`` declares whether every process and host of the app sees the same data; only then
    does the store keep the back-channel index.
    """

    shared: bool

    @abstractmethod
    def read(self, key: str) -> Any:
        """The value at ``key``, or None."""

    @abstractmethod
    def write(self, key: str, value: Any, ttl: int) -> None:
        """Store ``value`` (JSON-like) at ``key`` for ``ttl`` seconds."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``."""

    @abstractmethod
    def lock(self, key: str, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Hold the lock of ``key``, shared by every process that shares the data, for at most
        ``seconds``; :class:`LockTimeout` after waiting as long for it."""


@contextlib.contextmanager
def thread_lock(lock: threading.RLock, key: str, seconds: float) -> Iterator[None]:
    """Hold ``lock`` (one process only); :class:`LockTimeout` after waiting ``seconds``."""
    if not lock.acquire(timeout=seconds):
        raise LockTimeout(key)
    try:
        yield
    finally:
        lock.release()


class TokenStore:
    """Token records, each with a lock that lets one request renew it, kept as long as the
    sessions that point at them; and ``index`` when the backend is shared (else None)."""

    def __init__(self, backend: Backend, record_lifetime: int) -> None:
        self.backend = backend
        self.record_lifetime = record_lifetime
        self.index = SessionIndex(backend, record_lifetime) if backend.shared else None

    def new_record(self, tokens: Tokens) -> str:
        """Store ``tokens`` in a new record; returns its unguessable key."""
        record = RECORD_PREFIX + generate_token(32)
        self.save(record, tokens)
        return record

    def load(self, record: str) -> Tokens | None:
        """The record's tokens, or None when it is gone."""
        return from_stored(Tokens, self.backend.read(record))

    def save(self, record: str, tokens: Tokens) -> None:
        """Write the record."""
        self.backend.write(record, tokens.as_dict(), self.record_lifetime)

    def drop(self, record: str) -> None:
        """Remove the record."""
        self.backend.delete(record)

    def renewal_lock(self, record: str, seconds: float) -> contextlib.AbstractContextManager[None]:
        """The lock that lets one request at a time renew the record."""
        return self.backend.lock(record, seconds)


class SessionIndex:
    """Which sessions belong to a provider session (``sid``) or a user (``sub``), so that
    back-channel logout can end them on every worker and host; and the logout tokens used."""

    def __init__(self, backend: Backend, lifetime: int) -> None:
        self.backend = backend
        self.lifetime = lifetime

    def add(self, session_key: str, record: str, claims: Mapping[str, Any], *, prune: bool) -> None:
        """List the session stored at ``session_key`` under the ``sid`` and ``sub`` of
        ``claims``, for the index's lifetime. With ``prune``, sessions that have ended since
        (signed out, replaced, expired) are taken off those lists."""
        member = f"{session_key} {record}"
        for key in _index_keys(claims):
            with self.backend.lock(key, INDEX_LOCK_SECONDS):
                members = set(self.backend.read(key) or ())
                if prune:  # a session that has ended has dropped its record
                    members = {m for m in members if self._exists(m.split(" ")[1])}
                self.backend.write(key, sorted(members | {member}), self.lifetime)

    def end(self, claim: str, value: str) -> int:
        """End every session listed under ``claim`` = ``value``: its session and its tokens
        are removed from the shared store. Returns how many there were."""
        key = _index_key(claim, value)
        with self.backend.lock(key, INDEX_LOCK_SECONDS):
            members = list(self.backend.read(key) or ())
            self.backend.delete(key)
        for member in members:
            for stored in member.split(" "):
                if stored:
                    self.backend.delete(stored)
        return len(members)

    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        """Mark the logout token ``jti`` of ``issuer`` used for ``ttl`` seconds; False when it
        was used before (a replay)."""
        key = f"oidc-jti:{issuer}:{jti}"
        with self.backend.lock(key, INDEX_LOCK_SECONDS):
            if self._exists(key):
                return False
            self.backend.write(key, 1, ttl)
            return True

    def _exists(self, key: str) -> bool:
        return self.backend.read(key) is not None


def _index_key(claim: str, value: str) -> str:
    return f"oidc-{claim}:{value}"


def _index_keys(claims: Mapping[str, Any]) -> list[str]:
    sid, sub = claims.get("sid"), claims.get("sub")
    keys = []
    if isinstance(sid, str) and sid:
        keys.append(_index_key("sid", sid))
    if isinstance(sub, str) and sub:
        keys.append(_index_key("sub", sub))
        if not sid:  # no sid to tell its provider session by: any logout of the user ends it
            keys.append(_index_key("sub-without-sid", sub))
    return keys
