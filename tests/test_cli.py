"""The ``flask oidc`` commands: ``check`` against the real development provider (all good, then
each deliberately broken setting named), ``sessions`` and ``logout`` on every session store."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from types import SimpleNamespace
from typing import Any

import pytest
from apps import SCRIPT, sign_in
from click.testing import Result
from conftest import ON_EVERY_STORE, Clock, MakeApp, Served, free_port
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient

from flask_oidc_refresh.relying_party import relying_party


def check(served: Served, url: str | None = None) -> Result:
    return served.app.test_cli_runner().invoke(args=["oidc", "check", "--url", url or served.base])


def test_check_reports_all_good_against_the_development_provider(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    result = check(served)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "0 problem(s), 0 warning(s)."
    for topic in ("discovery", "keys", "clock", "credentials", "redirect URI", "PKCE"):
        assert f"ok       {topic}:" in result.output


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("OIDC_CLIENT_SECRET", "not-the-secret", "the provider answered invalid_client"),
        ("OIDC_CLIENT_ID", "nobody", "check OIDC_CLIENT_ID"),
        ("OIDC_ISSUER", "http://127.0.0.1:{port}/realms/typo", "is OIDC_ISSUER"),
    ],
    ids=["wrong-secret", "wrong-client-id", "wrong-issuer"],
)  # fmt: skip
def test_check_names_each_broken_setting(
    example_app: Callable[..., Served], setting: str, value: str, named: str
) -> None:
    served = example_app()
    value = value.format(port=served.provider.port)
    served = example_app(**{setting: value})
    result = check(served)
    assert result.exit_code == 1
    assert "PROBLEM" in result.output
    assert named in result.output


def test_check_names_an_unregistered_redirect_uri(example_app: Callable[..., Served]) -> None:
    served = example_app()
    elsewhere = f"http://127.0.0.1:{free_port()}"
    result = check(served, elsewhere)
    assert result.exit_code == 1
    assert f"PROBLEM  redirect URI: the provider refuses {elsewhere}/oidc/callback" in result.output


def test_check_names_http_in_production(example_app: Callable[..., Served]) -> None:
    result = check(example_app(), "http://app.example.test")
    assert result.exit_code == 1
    assert (
        "PROBLEM  https: the redirect URI is http://app.example.test/oidc/callback" in result.output
    )


def test_check_on_startup_logs_the_problems(
    example_app: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    example_app(OIDC_CHECK_ON_STARTUP="true", OIDC_CLIENT_SECRET="not-the-secret")
    deadline = time.monotonic() + 20
    while "oidc check: credentials" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    [line] = [r for r in caplog.records if "oidc check: credentials" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert "OIDC_CLIENT_SECRET" in line.getMessage()
    assert "redirect URI" not in caplog.text  # the app's URL is not known at start-up


def test_check_on_startup_leaves_the_apps_own_providers_alone(
    make_app: MakeApp, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that forks while the check runs must not inherit a provider lock held by it."""
    wrong_secret = {"error": "invalid_client", "error_description": "no"}
    fake_provider.token_status, fake_provider.token_body = 401, wrong_secret
    app, _ = make_app(OIDC_CHECK_ON_STARTUP=True)
    deadline = time.monotonic() + 20
    while "oidc check: credentials" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "oidc check: credentials" in caplog.text
    assert relying_party(app).provider._metadata._value is None  # never fetched by the app's


def test_check_tells_a_made_up_code_refused_for_another_reason(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app()
    fake_provider.token_status = 400
    fake_provider.token_body = {"error": "invalid_request", "error_description": "huh"}
    result = app.test_cli_runner().invoke(args=["oidc", "check", "--url", "http://127.0.0.1:5000"])
    assert "WARNING  credentials: could not tell: the provider answered invalid_request" in (
        result.output
    )


def test_check_names_a_server_clock_that_is_off(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app()
    clock.advance(7200)
    result = app.test_cli_runner().invoke(args=["oidc", "check", "--url", "http://127.0.0.1:5000"])
    assert result.exit_code == 1
    assert "PROBLEM  clock: this server's clock is +720" in result.output  # +7200 s, give or take


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Date": formatdate(time.time() - 7200, usegmt=True), "Age": "7200"}, "ok"),
        ({"Date": formatdate(time.time(), usegmt=True).replace("GMT", "-0000")}, "ok"),
        ({"Date": "not a date"}, "warning"),
        ({}, "warning"),
    ],
    ids=["answer-cached-for-two-hours", "utc-as-minus-0000", "malformed", "no-date"],
)
def test_the_clock_check_reads_http_dates_as_caches_send_them(
    headers: dict[str, str], expected: str
) -> None:
    from flask_oidc_refresh.checks import _clock

    answer = SimpleNamespace(headers=headers)
    provider: Any = SimpleNamespace(
        http=SimpleNamespace(get=lambda url: answer),
        metadata={"jwks_uri": "https://login.example.com/jwks"},
        settings=SimpleNamespace(clock_skew_seconds=60),
    )
    [finding] = _clock(provider, "")
    assert finding.level == expected, finding


# --- sessions ------------------------------------------------------------------------------


@pytest.fixture
def two_users(
    make_app: MakeApp, fake_provider: FakeProvider
) -> tuple[Flask, FlaskClient, FlaskClient]:
    app, _ = make_app()
    clients = []
    for sub in ("alice", "bob"):
        fake_provider.claims = {"sub": sub, "sid": f"sid-{sub}"}
        fake_provider.userinfo = {"sub": sub}
        client = app.test_client()
        sign_in(client, fake_provider)
        clients.append(client)
    return app, clients[0], clients[1]


@ON_EVERY_STORE
def test_sessions_lists_every_signed_in_session(
    two_users: tuple[Flask, FlaskClient, FlaskClient],
) -> None:
    app, _, _ = two_users
    result = app.test_cli_runner().invoke(args=["oidc", "sessions"])
    assert result.exit_code == 0, result.output
    assert "alice  provider session sid-alice  (default)  renews at " in result.output
    assert "bob  provider session sid-bob" in result.output
    assert "2 signed-in session(s) in " in result.output
    only = app.test_cli_runner().invoke(args=["oidc", "sessions", "--sub", "bob", "--json"])
    assert '"sub": "bob"' in only.output
    assert "alice" not in only.output


@ON_EVERY_STORE
def test_logout_ends_a_users_sessions_everywhere(
    two_users: tuple[Flask, FlaskClient, FlaskClient],
) -> None:
    app, alice, bob = two_users
    result = app.test_cli_runner().invoke(args=["oidc", "logout", "--sub", "alice"])
    assert result.output == "Ended 1 session(s) of sub alice.\n"
    assert alice.get("/api/data", headers=SCRIPT).status_code == 401
    assert bob.get("/api/data", headers=SCRIPT).status_code == 200
    listed = app.test_cli_runner().invoke(args=["oidc", "sessions"])
    assert "1 signed-in session(s)" in listed.output
    by_sid = app.test_cli_runner().invoke(args=["oidc", "logout", "--sid", "sid-bob"])
    assert by_sid.output == "Ended 1 session(s) of sid sid-bob.\n"
    assert bob.get("/api/data", headers=SCRIPT).status_code == 401


def test_logout_needs_a_sub_or_a_sid(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["oidc", "logout"])
    assert result.exit_code == 2
    assert "give --sub or --sid" in result.output
