"""Authorization parameters: fixed ones from the settings, allow-listed ones from the sign-in
link, and step-up (``acr_values``, ``max_age``) that the returned ID token must meet."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from apps import NAVIGATION, SCRIPT, provider_answers, sign_in
from conftest import MakeApp
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_oidc_refresh import ConfigError
from flask_oidc_refresh.testing import pass_renewal_deadline


def sent(response: TestResponse) -> dict[str, str]:
    """The parameters of the authorization request that ``response`` redirects to."""
    assert response.status_code == 302, response.data
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return {name: values[0] for name, values in query.items()}


def test_fixed_parameters_go_with_every_sign_in_and_renewal(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_AUTH_PARAMS={"kc_idp_hint": "github", "ui_locales": "fr"})
    client = app.test_client()
    request = sent(client.get("/oidc/login"))
    assert request["kc_idp_hint"] == "github" and request["ui_locales"] == "fr"
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    silent = sent(client.get("/private", headers=NAVIGATION))
    assert silent["prompt"] == "none" and silent["kc_idp_hint"] == "github"


def test_a_link_may_pass_only_the_allowed_parameters(app: Flask) -> None:
    client = app.test_client()
    link = "/oidc/login?next=/private&login_hint=alice%40example.test&domain_hint=example.test"
    crafted = "&prompt=none&max_age=999999&acr_values=weak&redirect_uri=https://evil.example"
    request = sent(client.get(link + crafted))
    assert request["login_hint"] == "alice@example.test"
    assert request["domain_hint"] == "example.test"
    assert "max_age" not in request and "acr_values" not in request
    assert "prompt" not in request
    assert request["redirect_uri"] == "http://localhost/oidc/callback"


def test_login_url_builds_a_sign_in_link(make_app: MakeApp) -> None:
    app, oidc = make_app()
    with app.test_request_context():
        url = oidc.login_url(next="/reports", login_hint="bob")
    request = sent(app.test_client().get(url))
    assert request["login_hint"] == "bob"


@pytest.mark.parametrize(
    "config",
    [
        {"OIDC_AUTH_PARAMS": {"redirect_uri": "https://evil.example"}},
        {"OIDC_AUTH_PARAMS": {"state": "fixed"}},
        {"OIDC_AUTH_PARAMS_FROM_REQUEST": ["login_hint", "nonce"]},
        {"OIDC_AUTH_PARAMS": "not json"},
        {"OIDC_AUTH_PARAMS": {"code_verifier": "known"}},
    ],
)
def test_the_parameters_that_protect_the_flow_cannot_be_set(
    make_app: MakeApp, config: dict[str, object]
) -> None:
    with pytest.raises(ConfigError, match="OIDC_AUTH_PARAMS"):
        make_app(**config)


def test_a_page_that_asks_for_more_sends_the_user_to_step_up(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"acr": "urn:password", "auth_time": int(time.time())}
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    step_up = client.get("/sensitive", headers=NAVIGATION)
    request = sent(step_up)
    assert request["acr_values"] == "urn:mfa urn:hardware-key"
    assert request["max_age"] == "300"
    fake_provider.claims = {"acr": "urn:mfa", "auth_time": int(time.time())}
    back = provider_answers(client, fake_provider, step_up.headers["Location"])
    assert back.headers["Location"] == "/sensitive"
    assert client.get("/sensitive").text == "the vault"


def test_an_answer_that_does_not_meet_the_step_up_is_refused(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"acr": "urn:password", "auth_time": int(time.time())}
    sign_in(client, fake_provider)
    step_up = client.get("/sensitive", headers=NAVIGATION)
    # the provider signs the user in, but not as strongly as asked
    back = provider_answers(client, fake_provider, step_up.headers["Location"])
    assert back.status_code == 400
    assert client.get("/sensitive", headers=NAVIGATION).status_code == 302  # not let in


def test_an_old_authentication_steps_up_and_a_script_is_told(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"acr": "urn:mfa", "auth_time": int(time.time()) - 3600}
    sign_in(client, fake_provider)
    assert sent(client.get("/sensitive", headers=NAVIGATION))["max_age"] == "300"
    script = client.get("/sensitive", headers=SCRIPT)
    assert script.status_code == 401
    assert script.json is not None and script.json["error"] == "step_up_required"


def test_a_script_is_sent_to_a_sign_in_that_steps_up(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"acr": "urn:password", "auth_time": int(time.time())}
    sign_in(client, fake_provider)
    script = client.get("/sensitive", headers=SCRIPT)
    assert script.status_code == 401
    request = sent(client.get(script.headers["login_url"] + "&next=/sensitive"))
    assert request["acr_values"] == "urn:mfa urn:hardware-key" and request["max_age"] == "300"


def test_a_forged_step_up_link_is_a_plain_sign_in(client: FlaskClient) -> None:
    request = sent(client.get("/oidc/login?step_up=forged&next=/sensitive"))
    assert "acr_values" not in request and "max_age" not in request


def test_userinfo_cannot_vouch_for_how_the_user_signed_in(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.userinfo = {"sub": "alice", "acr": "urn:mfa", "auth_time": int(time.time())}
    sign_in(client, fake_provider)  # the ID token itself says nothing of acr or auth_time
    assert client.get("/sensitive", headers=NAVIGATION).status_code == 302  # steps up


def test_a_refresh_does_not_make_a_sign_in_recent(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.issue_refresh_tokens = True
    app, _ = make_app()
    client = app.test_client()
    fake_provider.claims = {"acr": "urn:mfa", "auth_time": int(time.time()) - 3600}
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    fake_provider.claims = {"acr": "urn:mfa", "auth_time": int(time.time())}  # a later login
    assert client.get("/private").text == "hello alice"  # renewed with the refresh token
    assert client.get("/sensitive", headers=NAVIGATION).status_code == 302  # still too old
