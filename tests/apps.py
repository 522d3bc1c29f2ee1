"""A small app with a route of every kind, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask
from flask.testing import FlaskClient

from flask_oidc_refresh import OIDC

SCRIPT = {"X-Requested-With": "XMLHttpRequest"}
NAVIGATION = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


def build_app(
    instance_path: Path, config: dict[str, Any], before_init: Any = None
) -> tuple[Flask, OIDC]:
    """The test app; ``before_init(app)`` runs just before ``oidc.init_app`` (another extension)."""
    app = Flask("test_app", instance_path=str(instance_path))
    app.config.update(SECRET_KEY="test-secret", **config)
    oidc = OIDC()

    @app.get("/")
    def index() -> str:
        return "public"

    @app.get("/private")
    @oidc.login_required
    def private() -> str:
        return f"hello {oidc.user['sub']}" if oidc.user else "nobody"

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

    @app.get("/health")
    @oidc.exempt
    def health() -> str:
        return "ok"

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
def recorded(signal: Any, app: Flask) -> Iterator[list[dict[str, Any]]]:
    """What ``signal`` carries while the block runs, for ``app`` (checked on each event rather
    than through blinker's per-sender bookkeeping, which is keyed by ``id()``)."""
    events: list[dict[str, Any]] = []

    def receiver(sender: Any, **extra: Any) -> None:
        assert sender is app
        events.append(extra)

    with signal.connected_to(receiver):
        yield events


def login(client: FlaskClient, provider: Any, next_url: str = "/private") -> Any:
    """Sign ``client`` in through the fake provider; returns the callback's response."""
    response = client.get("/oidc/login?" + urlencode({"next": next_url}))
    assert response.status_code == 302, response.data
    return client.get(
        "/oidc/callback", query_string=provider.authorize(response.headers["Location"])
    )


def tokens_of(client: FlaskClient) -> Any:
    """The token record of ``client``'s session."""
    from flask_oidc_refresh.state import get_state

    with client.session_transaction() as session:
        record = session["_oidc_login"]["record"]
    with client.application.app_context():
        return get_state(client.application).token_store.get(record)


def update_tokens(client: FlaskClient, **changes: Any) -> None:
    """Change the token record of ``client``'s session (and its copy of ``renew_at``)."""
    from flask_oidc_refresh.state import get_state

    with client.session_transaction() as session:
        if "renew_at" in changes:
            session["_oidc_login"] = {**session["_oidc_login"], "renew_at": changes["renew_at"]}
        record = session["_oidc_login"]["record"]
    app = client.application
    with app.app_context():
        store = get_state(app).token_store
        store.put(record, store.get(record).replace(**changes), 3600)


def expire_renewal(client: FlaskClient, **changes: Any) -> None:
    """Move the signed-in session past its renewal deadline (``changes`` alter its tokens)."""
    import time

    update_tokens(client, renew_at=time.time() - 1, **changes)


def sign_in_over_http(app: Flask, provider: Any, base: str) -> tuple[dict[str, str], FlaskClient]:
    """Sign in through the app served at ``base``; returns the session cookie, and a test client
    that shares it (to look into the session and its tokens)."""
    import requests

    http = requests.Session()
    location = http.get(f"{base}/oidc/login", allow_redirects=False).headers["Location"]
    http.get(f"{base}/oidc/callback", params=provider.authorize(location), allow_redirects=False)
    client = app.test_client()
    client.set_cookie("session", http.cookies["session"], domain="localhost")
    return {"session": http.cookies["session"]}, client


def check_one_spend(app: Flask, provider: Any, base: str, requests_at_once: int = 40) -> None:
    """Concurrent requests of one session at its deadline: all succeed, one refresh is spent."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    cookies, client = sign_in_over_http(app, provider, base)
    expire_renewal(client)

    def call(_: int) -> int:
        return requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(requests_at_once)))
    assert statuses == [200] * requests_at_once
    assert provider.refresh_requests() == 1
    assert not provider.used_refresh_tokens & set(provider.refresh_tokens)


def check_no_lost_update(app: Flask, provider: Any, base: str) -> None:
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
        expire_renewal(client)
        assert requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code == 200
        renewed = tokens_of(client)
        app.config["SLOW_GATE"].set()
        assert slow.result(timeout=10).status_code == 200  # and saved its whole session

    with client.session_transaction() as session:
        assert session["note"] == "written late"
    assert tokens_of(client) == renewed  # the renewal survived the late save
    expire_renewal(client)
    assert requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code == 200
    assert provider.refresh_requests() == 2  # the rotated token worked: no reuse, no revocation
    assert provider.refresh_tokens
