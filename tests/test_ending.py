"""Ending a sign-in: the whole session goes with it (Flask-Login's user and the app's data too),
and a request that was already running can never save it back signed in."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from apps import (
    NAVIGATION,
    SCRIPT,
    back_channel_logout,
    build_app,
    check_logout_stays_a_logout,
    logout_in_another_tab,
    recorded,
    sign_in,
    sign_in_of,
    sign_in_over_http,
)
from conftest import ON_EVERY_STORE, MakeApp, Serve
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask import Flask, session
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, current_user, login_user

from flask_oidc_refresh import session_renewal_failed
from flask_oidc_refresh.testing import pass_renewal_deadline

pytestmark = ON_EVERY_STORE


class User(UserMixin):  # type: ignore[misc]  # flask_login is untyped
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@pytest.fixture
def login_app(tmp_path: Any, fake_provider: FakeProvider) -> Flask:
    """The test app with Flask-Login, whose user is logged in from the sign-in's claims."""
    manager = LoginManager()
    manager.user_loader(User)
    app, oidc = build_app(
        tmp_path / "instance",
        {
            "OIDC_ISSUER": fake_provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        },
        before_init=manager.init_app,
    )

    @oidc.on_login
    def log_in(claims: dict[str, Any]) -> None:
        login_user(User(claims["sub"]))
        session["cart"] = ["the user's own data"]

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        return {
            "flask_login": current_user.get_id() if current_user.is_authenticated else None,
            "cart": session.get("cart"),
        }

    return app


def whoami(client: FlaskClient) -> Any:
    return client.get("/whoami").json


@pytest.fixture
def signed_in(login_app: Flask, fake_provider: FakeProvider) -> FlaskClient:
    client = login_app.test_client()
    sign_in(client, fake_provider)
    assert whoami(client) == {"flask_login": "alice", "cart": ["the user's own data"]}
    return client


def test_a_refused_refresh_token_ends_flask_logins_user_and_the_apps_data(
    login_app: Flask, signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.issue_refresh_tokens = True
    sign_in(signed_in, fake_provider)  # again, now with a refresh token
    fake_provider.refresh_tokens.clear()  # the provider ended the grant
    pass_renewal_deadline(signed_in)
    with recorded(session_renewal_failed, login_app) as failures:
        assert signed_in.get("/api/data", headers=SCRIPT).status_code == 403
    assert [f["ended"] for f in failures] == [True]
    assert whoami(signed_in) == {"flask_login": None, "cart": None}


def test_a_failed_silent_renewal_ends_flask_logins_user_and_the_apps_data(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    location = signed_in.get("/private", headers=NAVIGATION).headers["Location"]
    params = fake_provider.authorize(location)
    del params["code"]
    signed_in.get("/oidc/callback", query_string={**params, "error": "login_required"})
    assert whoami(signed_in) == {"flask_login": None, "cart": None}


def test_a_local_logout_ends_flask_logins_user_and_the_apps_data(
    signed_in: FlaskClient,
) -> None:
    signed_in.post("/oidc/logout")
    assert whoami(signed_in) == {"flask_login": None, "cart": None}


def test_a_back_channel_logout_ends_flask_logins_user_and_the_apps_data(
    login_app: Flask, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"sid": "sid-1"}
    client = login_app.test_client()
    sign_in(client, fake_provider)
    token = fake_provider.make_logout_token(sid="sid-1")
    response = login_app.test_client().post(
        "/oidc/backchannel-logout", data={"logout_token": token}
    )
    assert response.status_code == 200
    assert whoami(client) == {"flask_login": None, "cart": None}


def test_an_ended_session_gets_a_new_id(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    before = signed_in.get_cookie("session")
    assert before is not None
    signed_in.post("/oidc/logout")
    sign_in(signed_in, fake_provider)
    after = signed_in.get_cookie("session")
    assert after is not None and after.value != before.value


def test_a_slow_request_cannot_undo_a_back_channel_logout(
    app: Flask, fake_provider: FakeProvider, serve: Serve
) -> None:
    base = serve(app)
    ending = back_channel_logout(base, fake_provider)
    check_logout_stays_a_logout(app, fake_provider, base, ending)


def test_a_slow_request_cannot_undo_a_logout_in_another_tab(
    app: Flask, fake_provider: FakeProvider, serve: Serve
) -> None:
    base = serve(app)
    check_logout_stays_a_logout(app, fake_provider, base, logout_in_another_tab(base))


def test_a_logout_during_a_refresh_is_not_undone_by_it(
    make_app: MakeApp, fake_provider: FakeProvider, serve: Serve
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake_provider.issue_refresh_tokens = True
    app, _ = make_app()
    base = serve(app)
    cookies, client = sign_in_over_http(app, fake_provider, base)
    pass_renewal_deadline(client)
    fake_provider.delay = 0.5  # the refresh is still under way when the logout comes
    with ThreadPoolExecutor(max_workers=1) as pool:
        renewing = pool.submit(requests.get, f"{base}/api/data", cookies=cookies, headers=SCRIPT)
        time.sleep(0.2)
        logout = requests.post(f"{base}/oidc/logout", cookies=cookies, allow_redirects=False)
        assert logout.status_code == 302
        renewing.result(timeout=10)
    fake_provider.delay = 0
    assert requests.get(f"{base}/api/data", cookies=cookies, headers=SCRIPT).status_code == 401
    assert sign_in_of(client) is None


def test_a_slow_request_cannot_undo_a_logout_when_every_request_saves_the_session(
    make_app: MakeApp, fake_provider: FakeProvider, serve: Serve
) -> None:
    app, _ = make_app(OIDC_SESSION_TOUCH_FRACTION=0)  # Flask's SESSION_REFRESH_EACH_REQUEST
    base = serve(app)
    ending = logout_in_another_tab(base)
    check_logout_stays_a_logout(app, fake_provider, base, ending, slow="GET /api/slow-read")


def test_ending_a_sign_in_deletes_flask_logins_remember_cookie(
    login_app: Flask, fake_provider: FakeProvider
) -> None:
    from flask_login import login_user

    @login_app.get("/remember-me")
    def remember_me() -> str:
        login_user(User("alice"), remember=True)
        return "remembered"

    client = login_app.test_client()
    sign_in(client, fake_provider)
    client.get("/remember-me")
    assert client.get_cookie("remember_token") is not None
    client.post("/oidc/logout")
    assert client.get_cookie("remember_token") is None
    assert whoami(client) == {"flask_login": None, "cart": None}
