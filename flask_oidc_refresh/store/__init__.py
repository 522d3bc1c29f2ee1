"""Where signed-in users' tokens live: in the session backend's own store, apart from the
sessions, so that a request saving its whole session can never write old tokens back."""

from __future__ import annotations

import sys
from typing import Any

from .base import Backend, LockTimeout, SessionIndex, TokenStore
from .cachelib import CacheLibBackend
from .files import FileBackend, FileSessionInterface
from .session import SessionBackend

__all__ = ["LockTimeout", "SessionIndex", "TokenStore", "backend_for"]


def backend_for(session_interface: Any) -> Backend:
    """The backend that fits the app's Flask-Session session interface."""
    interface = getattr(session_interface, "wrapped", session_interface)
    if isinstance(interface, FileSessionInterface):
        return FileBackend(interface)
    redis = sys.modules.get(f"{__name__}.redis")  # imported only by apps that use Redis
    if redis is not None and isinstance(interface, redis.RedisSessionInterface):
        return redis.RedisBackend(  # type: ignore[no-any-return]
            interface.client, min_replicas=interface.min_replicas, reads=interface.reads
        )
    cache = getattr(session_interface, "cache", None)
    if cache is not None and hasattr(cache, "set"):
        return CacheLibBackend(cache)
    client = getattr(session_interface, "client", None)
    if client is not None and hasattr(client, "lock"):  # another Flask-Session Redis interface
        from .redis import RedisBackend

        return RedisBackend(client)
    return SessionBackend()
