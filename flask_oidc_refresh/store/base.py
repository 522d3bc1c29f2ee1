"""The token store: token records and their renewal lock, and the back-channel index, written
once over the few primitives that each backend supplies."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

from authlib.common.security import generate_token

from ..errors import SessionStoreUnavailable
from ..records import Tokens, from_stored
from ..sealing import Sealer

#: Token record keys start with this; a backend may lock them apart from index entries.
RECORD_PREFIX = "oidc-tokens:"
#: How long an index update or a replay check waits for, and may hold, its lock.
INDEX_LOCK_SECONDS = 5.0
#: Lock files of a file store: keys share a fixed number of them, so they never pile up.
#: Records and index entries have separate files, since an index entry is locked while its
#: record's lock is held (a second lock on the same file would wait for itself).
LOCK_BUCKETS = 256
#: How often a request waiting for a file lock tries again.
LOCK_POLL_SECONDS = 0.005
log = logging.getLogger(__name__)


class LockTimeout(SessionStoreUnavailable):
    """Another request held a lock for too long (a ``503`` where nothing else handles it)."""

    def __init__(self, key: str) -> None:
        super().__init__("The server is busy with this session. Please try again in a moment.")
        self.key = key


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

    def delete_session(self, key: str) -> None:
        """Remove the stored session at ``key`` (where the backend keeps sessions apart from
        records, it overrides this)."""
        self.delete(key)

    @abstractmethod
    def lock(self, key: str, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Hold the lock of ``key``, shared by every process that shares the data, for at most
        ``seconds``; :class:`LockTimeout` after waiting as long for it."""

    def record_keys(self) -> Iterator[str] | None:
        """The keys of every token record (for ``flask oidc sessions``); None when the backend
        cannot list them."""
        return None


@contextlib.contextmanager
def thread_lock(lock: threading.RLock, key: str, seconds: float) -> Iterator[None]:
    """Hold ``lock`` (one process only); :class:`LockTimeout` after waiting ``seconds``."""
    if not lock.acquire(timeout=seconds):
        raise LockTimeout(key)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def file_lock(lock_dir: str, key: str, seconds: float) -> Iterator[None]:
    """Hold the file lock of ``key`` in ``lock_dir``, shared by every process on the host;
    :class:`LockTimeout` after waiting ``seconds``."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    deadline = time.monotonic() + seconds  # the real clock: waiting takes real time
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS
    kind = "record" if key.startswith(RECORD_PREFIX) else "index"
    with open(os.path.join(lock_dir, f"{kind}-{bucket:03d}"), "a") as file:
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(key) from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


class TokenStore:
    """Token records, sealed at rest (see :mod:`..sealing`) and kept as long as the sessions
    that point at them, each with a lock held while a request renews or ends it (for at most
    ``lock_seconds``); and ``index`` when the backend is shared (else None)."""

    def __init__(
        self, backend: Backend, sealer: Sealer, record_lifetime: int, lock_seconds: float
    ) -> None:
        self.backend = backend
        self.sealer = sealer
        self.record_lifetime = record_lifetime
        self.lock_seconds = lock_seconds
        self.index = SessionIndex(self) if backend.shared else None
        self._held = threading.local()

    def new_record(self, tokens: Tokens) -> str:
        """Store ``tokens`` in a new record; returns its unguessable key."""
        record = RECORD_PREFIX + generate_token(32)
        self.save(record, tokens)
        return record

    def load(self, record: str) -> Tokens | None:
        """The record's tokens, or None when it is gone."""
        return from_stored(Tokens, self.sealer.open(self.backend.read(record), bound_to=record))

    def save(self, record: str, tokens: Tokens) -> None:
        """Write the record."""
        sealed = self.sealer.seal(tokens.as_dict(), bound_to=record)
        self.backend.write(record, sealed, self.record_lifetime)

    def end(self, record: str) -> Tokens | None:
        """Remove the record, once no request is renewing it (so that no renewal under way can
        write it back); returns what it held."""
        try:
            with self.lock(record):
                tokens = self.load(record)
                self.backend.delete(record)
                return tokens
        except LockTimeout:
            log.warning("ended a sign-in whose renewal held its lock too long")
            tokens = self.load(record)
            self.backend.delete(record)
            return tokens

    def records(self) -> Iterator[tuple[str, Tokens]] | None:
        """Every live record with its tokens; None when the backend cannot list them."""
        keys = self.backend.record_keys()
        if keys is None:
            return None
        return ((key, tokens) for key in keys if (tokens := self.load(key)) is not None)

    @contextlib.contextmanager
    def lock(self, record: str) -> Iterator[None]:
        """The record's lock: one request at a time renews or ends it. Reentrant within a
        thread; :class:`LockTimeout` after waiting ``lock_seconds``."""
        held: set[str] = self._held.__dict__.setdefault("records", set())
        if record in held:
            yield
            return
        with self.backend.lock(record, self.lock_seconds):
            held.add(record)
            try:
                yield
            finally:
                held.discard(record)


class SessionIndex:
    """Which sessions belong to a provider session (``sid``) or a user (``sub``), so that
    back-channel logout can end them on every worker and host; and the logout tokens used."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.backend = store.backend
        self.lifetime = store.record_lifetime

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

    def end(self, issuer: str, claim: str, value: str) -> int:
        """End every session that ``issuer`` signed in and lists under ``claim`` = ``value``:
        its session and its tokens are removed from the shared store. Returns how many were
        still signed in."""
        key = index_key(issuer, claim, value)
        with self.backend.lock(key, INDEX_LOCK_SECONDS):
            members = list(self.backend.read(key) or ())
            self.backend.delete(key)
        ended = 0
        for member in members:
            session_key, _, record = member.partition(" ")
            self.backend.delete_session(session_key)
            ended += self.store.end(record) is not None  # not one that had ended already
        return ended

    def first_use(self, issuer: str, jti: str, ttl: int) -> bool:
        """Mark the logout token ``jti`` of ``issuer`` used for ``ttl`` seconds; False when it
        was used before (a replay)."""
        key = _jti_key(issuer, jti)
        with self.backend.lock(key, INDEX_LOCK_SECONDS):
            if self._exists(key):
                return False
            self.backend.write(key, 1, ttl)
            return True

    def forget_use(self, issuer: str, jti: str) -> None:
        """Unmark the logout token ``jti`` of ``issuer`` (its logout could not be carried out)."""
        self.backend.delete(_jti_key(issuer, jti))

    def _exists(self, key: str) -> bool:
        return self.backend.read(key) is not None


def _jti_key(issuer: str, jti: str) -> str:
    return f"oidc-jti:{issuer}:{jti}"


def index_key(issuer: str, claim: str, value: str) -> str:
    """An index entry: per issuer, since two providers may give the same ``sub`` or ``sid``."""
    digest = hashlib.sha256(issuer.encode()).hexdigest()[:16]
    return f"oidc-{claim}:{digest}:{value}"


def _index_keys(claims: Mapping[str, Any]) -> list[str]:
    issuer, sid, sub = str(claims.get("iss")), claims.get("sid"), claims.get("sub")
    keys = []
    if isinstance(sid, str) and sid:
        keys.append(index_key(issuer, "sid", sid))
    if isinstance(sub, str) and sub:
        keys.append(index_key(issuer, "sub", sub))
        if not sid:  # no sid to tell its provider session by: any logout of the user ends it
            keys.append(index_key(issuer, "sub-without-sid", sub))
    return keys
