"""Server-side sessions: tokens never in the cookie, and no write when nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from apps import session_cookie, sign_in, tokens_of
from cachelib import BaseCache
from conftest import Clock, MakeApp
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from flask_session import Session

from flask_oidc_refresh import OIDC
from flask_oidc_refresh.testing import pass_renewal_deadline


def test_tokens_stay_on_the_server(client: FlaskClient, fake_provider: FakeProvider) -> None:
    sign_in(client, fake_provider)
    cookie = session_cookie(client)
    assert len(cookie) < 64
    access_token = tokens_of(client).access_token
    assert access_token not in cookie
    with client.session_transaction() as session:
        assert access_token not in repr(dict(session))  # a record of its own, not in the session


def test_default_store_is_a_file_cache_in_the_instance_folder(
    app: Flask, client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    store = Path(app.instance_path) / "oidc-sessions"
    assert any(store.iterdir())


def test_a_request_that_changes_nothing_writes_nothing(
    app: Flask, client: FlaskClient, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(client, fake_provider)
    interface: Any = app.session_interface  # Flask-Session ships no type information
    cache = cast(BaseCache, interface.cache)
    writes: list[tuple[Any, ...]] = []
    original = cache.set

    def counted_set(*args: Any, **kwargs: Any) -> bool | None:
        writes.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(cache, "set", counted_set)
    response = client.get("/private")
    assert response.text == "hello alice"
    assert "Set-Cookie" not in response.headers
    assert writes == []


def test_session_lifetime_slides_once_per_fraction(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(PERMANENT_SESSION_LIFETIME=100)  # extended once per 10 s
    client = app.test_client()
    sign_in(client, fake_provider)
    client.get("/private")
    clock.advance(20)
    assert "Set-Cookie" in client.get("/private").headers
    assert "Set-Cookie" not in client.get("/private").headers


def test_touch_fraction_zero_keeps_flasks_refresh_each_request(make_app: MakeApp) -> None:
    app, _ = make_app(OIDC_SESSION_TOUCH_FRACTION=0)
    assert app.config["SESSION_REFRESH_EACH_REQUEST"] is True
    app, _ = make_app()
    assert app.config["SESSION_REFRESH_EACH_REQUEST"] is False


def test_an_app_that_set_up_flask_session_keeps_it(tmp_path: Path) -> None:
    from cachelib import SimpleCache

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=SimpleCache(),
        OIDC_ISSUER="https://login.example.com",
        OIDC_CLIENT_ID="app",
        OIDC_CLIENT_SECRET="secret",
    )
    Session(app)
    interface = app.session_interface
    OIDC(app)
    assert app.session_interface is interface


def test_sign_in_attempts_cannot_fill_the_disk(make_app: MakeApp) -> None:
    app, _ = make_app(SESSION_FILE_THRESHOLD=10)
    for _ in range(40):
        app.test_client().get("/oidc/login")  # each leaves a session with a pending sign-in
    store = Path(app.instance_path) / "oidc-sessions"
    assert len([p for p in store.iterdir() if p.is_file()]) <= 12


def test_lock_files_are_a_fixed_set(app: Flask) -> None:
    from flask_oidc_refresh.relying_party import relying_party
    from flask_oidc_refresh.store.cachelib import LOCK_BUCKETS, CacheLibBackend

    with app.app_context():
        backend = relying_party().token_store.backend
        for n in range(600):
            with backend.lock(f"key-{n}", seconds=1):
                pass
        assert isinstance(backend, CacheLibBackend)
        assert backend.lock_dir is not None
        assert len(list(Path(backend.lock_dir).iterdir())) <= LOCK_BUCKETS


def test_an_index_entry_can_be_locked_under_its_records_lock(app: Flask) -> None:
    """Renewal saves the tokens (record lock held) and lists the session (index lock): even
    when both keys hash to the same lock bucket, that must not wait for itself."""
    import hashlib

    from flask_oidc_refresh.relying_party import relying_party
    from flask_oidc_refresh.store.base import RECORD_PREFIX
    from flask_oidc_refresh.store.cachelib import LOCK_BUCKETS

    def bucket(key: str) -> int:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS

    record = RECORD_PREFIX + "r"
    sub = next(str(n) for n in range(100_000) if bucket(f"oidc-sub:{n}") == bucket(record))
    with app.app_context():
        store = relying_party().token_store
        assert store.index is not None
        with store.renewal_lock(record, seconds=1):
            # would raise LockTimeout if it waited for itself
            store.index.add("session", record, {"sub": sub, "sid": "s"}, prune=False)
        assert store.index.end("sub", sub) == 1


def test_renewal_on_an_in_memory_cachelib_store_does_not_wait_for_itself(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    import time

    from cachelib import SimpleCache

    fake_provider.issue_refresh_tokens = True
    app, _ = make_app(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache())
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    started = time.monotonic()
    assert client.get("/private").text == "hello alice"
    assert time.monotonic() - started < 2
    assert fake_provider.refresh_requests() == 1
