"""Bad days at the provider: unreachable, slow, broken answers, rotated keys; and its caches."""

from __future__ import annotations

from typing import Any

import pytest
from apps import NAVIGATION, SCRIPT, sign_in
from conftest import Clock, MakeApp, free_port
from fake_provider import FakeProvider
from flask.testing import FlaskClient
from joserfc.jwk import RSAKey


def test_unreachable_provider_is_a_502_page_and_a_log_line(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
    response = app.test_client().get("/oidc/login", headers=NAVIGATION)
    assert response.status_code == 502
    assert response.mimetype == "text/html"
    assert "identity provider is unavailable" in response.text
    assert "identity provider unavailable" in caplog.text


def test_unreachable_provider_is_a_502_json_for_scripts(make_app: MakeApp) -> None:
    app, _ = make_app(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
    response = app.test_client().get("/oidc/login", headers=SCRIPT)
    assert response.status_code == 502
    assert response.json is not None
    assert response.json["error"] == "provider_unavailable"


def test_slow_provider_times_out_with_a_502(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.2)
    fake_provider.delay = 1.0
    assert app.test_client().get("/oidc/login").status_code == 502


def test_slow_token_endpoint_times_out_and_keeps_the_session(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.5)
    client = app.test_client()
    sign_in(client, fake_provider)
    location = client.get("/oidc/login").headers["Location"]
    fake_provider.delay = 1.5
    response = client.get("/oidc/callback", query_string=fake_provider.authorize(location))
    assert response.status_code == 502
    fake_provider.delay = 0
    assert client.get("/private").text == "hello alice"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "<html>oops</html>"),
        (200, "not json"),
        (200, "[1, 2]"),
        (503, {"error": "temporarily_unavailable"}),
    ],
)
def test_broken_token_responses_are_a_502(
    client: FlaskClient, fake_provider: FakeProvider, status: int, body: Any
) -> None:
    fake_provider.token_status, fake_provider.token_body = status, body
    response = sign_in(client, fake_provider)
    assert response.status_code == 502
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_discovery_naming_another_issuer_is_refused(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ISSUER=fake_provider.issuer.replace("127.0.0.1", "localhost"))
    assert app.test_client().get("/oidc/login").status_code == 502


def test_discovery_and_keys_are_fetched_once_per_process(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app()
    for _ in range(3):
        assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.discovery_requests == 1
    assert fake_provider.jwks_requests == 1


def test_discovery_is_fetched_again_after_its_lifetime(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_DISCOVERY_CACHE_SECONDS=60)
    sign_in(app.test_client(), fake_provider)
    clock.advance(61)
    sign_in(app.test_client(), fake_provider)
    assert fake_provider.discovery_requests == 2


def test_rotated_provider_key_is_picked_up(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=0)
    sign_in(app.test_client(), fake_provider)
    fake_provider.key = RSAKey.generate_key(
        2048, parameters={"kid": "key-2", "alg": "RS256", "use": "sig"}
    )
    fake_provider.header = {"kid": "key-2"}
    assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.jwks_requests == 2


def test_unknown_keys_refetch_the_key_set_at_most_once_per_interval(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=300)
    sign_in(app.test_client(), fake_provider)
    fake_provider.header = {"kid": "nobody-knows"}
    for _ in range(3):
        assert sign_in(app.test_client(), fake_provider).status_code == 400
    assert fake_provider.jwks_requests == 1


def test_explicit_endpoints_need_no_discovery(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    base = fake_provider.issuer
    app, _ = make_app(
        OIDC_AUTHORIZATION_ENDPOINT=f"{base}/authorize",
        OIDC_TOKEN_ENDPOINT=f"{base}/token",
        OIDC_JWKS_URI=f"{base}/jwks",
        OIDC_USERINFO_ENDPOINT=f"{base}/userinfo",
    )
    client = app.test_client()
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["iss"]  # not advertised: there is no discovery document
    assert client.get("/oidc/callback", query_string=params).status_code == 302
    assert client.get("/private").text == "hello alice"
    assert fake_provider.discovery_requests == 0


def test_a_failing_key_set_is_not_fetched_again_for_every_unknown_key(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=300)
    sign_in(app.test_client(), fake_provider)
    clock.advance(301)
    fake_provider.jwks_status = 503
    fake_provider.header = {"kid": "nobody-knows"}
    statuses = [sign_in(app.test_client(), fake_provider).status_code for _ in range(3)]
    assert statuses == [502, 400, 400]  # one failed attempt, then no more until the interval
    assert fake_provider.jwks_requests == 2


def test_hs256_id_tokens_are_accepted_only_when_configured(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.header = {"alg": "HS256"}
    app, _ = make_app()
    assert sign_in(app.test_client(), fake_provider).status_code == 400
    app, _ = make_app(OIDC_ID_TOKEN_ALGORITHMS=["HS256"])
    client = app.test_client()
    assert sign_in(client, fake_provider).status_code == 302  # signed with the client secret
    assert client.get("/private").text == "hello alice"
