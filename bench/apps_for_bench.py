"""The apps ``make bench`` compares, and the counters it checks the fast path with."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from cachelib.file import FileSystemCache
from flask import Flask, session
from flask.testing import FlaskClient
from flask_session import Session

from flask_oidc_refresh import OIDC
from flask_oidc_refresh.testing import login_test_user

CLAIMS = {
    "sub": "alice",
    "email": "alice@example.test",
    "name": "Alice",
    "groups": ["staff", "ops"],
}
PROVIDER = {
    "OIDC_ISSUER": "https://login.example.com",
    "OIDC_CLIENT_ID": "bench",
    "OIDC_CLIENT_SECRET": "bench-secret",
    "OIDC_AUTHORIZATION_ENDPOINT": "https://login.example.com/authorize",
    "OIDC_TOKEN_ENDPOINT": "https://login.example.com/token",
    "OIDC_JWKS_URI": "https://login.example.com/jwks",
}


def bare() -> Flask:
    """A Flask app with one JSON route and nothing else."""
    app = Flask("bare")

    @app.get("/json")
    def json_route() -> dict[str, bool]:
        return {"ok": True}

    return app


def _store_config(store: dict[str, str], *, embedded: bool = False) -> dict[str, Any]:
    """Flask-Session's config for ``store``; ``embedded``: the extension's own default store."""
    if "REDIS_URL" in store:
        from redis import Redis
        from redis.cluster import RedisCluster

        client: Any = (RedisCluster if store.get("REDIS_CLUSTER") else Redis).from_url(
            store["REDIS_URL"]
        )
        return {"SESSION_TYPE": "redis", "SESSION_REDIS": client}
    if embedded:
        return {"SESSION_FILE_DIR": store["SESSION_FILE_DIR"]}
    return {
        "SESSION_TYPE": "cachelib",
        "SESSION_CACHELIB": FileSystemCache(store["SESSION_FILE_DIR"], threshold=0),
    }


def _store_from_environment() -> dict[str, str]:
    """The store a gunicorn-run app is given in its environment."""
    keys = ("SESSION_FILE_DIR", "REDIS_URL", "REDIS_CLUSTER", "OIDC_REDIS_CLIENT_CACHE")
    return {key: os.environ[key] for key in keys if os.environ.get(key)}


def flask_session_app(
    store: dict[str, str] | None = None, refresh_each_request: bool = False
) -> Flask:
    """Flask-Session alone, on a JSON route that reads the user from the session."""
    store = store or _store_from_environment()
    app = Flask("flask_session")
    app.config.update(
        SECRET_KEY="bench",
        SESSION_REFRESH_EACH_REQUEST=refresh_each_request,
        **_store_config(store),
    )
    Session(app)

    @app.get("/json")
    def json_route() -> dict[str, Any]:
        return {"ok": True, "sub": session["user"]["sub"]}

    return app


def flask_session(store: dict[str, str], refresh_each_request: bool) -> tuple[Flask, str]:
    """Flask-Session alone, with a session holding a user's claims; and that session's cookie."""
    app = flask_session_app(store, refresh_each_request)
    client = app.test_client()
    with client.session_transaction() as data:
        data["user"] = CLAIMS
    return app, session_cookie(client)


def signed_in_app(store: dict[str, str] | None = None, instance: Path | None = None) -> Flask:
    """Flask-OIDC-Refresh on a ``login_required`` JSON route (``OIDC_*`` keys of ``store``
    are its settings)."""
    store = store or _store_from_environment()
    app = Flask("ours", instance_path=str(instance) if instance else None)
    settings = {key: value for key, value in store.items() if key.startswith("OIDC_")}
    app.config.update(
        SECRET_KEY="bench", **PROVIDER, **settings, **_store_config(store, embedded=True)
    )
    oidc = OIDC(app)

    @app.get("/json")
    @oidc.login_required
    def json_route() -> dict[str, Any]:
        user = oidc.user
        return {"ok": True, "sub": user["sub"] if user else None}

    return app


def signed_in(store: dict[str, str], instance: Path) -> tuple[Flask, str]:
    """Our app with a signed-in session (fresh tokens); and that session's cookie."""
    app = signed_in_app(store, instance)
    client = app.test_client()
    login_test_user(client, CLAIMS)
    return app, session_cookie(client)


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Count provider calls, JWT decodes and session or token store writes meanwhile."""
    import requests
    from flask_session.cachelib import CacheLibSessionInterface
    from joserfc import jwt
    from redis import Redis
    from redis.client import Pipeline

    from flask_oidc_refresh.store.cachelib import CacheLibBackend
    from flask_oidc_refresh.store.files import FileStore
    from flask_oidc_refresh.store.redis import RedisBackend, RedisSessionInterface

    counts = {"provider calls": 0, "JWT decodes": 0, "store writes": 0, "Redis commands": 0}

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        return wrapper

    with contextlib.ExitStack() as stack:
        send = requests.Session.send
        stack.enter_context(
            mock.patch.object(requests.Session, "send", counted("provider calls", send))
        )
        stack.enter_context(mock.patch.object(jwt, "decode", counted("JWT decodes", jwt.decode)))
        command, pipeline = Redis.execute_command, Pipeline.execute
        stack.enter_context(
            mock.patch.object(Redis, "execute_command", counted("Redis commands", command))
        )
        stack.enter_context(
            mock.patch.object(Pipeline, "execute", counted("Redis commands", pipeline))
        )
        for cls in (CacheLibSessionInterface, RedisSessionInterface):
            stack.enter_context(
                mock.patch.object(
                    cls, "_upsert_session", counted("store writes", cls._upsert_session)
                )
            )
        stack.enter_context(
            mock.patch.object(FileStore, "write", counted("store writes", FileStore.write))
        )
        for backend in (CacheLibBackend, RedisBackend):
            stack.enter_context(
                mock.patch.object(backend, "write", counted("store writes", backend.write))
            )
        yield counts


@contextlib.contextmanager
def redis() -> Iterator[str | None]:
    """A Redis server for the run, when Debian's redis-server is installed."""
    if shutil.which("redis-server") is None:
        print("(redis-server is not installed: the Redis rows are left out)")
        yield None
        return
    from conftest import RedisServer

    server = RedisServer(shutil.which("redis-server") or "redis-server")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def footprint(directory: Path, users: int) -> dict[str, float]:
    """Sign ``users`` users in on a fresh embedded store: bytes stored per user (session and
    token record) and this process's peak RSS in MB afterwards."""
    import resource

    store = {"SESSION_FILE_DIR": str(directory / "sessions")}
    app = signed_in_app(store, directory / "instance")
    for n in range(users):
        login_test_user(app.test_client(), {**CLAIMS, "sub": f"user-{n}"})
    stored = sum(
        path.stat().st_size
        for path in directory.rglob("*")
        if path.is_file() and "locks" not in path.parts
    )
    return {
        "bytes per signed-in user": stored / users,
        "peak RSS, MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


@contextlib.contextmanager
def token_provider() -> Iterator[tuple[str, str]]:
    """The tests' in-process provider, served on loopback for its keys; its issuer, and an
    RS256 JWT access token of it valid for an hour."""
    import logging
    import threading
    import time

    from fake_provider import FakeProvider
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per key fetch
    provider = FakeProvider()
    server = make_server("127.0.0.1", 0, provider.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    try:
        yield provider.issuer, provider.make_access_token(exp=int(time.time()) + 3600)
    finally:
        server.shutdown()
        thread.join()


def token_api(issuer: str, instance: Path, *, remember: bool = True) -> Flask:
    """Flask-OIDC-Refresh on an ``accept_token`` JSON route; ``remember=False`` checks every
    token afresh (signature and claims), as on the first call of each token."""
    from fake_provider import API_AUDIENCE, CLIENT_ID, CLIENT_SECRET

    from flask_oidc_refresh.bearer import CheckedTokens
    from flask_oidc_refresh.relying_party import relying_party

    app = Flask("api", instance_path=str(instance))
    app.config.update(
        SECRET_KEY="bench",
        OIDC_ISSUER=issuer,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_API_AUDIENCE=API_AUDIENCE,
    )
    oidc = OIDC(app)

    @app.get("/json")
    @oidc.accept_token(scopes=["orders:read"])
    def json_route() -> dict[str, Any]:
        claims = oidc.token_claims or {}
        return {"ok": True, "sub": claims.get("sub")}

    if not remember:

        class Forgetful(CheckedTokens):
            def get(self, audience: str, token: str, now: float) -> dict[str, Any] | None:
                return None

        relying_party(app).checked_tokens = Forgetful()
    return app
