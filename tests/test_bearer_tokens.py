"""``@oidc.accept_token``: API clients with ``Authorization: Bearer`` access tokens.

JWT access tokens (RFC 9068) are checked locally, others by introspection (RFC 7662); every
refusal follows RFC 6750, never a redirect or a cookie. The adversarial provider makes the
tokens no real provider would: forged, expired, misaddressed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from apps import SCRIPT, sign_in
from conftest import Clock, MakeApp
from fake_provider import API_AUDIENCE, CLIENT_SECRET, FakeProvider, b64
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from flask_oidc_refresh import OIDC, ConfigError
from flask_oidc_refresh.testing import pass_renewal_deadline

pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


def add_api_routes(app: Flask, oidc: OIDC) -> None:
    @app.get("/api/orders")
    @oidc.accept_token(scopes=["orders:read"])
    def orders() -> dict[str, Any]:
        assert oidc.token_claims is not None
        return {"sub": oidc.token_claims["sub"], "user": oidc.user}

    @app.get("/api/admin")
    @oidc.accept_token(claims={"groups": "admins"})
    def admin() -> dict[str, Any]:
        return {"admin": True}

    @app.get("/api/either")
    @oidc.accept_token(allow_session=True)
    def either() -> dict[str, Any]:
        token = oidc.token_claims
        return {"token": token and token["sub"], "user": oidc.user and oidc.user["sub"]}

    @app.get("/api/elsewhere")
    @oidc.accept_token(audience="https://other.example.test")
    def elsewhere() -> dict[str, Any]:
        return {"ok": True}


@pytest.fixture
def api(make_app: MakeApp) -> Flask:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE)
    add_api_routes(app, oidc)
    return app


@pytest.fixture
def client(api: Flask) -> FlaskClient:
    return api.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: Any) -> dict[str, str]:
    """The attributes of a ``WWW-Authenticate: Bearer`` header."""
    scheme, _, attributes = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    values = {}
    for part in attributes.split('", '):
        name, _, value = part.partition("=")
        values[name] = value.strip('"')
    return values


def body(response: Any) -> dict[str, Any]:
    """The JSON object of ``response``."""
    data = response.json
    assert isinstance(data, dict), response.text
    return data


def assert_refused(response: Any, status: int = 401, error: str = "invalid_token") -> None:
    """Refused as RFC 6750 says: the status, the error in the header and in a JSON body, no
    redirect, no cookie."""
    assert response.status_code == status, response.text
    assert challenge(response)["error"] == error
    assert body(response)["error"] == error
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert "Location" not in response.headers


def test_a_valid_jwt_access_token_lets_the_client_in(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    response = client.get("/api/orders", headers=bearer(fake_provider.make_access_token()))
    assert response.status_code == 200
    assert response.json == {"sub": "alice", "user": None}
    assert "Set-Cookie" not in response.headers  # no session for an API client


def test_it_is_checked_locally_with_no_call_per_request(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    for _ in range(3):
        token = fake_provider.make_access_token()
        assert client.get("/api/orders", headers=bearer(token)).status_code == 200
    assert fake_provider.jwks_requests == 1
    assert fake_provider.introspection_requests == []


def test_a_missing_token_gets_401_invalid_token(client: FlaskClient) -> None:
    response = client.get("/api/orders")
    assert_refused(response)
    assert body(response)["error_description"] == "A bearer token is required."


def test_another_authorization_scheme_is_no_bearer_token(client: FlaskClient) -> None:
    assert_refused(client.get("/api/orders", headers={"Authorization": "Basic YWxpY2U6eA=="}))


def test_a_token_without_the_scope_gets_403_insufficient_scope(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    token = fake_provider.make_access_token(scope="orders:write profile")
    response = client.get("/api/orders", headers=bearer(token))
    assert_refused(response, 403, "insufficient_scope")
    assert challenge(response)["scope"] == "orders:read"


@pytest.mark.parametrize(
    "scopes",
    [
        {"scope": "profile orders:read"},
        {"scope": None, "scp": ["orders:read"]},
        {"scope": None, "scp": "orders:read"},
    ],
    ids=["scope", "scp-list (Okta)", "scp-string (Entra ID)"],
)
def test_scopes_are_read_from_scope_or_scp(
    client: FlaskClient, fake_provider: FakeProvider, scopes: dict[str, Any]
) -> None:
    token = fake_provider.make_access_token(**scopes)
    assert client.get("/api/orders", headers=bearer(token)).status_code == 200


# --- the bad-token catalogue --------------------------------------------------------------


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_decode(payload))
    claims["sub"] = "mallory"
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def _decode(segment: str) -> str:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def hs256_with_public_key(provider: FakeProvider) -> str:
    """The classic key-confusion forgery: HS256 keyed with the provider's public key (made by
    hand: joserfc refuses to use a public key as an HMAC secret)."""
    public_pem = provider.key.as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": "key-1", "typ": "at+jwt"}).encode())
    payload = provider.make_access_token().split(".")[1]
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def with_header(token: str, **members: Any) -> str:
    """``token`` with members added to its header (which joserfc would not encode), its
    signature left as it was."""
    header, payload, signature = token.split(".")
    changed = json.loads(_decode(header)) | members
    return f"{b64(json.dumps(changed).encode())}.{payload}.{signature}"


def signed_by_a_stranger(provider: FakeProvider, kid: str) -> str:
    stranger = RSAKey.generate_key(2048, parameters={"kid": kid})
    claims = json.loads(_decode(provider.make_access_token().split(".")[1]))
    return jwt.encode({"alg": "RS256", "kid": kid, "typ": "at+jwt"}, claims, stranger)


BAD_TOKENS: dict[str, Callable[[FakeProvider], str]] = {
    "tampered": lambda p: tampered(p.make_access_token()),
    "expired": lambda p: p.make_access_token(exp=int(time.time()) - 120),
    "not-yet-valid": lambda p: p.make_access_token(nbf=int(time.time()) + 600),
    "issued-in-the-future": lambda p: p.make_access_token(iat=int(time.time()) + 600),
    "no-exp": lambda p: p.make_access_token(exp=None),
    "wrong-issuer": lambda p: p.make_access_token(iss="https://evil.example"),
    "wrong-audience": lambda p: p.make_access_token(aud="https://other.example.test"),
    "no-audience": lambda p: p.make_access_token(aud=None),
    "alg-none": lambda p: p.make_access_token(header={"alg": "none"}),
    "hs256-client-secret": lambda p: p.make_access_token(header={"alg": "HS256"}),
    "hs256-public-key": hs256_with_public_key,
    "unknown-kid": lambda p: signed_by_a_stranger(p, "key-2"),
    "known-kid-other-key": lambda p: signed_by_a_stranger(p, "key-1"),
    "id-token": lambda p: p.make_id_token("a-nonce", aud=API_AUDIENCE, scope="orders:read"),
    "typ-jwt": lambda p: p.make_access_token(header={"typ": "JWT"}),
    "no-typ": lambda p: p.make_access_token(header={"typ": None}),
    "crit-not-a-list": lambda p: with_header(p.make_access_token(), crit=5),
    "crit-of-numbers": lambda p: with_header(p.make_access_token(), crit=[5]),
    "logout-token": lambda p: p.make_logout_token(aud=API_AUDIENCE, scope="orders:read"),
    "dpop-bound": lambda p: p.make_access_token(
        cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    ),
    "garbage": lambda p: "not-a-token",
    "three-garbage-parts": lambda p: "a.b.c",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_gets_401_invalid_token(
    client: FlaskClient, fake_provider: FakeProvider, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = BAD_TOKENS[kind](fake_provider)
    assert_refused(client.get("/api/orders", headers=bearer(token)))
    assert "refused a bearer token" in caplog.text


def test_an_unknown_kid_refetches_the_keys_once_per_interval(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    client.get("/api/orders", headers=bearer(fake_provider.make_access_token()))
    for _ in range(5):
        client.get("/api/orders", headers=bearer(signed_by_a_stranger(fake_provider, "key-9")))
    assert fake_provider.jwks_requests == 2


def test_an_hmac_token_is_refused_even_when_id_tokens_may_use_hmac(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app(
        OIDC_API_AUDIENCE=API_AUDIENCE, OIDC_ID_TOKEN_ALGORITHMS=["RS256", "HS256"]
    )
    add_api_routes(app, oidc)
    token = fake_provider.make_access_token(header={"alg": "HS256"})
    assert jwt.decode(token, OctKey.import_key(CLIENT_SECRET), algorithms=["HS256"])
    assert_refused(app.test_client().get("/api/orders", headers=bearer(token)))


def test_typ_jwt_is_accepted_when_configured_but_an_id_token_still_is_not(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE, OIDC_ACCESS_TOKEN_TYPES=["at+jwt", "JWT"])
    add_api_routes(app, oidc)
    client = app.test_client()
    keycloak_style = fake_provider.make_access_token(header={"typ": "JWT"})
    assert client.get("/api/orders", headers=bearer(keycloak_style)).status_code == 200
    id_token = fake_provider.make_id_token("n", aud=API_AUDIENCE, scope="orders:read")
    assert_refused(client.get("/api/orders", headers=bearer(id_token)))
    refreshed_id_token = fake_provider.make_id_token(None, aud=API_AUDIENCE)  # no nonce
    assert_refused(client.get("/api/either", headers=bearer(refreshed_id_token)))
    keycloak_id_token = fake_provider.make_id_token(None, aud=API_AUDIENCE, typ="ID", scope="x")
    assert_refused(client.get("/api/either", headers=bearer(keycloak_id_token)))


def test_a_token_for_another_api_is_refused_where_the_view_names_its_own_audience(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    ours = fake_provider.make_access_token()
    assert_refused(client.get("/api/elsewhere", headers=bearer(ours)))
    theirs = fake_provider.make_access_token(aud=["https://other.example.test", "x"])
    assert client.get("/api/elsewhere", headers=bearer(theirs)).status_code == 200


def test_a_checked_token_is_remembered_but_never_past_its_expiry(
    client: FlaskClient, fake_provider: FakeProvider, clock: Clock
) -> None:
    token = fake_provider.make_access_token(exp=int(time.time()) + 100)
    assert client.get("/api/orders", headers=bearer(token)).status_code == 200
    clock.advance(99)
    assert client.get("/api/orders", headers=bearer(token)).status_code == 200
    clock.advance(2 + 60)  # past exp and the clock-skew leeway
    assert_refused(client.get("/api/orders", headers=bearer(token)))


def test_claims_required_of_the_token(client: FlaskClient, fake_provider: FakeProvider) -> None:
    member = fake_provider.make_access_token(groups=["staff", "admins"])
    assert client.get("/api/admin", headers=bearer(member)).status_code == 200
    outsider = fake_provider.make_access_token(groups=["staff"])
    response = client.get("/api/admin", headers=bearer(outsider))
    assert response.status_code == 403
    assert body(response)["error"] == "access_denied"
    assert "Set-Cookie" not in response.headers


def test_no_audience_anywhere_is_a_configuration_error(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    add_api_routes(app, oidc)
    app.testing = True  # the error reaches the developer, not the client
    with pytest.raises(ConfigError, match="OIDC_API_AUDIENCE"):
        app.test_client().get("/api/orders", headers=bearer(fake_provider.make_access_token()))


# --- opaque tokens: introspection --------------------------------------------------------


def active(**answer: Any) -> dict[str, Any]:
    return {
        "active": True,
        "iss": None,
        "aud": API_AUDIENCE,
        "sub": "alice",
        "scope": "orders:read",
        "exp": int(time.time()) + 300,
        "token_type": "Bearer",
        **answer,
    }


def introspected(provider: FakeProvider, token: str, **answer: Any) -> None:
    provider.introspection[token] = {
        k: v for k, v in {**active(iss=provider.issuer), **answer}.items() if v is not None
    }


def test_an_opaque_token_is_introspected_with_client_authentication(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    introspected(fake_provider, "opaque-1")
    response = client.get("/api/orders", headers=bearer("opaque-1"))
    assert response.status_code == 200
    assert response.json == {"sub": "alice", "user": None}
    [call] = fake_provider.introspection_requests
    assert call["form"] == {"token": "opaque-1", "token_type_hint": "access_token"}
    assert call["auth"].username == "test-client"


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        {"aud": "https://other.example.test"},
        {"aud": None},
        {"iss": "https://evil.example"},
        {"token_type": "refresh_token"},
        {"exp": 1_000_000_000},
        {"nbf": 4_000_000_000},
        {"exp": "1000"},
        {"token_type": "DPoP"},
        {"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}},
        {"typ": "Refresh"},
    ],
    ids=[
        "inactive", "other-audience", "no-audience", "other-issuer", "refresh-token", "expired",
        "not-yet-valid", "exp-not-a-time", "dpop-bound", "mtls-bound", "keycloak-refresh-token",
    ],
)  # fmt: skip
def test_introspection_answers_that_refuse(
    client: FlaskClient, fake_provider: FakeProvider, answer: dict[str, Any]
) -> None:
    introspected(fake_provider, "opaque-1", **answer)
    assert_refused(client.get("/api/orders", headers=bearer("opaque-1")))


def test_an_unknown_opaque_token_is_refused(client: FlaskClient) -> None:
    assert_refused(client.get("/api/orders", headers=bearer("never-issued")))


def test_introspection_is_cached_briefly_and_never_past_the_tokens_expiry(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE, OIDC_INTROSPECTION_CACHE_SECONDS=30)
    add_api_routes(app, oidc)
    client = app.test_client()
    introspected(fake_provider, "short", exp=int(time.time()) + 10)
    introspected(fake_provider, "long")
    for token in ("short", "long"):
        for _ in range(3):
            assert client.get("/api/orders", headers=bearer(token)).status_code == 200
    assert len(fake_provider.introspection_requests) == 2
    clock.advance(11)  # the short one has expired: asked again, and refused by now
    fake_provider.introspection["short"] = {"active": False}
    assert_refused(client.get("/api/orders", headers=bearer("short")))
    assert client.get("/api/orders", headers=bearer("long")).status_code == 200
    assert len(fake_provider.introspection_requests) == 3
    clock.advance(20)  # the cache's 30 seconds are over: the long one is asked about again
    assert client.get("/api/orders", headers=bearer("long")).status_code == 200
    assert len(fake_provider.introspection_requests) == 4


def test_a_revoked_token_is_refused_once_the_short_cache_is_over(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE, OIDC_INTROSPECTION_CACHE_SECONDS=5)
    add_api_routes(app, oidc)
    client = app.test_client()
    introspected(fake_provider, "opaque-1")
    assert client.get("/api/orders", headers=bearer("opaque-1")).status_code == 200
    fake_provider.introspection["opaque-1"] = {"active": False}  # revoked at the provider
    clock.advance(6)
    assert_refused(client.get("/api/orders", headers=bearer("opaque-1")))


def test_introspection_down_is_a_502_without_a_cookie(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.introspection_status = 500
    response = client.get("/api/orders", headers=bearer("opaque-1"))
    assert response.status_code == 502
    assert body(response)["error"] == "provider_unavailable"
    assert "Set-Cookie" not in response.headers


def test_without_an_introspection_endpoint_an_opaque_token_is_refused(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.metadata = {"introspection_endpoint": None}
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE)
    add_api_routes(app, oidc)
    assert_refused(app.test_client().get("/api/orders", headers=bearer("opaque-1")))


@pytest.mark.parametrize("mode", ["auto", "jwt", "introspection"])
def test_which_check_applies_is_automatic_or_configured(
    make_app: MakeApp, fake_provider: FakeProvider, mode: str
) -> None:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE, OIDC_ACCESS_TOKEN_VALIDATION=mode)
    add_api_routes(app, oidc)
    client = app.test_client()
    jwt_token = fake_provider.make_access_token()
    introspected(fake_provider, "opaque-1")
    introspected(fake_provider, jwt_token)
    jwt_status = client.get("/api/orders", headers=bearer(jwt_token)).status_code
    opaque_status = client.get("/api/orders", headers=bearer("opaque-1")).status_code
    introspected_tokens = [r["form"]["token"] for r in fake_provider.introspection_requests]
    assert (jwt_status, opaque_status) == {
        "auto": (200, 200),
        "jwt": (200, 401),
        "introspection": (200, 200),
    }[mode]
    assert (jwt_token in introspected_tokens) == (mode == "introspection")
    assert ("opaque-1" in introspected_tokens) == (mode != "jwt")


# --- a view that takes a session or a token ----------------------------------------------


def test_either_a_signed_in_session_or_a_token(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    token = fake_provider.make_access_token(sub="service-7")
    assert client.get("/api/either", headers=bearer(token)).json == {
        "token": "service-7",
        "user": None,
    }
    sign_in(client, fake_provider)
    assert client.get("/api/either", headers=SCRIPT).json == {"token": None, "user": "alice"}


def test_either_with_neither_asks_for_sign_in_or_a_token(client: FlaskClient) -> None:
    response = client.get("/api/either", headers={"Accept": "*/*"})
    assert response.status_code == 401
    assert body(response)["error"] == "login_required"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    page_load = client.get("/api/either")
    assert page_load.status_code == 302
    assert page_load.headers["Location"].startswith("/oidc/login")


def test_a_bad_token_is_refused_even_with_a_signed_in_session(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    response = client.get("/api/either", headers=bearer(BAD_TOKENS["expired"](fake_provider)))
    assert response.status_code == 401


def test_a_token_request_does_not_renew_or_touch_the_session(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    token = fake_provider.make_access_token()
    for path in ("/api/orders", "/api/either"):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
    assert fake_provider.refresh_requests() == 0


@pytest.fixture
def partner(make_app: MakeApp, serve: Any) -> tuple[FlaskClient, FakeProvider]:
    """A test client of an app with a further provider (keys of its own), and that provider."""
    partner = FakeProvider()
    partner.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "alg": "RS256"})
    partner.issuer = serve(partner.app)
    app, oidc = make_app(
        OIDC_API_AUDIENCE=API_AUDIENCE,
        OIDC_PROVIDERS={
            "partner": {"ISSUER": partner.issuer, "CLIENT_ID": "p", "CLIENT_SECRET": "s"}
        },
    )
    add_api_routes(app, oidc)
    return app.test_client(), partner


def test_a_token_of_a_further_provider_is_checked_with_that_providers_keys(
    partner: tuple[FlaskClient, FakeProvider], fake_provider: FakeProvider
) -> None:
    client, provider = partner
    assert (
        client.get("/api/orders", headers=bearer(provider.make_access_token())).status_code == 200
    )
    forged = provider.make_access_token(iss=fake_provider.issuer)  # partner's key, our issuer
    assert_refused(client.get("/api/orders", headers=bearer(forged)))


def test_the_testing_helper_makes_tokens_the_app_takes(api: Flask) -> None:
    from flask_oidc_refresh.testing import issue_test_token

    client = api.test_client()
    token = issue_test_token(api, {"sub": "svc", "scope": "orders:read"})
    assert client.get("/api/orders", headers=bearer(token)).json == {"sub": "svc", "user": None}
    without_scope = issue_test_token(api, {"sub": "svc", "scope": "profile"})
    assert_refused(
        client.get("/api/orders", headers=bearer(without_scope)), 403, "insufficient_scope"
    )
    elsewhere = issue_test_token(api, {"sub": "svc"}, audience="https://other.example.test")
    assert client.get("/api/elsewhere", headers=bearer(elsewhere)).status_code == 200
    assert_refused(client.get("/api/orders", headers=bearer(elsewhere)))


def test_a_bearer_header_does_not_spare_a_due_session_its_renewal_elsewhere(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    response = client.get("/private", headers={**bearer("made-up"), "Sec-Fetch-Mode": "navigate"})
    assert response.status_code == 302
    assert "prompt=none" in response.headers["Location"]  # renewed like any page load


def test_a_token_request_is_judged_by_its_token_alone(
    client: FlaskClient, fake_provider: FakeProvider, clock: Clock
) -> None:
    sign_in(client, fake_provider)
    clock.advance(4 * 86400)  # past the session's touch interval (a tenth of 31 days)
    token = fake_provider.make_access_token(sub="bob", exp=int(time.time()) + 5 * 86400)
    response = client.get("/api/orders", headers=bearer(token))
    assert response.json == {"sub": "bob", "user": None}  # not alice of the cookie
    assert "Set-Cookie" not in response.headers  # the API call keeps no session alive
    refused = client.get("/api/orders", headers=bearer("bad"))
    assert refused.status_code == 401
    assert "Set-Cookie" not in refused.headers


def test_a_view_changing_the_token_claims_changes_them_for_itself_only(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app(OIDC_API_AUDIENCE=API_AUDIENCE)

    @app.get("/api/careless")
    @oidc.accept_token(scopes="orders:read")
    def careless() -> str:
        assert oidc.token_claims is not None
        oidc.token_claims["scope"] += " admin"
        return "changed"

    @app.get("/api/admin-only")
    @oidc.accept_token(scopes="admin")
    def admin_only() -> str:
        return "admin"

    client = app.test_client()
    token = fake_provider.make_access_token()
    assert client.get("/api/careless", headers=bearer(token)).text == "changed"
    assert_refused(client.get("/api/admin-only", headers=bearer(token)), 403, "insufficient_scope")


def test_a_further_providers_token_is_checked_while_the_default_provider_is_down(
    partner: tuple[FlaskClient, FakeProvider], fake_provider: FakeProvider
) -> None:
    client, provider = partner
    fake_provider.discovery_status = 503
    assert (
        client.get("/api/orders", headers=bearer(provider.make_access_token())).status_code == 200
    )
