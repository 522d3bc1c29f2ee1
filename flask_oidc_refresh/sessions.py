"""Server-side sessions through Flask-Session: an embedded default store, and no needless writes."""

from __future__ import annotations

import os
import time

from cachelib.file import FileSystemCache
from flask import Flask, Response, session
from flask_session import Session
from flask_session.base import ServerSideSessionInterface

TOUCHED_KEY = "_oidc_touched"


def ensure_server_side_sessions(app: Flask) -> None:
    """Set up Flask-Session unless the app already did.

    Without a ``SESSION_TYPE`` the store is a file cache in the instance folder: it needs no
    server and is shared by every worker process on the host. ``SESSION_TYPE = "redis"`` (or
    any other Flask-Session backend) is used as configured.
    """
    if isinstance(app.session_interface, ServerSideSessionInterface):
        return
    if "SESSION_TYPE" not in app.config:
        directory = os.path.join(app.instance_path, "oidc-sessions")
        app.config["SESSION_TYPE"] = "cachelib"
        app.config.setdefault(
            "SESSION_CACHELIB", FileSystemCache(directory, threshold=0, mode=0o600)
        )
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
        if session and session.permanent:
            now = time.time()
            if session.modified or now - session.get(TOUCHED_KEY, 0) >= interval:
                session[TOUCHED_KEY] = now
        return response
