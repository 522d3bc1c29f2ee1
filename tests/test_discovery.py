"""Discovery with gaps: endpoints found in the provider's RFC 8414 document, missing features
reported once, and scopes that the provider actually offers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from apps import sign_in
from conftest import MakeApp
from fake_provider import FakeProvider
from flask.testing import FlaskClient

from flask_oidc_refresh import ConfigError

SAME_SITE = {"Origin": "http://localhost"}


def requested_scopes(client: FlaskClient) -> list[str]:
    location = client.get("/oidc/login").headers["Location"]
    return parse_qs(urlsplit(location).query)["scope"][0].split()


def logout(client: FlaskClient) -> None:
    assert client.post("/oidc/logout", headers=SAME_SITE).status_code == 302


def test_a_revocation_endpoint_only_in_the_oauth_metadata_is_used(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.issue_refresh_tokens = True
    fake_provider.metadata = {"revocation_endpoint": None}
    fake_provider.oauth_metadata = {"revocation_endpoint": f"{fake_provider.issuer}/revoke"}
    app, _ = make_app()
    client = app.test_client()
    sign_in(client, fake_provider)
    logout(client)
    assert len(fake_provider.revocations) == 2  # the refresh token and the access token


def test_an_oauth_document_of_another_issuer_is_ignored(
    make_app: MakeApp, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.metadata = {"revocation_endpoint": None}
    fake_provider.oauth_metadata = {
        "issuer": "https://attacker.example",
        "revocation_endpoint": f"{fake_provider.issuer}/revoke",
    }
    app, _ = make_app()
    client = app.test_client()
    sign_in(client, fake_provider)
    logout(client)
    assert fake_provider.revocations == []
    assert "no revocation endpoint" in caplog.text


def test_a_missing_feature_is_reported_once_with_what_to_set(
    make_app: MakeApp, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.metadata = {
        "revocation_endpoint": None,
        "end_session_endpoint": None,
        "backchannel_logout_supported": None,
    }
    app, _ = make_app()
    for _ in range(2):
        client = app.test_client()
        sign_in(client, fake_provider)
        logout(client)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if "OIDC_REVOCATION_ENDPOINT" in w]) == 1
    assert len([w for w in warnings if "OIDC_END_SESSION_ENDPOINT" in w]) == 1
    assert len([w for w in warnings if "back-channel logout" in w]) == 1


@pytest.mark.parametrize(
    ("offered", "config", "requested"),
    [
        (["openid", "email", "profile"], {}, ["openid", "email", "profile"]),
        (["openid"], {}, ["openid"]),  # a provider offering only openid
        (["openid", "profile", "offline_access"], {}, ["openid", "profile"]),
        (
            ["openid", "email", "offline_access"],
            {"OIDC_USE_REFRESH_TOKENS": True},  # never unasked: Keycloak's outlive the session
            ["openid", "email"],
        ),
        (None, {}, ["openid", "email", "profile"]),  # no scopes_supported: the usual ones
        (["openid"], {"OIDC_SCOPES": ["openid", "groups"]}, ["openid", "groups"]),  # as set
    ],
)
def test_scopes_are_those_the_provider_offers(
    make_app: MakeApp,
    fake_provider: FakeProvider,
    offered: list[str] | None,
    config: dict[str, object],
    requested: list[str],
) -> None:
    fake_provider.metadata = {"scopes_supported": offered}
    app, _ = make_app(**config)
    assert requested_scopes(app.test_client()) == requested


TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@pytest.fixture
def multi_tenant(make_app: MakeApp, fake_provider: FakeProvider) -> FlaskClient:
    """An app of Entra ID's kind: OIDC_ISSUER names ``common``, discovery an issuer template."""
    base = fake_provider.issuer
    fake_provider.metadata = {"issuer": base + "/{tenantid}/v2.0"}
    fake_provider.iss_parameter_supported = False
    app, _ = make_app(OIDC_ISSUER=f"{base}/common/v2.0")
    return app.test_client()


def answer(client: FlaskClient, provider: FakeProvider, **claims: str) -> int:
    """The provider signs the user in with ID token ``claims``; the callback's status."""
    provider.claims = claims
    params = provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["iss"]  # Entra ID sends no iss parameter
    return client.get("/oidc/callback", query_string=params).status_code


def test_a_multi_tenant_issuer_takes_tokens_naming_their_own_tenant(
    multi_tenant: FlaskClient, fake_provider: FakeProvider
) -> None:
    issuer = f"{fake_provider.issuer}/{TENANT}/v2.0"
    assert answer(multi_tenant, fake_provider, iss=issuer, tid=TENANT) == 302
    assert multi_tenant.get("/private").text == "hello alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"tid": "another-tenant"},  # a token of one tenant claiming to be from another
        {},  # no tid at all
    ],
)
def test_a_multi_tenant_token_whose_tid_does_not_match_its_issuer_is_refused(
    multi_tenant: FlaskClient, fake_provider: FakeProvider, claims: dict[str, str]
) -> None:
    issuer = f"{fake_provider.issuer}/{TENANT}/v2.0"
    assert answer(multi_tenant, fake_provider, iss=issuer, **claims) == 400
    assert multi_tenant.get("/private").status_code == 302  # not signed in


def test_a_discovery_issuer_that_is_no_template_of_ours_is_refused(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.metadata = {"issuer": "https://login.example.com/{tenantid}/v2.0"}
    app, _ = make_app(OIDC_ISSUER=f"{fake_provider.issuer}/common/v2.0")
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 500  # the provider is not ours: a misconfiguration
    assert "misconfigured" in response.text


def test_a_tenants_own_issuer_admits_that_tenant_only(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    base = fake_provider.issuer
    fake_provider.metadata = {"issuer": base + "/{tenantid}/v2.0"}  # as Entra answers for all
    fake_provider.iss_parameter_supported = False
    app, _ = make_app(OIDC_ISSUER=f"{base}/{TENANT}/v2.0")
    other = "0b8a3c1e-0000-4000-8000-000000000000"
    client = app.test_client()
    assert answer(client, fake_provider, iss=f"{base}/{other}/v2.0", tid=other) == 400
    assert answer(client, fake_provider, iss=f"{base}/{TENANT}/v2.0", tid=TENANT) == 302


def test_an_issuer_template_is_no_issuer(make_app: MakeApp) -> None:
    with pytest.raises(ConfigError, match="OIDC_ISSUER is a template"):
        make_app(OIDC_ISSUER="https://login.microsoftonline.com/{tenantid}/v2.0")
