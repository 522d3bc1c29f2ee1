"""Pending sign-ins live in a short-lived signed cookie of their own: anonymous traffic writes
nothing on the server, and the PKCE verifier never reaches the client."""

from __future__ import annotations

from pathlib import Path

from apps import NAVIGATION, SCRIPT, provider_answers, sign_in
from conftest import MakeApp
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from flask_oidc_refresh.flow import PendingAuthorization
from flask_oidc_refresh.testing import pass_renewal_deadline

SALT = "flask-oidc-refresh.pending"


def stored_files(app: Flask) -> int:
    store = Path(app.instance_path) / "oidc-sessions"
    return sum(1 for path in store.rglob("*") if path.is_file()) if store.exists() else 0


def pending_cookie(response_headers: list[str]) -> str:
    [cookie] = [h for h in response_headers if h.startswith("oidc_pending=")]
    return cookie


def test_ten_thousand_cookieless_sign_in_starts_leave_the_store_unchanged(app: Flask) -> None:
    client = app.test_client(use_cookies=False)
    before = stored_files(app)
    for _ in range(10_000):
        assert client.get("/oidc/login").status_code == 302
    assert stored_files(app) == before


def test_a_sign_in_start_sets_no_session_cookie(client: FlaskClient) -> None:
    response = client.get("/oidc/login")
    cookies = response.headers.getlist("Set-Cookie")
    assert [c.split("=")[0] for c in cookies] == ["oidc_pending"]


def test_the_pending_cookie_is_httponly_lax_and_short_lived(
    client: FlaskClient,
) -> None:
    cookie = pending_cookie(client.get("/oidc/login").headers.getlist("Set-Cookie"))
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Max-Age=600" in attributes
    assert "Secure" not in attributes  # plain http here


def test_the_pending_cookie_is_secure_over_https(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/oidc/login", base_url="https://localhost")
    assert "Secure" in [
        p.strip() for p in pending_cookie(response.headers.getlist("Set-Cookie")).split(";")
    ]


def test_the_pending_cookie_never_holds_the_pkce_verifier(app: Flask, client: FlaskClient) -> None:
    client.get("/oidc/login?next=/reports")
    cookie = client.get_cookie("oidc_pending")
    assert cookie is not None
    secret = app.secret_key
    assert secret is not None
    rows = URLSafeTimedSerializer(secret, salt=SALT).loads(cookie.value)
    [pending] = [PendingAuthorization(*row) for row in rows]
    assert pending.next_url == "/reports"
    with app.test_request_context():
        assert pending.code_verifier not in cookie.value


def test_a_forged_pending_cookie_is_ignored(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    location = client.get("/oidc/login").headers["Location"]
    forged = URLSafeTimedSerializer("another-secret", salt=SALT).dumps(
        [["attacker-state", "/", False, 2e9, "00000000"]]
    )
    client.set_cookie("oidc_pending", forged, domain="localhost")
    params = fake_provider.authorize(location)
    assert client.get("/oidc/callback", query_string=params).status_code == 400
    params["state"] = "attacker-state"
    assert client.get("/oidc/callback", query_string=params).status_code == 400


def test_pending_sign_ins_stay_a_few_and_fit_a_cookie(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    long_next = "/" + "n" * 390
    locations = [client.get(f"/oidc/login?next={long_next}").headers["Location"] for _ in range(20)]
    cookie = client.get_cookie("oidc_pending")
    assert cookie is not None and len(cookie.value) < 4000
    newest = provider_answers(client, fake_provider, locations[-1])
    assert newest.headers["Location"] == long_next
    oldest = provider_answers(client, fake_provider, locations[0])
    assert oldest.status_code == 400  # dropped long ago: five are kept


def test_a_very_long_next_is_replaced_by_the_default(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    assert sign_in(client, fake_provider, "/" + "x" * 8000).headers["Location"] == "/"


def test_a_used_pending_sign_in_leaves_the_cookie(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    assert client.get_cookie("oidc_pending") is None


def test_the_pending_cookie_is_lax_even_when_the_app_makes_its_session_cookie_strict(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(SESSION_COOKIE_SAMESITE="Strict")
    client = app.test_client()
    response = client.get("/oidc/login")
    assert "SameSite=Lax" in pending_cookie(response.headers.getlist("Set-Cookie"))
    assert sign_in(client, fake_provider).status_code == 302


def test_a_renewal_started_on_an_app_page_keeps_the_other_tabs_pending_sign_ins(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    other_tab = client.get("/oidc/login?next=/other").headers["Location"]
    pass_renewal_deadline(client)
    renewal = client.get("/private", headers=NAVIGATION).headers["Location"]
    back = provider_answers(client, fake_provider, renewal)
    assert back.headers["Location"] == "/private"
    back = provider_answers(client, fake_provider, other_tab)
    assert back.headers["Location"] == "/other"


def test_a_logout_drops_a_silent_renewal_under_way(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    renewal = client.get("/private", headers=NAVIGATION).headers["Location"]
    client.post("/oidc/logout")
    back = provider_answers(client, fake_provider, renewal)
    assert back.status_code == 400  # it cannot sign the user back in
    assert client.get("/api/data", headers=SCRIPT).status_code == 401
