"""Session renewal by browser round trip: the hook, the 403 for scripts, exemptions, failures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from apps import (
    NAVIGATION,
    SCRIPT,
    provider_answers,
    recorded,
    renewal_deadline,
    sign_in,
    tokens_of,
)
from conftest import ON_EVERY_STORE, Clock, MakeApp
from fake_provider import FakeProvider
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from flask_oidc_refresh import session_renewal_failed, session_renewed
from flask_oidc_refresh.testing import pass_renewal_deadline

pytestmark = ON_EVERY_STORE


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def signed_in(client: FlaskClient, fake_provider: FakeProvider) -> FlaskClient:
    sign_in(client, fake_provider)
    fake_provider.token_requests.clear()
    return client


def test_fresh_session_is_left_alone(signed_in: FlaskClient, fake_provider: FakeProvider) -> None:
    for _ in range(3):
        response = signed_in.get("/private", headers=NAVIGATION)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
    assert fake_provider.token_requests == []


def test_navigation_past_the_deadline_renews_silently_and_comes_back(
    app: Flask, signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    with recorded(session_renewed, app) as renewals:
        response = signed_in.get("/private?page=3", headers=NAVIGATION)
        assert response.status_code == 302
        params = query(response.headers["Location"])
        assert params["prompt"] == "none"
        assert params["code_challenge_method"] == "S256"
        assert params["state"] and params["nonce"]
        back = provider_answers(signed_in, fake_provider, response.headers["Location"])
    assert back.status_code == 302
    assert back.headers["Location"] == "/private?page=3"
    deadline = renewal_deadline(signed_in)
    assert deadline is not None
    assert deadline > time.time() + 800
    assert signed_in.get("/private", headers=NAVIGATION).text == "hello alice"
    assert [r["method"] for r in renewals] == ["prompt_none"]


def test_head_is_renewed_like_get(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.head("/private", headers=NAVIGATION)
    assert response.status_code == 302
    assert query(response.headers["Location"])["prompt"] == "none"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_methods_pass_through_within_the_grace_period(
    signed_in: FlaskClient, method: str
) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.open("/write", method=method, headers=SCRIPT)
    assert response.status_code == 200
    assert response.text == "written"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_script_requests_after_the_grace_period_get_403_with_refresh_url(
    signed_in: FlaskClient, clock: Clock, method: str
) -> None:
    pass_renewal_deadline(signed_in)
    clock.advance(900)  # the default grace: one renewal interval
    headers = {**SCRIPT, "Referer": "http://localhost/board"}
    response = signed_in.open("/write", method=method, headers=headers)
    assert response.status_code == 403
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/board"


def test_a_form_post_after_the_grace_period_goes_through_renewal_back_to_its_page(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_RENEWAL_GRACE_SECONDS=0)
    signed_in = app.test_client()
    sign_in(signed_in, fake_provider)
    pass_renewal_deadline(signed_in)
    headers = {**NAVIGATION, "Referer": "http://localhost/board?tab=2"}
    response = signed_in.post("/write", data={"note": "x"}, headers=headers)
    assert response.status_code == 303  # the body is never replayed
    assert response.headers["Location"] == "/oidc/refresh?next=/board?tab%3D2"
    silent = signed_in.get(response.headers["Location"])
    assert query(silent.headers["Location"])["prompt"] == "none"
    back = provider_answers(signed_in, fake_provider, silent.headers["Location"])
    assert back.headers["Location"] == "/board?tab=2"
    assert signed_in.post("/write", headers=headers).text == "written"  # renewed


def test_a_grace_period_of_zero_refuses_unsafe_requests_at_the_deadline(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_RENEWAL_GRACE_SECONDS=0)
    client = app.test_client()
    sign_in(client, fake_provider)
    assert client.post("/write", headers=SCRIPT).text == "written"  # before the deadline
    pass_renewal_deadline(client)
    assert client.post("/write", headers=SCRIPT).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Requested-With": "XMLHttpRequest"},
        {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
        {"Sec-Fetch-Mode": "same-origin"},
        {"Sec-Fetch-Dest": "empty"},
        {"Accept": "application/json"},
        {"Accept": "application/json, text/plain, */*"},
        {"HX-Request": "true"},
        {"Accept": "*/*"},
        {"Accept": ""},
        {"Accept": "*/*", "Authorization": "Basic YTpi"},
    ],
    ids=[
        "xhr", "fetch-cors", "fetch-same-origin", "dest-empty", "accept-json", "axios", "htmx",
        "curl", "no-accept", "authorization",
    ],
)  # fmt: skip
def test_script_requests_get_403_with_refresh_url(
    signed_in: FlaskClient, headers: dict[str, str]
) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/api/data", headers=headers)
    assert response.status_code == 403
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/"
    assert response.json == {"error": "refresh_required", "refresh_url": "/oidc/refresh?next=/"}
    assert "Set-Cookie" not in response.headers  # the 403 stores nothing, not even a cookie


@pytest.mark.parametrize(
    "headers",
    [
        {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
        {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
        {"Sec-Fetch-Mode": "navigate", "Authorization": "Basic YTpi"},
    ],
    ids=[
        "browser-accept", "fetch-metadata-document", "fetch-metadata-iframe",
        "behind-basic-auth",
    ],
)  # fmt: skip
def test_page_loads_are_navigations(signed_in: FlaskClient, headers: dict[str, str]) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/private", headers=headers)
    assert response.status_code == 302
    assert query(response.headers["Location"])["prompt"] == "none"


def test_refresh_url_comes_back_to_the_page_that_called(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get(
        "/api/data", headers={**SCRIPT, "Referer": "http://localhost/reports?y=1"}
    )
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/reports?y%3D1"


def test_refresh_url_ignores_a_page_of_another_site(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/api/data", headers={**SCRIPT, "Referer": "https://evil.example/x"})
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/"


def test_htmx_requests_also_get_hx_redirect(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    headers = {"HX-Request": "true", "HX-Current-URL": "http://localhost/board"}
    response = signed_in.get("/api/data", headers=headers)
    assert response.status_code == 403
    assert response.headers["HX-Redirect"] == "/oidc/refresh?next=/board"
    assert response.headers["HX-Redirect"] == response.headers["refresh_url"]


def test_refresh_view_starts_the_silent_round_trip(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/oidc/refresh?next=/reports")
    assert query(response.headers["Location"])["prompt"] == "none"
    back = provider_answers(signed_in, fake_provider, response.headers["Location"])
    assert back.headers["Location"] == "/reports"


def test_refresh_view_limits_next_to_this_site(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/oidc/refresh?next=https://evil.example/")
    back = provider_answers(signed_in, fake_provider, response.headers["Location"])
    assert back.headers["Location"] == "/"


def test_refresh_view_goes_straight_back_when_another_tab_already_renewed(
    signed_in: FlaskClient,
) -> None:
    response = signed_in.get("/oidc/refresh?next=/reports")
    assert response.status_code == 302
    assert response.headers["Location"] == "/reports"


def test_refresh_view_without_a_sign_in_tries_a_silent_sign_in_first(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    response = client.get("/oidc/refresh?next=/reports")
    assert query(response.headers["Location"])["prompt"] == "none"
    back = provider_answers(client, fake_provider, response.headers["Location"])
    assert back.headers["Location"] == "/reports"  # the provider's session was alive
    assert client.get("/private").text == "hello alice"


def test_refresh_done_page_is_served_and_never_cached(client: FlaskClient) -> None:
    response = client.get("/oidc/refresh/done")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "error",
    ["login_required", "interaction_required", "consent_required", "account_selection_required"],
)
def test_failed_silent_renewal_ends_the_sign_in_and_signs_in_again(
    app: Flask, signed_in: FlaskClient, fake_provider: FakeProvider, error: str
) -> None:
    pass_renewal_deadline(signed_in)
    location = signed_in.get("/private?x=1", headers=NAVIGATION).headers["Location"]
    params = fake_provider.authorize(location)
    del params["code"]
    with recorded(session_renewal_failed, app) as failures:
        response = signed_in.get("/oidc/callback", query_string={**params, "error": error})
    assert response.status_code == 302
    interactive = query(response.headers["Location"])
    assert "prompt" not in interactive
    assert signed_in.get("/api/data", headers=SCRIPT).status_code == 401  # signed out here
    back = provider_answers(signed_in, fake_provider, response.headers["Location"])
    assert back.headers["Location"] == "/private?x=1"
    assert failures[0]["claims"]["sub"] == "alice" and error in failures[0]["reason"]


@pytest.mark.parametrize(
    "claims",
    [{"sub": "mallory"}, {"iss": "https://other.example"}, {"nonce": "replayed"}],
    ids=["sub", "iss", "nonce"],
)
def test_silent_renewal_with_a_bad_token_ends_the_sign_in(
    signed_in: FlaskClient, fake_provider: FakeProvider, claims: dict[str, str]
) -> None:
    pass_renewal_deadline(signed_in)
    location = signed_in.get("/private", headers=NAVIGATION).headers["Location"]
    fake_provider.claims = claims
    response = provider_answers(signed_in, fake_provider, location)
    assert response.status_code == 302
    assert "prompt" not in query(response.headers["Location"])
    fake_provider.claims = {}
    assert signed_in.get("/api/data", headers=SCRIPT).status_code == 401


def test_a_failed_silent_renewal_goes_to_the_configured_failure_url(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_LOGIN_REDIRECT_URL_FAILURE="/signed-out")
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    params = fake_provider.authorize(client.get("/private").headers["Location"])
    del params["code"]
    response = client.get("/oidc/callback", query_string={**params, "error": "login_required"})
    assert response.headers["Location"] == "/signed-out"


def test_protected_failure_url_does_not_loop(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_LOGIN_REDIRECT_URL_FAILURE="/private")
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    params = fake_provider.authorize(client.get("/private").headers["Location"])
    del params["code"]
    assert (
        client.get("/oidc/callback", query_string={**params, "error": "login_required"}).headers[
            "Location"
        ]
        == "/private"
    )
    response = client.get("/private", headers=NAVIGATION)
    assert response.headers["Location"] == "/oidc/login?next=/private"
    assert "prompt" not in query(client.get(response.headers["Location"]).headers["Location"])


def test_one_silent_attempt_per_deadline(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    first = signed_in.get("/private", headers=NAVIGATION)
    assert query(first.headers["Location"])["prompt"] == "none"
    # the attempt never came back (tab closed, provider stuck): the next page load is interactive
    second = signed_in.get("/private", headers=NAVIGATION)
    assert "prompt" not in query(second.headers["Location"])


def test_a_successful_renewal_allows_the_next_silent_attempt(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    for _ in range(2):
        pass_renewal_deadline(signed_in)
        location = signed_in.get("/private", headers=NAVIGATION).headers["Location"]
        assert query(location)["prompt"] == "none"
        provider_answers(signed_in, fake_provider, location)


# Exemptions


def test_exempt_view_is_never_renewed(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    assert signed_in.get("/health", headers=NAVIGATION).text == "ok"


def test_exempt_blueprint_covers_nested_blueprints(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    assert signed_in.get("/public/nested/page", headers=NAVIGATION).text == "nested"


@pytest.mark.parametrize(
    "rule", ["/private", "private", re.compile(r"/priv")], ids=["path", "endpoint", "regex"]
)
def test_the_exempt_urls_setting_exempts_only_the_matching_urls(
    make_app: MakeApp, fake_provider: FakeProvider, rule: str | re.Pattern[str]
) -> None:
    app, _ = make_app(OIDC_EXEMPT_URLS=[rule])
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    assert client.get("/private", headers=NAVIGATION).text == "hello alice"
    assert client.get("/api/data", headers=SCRIPT).status_code == 403


def test_a_view_exempted_by_endpoint_name_is_never_renewed(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    oidc.exempt("private")
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    assert client.get("/private", headers=NAVIGATION).status_code == 200


def test_extension_routes_static_files_and_404s_are_skipped(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    with signed_in.get("/oidc/static/oidc-refresh.js") as response:
        assert response.status_code == 200
    assert signed_in.get("/no-such-page", headers=NAVIGATION).status_code == 404
    assert signed_in.get("/oidc/refresh/done").status_code == 200


def test_exempt_works_in_every_decorator_order(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    bp = Blueprint("orders", __name__)

    @bp.get("/a")
    @oidc.exempt
    @oidc.login_required
    def exempt_outside_login_required() -> str:
        return "a"

    @bp.get("/b")
    @oidc.login_required
    @oidc.exempt
    def exempt_inside_login_required() -> str:
        return "b"

    @oidc.exempt
    @bp.get("/c")
    @oidc.login_required
    def exempt_above_the_route() -> str:
        return "c"

    app.register_blueprint(bp)
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    for name in "abc":
        assert client.get(f"/{name}", headers=NAVIGATION).text == name


def test_a_view_exempted_before_any_app_exists_is_never_renewed(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    from fake_provider import CLIENT_ID, CLIENT_SECRET
    from flask import Flask

    from flask_oidc_refresh import OIDC

    oidc = OIDC()

    @oidc.exempt
    def ping() -> str:
        return "pong"

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        SECRET_KEY="test-secret",
        OIDC_ISSUER=fake_provider.issuer,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
    )
    app.add_url_rule("/ping", view_func=ping)
    oidc.init_app(app)
    client = app.test_client()
    sign_in(client, fake_provider, "/ping")
    pass_renewal_deadline(client)
    assert client.get("/ping", headers=NAVIGATION).text == "pong"


def test_a_crafted_path_cannot_turn_renewal_into_an_open_redirect(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app()
    app.add_url_rule("/<section>/<page>", "page", lambda section, page: "page")
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    response = client.get("/%09/evil.example", headers=NAVIGATION)  # a tab would become //evil
    back = provider_answers(client, fake_provider, response.headers["Location"])
    assert back.headers["Location"] == "/"


def test_a_malformed_referer_is_ignored(signed_in: FlaskClient) -> None:
    pass_renewal_deadline(signed_in)
    response = signed_in.get("/api/data", headers={**SCRIPT, "Referer": "http://[broken"})
    assert response.status_code == 403
    assert response.headers["refresh_url"] == "/oidc/refresh?next=/"


def test_a_nested_blueprint_can_be_exempted_without_its_parent(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    parent, child = Blueprint("parent", __name__), Blueprint("child", __name__)

    @child.get("/inner")
    def inner() -> str:
        return "inner"

    @parent.get("/outer")
    def outer() -> str:
        return "outer"

    parent.register_blueprint(child, url_prefix="/child")
    app.register_blueprint(parent, url_prefix="/parent")
    oidc.exempt(child)
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    assert client.get("/parent/child/inner", headers=NAVIGATION).text == "inner"
    assert client.get("/parent/outer", headers=NAVIGATION).status_code == 302


def test_an_exemption_made_after_requests_counts(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, oidc = make_app()
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    assert client.get("/private", headers=NAVIGATION).status_code == 302
    oidc.exempt("private")
    pass_renewal_deadline(client)
    assert client.get("/private", headers=NAVIGATION).text == "hello alice"


def test_renewal_failure_signal_says_the_sign_in_ended(
    app: Flask, signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    params = fake_provider.authorize(signed_in.get("/private").headers["Location"])
    del params["code"]
    with recorded(session_renewal_failed, app) as failures:
        signed_in.get("/oidc/callback", query_string={**params, "error": "login_required"})
    assert [f["ended"] for f in failures] == [True]


def test_a_silent_renewal_names_the_account_it_renews(
    client: FlaskClient, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"email": "alice@example.test"}
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    response = client.get("/private", headers=NAVIGATION)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["prompt"] == ["none"]
    assert query["id_token_hint"] == [tokens_of(client).id_token]  # for several accounts
    assert query["login_hint"] == ["alice@example.test"]


def test_a_first_sign_in_sends_no_hints(client: FlaskClient) -> None:
    response = client.get("/oidc/login")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "id_token_hint" not in query and "login_hint" not in query


def test_a_failed_renewal_in_the_scripts_frame_leaves_the_sign_in_to_the_page(
    signed_in: FlaskClient, fake_provider: FakeProvider
) -> None:
    pass_renewal_deadline(signed_in)
    in_frame = signed_in.get("/oidc/refresh?next=/oidc/refresh/done")
    assert query(in_frame.headers["Location"])["prompt"] == "none"
    state = query(in_frame.headers["Location"])["state"]
    back = signed_in.get(
        "/oidc/callback",
        query_string={"error": "login_required", "state": state, "iss": fake_provider.issuer},
    )
    assert back.headers["Location"] == "/oidc/refresh/failed"  # the script renews at the top
    assert signed_in.get("/private", headers=SCRIPT).status_code == 403  # signed in, still due
    top_level = signed_in.get("/oidc/refresh?next=/private")
    assert query(top_level.headers["Location"])["prompt"] == "none"  # the frame did not count
