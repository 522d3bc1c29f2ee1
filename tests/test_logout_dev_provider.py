"""Logout against the real development provider: RP-initiated, and back-channel from the provider
to every host of the app."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from apps import session_redis, tokens_of
from conftest import CLIENT_ID, CLIENT_SECRET, DevProvider, RedisServer, Served, free_port
from provider_forms import confirm_logout_at_provider, follow, sign_in, sign_out_at_provider

FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}


def test_rp_logout_ends_both_sessions_and_revokes_the_refresh_token(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    refresh_token = tokens_of(served.client(http)).refresh_token
    assert refresh_token
    response = http.post(
        f"{served.base}/oidc/logout", headers={"Origin": served.base}, allow_redirects=False
    )
    # before the provider's own sign-out (which would revoke the grant anyway): already revoked
    refresh = requests.post(
        f"{served.provider.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert http.get(f"{served.base}/api/me", headers=FETCH).status_code == 401
    landed = confirm_logout_at_provider(http, follow(http, response.headers["Location"]))
    assert landed.url == f"{served.base}/"


def test_signing_out_at_the_provider_signs_out_here(example_app: Callable[..., Served]) -> None:
    served = example_app()
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    sign_out_at_provider(http, served.provider.issuer)
    assert [e["event"] for e in served.provider.events("backchannel.success")] == [
        "backchannel.success"
    ]
    assert http.get(f"{served.base}/api/me", headers=FETCH).status_code == 401


def test_back_channel_logout_reaches_every_host_sharing_redis(
    start_provider: Callable[..., DevProvider],
    start_gunicorn: Callable[..., str],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports = [free_port(), free_port()]
    provider = start_provider(ports)
    env = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "SESSION_TYPE": "redis",
        "REDIS_URL": redis_server.url,
    }
    first, second = (start_gunicorn(port, env) for port in ports)
    browser = requests.Session()
    sign_in(browser, f"{first}/profile")
    # the same browser's second app session (a new app cookie, the same provider session)
    other_tab = requests.Session()
    other_tab.cookies.update(
        {c.name: c.value for c in browser.cookies if c.name != "session" and c.value is not None}
    )
    page = sign_in(other_tab, f"{second}/profile")
    assert '<strong id="sub">alice</strong>' in page.text
    assert browser.cookies["session"] != other_tab.cookies["session"]

    sign_out_at_provider(browser, provider.issuer)

    assert len(provider.events("backchannel.success")) == 1  # one call, to the first host
    assert browser.get(f"{first}/api/me", headers=FETCH).status_code == 401
    assert other_tab.get(f"{second}/api/me", headers=FETCH).status_code == 401
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import example_app

    redis = session_redis(example_app.create_app())
    assert redis.keys("oidc-tokens:*") == []  # their refresh tokens are gone too
