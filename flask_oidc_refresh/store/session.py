"""Token records inside the session itself, for the Flask-Session backends that the token
store cannot share (memcached, MongoDB, SQLAlchemy, DynamoDB).

Tokens still never reach the cookie, but concurrent requests of one session on several
processes may each renew, a concurrent session save may write old tokens back, and there is no
index for back-channel logout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from flask import session

from .base import Backend, thread_lock


class SessionBackend(Backend):
    """The current request's session, with a lock per process."""

    shared = False

    def __init__(self) -> None:
        self._thread_lock = threading.RLock()

    def read(self, key: str) -> Any:
        return session.get(key)

    def write(self, key: str, value: Any, ttl: int) -> None:
        session[key] = value

    def delete(self, key: str) -> None:
        session.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str, seconds: float) -> Iterator[None]:
        with thread_lock(self._thread_lock, key, seconds):
            yield
