"""Server-side sessions through Flask-Session: an embedded default store, safe cookies, no
needless writes, no session saved back after its sign-in ended, and a clear ``503`` when the
store is down."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SessionMixin
from flask_session import Session
from flask_session.base import MsgSpecSerializer, ServerSideSessionInterface

from . import clock
from .bearer import is_bearer_request
from .config import Settings
from .errors import OIDCError, SessionStoreFull, SessionStoreUnavailable
from .store.files import DataSerializer, FileSessionInterface

TOUCHED_KEY = "_oidc_touched"
STORE_DOWN = "Sessions are unavailable just now. Please try again in a moment."
log = logging.getLogger(__name__)


def ensure_server_side_sessions(
    app: Flask, settings: Settings, signed_in: Callable[[Mapping[str, Any]], bool]
) -> None:
    """Set up Flask-Session unless the app already did.

    Without a ``SESSION_TYPE`` the store is a file cache in ``SESSION_FILE_DIR`` (default:
    ``oidc-sessions`` in the instance folder; sessions, token records and locks each in a
    folder of their own): it needs no server and is shared by every worker process on the host.
    With ``SESSION_TYPE = "redis"``, sessions live in ``SESSION_REDIS`` (a client of one
    server, of a Sentinel-managed master or of a cluster), read through a cache that Redis keeps
    current. Any other Flask-Session backend is used as configured.
    """
    if app.config["SESSION_COOKIE_SAMESITE"] is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    own: Any = app.session_interface
    if _is_flask_session_redis(own):  # set up by the app's own Session(app)
        _use_redis(app, own.client, settings)
    elif isinstance(own, ServerSideSessionInterface):
        pass
    elif app.config.get("SESSION_TYPE") == "redis":
        _use_redis(app, app.config.get("SESSION_REDIS"), settings)
    elif "SESSION_TYPE" in app.config:
        Session(app)
    else:
        default = os.path.join(app.instance_path, "oidc-sessions")
        root = app.config.get("SESSION_FILE_DIR") or default
        app.session_interface = FileSessionInterface(
            app,
            root,
            min_free_bytes=settings.store_min_free_mb * 1024 * 1024,
            signed_in=signed_in,
        )
    interface: Any = app.session_interface
    if isinstance(getattr(interface, "serializer", None), MsgSpecSerializer):
        interface.serializer = DataSerializer()  # Flask-Session's, less its pickle fallback
    configured = interface.get_cookie_secure
    interface.get_cookie_secure = lambda app: (
        configured(app) or (bool(request) and request.is_secure)
    )


def _is_flask_session_redis(interface: Any) -> bool:
    """Whether ``interface`` is Flask-Session's own Redis interface (not a subclass); told by
    name, so that an app without redis-py (an optional dependency) never imports it."""
    kind = type(interface)
    return kind.__name__ == "RedisSessionInterface" and kind.__module__.startswith(
        "flask_session.redis"
    )


def _use_redis(app: Flask, client: Any, settings: Settings) -> None:
    from .store.redis import RedisSessionInterface  # needs redis-py: only for apps that use it

    if client is None:
        from redis import Redis

        client = Redis()  # Flask-Session's default: a server on localhost
    app.session_interface = RedisSessionInterface(
        app,
        client,
        cache=settings.redis_client_cache,
        min_replicas=settings.redis_min_replicas,
    )


def store_label(app: Flask) -> str:
    """Where ``app`` keeps its sessions, in words."""
    interface = getattr(app.session_interface, "wrapped", app.session_interface)
    if isinstance(interface, FileSessionInterface):
        return f"the embedded store in {interface.root}"
    client = getattr(interface, "client", None)
    if client is not None and hasattr(client, "lock"):
        return "Redis Cluster" if "Cluster" in type(client).__name__ else "Redis"
    return type(interface).__name__


def new_session_id(session: SessionMixin) -> None:
    """Give ``session`` a new id (Flask-Session's ``regenerate``), keeping its contents; the old
    id is deleted from the store."""
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if regenerate is not None:
        session.setdefault(TOUCHED_KEY, clock.now())  # regenerate() skips an empty session
        regenerate(session)


def guard_sessions(
    app: Flask, sign_in_ended: Callable[[SessionMixin], bool], touch_fraction: float
) -> None:
    """Wrap the app's session interface: a session is written back only when it changed, or
    once per ``touch_fraction`` of its lifetime (``0``: Flask's ``SESSION_REFRESH_EACH_REQUEST``,
    which rewrites it and sends ``Set-Cookie`` on every request); a session whose sign-in ended
    meanwhile (logged out in another tab, or by the provider) is not saved back; with Redis, a
    store failure is a ``503`` answer and a log line instead of a ``500``."""
    touch_interval = None
    if touch_fraction > 0:
        app.config["SESSION_REFRESH_EACH_REQUEST"] = False
        touch_interval = app.permanent_session_lifetime.total_seconds() * touch_fraction
    errors = _store_errors(app)
    app.session_interface = SessionGuard(  # type: ignore[assignment]
        app.session_interface, errors, sign_in_ended, touch_interval
    )
    if not errors:
        return

    def unavailable(exc: Exception) -> Response:
        log.error("session store unavailable: %s", exc)
        return SessionStoreUnavailable(STORE_DOWN).get_response()  # type: ignore[return-value]

    def refuse_when_down() -> None:
        if g.get("_oidc_store_down"):
            raise SessionStoreUnavailable(STORE_DOWN)

    for error in errors:
        app.register_error_handler(error, unavailable)
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_when_down)


def _store_errors(app: Flask) -> tuple[type[Exception], ...]:
    """The exceptions that mean the app's session store is unreachable."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return ()
    client = getattr(app.session_interface, "client", None)
    return (RedisError,) if client is not None and hasattr(client, "lock") else ()


class SessionGuard:
    """Wraps a session interface (everything else is handed through)."""

    def __init__(
        self,
        inner: Any,
        errors: tuple[type[Exception], ...],
        sign_in_ended: Callable[[SessionMixin], bool],
        touch_interval: float | None,
    ) -> None:
        self._inner = inner
        self.is_null_session = inner.is_null_session  # asked on every request: no __getattr__
        self._errors = errors
        self._sign_in_ended = sign_in_ended
        self._touch_interval = touch_interval

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def wrapped(self) -> Any:
        """The session interface this one wraps."""
        return self._inner

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        try:
            return self._inner.open_session(app, request)  # type: ignore[no-any-return]
        except self._errors as exc:
            log.error("session store unavailable: %s", exc)
            g._oidc_store_down = True
            return self._inner.make_null_session(app)  # type: ignore[no-any-return]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if self._errors and g.get("_oidc_store_down"):
            return
        interval = self._touch_interval
        if interval is not None and session.permanent and len(session) > 1:  # more than _permanent
            now = clock.now()
            if session.modified or now - session.get(TOUCHED_KEY, 0) >= interval:
                if not session.modified and is_bearer_request():
                    return  # an API call with a token keeps no session alive, sets no cookie
                session[TOUCHED_KEY] = now  # the sliding lifetime, extended once per interval
        try:
            self._save(app, session, response)
        except SessionStoreFull as full:
            self._answer(response, full)
        except self._errors as exc:
            log.error("session store unavailable, the session was not saved: %s", exc)
            self._answer(response, SessionStoreUnavailable(STORE_DOWN))

    @staticmethod
    def _answer(response: Response, error: OIDCError) -> None:
        """Turn ``response`` into ``error``'s answer (the view has run; its session was not
        saved)."""
        response.status_code = error.code or 503
        response.set_data(error.get_body())
        for name, value in error.get_headers():
            response.headers[name] = value

    def _save(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Save, unless the session's sign-in ended while this request ran: then its stored
        copy is deleted instead (checked before the write and again after it, for a logout that
        lands in between). The browser's cookie is left alone: it may name a newer session."""
        writes = self._inner.should_set_storage(app, session)
        if writes and self._sign_in_ended(session):
            self._delete(session)
            return
        self._inner.save_session(app, session, response)
        if writes and self._sign_in_ended(session):
            self._delete(session)

    def _delete(self, session: SessionMixin) -> None:
        log.info("a request of a session whose sign-in ended did not save it back")
        inner = self._inner
        inner._delete_session(inner._get_store_id(session.sid))  # type: ignore[attr-defined]
