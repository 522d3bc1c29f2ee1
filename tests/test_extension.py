"""The signed-in user in views: ``oidc.user``, ``login_required``, the login hook and signals."""

from __future__ import annotations

from typing import Any

from apps import (
    NAVIGATION,
    SCRIPT,
    recorded,
    sign_in,
)
from conftest import MakeApp
from fake_provider import FakeProvider
from flask import Flask, abort
from flask.testing import FlaskClient

from flask_oidc_refresh import user_logged_in, user_logged_out
from flask_oidc_refresh.testing import OIDCTestClient, login_test_user


def test_user_is_none_until_signed_in(app: Flask, fake_provider: FakeProvider) -> None:
    oidc = app.extensions["oidc"]
    assert oidc is not None
    client = app.test_client()
    assert client.get("/").text == "public"
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"


def test_login_required_sends_a_page_load_to_login_and_back(client: FlaskClient) -> None:
    response = client.get("/private?page=2", headers=NAVIGATION)
    assert response.status_code == 302
    assert response.headers["Location"] == "/oidc/login?next=/private?page%3D2"


def test_login_required_answers_a_script_with_401_json_naming_the_sign_in_page(
    client: FlaskClient,
) -> None:
    for headers in (SCRIPT, {"Accept": "application/json"}, {"Sec-Fetch-Mode": "cors"}):
        response = client.get("/api/data", headers=headers)
        assert response.status_code == 401
        assert response.json is not None
        assert response.json["error"] == "login_required"
        assert response.headers["login_url"] == "/oidc/login"


def test_on_login_hook_gets_the_claims(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, oidc = make_app()
    seen: list[dict[str, Any]] = []
    oidc.on_login(seen.append)
    sign_in(app.test_client(), fake_provider)
    assert [claims["sub"] for claims in seen] == ["alice"]


def test_on_login_hook_can_refuse_the_user(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, oidc = make_app()

    @oidc.on_login
    def only_bob(claims: dict[str, Any]) -> None:
        if claims["sub"] != "bob":
            abort(403)

    client = app.test_client()
    assert sign_in(client, fake_provider).status_code == 403
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_login_and_logout_send_signals_with_the_users_claims(
    app: Flask, fake_provider: FakeProvider
) -> None:
    with recorded(user_logged_in, app) as ins, recorded(user_logged_out, app) as outs:
        client = app.test_client()
        sign_in(client, fake_provider)
        client.post("/oidc/logout")
    assert [e["claims"]["sub"] for e in ins] == ["alice"]
    assert [e["claims"]["sub"] for e in outs] == ["alice"]


def test_test_client_signs_a_user_in_without_a_provider(app: Flask) -> None:
    app.test_client_class = OIDCTestClient
    client = app.test_client(user={"sub": "carol", "email": "carol@example.test"})
    assert client.get("/private").text == "hello carol"


def test_login_test_user_works_on_any_client(app: Flask) -> None:
    client = app.test_client()
    login_test_user(client, {"sub": "dave"})
    assert client.get("/api/data").json == {"sub": "dave"}


def test_login_required_protects_an_async_view(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()

    @app.get("/async")
    @oidc.login_required
    async def async_view() -> str:
        return f"async {oidc.user['sub'] if oidc.user else None}"

    client = app.test_client()
    assert client.get("/async", headers=SCRIPT).status_code == 401
    sign_in(client, fake_provider)
    assert client.get("/async").text == "async alice"
