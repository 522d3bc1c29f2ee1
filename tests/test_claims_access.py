"""Claims-based access: views that require claims (groups), the app's sign-in gate, and claims
that stay current: userinfo is fetched again at each renewal and ``@oidc.on_renew`` sees it."""

from __future__ import annotations

from typing import Any

import pytest
from apps import SCRIPT, provider_answers, recorded, sign_in, tokens_of
from conftest import MakeApp
from fake_provider import FakeProvider
from flask import Flask, abort
from flask.testing import FlaskClient

from flask_oidc_refresh import OIDC, session_renewal_failed
from flask_oidc_refresh.testing import pass_renewal_deadline

ALICE = {"sub": "alice", "email": "alice@example.test"}


def add_routes(app: Flask, oidc: OIDC) -> None:
    @app.get("/admin")
    @oidc.login_required(claims={"groups": "admins"})
    def admin() -> str:
        return "admin area"

    @app.get("/ops")
    @oidc.login_required(claims=lambda claims: claims.get("department") in ("ops", "sre"))
    def ops() -> str:
        return "ops area"

    @app.get("/managers")
    @oidc.login_required(claims={"realm_access.roles": ["manager", "director"]})
    def managers() -> str:
        return "managers area"


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    app, oidc = make_app()
    add_routes(app, oidc)
    return app


def signed_in_as(client: FlaskClient, provider: FakeProvider, **claims: Any) -> FlaskClient:
    provider.userinfo = {**ALICE, **claims}
    sign_in(client, provider)
    return client


@pytest.mark.parametrize(
    ("path", "claims"),
    [
        ("/admin", {"groups": ["staff", "admins"]}),
        ("/admin", {"groups": "admins"}),
        ("/ops", {"department": "sre"}),
        ("/managers", {"realm_access": {"roles": ["director"]}}),  # Keycloak's nesting
    ],
)
def test_users_whose_claims_qualify_are_let_in(
    client: FlaskClient, fake_provider: FakeProvider, path: str, claims: dict[str, Any]
) -> None:
    signed_in_as(client, fake_provider, **claims)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("path", "claims"),
    [
        ("/admin", {"groups": ["staff"]}),
        ("/admin", {}),
        ("/ops", {"department": "sales"}),
        ("/managers", {"realm_access": {"roles": ["employee"]}}),
    ],
)
def test_others_get_403_a_page_for_a_browser_and_json_for_a_script(
    client: FlaskClient, fake_provider: FakeProvider, path: str, claims: dict[str, Any]
) -> None:
    signed_in_as(client, fake_provider, **claims)
    page = client.get(path)
    assert page.status_code == 403
    assert page.mimetype == "text/html"
    assert "does not have access" in page.text
    script = client.get(path, headers=SCRIPT)
    assert script.status_code == 403
    assert script.json == {
        "error": "access_denied",
        "error_description": "Your account does not have access to this page.",
    }
    assert client.get("/private").status_code == 200  # still signed in, nothing lost


def test_without_a_sign_in_the_user_signs_in_first(client: FlaskClient) -> None:
    response = client.get("/admin")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/oidc/login?next=/admin")


# --- the sign-in gate ----------------------------------------------------------------------


def test_the_gate_lets_in_members_of_an_allowed_group(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ALLOWED_GROUPS=["staff", "contractors"])
    client = app.test_client()
    signed_in_as(client, fake_provider, groups=["contractors"])
    assert client.get("/private").text == "hello alice"


def test_the_gate_refuses_others_with_a_clear_page(
    make_app: MakeApp, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(OIDC_ALLOWED_GROUPS="staff")
    client = app.test_client()
    fake_provider.userinfo = {**ALICE, "groups": ["visitors"]}
    response = sign_in(client, fake_provider)
    assert response.status_code == 403
    assert "not allowed to use this application" in response.text
    assert "none of OIDC_ALLOWED_GROUPS" in caplog.text
    assert client.get("/private").status_code == 302  # not signed in


def test_the_gate_reads_the_configured_groups_claim(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ALLOWED_GROUPS=["staff"], OIDC_GROUPS_CLAIM="realm_access.roles")
    client = app.test_client()
    signed_in_as(client, fake_provider, realm_access={"roles": ["staff"]})
    assert client.get("/private").status_code == 200


def test_an_allow_sign_in_check_is_a_gate_too(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()

    @oidc.allow_sign_in
    def verified_email_only(claims: dict[str, Any]) -> bool:
        return claims.get("email_verified") is True

    client = app.test_client()
    fake_provider.userinfo = {**ALICE, "email_verified": False}
    assert sign_in(client, fake_provider).status_code == 403
    signed_in_as(client, fake_provider, email_verified=True)
    assert client.get("/private").status_code == 200


# --- claims that stay current ------------------------------------------------------------


@pytest.fixture
def refreshing(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.issue_refresh_tokens = True
    return fake_provider


def test_a_group_removed_at_the_provider_is_gone_at_the_next_renewal(
    app: Flask, refreshing: FakeProvider
) -> None:
    client = signed_in_as(app.test_client(), refreshing, groups=["admins"])
    assert client.get("/admin").status_code == 200
    refreshing.userinfo = dict(ALICE)  # removed from the last group: no groups claim at all
    assert client.get("/admin").status_code == 200  # until the next renewal
    pass_renewal_deadline(client)
    assert client.get("/admin").status_code == 403
    assert refreshing.refresh_requests() == 1
    assert "groups" not in client.get("/claims").json  # type: ignore[operator]


def test_renewal_fetches_userinfo_with_the_new_access_token(
    app: Flask, refreshing: FakeProvider
) -> None:
    client = signed_in_as(app.test_client(), refreshing, groups=["a"])
    refreshing.userinfo = {**ALICE, "groups": ["b"], "acr": "forged-in-userinfo"}
    pass_renewal_deadline(client)
    claims = client.get("/claims").json
    assert claims is not None
    assert claims["groups"] == ["b"]
    assert "acr" not in claims  # how the user authenticated: the ID token's word only
    assert refreshing.userinfo_requests[-1] == f"Bearer {tokens_of(client).access_token}"
    assert len(refreshing.userinfo_requests) == 2  # at sign-in, at renewal


def test_without_fetch_userinfo_renewal_keeps_the_claims(
    make_app: MakeApp, refreshing: FakeProvider
) -> None:
    app, _ = make_app(OIDC_FETCH_USERINFO=False)
    client = app.test_client()
    sign_in(client, refreshing)
    pass_renewal_deadline(client)
    assert client.get("/private").status_code == 200
    assert refreshing.userinfo_requests == []


def test_userinfo_unavailable_at_renewal_keeps_the_claims_and_the_user(
    app: Flask, refreshing: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in_as(app.test_client(), refreshing, groups=["admins"])
    pass_renewal_deadline(client)
    refreshing.app.view_functions["userinfo"] = lambda: ("down", 503)
    assert client.get("/admin").status_code == 200
    assert refreshing.refresh_requests() == 1
    assert "userinfo not fetched again" in caplog.text


def test_userinfo_about_another_user_at_renewal_ends_the_sign_in(
    app: Flask, refreshing: FakeProvider
) -> None:
    client = signed_in_as(app.test_client(), refreshing, groups=["admins"])
    refreshing.userinfo = {"sub": "mallory", "groups": ["admins"]}
    pass_renewal_deadline(client)
    with recorded(session_renewal_failed, app) as failures:
        client.get("/admin")
    assert failures[0]["ended"] is True
    assert client.get("/admin", headers=SCRIPT).status_code == 401  # signed out


def test_on_renew_sees_the_renewed_claims(make_app: MakeApp, refreshing: FakeProvider) -> None:
    app, oidc = make_app()
    seen: list[dict[str, Any]] = []
    oidc.on_renew(seen.append)
    client = signed_in_as(app.test_client(), refreshing, groups=["a"])
    assert seen == []  # a sign-in is no renewal
    refreshing.userinfo = {**ALICE, "groups": ["b"]}
    pass_renewal_deadline(client)
    client.get("/private")
    assert [claims["groups"] for claims in seen] == [["b"]]


def test_on_renew_may_end_the_sign_in(make_app: MakeApp, refreshing: FakeProvider) -> None:
    app, oidc = make_app()

    @oidc.on_renew
    def suspended_users_go(claims: dict[str, Any]) -> None:
        if claims.get("suspended"):
            abort(403)

    client = signed_in_as(app.test_client(), refreshing)
    refreshing.userinfo = {**ALICE, "suspended": True}
    pass_renewal_deadline(client)
    with recorded(session_renewal_failed, app) as failures:
        assert client.get("/private").status_code == 403
    assert failures[0]["ended"] is True
    assert len(refreshing.revocations) == 2  # the tokens the renewal just got
    refreshing.userinfo = dict(ALICE)
    response = client.get("/private")
    assert response.status_code == 302  # signed out: sign in again
    assert response.headers["Location"].startswith("/oidc/login")


def test_the_gate_applies_again_at_each_renewal(
    make_app: MakeApp, refreshing: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ALLOWED_GROUPS=["staff"])
    client = signed_in_as(app.test_client(), refreshing, groups=["staff"])
    refreshing.userinfo = {**ALICE, "groups": ["former-staff"]}
    pass_renewal_deadline(client)
    response = client.get("/private")
    assert response.status_code == 403
    assert "not allowed to use this application" in response.text
    assert client.get("/private", headers=SCRIPT).status_code == 401  # signed out


def test_a_silent_renewal_refreshes_the_claims_and_runs_on_renew(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    add_routes(app, oidc)
    seen: list[dict[str, Any]] = []
    oidc.on_renew(seen.append)
    client = signed_in_as(app.test_client(), fake_provider, groups=["admins"])
    fake_provider.userinfo = {**ALICE, "groups": ["staff"]}
    pass_renewal_deadline(client)
    round_trip = client.get("/admin")
    assert "prompt=none" in round_trip.headers["Location"]
    back = provider_answers(client, fake_provider, round_trip.headers["Location"])
    assert back.headers["Location"] == "/admin"
    assert client.get("/admin").status_code == 403
    assert [claims["groups"] for claims in seen] == [["staff"]]


def test_a_silent_renewal_refused_by_the_gate_signs_the_user_out(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ALLOWED_GROUPS=["staff"])
    client = signed_in_as(app.test_client(), fake_provider, groups=["staff"])
    fake_provider.userinfo = {**ALICE, "groups": []}
    pass_renewal_deadline(client)
    round_trip = client.get("/private")
    back = provider_answers(client, fake_provider, round_trip.headers["Location"])
    assert back.status_code == 403
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_a_refresh_without_an_id_token_lets_fresh_userinfo_decide(
    app: Flask, refreshing: FakeProvider
) -> None:
    refreshing.claims = {"groups": ["admins"], "sid": "sid-1"}  # in the ID token too
    client = signed_in_as(app.test_client(), refreshing, groups=["admins"])
    refreshing.refresh_id_token = False
    refreshing.userinfo = {**ALICE, "groups": []}
    pass_renewal_deadline(client)
    assert client.get("/admin").status_code == 403
    claims = client.get("/claims").json
    assert claims is not None
    assert claims["groups"] == []
    assert (claims["sid"], claims["iss"], claims["sub"]) == ("sid-1", refreshing.issuer, "alice")


def test_a_refused_sign_in_ends_the_one_before_and_revokes_the_new_tokens(
    make_app: MakeApp, refreshing: FakeProvider
) -> None:
    app, oidc = make_app()
    allowed = {"alice": True}

    @oidc.allow_sign_in
    def still_allowed(claims: dict[str, Any]) -> bool:
        return allowed["alice"]

    client = signed_in_as(app.test_client(), refreshing)
    allowed["alice"] = False
    assert sign_in(client, refreshing).status_code == 403
    assert client.get("/private", headers=SCRIPT).status_code == 401  # nobody signed in here
    revoked = [r["form"]["token_type_hint"] for r in refreshing.revocations]
    assert revoked == ["refresh_token", "access_token"]
