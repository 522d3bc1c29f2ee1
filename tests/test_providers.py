"""Several providers in one app: each sign-in remembers its provider, and renewal, logout and
back-channel logout go to that one; the single-provider settings stay as they are."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from apps import NAVIGATION, SCRIPT, provider_answers, sign_in
from conftest import ON_EVERY_STORE, MakeApp, Serve
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask import Flask
from flask.testing import FlaskClient

from flask_oidc_refresh import ConfigError
from flask_oidc_refresh.testing import pass_renewal_deadline

pytestmark = ON_EVERY_STORE
SAME_SITE = {"Origin": "http://localhost"}


@pytest.fixture
def partner(serve: Serve) -> FakeProvider:
    """A second provider, of another issuer."""
    provider = FakeProvider()
    provider.issuer = serve(provider.app)
    return provider


@pytest.fixture
def app(make_app: MakeApp, partner: FakeProvider) -> Flask:
    app, _ = make_app(
        OIDC_PROVIDERS={
            "partner": {
                "ISSUER": partner.issuer,
                "CLIENT_ID": CLIENT_ID,
                "OIDC_CLIENT_SECRET": CLIENT_SECRET,  # with or without the prefix
                "AUTH_PARAMS": {"kc_idp_hint": "partner-only"},
            }
        }
    )
    return app


def sign_in_with_partner(client: FlaskClient, partner: FakeProvider) -> None:
    location = client.get("/oidc/login?provider=partner&next=/private").headers["Location"]
    assert location.startswith(f"{partner.issuer}/authorize")
    assert provider_answers(client, partner, location).status_code == 302
    assert client.get("/private").text == "hello alice"


def test_the_sign_in_link_names_the_provider(
    app: Flask, fake_provider: FakeProvider, partner: FakeProvider
) -> None:
    client = app.test_client()
    default = client.get("/oidc/login").headers["Location"]
    assert default.startswith(f"{fake_provider.issuer}/authorize")
    assert "kc_idp_hint" not in parse_qs(urlsplit(default).query)
    other = client.get("/oidc/login?provider=partner").headers["Location"]
    assert other.startswith(f"{partner.issuer}/authorize")
    assert parse_qs(urlsplit(other).query)["kc_idp_hint"] == ["partner-only"]  # its own
    assert client.get("/oidc/login?provider=nobody").status_code == 400


def test_renewal_goes_to_the_provider_of_the_sign_in(
    app: Flask, fake_provider: FakeProvider, partner: FakeProvider
) -> None:
    partner.issue_refresh_tokens = True
    client = app.test_client()
    sign_in_with_partner(client, partner)
    pass_renewal_deadline(client)
    assert client.get("/private").text == "hello alice"
    assert partner.refresh_requests() == 1 and fake_provider.refresh_requests() == 0


def test_silent_renewal_goes_to_the_provider_of_the_sign_in(
    app: Flask, partner: FakeProvider
) -> None:
    client = app.test_client()
    sign_in_with_partner(client, partner)
    pass_renewal_deadline(client)
    location = client.get("/private", headers=NAVIGATION).headers["Location"]
    assert location.startswith(f"{partner.issuer}/authorize")
    assert provider_answers(client, partner, location).status_code == 302
    assert client.get("/private").text == "hello alice"


def test_logout_goes_to_the_provider_of_the_sign_in(app: Flask, partner: FakeProvider) -> None:
    partner.issue_refresh_tokens = True
    client = app.test_client()
    sign_in_with_partner(client, partner)
    response = client.post("/oidc/logout", headers=SAME_SITE)
    assert response.headers["Location"].startswith(f"{partner.issuer}/logout")
    assert len(partner.revocations) == 2


def test_a_back_channel_logout_ends_only_its_providers_sessions(
    app: Flask, fake_provider: FakeProvider, partner: FakeProvider
) -> None:
    fake_provider.claims = partner.claims = {"sid": "same-sid"}  # alice, at both
    at_default, at_partner = app.test_client(), app.test_client()
    sign_in(at_default, fake_provider)
    sign_in_with_partner(at_partner, partner)
    logout_token = partner.make_logout_token(sid="same-sid")
    answer = app.test_client().post("/oidc/backchannel-logout", data={"logout_token": logout_token})
    assert answer.status_code == 200
    assert at_partner.get("/api/data", headers=SCRIPT).status_code == 401
    assert at_default.get("/api/data", headers=SCRIPT).status_code == 200  # the same sub and sid


@pytest.mark.parametrize(
    ("providers", "named"),
    [
        ({"Not A Name": {"ISSUER": "https://login.example.com"}}, "not a name"),
        ({"partner": {"ISSUER": "ftp://login.example.com"}}, "OIDC_PROVIDERS\\['partner'\\]"),
        ({"partner": "https://login.example.com"}, "OIDC_PROVIDERS must map"),
    ],
)
def test_a_mistake_in_a_providers_settings_names_it(
    make_app: MakeApp, providers: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        make_app(OIDC_PROVIDERS=providers)


def test_an_answer_brought_to_another_providers_callback_is_refused(
    app: Flask, fake_provider: FakeProvider, partner: FakeProvider
) -> None:
    client = app.test_client()
    location = client.get("/oidc/login?provider=partner").headers["Location"]
    assert "%2Foidc%2Fcallback%2Fpartner" in location  # its own redirect URI
    answer = client.get("/oidc/callback", query_string=partner.authorize(location))
    assert answer.status_code == 400  # the mix-up attack: a code for one, sent to the other
    assert client.get("/api/data", headers=SCRIPT).status_code == 401


@pytest.mark.parametrize(
    ("own", "named"),
    [
        ({"ISSUER": "https://a.example.com", "CLIENT_ID": "a", "URL_PREFIX": "/x"}, "URL_PREFIX"),
        ({"ISSUER": "https://a.example.com", "CLIENT_ID": "a"}, "OIDC_CLIENT_SECRET"),
    ],
)
def test_a_provider_has_its_own_credentials_and_nothing_app_wide(
    make_app: MakeApp, own: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):  # the default's secret is not lent to it
        make_app(OIDC_PROVIDERS={"other": own})


def test_one_provider_down_does_not_stop_anothers_back_channel_logout(
    app: Flask, fake_provider: FakeProvider, partner: FakeProvider
) -> None:
    client = app.test_client()
    sign_in_with_partner(client, partner)
    fake_provider.jwks_status = fake_provider.discovery_status = 503  # the default is down
    token = partner.make_logout_token(sub="alice")
    answer = app.test_client().post("/oidc/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == 200
    assert client.get("/api/data", headers=SCRIPT).status_code == 401
