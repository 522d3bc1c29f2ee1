"""Browser renewal against the real development provider: silent while its session lives, never
a loop. Refresh tokens are switched off here so that the browser must renew."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urljoin

import requests
from conftest import Served
from provider_forms import follow, sign_in

from flask_oidc_refresh.testing import pass_renewal_deadline

PAGE_LOAD = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}


def signed_in(example_app: Callable[..., Served]) -> tuple[Served, requests.Session]:
    served = example_app(OIDC_USE_REFRESH_TOKENS="false")
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    return served, http


def test_a_page_load_past_the_deadline_renews_without_any_form(
    example_app: Callable[..., Served],
) -> None:
    served, http = signed_in(example_app)
    pass_renewal_deadline(served.client(http))
    visited = []
    http.hooks["response"].append(lambda response, **_: visited.append(response.url))
    page = follow(http, f"{served.base}/profile?tab=claims")
    assert page.status_code == 200
    assert page.url == f"{served.base}/profile?tab=claims"
    assert not any("/interaction/" in url for url in visited)  # no login or consent form
    assert any("prompt=none" in url for url in visited)
    deadline = http.get(f"{served.base}/api/me", headers=FETCH).json()["renewal_deadline"]
    assert deadline > time.time() + 800
    silent = [
        e for e in served.provider.events("authorization.success") if e.get("prompt") == "none"
    ]
    assert len(silent) == 1


def test_without_a_provider_session_the_user_signs_in_again_no_loop(
    example_app: Callable[..., Served],
) -> None:
    served, http = signed_in(example_app)
    others = [(c.domain, c.path, c.name) for c in http.cookies if c.name != "session"]
    for domain, path, name in others:
        http.cookies.clear(domain, path, name)
    pass_renewal_deadline(served.client(http))
    page = follow(http, f"{served.base}/profile")
    assert 'name="prompt" value="login"' in page.text  # the provider's login form, once
    assert http.get(f"{served.base}/api/me", headers=FETCH).status_code == 401  # signed out here
    errors = [
        e
        for e in served.provider.events("authorization.error")
        if e.get("error") == "login_required"
    ]
    assert len(errors) == 1


def test_script_requests_get_403_then_the_refresh_url_renews(
    example_app: Callable[..., Served],
) -> None:
    served, http = signed_in(example_app)
    pass_renewal_deadline(served.client(http))
    page = f"{served.base}/profile"
    for headers in (FETCH, {"X-Requested-With": "XMLHttpRequest"}):
        response = http.get(f"{served.base}/api/me", headers={**headers, "Referer": page})
        assert response.status_code == 403
        assert response.headers["refresh_url"] == "/oidc/refresh?next=/profile"
        assert response.json()["error"] == "refresh_required"
    assert http.get(f"{served.base}/api/health", headers=FETCH).status_code == 200  # exempt
    landed = follow(http, urljoin(served.base, response.headers["refresh_url"]))
    assert landed.url == page
    assert http.get(f"{served.base}/api/me", headers=FETCH).json()["user"]["sub"] == "alice"
