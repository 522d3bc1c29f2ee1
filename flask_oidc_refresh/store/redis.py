"""Sessions and token records in Redis, shared by every process on every host: a single server,
a Sentinel-managed master (``Sentinel.master_for``) or a Redis Cluster (``RedisCluster``).

- Session reads are served from each process's copy while Redis has not changed them (see
  :mod:`.tracking`; not on a cluster, where each master would need a tracking connection).
- A record's lock key shares the record's hash slot, so on a cluster both live on one master.
- With ``min_replicas``, a lock, a record or an index entry counts as written only once that
  many replicas have it (``WAIT``); until then it is tried again on a new connection (a Sentinel
  client asks the Sentinels for the master again). With as many replicas as ``min_replicas``,
  the replica that Sentinel promotes has every such write: a failover loses no renewal that the
  provider has seen, and lets no second request renew with the same refresh token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_session.base import ServerSideSession
from redis.exceptions import (
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.lock import Lock

from ..config import ConfigError
from .base import RECORD_PREFIX, Backend, LockTimeout
from .interface import LeanSessionInterface
from .tracking import TrackedReads

#: How often a waiting request tries a Redis lock again.
LOCK_POLL_SECONDS = 0.005
#: How long a write waits for its replicas (``WAIT``) before it is tried again.
REPLICA_WAIT_MS = 200
#: How long a write keeps trying to reach ``min_replicas`` replicas (through a failover); below
#: the 30 s after which gunicorn replaces a silent worker.
REPLICATED_WRITE_SECONDS = 25.0
#: The errors after which a write is tried again on a new connection (the master may have
#: moved); of the answers, only those that say so (see :func:`_moved_master`).
_RETRIED = (ConnectionError, TimeoutError, ReadOnlyError, ResponseError)
log = logging.getLogger(__name__)


class NotReplicated(RedisError):
    """A write did not reach the replicas it must reach."""


class RedisSessionInterface(LeanSessionInterface):
    """Flask-Session's Redis sessions over any redis-py client, with cached reads (``cache``)."""

    def __init__(self, app: Flask, client: Any, *, cache: bool, min_replicas: int) -> None:
        config = app.config
        super().__init__(
            app,
            key_prefix=config.get("SESSION_KEY_PREFIX", "session:"),
            use_signer=config.get("SESSION_USE_SIGNER", False),
            permanent=config.get("SESSION_PERMANENT", True),
            sid_length=config.get("SESSION_ID_LENGTH", 32),
        )
        plain = hasattr(client, "connection_pool")  # not a cluster
        if min_replicas and not plain:
            raise ConfigError("OIDC_REDIS_MIN_REPLICAS needs one master (Sentinel), not a cluster.")
        self.client = client
        self.min_replicas = min_replicas
        self.reads = TrackedReads(client, self.key_prefix) if cache and plain else None

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        data = self.client.get(store_id) if self.reads is None else self.reads.get(store_id)
        return None if data is None else self.serializer.decode(data)

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        data = self.serializer.encode(session)
        self.client.set(store_id, data, ex=int(session_lifetime.total_seconds()))
        if self.reads is not None:
            self.reads.forget(store_id)

    def _delete_session(self, store_id: str) -> None:
        self.client.delete(store_id)
        if self.reads is not None:
            self.reads.forget(store_id)


class RedisBackend(Backend):
    """Token records as JSON in the sessions' Redis, with Redis locks."""

    shared = True

    def __init__(
        self, client: Any, *, min_replicas: int = 0, reads: TrackedReads | None = None
    ) -> None:
        self.client = client
        self.min_replicas = min_replicas
        self.reads = reads

    def read(self, key: str) -> Any:
        data = self.client.get(key)
        return None if data is None else json.loads(data)

    def write(self, key: str, value: Any, ttl: int) -> None:
        self._replicated(lambda pipe: pipe.set(key, json.dumps(value), ex=ttl))

    def delete(self, key: str) -> None:
        self._replicated(lambda pipe: pipe.delete(key))

    def delete_session(self, key: str) -> None:
        self.delete(key)
        if self.reads is not None:
            self.reads.forget(key)

    def record_keys(self) -> Iterator[str]:
        """The keys of the token records, by ``SCAN`` (of every master of a cluster)."""
        for key in self.client.scan_iter(match=f"{RECORD_PREFIX}*", count=1000):
            yield key.decode() if isinstance(key, bytes) else str(key)

    @contextlib.contextmanager
    def lock(self, key: str, seconds: float) -> Iterator[None]:
        lock = ReplicatedLock(
            self.client,
            lock_key(key),
            min_replicas=self.min_replicas,
            timeout=seconds,
            blocking_timeout=seconds,
            sleep=LOCK_POLL_SECONDS,
        )
        if not lock.acquire():
            raise LockTimeout(key)
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception as exc:  # it expired while held: another request may have renewed
                log.warning("a lock expired before it was released: %s", exc)

    def _replicated(self, command: Any) -> None:
        """Run ``command`` on a pipeline; with ``min_replicas``, until that many replicas
        acknowledge it, on a new connection after a failure (a Sentinel client then finds the
        new master)."""
        if not self.min_replicas:
            command(self.client)
            return
        deadline = time.monotonic() + REPLICATED_WRITE_SECONDS
        while True:
            try:
                pipe = self.client.pipeline(transaction=False)
                command(pipe)
                pipe.wait(self.min_replicas, REPLICA_WAIT_MS)
                if pipe.execute()[-1] >= self.min_replicas:
                    return
                problem: Exception = NotReplicated(f"fewer than {self.min_replicas} replicas")
            except _RETRIED as exc:
                if not _moved_master(exc):
                    raise
                problem = exc
            if time.monotonic() >= deadline:
                raise NotReplicated(f"a write did not reach its replicas: {problem}")
            log.warning("a write is tried again: %s", problem)
            self.client.connection_pool.disconnect(inuse_connections=False)
            time.sleep(LOCK_POLL_SECONDS * 10)


class ReplicatedLock(Lock):
    """redis-py's lock; with ``min_replicas``, taken only once that many replicas have it."""

    def __init__(self, client: Any, name: str, *, min_replicas: int, **options: Any) -> None:
        super().__init__(client, name, **options)
        self.min_replicas = min_replicas

    def do_acquire(self, token: str) -> bool:
        if not self.min_replicas:
            return super().do_acquire(token)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self.name, token, nx=True, px=int((self.timeout or 0) * 1000))
            pipe.get(self.name)  # ours also when a retried SET found our own first one
            pipe.wait(self.min_replicas, REPLICA_WAIT_MS)
            _, holder, replicas = pipe.execute()
        except _RETRIED as exc:
            if not _moved_master(exc):
                raise
            log.warning("a lock is tried again: %s", exc)
            self.redis.connection_pool.disconnect(inuse_connections=False)
            return False
        taken = holder in (token, token.encode() if isinstance(token, str) else token)
        if taken and replicas < self.min_replicas:  # a master about to be replaced
            with contextlib.suppress(RedisError):
                self.do_release(token)
            self.redis.connection_pool.disconnect(inuse_connections=False)
            return False
        return taken


def _moved_master(exc: RedisError) -> bool:
    """Whether ``exc`` says the master may have moved (the write is tried again elsewhere)."""
    if isinstance(exc, ResponseError) and not isinstance(exc, ReadOnlyError):
        return str(exc).startswith(("NOREPLICAS", "MASTERDOWN"))
    return True


def lock_key(key: str) -> str:
    """The lock of ``key``: in the same Redis Cluster hash slot as ``key`` itself."""
    return f"{{{key}}}:lock"
