"""Back-channel logout: the provider signs a user out of every session, and only with a valid
logout token."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
from apps import SCRIPT, recorded, sign_in, sign_in_of
from conftest import ON_EVERY_STORE, MakeApp
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.test import TestResponse

from flask_oidc_refresh import provider_logged_out
from flask_oidc_refresh.relying_party import relying_party
from flask_oidc_refresh.store import base

pytestmark = ON_EVERY_STORE


@pytest.fixture
def sessions(app: Flask, fake_provider: FakeProvider) -> list[FlaskClient]:
    """Three signed-in browsers: two in provider session sid-1, one in sid-2 (all alice)."""
    clients: list[FlaskClient] = []
    for sid in ("sid-1", "sid-1", "sid-2"):
        fake_provider.claims = {"sid": sid}
        client = app.test_client()
        sign_in(client, fake_provider)
        clients.append(client)
    fake_provider.claims = {}
    return clients


def signed_in(client: FlaskClient) -> bool:
    return bool(client.get("/api/data", headers=SCRIPT).status_code == 200)


def post(client: FlaskClient, token: str | None, **headers: str) -> TestResponse:
    data = {} if token is None else {"logout_token": token}
    return client.post("/oidc/backchannel-logout", data=data, headers=headers)


def test_a_logout_token_with_sid_ends_every_session_of_that_provider_session(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    first, second, other = sessions
    signed_in_first = sign_in_of(first)
    assert signed_in_first is not None
    with recorded(provider_logged_out, app) as events:
        response = post(app.test_client(), fake_provider.make_logout_token(sid="sid-1"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert not signed_in(first) and not signed_in(second)
    assert signed_in(other)
    assert events == [{"sub": "alice", "sid": "sid-1", "sessions": 2}]
    with app.app_context():
        store = relying_party().token_store
        assert store.load(signed_in_first.record) is None  # its tokens are dropped too


def test_a_logout_token_with_only_sub_ends_all_of_the_users_sessions(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    assert post(app.test_client(), fake_provider.make_logout_token(sid=None)).status_code == 200
    assert not any(signed_in(client) for client in sessions)


def test_a_logout_for_sessions_already_gone_is_a_success(
    app: Flask, fake_provider: FakeProvider
) -> None:
    assert post(app.test_client(), fake_provider.make_logout_token(sid="nobody")).status_code == 200


def test_it_needs_no_same_origin_headers(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    token = fake_provider.make_logout_token()
    response = post(
        app.test_client(), token, Origin="https://login.example", **{"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 200
    assert not signed_in(sessions[0])


def test_a_replayed_logout_token_is_refused(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    token = fake_provider.make_logout_token(sid="sid-2")
    assert post(app.test_client(), token).status_code == 200
    fake_provider.claims = {"sid": "sid-2"}
    sign_in(sessions[2], fake_provider)  # signed in again in the same provider session
    response = post(app.test_client(), token)
    assert response.status_code == 400
    assert response.json is not None
    assert "already used" in response.json["error_description"]
    assert signed_in(sessions[2])


EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.mark.parametrize(
    ("header", "claims"),
    [
        ({"alg": "none"}, {}),
        ({"alg": "HS256"}, {}),
        ({"kid": "unknown"}, {}),
        ({}, {"iss": "https://other.example"}),
        ({}, {"aud": "someone-else"}),
        ({}, {"events": None}),
        ({}, {"events": {"http://schemas.openid.net/event/other": {}}}),
        ({}, {"events": {EVENT: "yes"}}),
        ({}, {"nonce": "n"}),
        ({}, {"sub": None, "sid": None}),
        ({}, {"exp": 1000}),
        ({}, {"exp": None}),
        ({}, {"iat": None}),
        ({}, {"jti": None}),
    ],
    ids=[
        "alg-none", "hs256", "unknown-key", "wrong-iss", "wrong-aud", "no-events", "other-event",
        "event-not-object", "nonce", "no-sub-no-sid", "expired", "no-exp", "no-iat", "no-jti",
    ],
)  # fmt: skip
def test_invalid_logout_tokens_are_a_400_and_change_nothing(
    app: Flask,
    sessions: list[FlaskClient],
    fake_provider: FakeProvider,
    header: dict[str, Any],
    claims: dict[str, Any],
) -> None:
    response = post(app.test_client(), fake_provider.make_logout_token(header, **claims))
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert all(signed_in(client) for client in sessions)


def test_a_forged_signature_is_a_400(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    genuine = fake_provider.make_logout_token()
    claims = jwt.decode(genuine, fake_provider.key).claims
    forger = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
    forged = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, forger)
    assert post(app.test_client(), forged).status_code == 400
    assert all(signed_in(client) for client in sessions)


@pytest.mark.parametrize(
    "token", ["not-a-jwt", "", "a.b.c", None], ids=["garbage", "empty", "three-parts", "missing"]
)
def test_a_missing_or_malformed_logout_token_is_a_400(
    app: Flask, sessions: list[FlaskClient], token: str | None
) -> None:
    assert post(app.test_client(), token).status_code == 400
    assert all(signed_in(client) for client in sessions)


def test_an_id_token_is_not_a_logout_token(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    id_token = fake_provider.make_id_token("some-nonce", sid="sid-1")
    assert post(app.test_client(), id_token).status_code == 400
    assert all(signed_in(client) for client in sessions)


def test_the_providers_back_channel_call_during_our_logout_keeps_its_state(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    from urllib.parse import parse_qs, urlsplit

    fake_provider.claims = {"sid": "sid-1"}
    sign_in(client, fake_provider)
    location = client.post("/oidc/logout").headers["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    provider_call = post(client.application.test_client(), fake_provider.make_logout_token())
    assert provider_call.status_code == 200
    back = client.get("/oidc/logout/callback", query_string={"state": state})
    assert back.status_code == 302 and back.headers["Location"] == "/"


def test_a_store_not_shared_by_all_workers_cannot_promise_back_channel_logout(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    from cachelib import SimpleCache

    app, _ = make_app(SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache())
    response = post(app.test_client(), fake_provider.make_logout_token())
    assert response.status_code == 501
    assert response.json is not None
    assert response.json["error"] == "unsupported_session_store"


def test_sessions_whose_id_token_named_no_sid_end_with_any_sid_of_their_user(
    app: Flask, fake_provider: FakeProvider
) -> None:
    without_sid = app.test_client()
    sign_in(without_sid, fake_provider)  # this provider puts no sid in its ID tokens
    fake_provider.claims = {"sid": "sid-2"}
    with_other_sid = app.test_client()
    sign_in(with_other_sid, fake_provider)
    token = fake_provider.make_logout_token(sid="sid-1", sub="alice")
    assert post(app.test_client(), token).status_code == 200
    assert not signed_in(without_sid)
    assert signed_in(with_other_sid)


def test_the_listing_keeps_only_live_sessions(app: Flask, fake_provider: FakeProvider) -> None:
    for _ in range(3):
        client = app.test_client()
        sign_in(client, fake_provider)
        client.post("/oidc/logout")  # signed out: its session is gone
    sign_in(app.test_client(), fake_provider)
    replaced = app.test_client()
    sign_in(replaced, fake_provider)
    sign_in(replaced, fake_provider)  # signed in again: the first sign-in's session id is gone
    with app.app_context():
        index = relying_party().token_store.index
        assert index is not None
        assert index.end(fake_provider.issuer, "sub", "alice") == 2  # the two live ones only


def test_a_listing_locked_too_long_is_a_503_not_a_500(
    app: Flask,
    sessions: list[FlaskClient],
    fake_provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(base, "INDEX_LOCK_SECONDS", 0.2)
    held, release = threading.Event(), threading.Event()

    def hold_the_listing() -> None:
        with app.app_context():
            store = relying_party().token_store
            with store.backend.lock(base.index_key(fake_provider.issuer, "sid", "sid-1"), 5):
                held.set()
                release.wait(5)

    holder = threading.Thread(target=hold_the_listing)
    holder.start()
    held.wait(5)
    token = fake_provider.make_logout_token(sid="sid-1")
    try:
        response = post(app.test_client(), token)
    finally:
        release.set()
        holder.join()
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "session_store_unavailable"
    assert "back-channel logout postponed" in caplog.text
    first, second, _ = sessions
    assert signed_in(first) and signed_in(second)
    again = post(app.test_client(), token)
    assert again.status_code == 200  # the provider's retry of the same token is no replay
    assert not signed_in(first) and not signed_in(second)


def test_a_logout_token_with_a_malformed_crit_header_is_a_400(
    app: Flask, sessions: list[FlaskClient], fake_provider: FakeProvider
) -> None:
    header, payload, signature = fake_provider.make_logout_token().split(".")
    crit = base64.urlsafe_b64encode(
        json.dumps({"alg": "RS256", "kid": "key-1", "crit": 5}).encode()
    ).rstrip(b"=")
    response = post(app.test_client(), f"{crit.decode()}.{payload}.{signature}")
    assert response.status_code == 400
    assert all(signed_in(client) for client in sessions)
