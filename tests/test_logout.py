"""Logout: local session ended, the provider's end-session endpoint, and its callback."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from apps import SCRIPT, sign_in, tokens_of
from conftest import ON_EVERY_STORE, MakeApp
from fake_provider import CLIENT_ID, FakeProvider
from flask import Flask
from flask.testing import FlaskClient

pytestmark = ON_EVERY_STORE


def test_logout_ends_the_session_and_goes_to_the_provider(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    id_token = tokens_of(client).id_token
    response = client.post("/oidc/logout")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}" == f"{fake_provider.issuer}/logout"
    )
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["id_token_hint"] == id_token
    assert params["client_id"] == CLIENT_ID
    assert params["post_logout_redirect_uri"] == "http://localhost/oidc/logout/callback"
    assert client.get("/private", headers=SCRIPT).status_code == 401
    back = client.get("/oidc/logout/callback", query_string={"state": params["state"]})
    assert back.status_code == 302 and back.headers["Location"] == "/"


def test_logout_callback_refuses_an_unknown_state(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    client.post("/oidc/logout")
    assert client.get("/oidc/logout/callback?state=forged").status_code == 400


def test_logout_without_end_session_endpoint_stays_local(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    base = fake_provider.issuer
    app, _ = make_app(
        OIDC_AUTHORIZATION_ENDPOINT=f"{base}/authorize",
        OIDC_TOKEN_ENDPOINT=f"{base}/token",
        OIDC_JWKS_URI=f"{base}/jwks",
        OIDC_LOGOUT_REDIRECT_URL="/goodbye",
    )
    client = app.test_client()
    sign_in(client, fake_provider)
    response = client.post("/oidc/logout")
    assert response.headers["Location"] == "/goodbye"


def test_logout_is_post_only(client: FlaskClient) -> None:
    assert client.get("/oidc/logout").status_code == 405


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "null"},
    ],
)
def test_a_cross_site_logout_is_refused_and_the_session_kept(
    client: FlaskClient, fake_provider: FakeProvider, headers: dict[str, str]
) -> None:
    sign_in(client, fake_provider)
    response = client.post("/oidc/logout", headers=headers)
    assert response.status_code == 403
    assert client.get("/private").text == "hello alice"


def test_a_same_origin_logout_is_accepted(client: FlaskClient, fake_provider: FakeProvider) -> None:
    sign_in(client, fake_provider)
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/oidc/logout", headers=headers).status_code == 302


def test_logout_revokes_the_refresh_and_access_tokens(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.issue_refresh_tokens = True
    sign_in(client, fake_provider)
    tokens = tokens_of(client)
    client.post("/oidc/logout")
    revoked = [
        (r["form"]["token"], r["form"]["token_type_hint"]) for r in fake_provider.revocations
    ]
    assert revoked == [
        (tokens.refresh_token, "refresh_token"),
        (tokens.access_token, "access_token"),
    ]
    assert all(r["auth"].username == CLIENT_ID for r in fake_provider.revocations)


def test_logout_goes_on_when_revocation_fails(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    fake_provider.revocation_status = 503
    response = client.post("/oidc/logout")
    assert response.status_code == 302
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_logout_form_helper_renders_a_post_form_and_escapes_its_label(app: Flask) -> None:
    from flask import render_template_string

    with app.test_request_context():
        html = render_template_string("{{ oidc_logout_form() }}")
        custom = render_template_string("{{ oidc_logout_form('<b>Bye</b>', css_class='nav') }}")
    form = '<form method="post" action="/oidc/logout">'
    assert html == form + '<button type="submit">Sign out</button></form>'
    assert custom == (
        '<form method="post" action="/oidc/logout" class="nav">'
        '<button type="submit">&lt;b&gt;Bye&lt;/b&gt;</button></form>'
    )


def test_a_non_ascii_logout_state_is_a_400(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    client.post("/oidc/logout")
    assert client.get("/oidc/logout/callback?state=%C3%A9").status_code == 400


def test_a_malformed_origin_is_refused(client: FlaskClient, fake_provider: FakeProvider) -> None:
    sign_in(client, fake_provider)
    assert client.post("/oidc/logout", headers={"Origin": "http://[broken"}).status_code == 403
    assert client.get("/private").text == "hello alice"


def test_logout_works_while_the_provider_is_down(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_DISCOVERY_CACHE_SECONDS=0, OIDC_HTTP_TIMEOUT_SECONDS=0.2)
    client = app.test_client()
    sign_in(client, fake_provider)
    fake_provider.delay = 1.0  # discovery (no longer fresh) times out
    response = client.post("/oidc/logout")
    # signed out here; the last good discovery document still names the provider's logout
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{fake_provider.issuer}/logout?")
    fake_provider.delay = 0
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_flask_wtf_csrf_protect_leaves_the_extension_alone(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    from apps import build_app
    from fake_provider import CLIENT_SECRET
    from flask_wtf.csrf import CSRFProtect

    config = {
        "OIDC_ISSUER": fake_provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
    }
    app, _ = build_app(tmp_path, config, before_init=CSRFProtect)
    client = app.test_client()
    sign_in(client, fake_provider)
    assert client.post("/write").status_code == 400  # the app's own views stay protected
    token = fake_provider.make_logout_token(sid=None)
    assert client.post("/oidc/backchannel-logout", data={"logout_token": token}).status_code == 200
    assert client.post("/oidc/logout").status_code == 302


def test_back_from_the_provider_lands_on_the_configured_page(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_LOGOUT_REDIRECT_URL="/goodbye")
    client = app.test_client()
    sign_in(client, fake_provider)
    location = client.post("/oidc/logout").headers["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    back = client.get("/oidc/logout/callback", query_string={"state": state})
    assert back.headers["Location"] == "/goodbye"
