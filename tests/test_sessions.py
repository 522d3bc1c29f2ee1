"""Server-side sessions: tokens never in the cookie, safe cookie defaults, no write when nothing
changed, and signed-in data that session writes cannot evict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from apps import session_cookie, sign_in, sign_in_of, tokens_of
from conftest import Clock, MakeApp
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from flask_session import Session

from flask_oidc_refresh import OIDC
from flask_oidc_refresh.relying_party import relying_party
from flask_oidc_refresh.sessions import SessionGuard
from flask_oidc_refresh.store.cachelib import CacheLibBackend
from flask_oidc_refresh.store.files import FileBackend, FileStore
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
    writes: list[tuple[Any, ...]] = []
    original = FileStore.write

    def counted_write(store: FileStore, *args: Any) -> None:
        writes.append(args)
        original(store, *args)

    monkeypatch.setattr(FileStore, "write", counted_write)
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
        SECRET_KEY="test-secret",
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=SimpleCache(),
        OIDC_ISSUER="https://login.example.com",
        OIDC_CLIENT_ID="app",
        OIDC_CLIENT_SECRET="secret",
    )
    Session(app)
    interface = app.session_interface
    OIDC(app)
    guard = app.session_interface
    assert isinstance(guard, SessionGuard) and guard._inner is interface


def test_lock_files_are_a_fixed_set(app: Flask) -> None:
    from flask_oidc_refresh.relying_party import relying_party
    from flask_oidc_refresh.store.base import LOCK_BUCKETS

    with app.app_context():
        backend = relying_party().token_store.backend
        for n in range(600):
            with backend.lock(f"key-{n}", seconds=1):
                pass
        assert isinstance(backend, FileBackend)
        assert len(list(Path(backend.lock_dir).iterdir())) <= LOCK_BUCKETS


def test_an_index_entry_can_be_locked_under_its_records_lock(app: Flask) -> None:
    """Renewal saves the tokens (record lock held) and lists the session (index lock): even
    when both keys hash to the same lock bucket, that must not wait for itself."""
    import hashlib

    from flask_oidc_refresh.records import Tokens
    from flask_oidc_refresh.relying_party import relying_party
    from flask_oidc_refresh.store.base import LOCK_BUCKETS, RECORD_PREFIX, index_key

    def bucket(key: str) -> int:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % LOCK_BUCKETS

    record = RECORD_PREFIX + "r"
    issuer = "https://login.example.com"
    sub = next(
        str(n) for n in range(100_000) if bucket(index_key(issuer, "sub", str(n))) == bucket(record)
    )
    with app.app_context():
        store = relying_party().token_store
        assert store.index is not None
        store.save(record, Tokens({"sub": sub}, "id-token", "access-token", None, None, 0.0))
        with store.lock(record):
            # would raise LockTimeout if it waited for itself
            claims = {"iss": issuer, "sub": sub, "sid": "s"}
            store.index.add("session", record, claims, prune=False)
        assert store.index.end(issuer, "sub", sub) == 1


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


def session_cookie_attributes(client: FlaskClient, fake_provider: FakeProvider) -> list[str]:
    """The attributes of the session cookie that signing in sets."""
    response = sign_in(client, fake_provider)
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return [part.strip() for part in cookie.split(";")]


def test_the_session_cookie_is_httponly_and_lax_by_default(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    attributes = session_cookie_attributes(client, fake_provider)
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Secure" not in attributes  # plain http here


def test_the_session_cookie_is_secure_over_https(app: Flask, fake_provider: FakeProvider) -> None:
    client = app.test_client()
    location = client.get("/oidc/login", base_url="https://localhost").headers["Location"]
    response = client.get(
        "/oidc/callback",
        query_string=fake_provider.authorize(location),
        base_url="https://localhost",
    )
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Secure" in [part.strip() for part in cookie.split(";")]


def test_the_apps_own_cookie_settings_are_kept(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=True)
    attributes = session_cookie_attributes(app.test_client(), fake_provider)
    assert "SameSite=Strict" in attributes
    assert "Secure" in attributes


def test_a_flood_of_session_writes_evicts_no_token_record_and_no_replay_marker(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    from flask_oidc_refresh.relying_party import relying_party

    app, _ = make_app(SESSION_FILE_THRESHOLD=150)
    fake_provider.claims = {"sid": "sid-1"}
    users = [app.test_client() for _ in range(5)]
    records = []
    for user in users:
        sign_in(user, fake_provider)
        sign_in_now = sign_in_of(user)
        assert sign_in_now is not None
        records.append(sign_in_now.record)
    used = fake_provider.make_logout_token(sid="another-provider-session")
    assert (
        app.test_client().post("/oidc/backchannel-logout", data={"logout_token": used}).status_code
        == 200
    )
    for n in range(300):  # other sessions written, well past the threshold
        with app.test_client().session_transaction() as session:
            session["n"] = n
    with app.app_context():
        store = relying_party().token_store
        assert all(store.load(record) is not None for record in records)
    replayed = app.test_client().post("/oidc/backchannel-logout", data={"logout_token": used})
    assert replayed.status_code == 400


def test_expired_entries_are_swept_away_and_living_ones_kept(
    app: Flask, fake_provider: FakeProvider, clock: Clock
) -> None:
    client = app.test_client()
    sign_in(client, fake_provider)
    with app.app_context():
        backend = relying_party().token_store.backend
        assert isinstance(backend, FileBackend)
        backend.write("oidc-used:short-lived", 1, ttl=60)
        clock.advance(61)
        assert backend.records.sweep() == 1  # the marker, not the sign-in
        assert backend.read("oidc-used:short-lived") is None
        assert tokens_of(client).access_token
        clock.advance(32 * 24 * 3600)  # past the sign-in's lifetime too
        assert backend.records.sweep() >= 1


def test_records_beside_an_apps_own_file_cache_get_a_folder_of_their_own(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    from apps import build_app
    from cachelib import FileSystemCache

    sessions = tmp_path / "srv" / "sessions"
    neighbour = tmp_path / "srv" / "tokens"  # the app's own folder, not ours
    neighbour.mkdir(parents=True)
    (neighbour / "keep-me").write_bytes(b"\x00\x00\x00\x01 the app's data")
    app, _ = build_app(
        tmp_path / "instance",
        {
            "SESSION_TYPE": "cachelib",
            "SESSION_CACHELIB": FileSystemCache(str(sessions)),
            "OIDC_ISSUER": fake_provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        },
    )
    assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert any((tmp_path / "srv" / "sessions-oidc" / "tokens").iterdir())
    with app.app_context():
        backend = relying_party().token_store.backend
        assert isinstance(backend, CacheLibBackend)
        backend.sweep()
    assert (neighbour / "keep-me").exists()


def test_every_process_sees_the_others_writes_at_once(tmp_path: Path) -> None:
    """Two stores on one folder stand for two worker processes, each with its own cache."""
    first, second = FileStore(str(tmp_path)), FileStore(str(tmp_path))
    first.write("session:a", b"one", ttl=60)
    assert second.read("session:a") == b"one"
    time.sleep(0.06)  # old enough to be kept in the second process's cache
    assert second.read("session:a") == b"one"
    first.write("session:a", b"two", ttl=60)  # the same size: only the file's identity changes
    assert second.read("session:a") == b"two"
    first.delete("session:a")
    assert second.read("session:a") is None


def test_a_planted_pickle_is_never_loaded(app: Flask, client: FlaskClient) -> None:
    import pickle

    interface: Any = app.session_interface
    store: FileStore = interface.wrapped.sessions

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, ("raise SystemExit('unpickled')",))

    store.write("session:planted", pickle.dumps(Boom()), ttl=60)
    client.set_cookie("session", "planted", domain="localhost")
    assert client.get("/").status_code == 200  # an empty session, and no code run


def test_a_nearly_full_disk_refuses_anonymous_sessions_but_not_signed_in_users(
    make_app: MakeApp, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(OIDC_STORE_MIN_FREE_MB=10**12)  # more than any disk has free

    @app.post("/basket")
    def basket() -> str:
        from flask import session

        session["basket"] = ["book"]
        return "kept"

    anonymous = app.test_client().post("/basket", headers={"Accept": "application/json"})
    assert anonymous.status_code == 503
    assert anonymous.json is not None
    assert anonymous.json["error"] == "session_store_full"
    assert "disk is nearly full" in caplog.text
    signed_in = app.test_client()
    assert sign_in(signed_in, fake_provider).status_code == 302
    assert signed_in.post("/basket").text == "kept"
    assert signed_in.get("/private").text == "hello alice"
