"""The errors a developer meets in the first hour say what happened and which setting to check:
on the page in debug mode, in the log always; a visitor of a production site reads a safe
message. A misconfigured app and an unavailable provider are different answers."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from apps import provider_answers, sign_in
from conftest import MakeApp, Served
from fake_provider import FakeProvider
from flask import Flask
from provider_forms import sign_in as sign_in_at_provider

from flask_oidc_refresh import ConfigError

SAFE = "connection to its identity provider is misconfigured"


def wrong_secret(provider: FakeProvider) -> None:
    provider.token_status = 401
    provider.token_body = {"error": "invalid_client", "error_description": "client auth failed"}


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
def test_a_wrong_client_secret_names_the_settings(
    app: Flask, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    app.debug = debug
    wrong_secret(fake_provider)
    response = sign_in(app.test_client(), fake_provider)
    assert response.status_code == 500
    assert SAFE in response.text
    assert ("OIDC_CLIENT_SECRET" in response.text) is debug  # the reason: for developers only
    assert "invalid_client" in caplog.text
    assert "OIDC_CLIENT_SECRET" in caplog.text


def test_a_wrong_client_secret_against_the_development_provider(
    example_app: Callable[..., Served],
) -> None:
    served = example_app(OIDC_CLIENT_SECRET="not-the-secret")
    served.app.debug = True
    page = sign_in_at_provider(requests.Session(), f"{served.base}/profile")
    assert page.status_code == 500
    assert "invalid_client" in page.text
    assert "OIDC_CLIENT_SECRET" in page.text


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
def test_a_wrong_issuer_is_a_misconfiguration_not_an_outage(
    make_app: MakeApp, fake_provider: FakeProvider, debug: bool
) -> None:
    app, _ = make_app(OIDC_ISSUER=f"{fake_provider.issuer}/realms/typo")
    app.debug = debug
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 500
    assert SAFE in response.text
    assert ("OIDC_ISSUER" in response.text) is debug
    assert "unavailable" not in response.text


def test_a_provider_that_is_down_is_an_outage(
    app: Flask, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app.debug = True
    fake_provider.discovery_status = 503
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 502
    assert "The identity provider is unavailable. Please try again later." in response.text
    assert "answered 503" in response.text  # debug mode shows the reason
    assert "misconfigured" not in response.text
    assert "identity provider unavailable" in caplog.text


@pytest.mark.parametrize(
    ("base_url", "config", "debug", "status"),
    [
        ("http://app.example.test", {}, False, 500),
        ("http://app.example.test", {}, True, 302),
        ("http://app.example.test", {"OIDC_ALLOW_INSECURE_HTTP": True}, False, 302),
        ("http://app.example.test", {"OIDC_REDIRECT_URI": "https://app.test/cb"}, False, 302),
        ("https://app.example.test", {}, False, 302),
        ("http://127.0.0.1:5000", {}, False, 302),
    ],
    ids=["http-in-production", "debug", "allowed", "https-redirect-uri", "https", "loopback"],
)  # fmt: skip
def test_http_in_production_is_refused_with_the_fix(
    make_app: MakeApp, base_url: str, config: dict[str, object], debug: bool, status: int
) -> None:
    app, _ = make_app(**config)
    app.debug = debug
    response = app.test_client().get("/oidc/login", base_url=base_url)
    assert response.status_code == status
    assert (SAFE in response.text) is (status == 500)


def test_http_in_production_is_logged_with_the_fix(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app()
    app.test_client().get("/oidc/login", base_url="http://app.example.test")
    assert "http://app.example.test/oidc/callback" in caplog.text
    assert "ProxyFix" in caplog.text


def test_a_clock_that_is_off_is_named_as_the_likely_cause(
    app: Flask, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app.debug = True
    fake_provider.claims = {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}
    client = app.test_client()
    location = client.get("/oidc/login").headers["Location"]
    response = provider_answers(client, fake_provider, location)
    assert response.status_code == 400
    assert "clock right?" in response.text
    assert "OIDC_CLOCK_SKEW_SECONDS" in caplog.text


def test_a_missing_secret_key_names_the_setting() -> None:
    app = Flask("no-secret")
    app.config.update(
        OIDC_ISSUER="https://login.example.com", OIDC_CLIENT_ID="c", OIDC_CLIENT_SECRET="s"
    )
    from flask_oidc_refresh import OIDC

    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        OIDC(app)
