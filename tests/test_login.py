"""Sign-in: the authorization request, the callback, and everything checked on the way."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apps import NAVIGATION, SCRIPT, provider_answers, session_cookie, sign_in
from conftest import Clock, MakeApp
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask.testing import FlaskClient


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_login_redirects_to_the_provider_with_pkce_state_and_nonce(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    response = client.get("/oidc/login?next=/private")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{fake_provider.issuer}/authorize?")
    params = query(location)
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://localhost/oidc/callback"
    assert params["scope"].split() == ["openid", "email", "profile"]
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert "prompt" not in params


def test_callback_signs_in_and_returns_to_next(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    response = sign_in(client, fake_provider, "/private?tab=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/private?tab=2"
    assert client.get("/private").text == "hello alice"
    [token_request] = fake_provider.token_requests
    assert token_request["form"]["grant_type"] == "authorization_code"
    assert token_request["form"]["code_verifier"]
    assert token_request["form"]["redirect_uri"] == "http://localhost/oidc/callback"
    assert token_request["auth"].username == CLIENT_ID  # client_secret_basic by default
    assert "client_secret" not in token_request["form"]


def test_client_secret_post_sends_the_secret_in_the_body(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_CLIENT_AUTH_METHOD="client_secret_post")
    sign_in(app.test_client(), fake_provider)
    [token_request] = fake_provider.token_requests
    assert token_request["form"]["client_secret"] == CLIENT_SECRET
    assert token_request["auth"] is None


def test_claims_combine_the_id_token_and_userinfo(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    assert client.get("/api/data", headers=SCRIPT).json == {"sub": "alice"}
    claims = client.get("/claims").json
    assert claims is not None
    assert claims["sub"] == "alice" and claims["email"] == "alice@example.test"
    assert claims["iss"] == fake_provider.issuer


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "x",
        "/a\nb",
        "/\t/evil.example",
        "http://[broken",
        "/\x7f/evil.example",
    ],
)
def test_next_is_limited_to_this_site(
    client: FlaskClient, fake_provider: FakeProvider, next_url: str
) -> None:
    assert sign_in(client, fake_provider, next_url).headers["Location"] == "/"


def test_sign_in_gives_a_new_session_id(client: FlaskClient, fake_provider: FakeProvider) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker who knows this session id"
    before = session_cookie(client)
    sign_in(client, fake_provider)
    assert session_cookie(client) != before


def test_sign_in_starts_a_fresh_session(client: FlaskClient, fake_provider: FakeProvider) -> None:
    with client.session_transaction() as session:
        session["csrf_token"] = "known-to-an-attacker"
    sign_in(client, fake_provider)
    with client.session_transaction() as session:
        assert "csrf_token" not in session


def test_keys_listed_in_keep_session_keys_survive_sign_in(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_KEEP_SESSION_KEYS=["basket"])
    client = app.test_client()
    with client.session_transaction() as session:
        session.update(basket=["book"], csrf_token="dropped")
    sign_in(client, fake_provider)
    with client.session_transaction() as session:
        assert session["basket"] == ["book"]
        assert "csrf_token" not in session


def test_several_tabs_can_log_in_at_once(client: FlaskClient, fake_provider: FakeProvider) -> None:
    first = client.get("/oidc/login?next=/first").headers["Location"]
    second = client.get("/oidc/login?next=/second").headers["Location"]
    back = provider_answers(client, fake_provider, second)
    assert back.headers["Location"] == "/second"
    back = provider_answers(client, fake_provider, first)
    assert back.headers["Location"] == "/first"


def test_pending_logins_are_bounded_oldest_dropped(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_MAX_STATES=2)
    client = app.test_client()
    oldest, middle, newest = (client.get("/oidc/login").headers["Location"] for _ in range(3))
    assert provider_answers(client, fake_provider, oldest).status_code == 400
    assert provider_answers(client, fake_provider, newest).status_code == 302
    assert provider_answers(client, fake_provider, middle).status_code == 302


def test_expired_pending_login_is_refused(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_STATE_LIFETIME_SECONDS=60)
    client = app.test_client()
    location = client.get("/oidc/login").headers["Location"]
    clock.advance(61)
    assert provider_answers(client, fake_provider, location).status_code == 400


def test_replayed_callback_is_refused_and_the_session_kept(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    location = client.get("/oidc/login?next=/private").headers["Location"]
    params = fake_provider.authorize(location)
    assert client.get("/oidc/callback", query_string=params).status_code == 302
    replay = client.get("/oidc/callback", query_string=params, headers=NAVIGATION)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert client.get("/private").text == "hello alice"


@pytest.mark.parametrize(
    "params",
    [{}, {"state": "forged", "code": "x"}, {"code": "x"}, {"state": ""}],
    ids=["nothing", "forged-state", "no-state", "empty-state"],
)
def test_callback_without_a_known_state_is_a_400_and_keeps_the_session(
    client: FlaskClient, fake_provider: FakeProvider, params: dict[str, str]
) -> None:
    sign_in(client, fake_provider)
    response = client.get("/oidc/callback", query_string=params, headers=SCRIPT)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_state"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/private").text == "hello alice"


def test_callback_error_page_for_a_browser_is_html(client: FlaskClient) -> None:
    response = client.get("/oidc/callback?state=forged", headers=NAVIGATION)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "unknown" in response.text


def test_callback_without_code_is_a_400(client: FlaskClient, fake_provider: FakeProvider) -> None:
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["code"]
    assert client.get("/oidc/callback", query_string=params).status_code == 400


def test_provider_error_answer_is_a_400_naming_it(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    params.update(error="access_denied", error_description="user said no")
    del params["code"]
    response = client.get("/oidc/callback", query_string=params, headers=NAVIGATION)
    assert response.status_code == 400
    assert "access_denied" in response.text


def test_iss_parameter_must_name_the_issuer(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    params["iss"] = "https://mix-up.example"
    response = client.get("/oidc/callback", query_string=params, headers=SCRIPT)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_issuer"
    assert not fake_provider.token_requests


def test_iss_parameter_is_required_when_advertised(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["iss"]
    assert client.get("/oidc/callback", query_string=params).status_code == 400


def test_iss_parameter_is_optional_when_not_advertised(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.iss_parameter_supported = False
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["iss"]
    assert client.get("/oidc/callback", query_string=params).status_code == 302


def test_replayed_code_refused_by_the_provider_is_a_400(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    fake_provider.codes.clear()
    response = client.get("/oidc/callback", query_string=params, headers=SCRIPT)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"claims": {"iss": "https://other.example"}}, "wrong issuer"),
        ({"claims": {"aud": "someone-else"}}, "wrong audience"),
        ({"claims": {"aud": ["someone-else"], "azp": CLIENT_ID}}, "azp is us but aud is not"),
        ({"claims": {"aud": [CLIENT_ID, "other"], "azp": "other"}}, "azp is someone else"),
        ({"claims": {"aud": [CLIENT_ID, "other"]}}, "several audiences without azp"),
        ({"claims": {"exp": 1000}}, "expired"),
        ({"claims": {"iat": None}}, "no iat"),
        ({"claims": {"sub": None}}, "no sub"),
        ({"claims": {"nonce": "replayed-nonce"}}, "wrong nonce"),
        ({"claims": {"nonce": None}}, "no nonce"),
        ({"header": {"alg": "none"}}, "alg none"),
        ({"header": {"alg": "HS256"}}, "HS256 signed with the client secret"),
        ({"header": {"kid": "unknown"}}, "unknown key"),
        ({"id_token": "not-a-jwt"}, "not a JWT"),
    ],
)
def test_an_invalid_id_token_is_a_400_and_signs_nobody_in(
    client: FlaskClient, fake_provider: FakeProvider, change: dict[str, Any], why: str
) -> None:
    for name, value in change.items():
        setattr(fake_provider, name, value)
    response = sign_in(client, fake_provider)
    assert response.status_code == 400, why
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_forged_signature_is_refused(client: FlaskClient, fake_provider: FakeProvider) -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    forger = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
    location = client.get("/oidc/login").headers["Location"]
    params = fake_provider.authorize(location)
    nonce = query(location)["nonce"]
    genuine = fake_provider.make_id_token(nonce)
    claims = jwt.decode(genuine, fake_provider.key).claims
    fake_provider.id_token = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, forger)
    assert client.get("/oidc/callback", query_string=params).status_code == 400


def test_userinfo_about_another_user_is_refused(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.userinfo = {"sub": "mallory", "email": "mallory@example.test"}
    assert sign_in(client, fake_provider).status_code == 400
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_userinfo_can_be_switched_off(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    fake_provider.userinfo = {"sub": "mallory"}
    app, _ = make_app(OIDC_FETCH_USERINFO=False)
    client = app.test_client()
    assert sign_in(client, fake_provider).status_code == 302
    assert client.get("/private").text == "hello alice"


def test_sign_in_gives_a_new_session_id_even_to_an_otherwise_empty_session(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_SESSION_TOUCH_FRACTION=0)
    client = app.test_client()
    with client.session_transaction() as session:
        session["x"] = 1
    before = session_cookie(client)
    with client.session_transaction() as session:
        session.clear()  # an emptied session whose id the browser still sends
    client.set_cookie("session", before, domain="localhost")
    sign_in(client, fake_provider)
    assert session_cookie(client) != before
