"""Drive the development provider's login and consent forms with ``requests``, as a person would."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests

FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"')
#: What a browser accepts on a page load (requests' own ``*/*`` is an API client's).
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def follow(http: requests.Session, url: str, stop_at: str | None = None) -> requests.Response:
    """GET ``url`` and follow redirects by hand, as a browser (which ``http`` becomes); stop
    early at a URL starting with ``stop_at``."""
    http.headers["Accept"] = PAGE_ACCEPT
    response = http.get(url, allow_redirects=False)
    while response.is_redirect:
        url = urljoin(response.url, response.headers["Location"])
        if stop_at and url.startswith(stop_at):
            response.headers["X-Stopped-At"] = url
            return response
        response = http.get(url, allow_redirects=False)
    return response


def submit(
    http: requests.Session, page: requests.Response, data: dict[str, str]
) -> requests.Response:
    """POST the page's form and follow the redirects that come after."""
    match = FORM_ACTION.search(page.text)
    assert match, f"no form on {page.url}: {page.text[:300]}"
    response = http.post(urljoin(page.url, match.group(1)), data=data, allow_redirects=False)
    while response.is_redirect:
        response = http.get(
            urljoin(response.url, response.headers["Location"]), allow_redirects=False
        )
    return response


def sign_in(http: requests.Session, url: str, user: str = "alice") -> requests.Response:
    """Open ``url`` of the app and sign in at the provider; returns the page landed on."""
    page = follow(http, url)
    forms_posted = 0
    for prompt, data in (("login", {"login": user, "password": "secret"}), ("consent", {})):
        if f'name="prompt" value="{prompt}"' in page.text:
            page = submit(http, page, {"prompt": prompt, **data})
            forms_posted += 1
    page.headers["X-Forms-Posted"] = str(forms_posted)
    return page


def confirm_logout_at_provider(
    http: requests.Session, page: requests.Response
) -> requests.Response:
    """Answer the provider's "sign out?" page with yes."""
    action = FORM_ACTION.search(page.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert action and xsrf, page.text[:300]
    return http.post(action.group(1), data={"xsrf": xsrf.group(1), "logout": "yes"})


def sign_out_at_provider(
    http: requests.Session, issuer: str, client_id: str = "example-app"
) -> None:
    """The user signs out at the provider itself (not through the app)."""
    confirm_logout_at_provider(http, follow(http, f"{issuer}/session/end?client_id={client_id}"))
