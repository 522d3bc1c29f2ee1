"""Browser renewal against the real development provider: silent while its session lives, never
a loop. Refresh tokens are switched off here so that the browser must renew."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import requests
from signin import follow, sign_in

PAGE_LOAD = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}


def signed_in(example_app: Callable[..., Any]) -> tuple[Any, requests.Session]:
    served = example_app(OIDC_USE_REFRESH_TOKENS="false")
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    return served, http


def test_a_page_load_past_the_deadline_renews_without_any_form(
    example_app: Callable[..., Any],
) -> None:
    served, http = signed_in(example_app)
    served.expire_renewal(http)
    visited = []
    http.hooks["response"].append(lambda response, **_: visited.append(response.url))
    page = follow(http, f"{served.base}/profile?tab=claims")
    assert page.status_code == 200
    assert page.url == f"{served.base}/profile?tab=claims"
    assert not any("/interaction/" in url for url in visited)  # no login or consent form
    assert any("prompt=none" in url for url in visited)
    assert served.renewal_deadline(http) > __import__("time").time() + 800
    silent = [
        e for e in served.provider.events("authorization.success") if e.get("prompt") == "none"
    ]
    assert len(silent) == 1


def test_without_a_provider_session_the_user_signs_in_again_no_loop(
    example_app: Callable[..., Any],
) -> None:
    served, http = signed_in(example_app)
    for cookie in list(http.cookies):
        if cookie.name != "session":
            http.cookies.clear(cookie.domain, cookie.path, cookie.name)
    served.expire_renewal(http)
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
    example_app: Callable[..., Any],
) -> None:
    served, http = signed_in(example_app)
    served.expire_renewal(http)
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
