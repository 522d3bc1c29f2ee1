"""Server-side sessions through Flask-Session: an embedded default store, no needless writes,
and a clear ``503`` when the store is down."""

from __future__ import annotations

import logging
import os
from typing import Any

from cachelib.file import FileSystemCache
from flask import Flask, Request, Response, g, session
from flask.sessions import SessionMixin
from flask_session import Session
from flask_session.base import ServerSideSessionInterface

from . import clock
from .errors import SessionStoreUnavailable

TOUCHED_KEY = "_oidc_touched"
#: Entries the embedded store keeps before it removes expired ones (then the oldest), so that
#: nobody can fill the disk with sign-in attempts.
FILE_THRESHOLD = 100_000
log = logging.getLogger(__name__)


def ensure_server_side_sessions(app: Flask) -> None:
    """Set up Flask-Session unless the app already did.

    Without a ``SESSION_TYPE`` the store is a file cache in ``SESSION_FILE_DIR`` (default: the
    instance folder): it needs no server and is shared by every worker process on the host.
    ``SESSION_TYPE = "redis"`` (or any other Flask-Session backend) is used as configured.
    """
    if isinstance(app.session_interface, ServerSideSessionInterface):
        return
    if "SESSION_TYPE" not in app.config:
        default = os.path.join(app.instance_path, "oidc-sessions")
        directory = app.config.get("SESSION_FILE_DIR") or default
        threshold = int(app.config.get("SESSION_FILE_THRESHOLD", FILE_THRESHOLD))
        cache = FileSystemCache(directory, threshold=threshold, mode=0o600)
        app.config["SESSION_TYPE"] = "cachelib"
        app.config.setdefault("SESSION_CACHELIB", cache)
    Session(app)


def slide_session_lifetime(app: Flask, fraction: float) -> None:
    """Write a session back only when it changed, or once per ``fraction`` of its lifetime.

    Flask's default ``SESSION_REFRESH_EACH_REQUEST`` rewrites the whole server-side session and
    sends ``Set-Cookie`` on every request; this keeps the sliding expiry at a fraction of the cost.
    """
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    interval = app.permanent_session_lifetime.total_seconds() * fraction

    @app.after_request
    def touch_session(response: Response) -> Response:
        current = session._get_current_object()  # type: ignore[attr-defined]
        if current and current.permanent:
            now = clock.now()
            if current.modified or now - current.get(TOUCHED_KEY, 0) >= interval:
                current[TOUCHED_KEY] = now
        return response


def store_errors(app: Flask) -> tuple[type[Exception], ...]:
    """The exceptions that mean the app's session store is unreachable."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return ()
    client = getattr(app.session_interface, "client", None)
    return (RedisError,) if client is not None and hasattr(client, "lock") else ()


def answer_store_outages(app: Flask) -> None:
    """Answer ``503`` instead of ``500`` when the session store is down, wherever it fails."""
    errors = store_errors(app)
    if not errors:
        return
    app.session_interface = OutageGuard(app.session_interface, errors)  # type: ignore[assignment]

    def unavailable(exc: Exception) -> Response:
        log.error("session store unavailable: %s", exc)
        return SessionStoreUnavailable(STORE_DOWN).get_response()  # type: ignore[return-value]

    def refuse_when_down() -> None:
        if g.get("_oidc_store_down"):
            raise SessionStoreUnavailable(STORE_DOWN)

    for error in errors:
        app.register_error_handler(error, unavailable)
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_when_down)


STORE_DOWN = "Sessions are unavailable just now. Please try again in a moment."


class OutageGuard:
    """Wraps a session interface: a store failure when a request opens or saves its session
    becomes a ``503`` answer and a log line instead of an unhandled exception."""

    def __init__(self, inner: Any, errors: tuple[type[Exception], ...]) -> None:
        self._inner = inner
        self._errors = errors

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        try:
            return self._inner.open_session(app, request)  # type: ignore[no-any-return]
        except self._errors as exc:
            log.error("session store unavailable: %s", exc)
            g._oidc_store_down = True
            return self._inner.make_null_session(app)  # type: ignore[no-any-return]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if g.get("_oidc_store_down"):
            return
        try:
            self._inner.save_session(app, session, response)
        except self._errors as exc:
            log.error("session store unavailable, the session was not saved: %s", exc)
            error = SessionStoreUnavailable(STORE_DOWN)
            response.status_code = error.code
            response.set_data(error.get_body())
            for name, value in error.get_headers():
                response.headers[name] = value
