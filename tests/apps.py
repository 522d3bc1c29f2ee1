"""A small app with a route of every kind, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from blinker import Signal
from fake_provider import FakeProvider
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_oidc_refresh import OIDC, signin
from flask_oidc_refresh.records import Tokens
from flask_oidc_refresh.relying_party import relying_party
from flask_oidc_refresh.testing import pass_renewal_deadline

if TYPE_CHECKING:
    from redis import Redis

SCRIPT = {"X-Requested-With": "XMLHttpRequest"}
NAVIGATION = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


def build_app(
    instance_path: Path,
    config: dict[str, Any],
    before_init: Callable[[Flask], object] | None = None,
) -> tuple[Flask, OIDC]:
    """The test app; ``before_init(app)`` runs just before ``oidc.init_app`` (another extension)."""
    app = Flask("test_app", instance_path=str(instance_path))
    app.config.update({"SECRET_KEY": "test-secret", **config})
    oidc = OIDC()

    @app.get("/")
    def index() -> str:
        return "public"

    @app.get("/private")
    @oidc.login_required
    def private() -> str:
        return f"hello {oidc.user['sub']}" if oidc.user else "nobody"

    @app.get("/sensitive")
    @oidc.login_required(acr_values=["urn:mfa", "urn:hardware-key"], max_age=300)
    def sensitive() -> str:
        return "the vault"

    @app.get("/api/data")
    @oidc.login_required
    def api_data() -> dict[str, Any]:
        return {"sub": oidc.user["sub"] if oidc.user else None}

    @app.route("/api/data", methods=["POST"])
    def api_post() -> dict[str, bool]:
        return {"posted": True}

    @app.route("/write", methods=["POST", "PUT", "PATCH", "DELETE"])
    def write() -> str:
        return "written"

    @app.get("/api/token")
    @oidc.login_required
    def api_token() -> dict[str, Any]:
        return {"access_token": oidc.access_token}

    @app.post("/api/slow-note")
    @oidc.login_required
    def slow_note() -> dict[str, Any]:
        """Waits for the test's signal, then changes the session: a request that started
        before a renewal and saves its whole session after it."""
        from flask import session

        app.config["SLOW_STARTED"].set()
        app.config["SLOW_GATE"].wait(10)
        session["note"] = "written late"
        return {"ok": True}

    @app.get("/api/slow-read")
    @oidc.login_required
    def slow_read() -> dict[str, Any]:
        """Waits for the test's signal and changes nothing: with Flask's
        ``SESSION_REFRESH_EACH_REQUEST`` its session is saved all the same."""
        app.config["SLOW_STARTED"].set()
        app.config["SLOW_GATE"].wait(10)
        return {"ok": True}

    @app.get("/health")
    @oidc.exempt
    def health() -> str:
        return "ok"

    @app.get("/claims")
    @oidc.login_required
    def claims() -> dict[str, Any]:
        return oidc.user or {}

    @app.get("/deadline")
    @oidc.exempt
    def deadline() -> dict[str, float | None]:
        return {"deadline": oidc.renewal_deadline}

    public = Blueprint("public", __name__, url_prefix="/public")
    nested = Blueprint("nested", __name__, url_prefix="/nested")

    @nested.get("/page")
    def nested_page() -> str:
        return "nested"

    public.register_blueprint(nested)
    oidc.exempt(public)
    app.register_blueprint(public)
    if before_init is not None:
        before_init(app)
    oidc.init_app(app)
    return app, oidc


@contextlib.contextmanager
def recorded(signal: Signal, app: Flask) -> Iterator[list[dict[str, Any]]]:
    """What ``signal`` carries while the block runs, for ``app`` (checked on each event rather
    than through blinker's per-sender bookkeeping, which is keyed by ``id()``)."""
    events: list[dict[str, Any]] = []

    def receiver(sender: object, **extra: Any) -> None:
        assert sender is app
        events.append(extra)

    with signal.connected_to(receiver):
        yield events


def provider_answers(client: FlaskClient, provider: FakeProvider, location: str) -> TestResponse:
    """The provider agrees to the authorization request at ``location`` and sends the browser
    back to its ``redirect_uri``: the callback's response."""
    callback = urlsplit(parse_qs(urlsplit(location).query)["redirect_uri"][0]).path
    return client.get(callback, query_string=provider.authorize(location))


def sign_in(
    client: FlaskClient, provider: FakeProvider, next_url: str = "/private"
) -> TestResponse:
    """Sign ``client`` in through the fake provider; returns the callback's response."""
    response = client.get("/oidc/login?" + urlencode({"next": next_url}))
    assert response.status_code == 302, response.data
    return provider_answers(client, provider, response.headers["Location"])


def renewal_deadline(client: FlaskClient) -> float | None:
    """``oidc.renewal_deadline`` as the views of ``client``'s session see it."""
    response = client.get("/deadline")
    assert response.json is not None
    deadline: float | None = response.json["deadline"]
    return deadline


def sign_in_of(client: FlaskClient) -> signin.SignIn | None:
    """The session's copy of ``client``'s sign-in."""
    with client.session_transaction() as session:
        return signin.current(session)


def tokens_of(client: FlaskClient) -> Tokens:
    """The token record of ``client``'s sign-in, as the store holds it."""
    sign_in = sign_in_of(client)
    assert sign_in is not None, "the client is not signed in"
    with client.application.app_context():
        tokens = signin.load_tokens(relying_party().token_store, sign_in)
    assert tokens is not None, "the sign-in has ended"
    return tokens


def session_cookie(client: FlaskClient) -> str:
    """The value of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "the client has no session cookie"
    return cookie.value


def session_redis(app: Flask) -> Redis:
    """The Redis client of ``app``'s Flask-Session store."""
    interface: Any = app.session_interface  # Flask-Session ships no type information
    return cast("Redis", interface.client)


def change_tokens(client: FlaskClient, **changes: Any) -> None:
    """Change the token record of ``client``'s sign-in (``expires_at``, ``retry_at``, ...)."""
    with client.application.app_context(), client.session_transaction() as session:
        store = relying_party().token_store
        sign_in = signin.current(session)
        assert sign_in is not None, "the client is not signed in"
        tokens = signin.load_tokens(store, sign_in)
        assert tokens is not None, "the sign-in has ended"
        signin.save_tokens(session, store, sign_in, tokens.replace(**changes))


class CookieHolder(Protocol):
    """A ``requests`` session, or anything else that holds cookies by name."""

    @property
    def cookies(self) -> Mapping[str, str]: ...


def sharing_cookie(app: Flask, http: CookieHolder) -> FlaskClient:
    """A test client of ``app`` with the session cookie of the ``requests`` session ``http``."""
    client = app.test_client()
    client.set_cookie("session", http.cookies["session"], domain="localhost")
    return client


def sign_in_over_http(
    app: Flask, provider: FakeProvider, base: str
) -> tuple[dict[str, str], FlaskClient]:
    """Sign in through the app served at ``base``; returns the session cookie, and a test client
    that shares it (to look into the session and its tokens)."""
    import requests

    http = requests.Session()
    location = http.get(f"{base}/oidc/login", allow_redirects=False).headers["Location"]
    http.get(f"{base}/oidc/callback", params=provider.authorize(location), allow_redirects=False)
    return {"session": http.cookies["session"]}, sharing_cookie(app, http)


def check_one_spend(
    app: Flask, provider: FakeProvider, base: str, requests_at_once: int = 40
) -> None:
    """Concurrent requests of one session at its deadline: all succeed, one refresh is spent."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    cookies, client = sign_in_over_http(app, provider, base)
    pass_renewal_deadline(client)

    def call(_: int) -> int:
        return requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(requests_at_once)))
    assert statuses == [200] * requests_at_once
    assert provider.refresh_requests() == 1
    assert not provider.used_refresh_tokens & set(provider.refresh_tokens)


def check_no_lost_update(app: Flask, provider: FakeProvider, base: str) -> None:
    """A request that read the session before a renewal and saves its whole session after it
    must not bring the old tokens back: made deterministic with two events."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    app.config.update(SLOW_STARTED=threading.Event(), SLOW_GATE=threading.Event())
    cookies, client = sign_in_over_http(app, provider, base)

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(requests.post, f"{base}/api/slow-note", cookies=cookies, headers=SCRIPT)
        assert app.config["SLOW_STARTED"].wait(5)  # it has read the session with the old tokens
        pass_renewal_deadline(client)
        assert requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code == 200
        renewed = tokens_of(client)
        app.config["SLOW_GATE"].set()
        assert slow.result(timeout=10).status_code == 200  # and saved its whole session

    with client.session_transaction() as session:
        assert session["note"] == "written late"
    assert tokens_of(client) == renewed  # the renewal survived the late save
    pass_renewal_deadline(client)
    assert requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code == 200
    assert provider.refresh_requests() == 2  # the rotated token worked: no reuse, no revocation
    assert provider.refresh_tokens


def check_logout_stays_a_logout(
    app: Flask,
    provider: FakeProvider,
    base: str,
    end: Callable[[dict[str, str]], None],
    slow: str = "POST /api/slow-note",
) -> None:
    """A request that read the session before its sign-in ended (``end(cookies)``) and saves the
    session after it must not bring the sign-in back: made deterministic with two events."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    app.config.update(SLOW_STARTED=threading.Event(), SLOW_GATE=threading.Event())
    provider.claims = {"sid": "sid-1"}
    cookies, _ = sign_in_over_http(app, provider, base)
    with ThreadPoolExecutor(max_workers=1) as pool:
        method, path = slow.split(" ")
        running = pool.submit(
            requests.request, method, f"{base}{path}", cookies=cookies, headers=SCRIPT
        )
        assert app.config["SLOW_STARTED"].wait(5)  # it has read the signed-in session
        end(cookies)
        app.config["SLOW_GATE"].set()
        assert running.result(timeout=10).status_code == 200  # it ran, and tried to save
    still = requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT)
    assert still.status_code == 401  # the old session id is not signed in again


def back_channel_logout(base: str, provider: FakeProvider) -> Callable[[dict[str, str]], None]:
    """An ending for :func:`check_logout_stays_a_logout`: the provider logs ``sid-1`` out."""

    def end(_: dict[str, str]) -> None:
        import requests

        token = provider.make_logout_token(sid="sid-1")
        answer = requests.post(f"{base}/oidc/backchannel-logout", data={"logout_token": token})
        assert answer.status_code == 200

    return end


def logout_in_another_tab(base: str) -> Callable[[dict[str, str]], None]:
    """An ending for :func:`check_logout_stays_a_logout`: the same browser signs out."""

    def end(cookies: dict[str, str]) -> None:
        import requests

        answer = requests.post(f"{base}/oidc/logout", cookies=cookies, allow_redirects=False)
        assert answer.status_code == 302

    return end
