"""A small app with a route of every kind, for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask
from flask.testing import FlaskClient

from flask_oidc_refresh import OIDC

SCRIPT = {"X-Requested-With": "XMLHttpRequest"}
NAVIGATION = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


def build_app(instance_path: Path, config: dict[str, Any]) -> tuple[Flask, OIDC]:
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
    oidc.init_app(app)
    return app, oidc


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
