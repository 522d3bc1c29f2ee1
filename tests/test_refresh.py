"""Renewal with the refresh token: server-side, once per session, and safe on bad days."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from apps import (
    NAVIGATION,
    SCRIPT,
    change_tokens,
    check_no_lost_update,
    check_one_spend,
    recorded,
    renewal_deadline,
    sign_in,
    sign_in_of,
    tokens_of,
)
from conftest import ON_EVERY_STORE, Clock, MakeApp, Serve
from fake_provider import CLIENT_ID as FAKE_CLIENT_ID
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_oidc_refresh import session_renewal_failed, session_renewed
from flask_oidc_refresh.testing import pass_renewal_deadline

pytestmark = ON_EVERY_STORE


@pytest.fixture
def refreshing(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.issue_refresh_tokens = True
    return fake_provider


@pytest.fixture
def signed_in(client: FlaskClient, refreshing: FakeProvider) -> FlaskClient:
    sign_in(client, refreshing)
    return client


def prompt(response: TestResponse) -> str | None:
    values = parse_qs(urlsplit(response.headers["Location"]).query).get("prompt")
    return values[0] if values else None


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [("GET", "/private", NAVIGATION), ("GET", "/api/data", SCRIPT), ("POST", "/write", SCRIPT)],
    ids=["page", "script", "post"],
)
def test_due_session_is_renewed_server_side_for_any_request(
    app: Flask,
    signed_in: FlaskClient,
    refreshing: FakeProvider,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    before = tokens_of(signed_in)
    pass_renewal_deadline(signed_in)
    with recorded(session_renewed, app) as renewals:
        response = signed_in.open(path, method=method, headers=headers)
    assert response.status_code == 200
    after = tokens_of(signed_in)
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # rotated, and the new one kept
    assert after.renew_at > time.time() + 800
    assert refreshing.refresh_requests() == 1
    assert [r["method"] for r in renewals] == ["refresh_token"]
    assert renewal_deadline(signed_in) == after.renew_at


def test_refresh_request_authenticates_the_client(
    signed_in: FlaskClient, refreshing: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    signed_in.get("/private")
    refresh = [r for r in refreshing.token_requests if r["form"]["grant_type"] == "refresh_token"]
    assert refresh[0]["auth"].username == "test-client"


def test_deadline_is_never_later_than_the_access_tokens_expiry(
    client: FlaskClient, refreshing: FakeProvider
) -> None:
    refreshing.expires_in = 120
    sign_in(client, refreshing)
    deadline = tokens_of(client).renew_at - time.time()
    assert 85 < deadline <= 90  # 120 s less a 30 s margin, well before the 900 s default


def test_short_lived_access_tokens_keep_a_proportional_margin(
    client: FlaskClient, refreshing: FakeProvider
) -> None:
    refreshing.expires_in = 40
    sign_in(client, refreshing)
    assert 25 < tokens_of(client).renew_at - time.time() <= 30


def test_without_refresh_token_the_deadline_ignores_access_token_expiry(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.expires_in = 120
    sign_in(client, fake_provider)
    assert tokens_of(client).renew_at - time.time() > 890


def test_refresh_tokens_can_be_switched_off(make_app: MakeApp, refreshing: FakeProvider) -> None:
    app, _ = make_app(OIDC_USE_REFRESH_TOKENS=False)
    client = app.test_client()
    sign_in(client, refreshing)
    assert tokens_of(client).refresh_token is None
    pass_renewal_deadline(client)
    assert prompt(client.get("/private", headers=NAVIGATION)) == "none"
    assert refreshing.refresh_requests() == 0


def test_refresh_response_without_id_token_keeps_the_claims(
    signed_in: FlaskClient, refreshing: FakeProvider
) -> None:
    refreshing.refresh_id_token = False
    pass_renewal_deadline(signed_in)
    assert signed_in.get("/private").text == "hello alice"
    assert tokens_of(signed_in).claims["email"] == "alice@example.test"


@pytest.mark.parametrize("claims", [{"aud": "someone-else"}, {"exp": 1000}], ids=["aud", "expired"])
def test_a_bad_id_token_in_the_refresh_response_falls_back_to_the_browser(
    signed_in: FlaskClient, refreshing: FakeProvider, claims: dict[str, Any]
) -> None:
    pass_renewal_deadline(signed_in)
    refreshing.claims = claims
    assert prompt(signed_in.get("/private", headers=NAVIGATION)) == "none"
    assert tokens_of(signed_in).refresh_token is None


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_a_refused_refresh_token_ends_the_sign_in_for_every_method(
    app: Flask, signed_in: FlaskClient, refreshing: FakeProvider, method: str
) -> None:
    refreshing.refresh_tokens.clear()  # the provider ended the grant (revoked, expired)
    pass_renewal_deadline(signed_in)
    with recorded(session_renewal_failed, app) as failures:
        response = signed_in.open(
            "/write" if method != "GET" else "/api/data",
            method=method,
            headers={**SCRIPT, "Referer": "http://localhost/board"},
        )
    assert response.status_code == 403  # never runs as the user
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/board"
    assert "invalid_grant" in failures[0]["reason"]
    assert failures[0]["ended"] is True
    assert signed_in.get("/api/data", headers=SCRIPT).status_code == 401  # signed out here
    assert refreshing.refresh_requests() == 1  # the dead refresh token is not tried again


@pytest.mark.parametrize(
    "claims", [{"sub": "mallory"}, {"iss": "https://other.example"}], ids=["sub", "iss"]
)
def test_a_refreshed_id_token_of_another_identity_ends_the_sign_in(
    app: Flask, signed_in: FlaskClient, refreshing: FakeProvider, claims: dict[str, Any]
) -> None:
    pass_renewal_deadline(signed_in)
    refreshing.claims = claims
    with recorded(session_renewal_failed, app) as failures:
        response = signed_in.get("/private", headers=NAVIGATION)
    assert prompt(response) == "none"  # a page load signs in again, silently when it can
    assert [f["ended"] for f in failures] == [True]
    assert sign_in_of(signed_in) is None


def test_provider_down_serves_while_the_access_token_is_valid_and_retries_later(
    make_app: MakeApp, refreshing: FakeProvider, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(OIDC_REFRESH_RETRY_SECONDS=30)
    client = app.test_client()
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.token_status, refreshing.token_body = 503, "<html>down</html>"
    for _ in range(3):
        assert client.get("/private", headers=NAVIGATION).text == "hello alice"
    assert refreshing.refresh_requests() == 1  # not retried on every request
    assert "renewal postponed, the provider is unavailable" in caplog.text
    refreshing.token_status, refreshing.token_body = 200, None
    clock.advance(31)
    assert client.get("/private", headers=NAVIGATION).text == "hello alice"
    assert refreshing.refresh_requests() == 2
    assert tokens_of(client).retry_at == 0


def test_provider_slow_is_like_down(make_app: MakeApp, refreshing: FakeProvider) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.3)
    client = app.test_client()
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.delay = 1.0
    assert client.get("/api/data", headers=SCRIPT).json == {"sub": "alice"}


def test_provider_down_with_an_expired_access_token_is_a_503_and_keeps_the_session(
    signed_in: FlaskClient, refreshing: FakeProvider
) -> None:
    change_tokens(signed_in, expires_at=time.time() - 1)
    pass_renewal_deadline(signed_in)
    refreshing.token_status, refreshing.token_body = 503, "<html>down</html>"
    response = signed_in.get("/api/data", headers=SCRIPT)
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"] == "renewal_unavailable"
    page = signed_in.get("/private", headers=NAVIGATION)
    assert page.status_code == 503 and page.mimetype == "text/html"
    refreshing.token_status, refreshing.token_body = 200, None
    change_tokens(signed_in, retry_at=0)
    pass_renewal_deadline(signed_in)
    assert signed_in.get("/private").text == "hello alice"


def test_access_token_property_renews_a_token_about_to_expire(
    signed_in: FlaskClient, refreshing: FakeProvider
) -> None:
    response = signed_in.get("/api/token")
    assert response.json is not None
    fresh = response.json["access_token"]
    assert fresh == tokens_of(signed_in).access_token
    assert refreshing.refresh_requests() == 0
    assert "Set-Cookie" not in response.headers  # reading a fresh token writes nothing
    change_tokens(signed_in, expires_at=time.time() + 10)
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/api/token")
    assert response.json is not None
    renewed = response.json["access_token"]
    assert renewed != fresh and refreshing.refresh_requests() == 1


def test_access_token_property_is_none_once_expired_without_refresh_token(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    response = client.get("/api/token")
    assert response.json is not None
    assert response.json["access_token"] == tokens_of(client).access_token
    change_tokens(client, expires_at=time.time() - 1)
    response = client.get("/api/token")
    assert response.json is not None
    assert response.json["access_token"] is None


def test_concurrent_requests_spend_the_refresh_token_once(
    app: Flask, refreshing: FakeProvider, serve: Serve
) -> None:
    check_one_spend(app, refreshing, serve(app))


def test_a_request_that_started_before_a_renewal_cannot_write_old_tokens_back(
    app: Flask, refreshing: FakeProvider, serve: Serve
) -> None:
    check_no_lost_update(app, refreshing, serve(app))


def test_a_record_that_is_gone_signs_the_session_out(signed_in: FlaskClient) -> None:
    from flask_oidc_refresh.relying_party import relying_party

    pass_renewal_deadline(signed_in)
    ended = sign_in_of(signed_in)
    assert ended is not None
    with signed_in.application.app_context():
        relying_party().token_store.end(ended.record)
    response = signed_in.get("/private", headers=NAVIGATION)
    assert prompt(response) == "none"  # signs in again, silently when the provider can
    assert signed_in.get("/api/data", headers=SCRIPT).status_code == 401


def test_a_rotated_refresh_token_is_kept_when_checking_the_new_id_token_fails(
    make_app: MakeApp, refreshing: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=0)
    client = app.test_client()
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.header = {"kid": "rotated-key"}  # the new ID token names a key we must fetch
    refreshing.jwks_status = 503  # and the key set cannot be fetched just now
    assert client.get("/private").text == "hello alice"  # served: the access token is valid
    kept = tokens_of(client).refresh_token
    assert kept in refreshing.refresh_tokens  # the rotated one, still live at the provider
    refreshing.header, refreshing.jwks_status = {}, 200
    clock.advance(31)
    assert client.get("/private").text == "hello alice"
    assert refreshing.refresh_requests() == 2 and refreshing.refresh_tokens  # no reuse


def test_a_refreshed_id_token_with_a_later_auth_time_is_accepted_with_a_warning(
    client: FlaskClient, refreshing: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    refreshing.claims = {"auth_time": 1000}
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.claims = {"auth_time": 5000}  # the user signed in on another device meanwhile
    assert client.get("/private", headers=NAVIGATION).text == "hello alice"
    assert tokens_of(client).refresh_token in refreshing.refresh_tokens  # kept, still usable
    assert "changed auth_time (1000 to 5000)" in caplog.text
    assert tokens_of(client).claims["auth_time"] == 1000  # a refresh is no authentication


def test_a_refreshed_id_token_for_another_party_drops_the_refresh_token(
    client: FlaskClient, refreshing: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.claims = {"azp": "other-client"}
    assert prompt(client.get("/private", headers=NAVIGATION)) == "none"
    assert tokens_of(client).refresh_token is None
    [refused] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused.levelname == "WARNING" and "azp" in refused.getMessage()


def test_a_refreshed_id_token_for_another_audience_ends_the_sign_in(
    client: FlaskClient, refreshing: FakeProvider
) -> None:
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    refreshing.claims = {"aud": [FAKE_CLIENT_ID, "another-client"], "azp": FAKE_CLIENT_ID}
    client.get("/private", headers=NAVIGATION)
    assert client.get("/api/data", headers=SCRIPT).status_code == 401
