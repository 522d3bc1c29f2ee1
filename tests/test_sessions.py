"""Server-side sessions: tokens never in the cookie, and no write when nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apps import login, tokens_of
from flask import Flask
from flask_session import Session

from flask_oidc_refresh import OIDC


def test_tokens_stay_on_the_server(client: Any, fake_provider: Any) -> None:
    login(client, fake_provider)
    cookie = client.get_cookie("session")
    assert len(cookie.value) < 64
    access_token = tokens_of(client).access_token
    assert access_token not in cookie.value
    with client.session_transaction() as session:
        assert access_token not in repr(dict(session))  # a record of its own, not in the session


def test_default_store_is_a_file_cache_in_the_instance_folder(
    app: Flask, client: Any, fake_provider: Any
) -> None:
    login(client, fake_provider)
    store = Path(app.instance_path) / "oidc-sessions"
    assert any(store.iterdir())


def test_a_request_that_changes_nothing_writes_nothing(
    app: Flask, client: Any, fake_provider: Any
) -> None:
    login(client, fake_provider)
    cache = app.session_interface.cache  # type: ignore[attr-defined]
    writes = []
    original = cache.set
    cache.set = lambda *a, **k: writes.append(a) or original(*a, **k)
    response = client.get("/private")
    assert response.text == "hello alice"
    assert "Set-Cookie" not in response.headers
    assert writes == []


def test_session_lifetime_slides_once_per_fraction(
    make_app: Any, fake_provider: Any, monkeypatch: Any
) -> None:
    import time

    app, _ = make_app(PERMANENT_SESSION_LIFETIME=100)  # extended once per 10 s
    client = app.test_client()
    login(client, fake_provider)
    client.get("/private")
    later = time.time() + 20
    monkeypatch.setattr("flask_oidc_refresh.sessions.time.time", lambda: later)
    assert "Set-Cookie" in client.get("/private").headers
    assert "Set-Cookie" not in client.get("/private").headers


def test_touch_fraction_zero_keeps_flasks_refresh_each_request(make_app: Any) -> None:
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


def test_sign_in_attempts_cannot_fill_the_disk(make_app: Any) -> None:
    app, _ = make_app(SESSION_FILE_THRESHOLD=10)
    for _ in range(40):
        app.test_client().get("/oidc/login")  # each leaves a session with a pending sign-in
    store = Path(app.instance_path) / "oidc-sessions"
    assert len([p for p in store.iterdir() if p.is_file()]) <= 12


def test_lock_files_are_a_fixed_set(app: Flask) -> None:
    from flask_oidc_refresh.state import get_state
    from flask_oidc_refresh.store import LOCK_BUCKETS

    with app.app_context():
        store = get_state().token_store
        for n in range(600):
            with store.lock(f"key-{n}", wait=1, hold=1):
                pass
        assert len(list(Path(store.lock_dir).iterdir())) <= LOCK_BUCKETS  # type: ignore[attr-defined]


def test_an_index_entry_can_be_locked_under_its_records_lock(app: Flask) -> None:
    """Renewal saves the tokens (record lock held) and lists the session (index lock): even
    when both keys hash to the same lock bucket, that must not wait for itself."""
    import hashlib

    from flask_oidc_refresh.state import get_state
    from flask_oidc_refresh.store import LOCK_BUCKETS, RECORD_PREFIX

    def bucket(key: str) -> int:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS

    record = RECORD_PREFIX + "r"
    index = next(
        f"oidc-sub:{n}" for n in range(100_000) if bucket(f"oidc-sub:{n}") == bucket(record)
    )
    with app.app_context():
        store = get_state().token_store
        with store.lock(record, wait=1, hold=1):
            store.index_add(index, "member", 60)  # would raise LockTimeout if it waited for itself
        assert store.index_pop(index) == ["member"]


def test_renewal_on_an_in_memory_cachelib_store_does_not_wait_for_itself(
    make_app: Any, fake_provider: Any
) -> None:
    import time

    from apps import expire_renewal
    from cachelib import SimpleCache

    fake_provider.issue_refresh_tokens = True
    app, _ = make_app(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache())
    client = app.test_client()
    login(client, fake_provider)
    expire_renewal(client)
    started = time.monotonic()
    assert client.get("/private").text == "hello alice"
    assert time.monotonic() - started < 2
    assert fake_provider.refresh_requests() == 1
