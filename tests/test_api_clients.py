"""Requests that are no browser page load (scripts and API clients: curl, mobile apps, other
services) get ``401`` JSON from ``login_required``, never a redirect to an HTML sign-in page.
Page loads still go to sign-in (in a real browser too: see ``test_browser``)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from provider_forms import PAGE_ACCEPT

API_CLIENTS = {
    "curl": {"Accept": "*/*"},
    "no-accept": {"Accept": ""},
    "json": {"Accept": "application/json"},
    "python-requests": {"Accept": "*/*", "User-Agent": "python-requests/2.32"},
    "bearer-token": {"Accept": PAGE_ACCEPT, "Authorization": "Bearer abc"},
    "basic-auth-api-client": {"Accept": "*/*", "Authorization": "Basic YTpi"},
    "fetch": {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
    "fetch-asking-for-html": {"Accept": "text/html", "Sec-Fetch-Mode": "same-origin"},
    "xhr": {"X-Requested-With": "XMLHttpRequest"},
}
PAGE_LOADS = {
    "browser-accept": {"Accept": PAGE_ACCEPT},
    # browsers send no Fetch Metadata to plain-http sites, such as an intranet behind Basic auth
    "browser-over-http-behind-basic-auth": {"Accept": PAGE_ACCEPT, "Authorization": "Basic YTpi"},
    "fetch-metadata": {"Accept": PAGE_ACCEPT, "Sec-Fetch-Mode": "navigate"},
    "browser-behind-basic-auth": {
        "Accept": PAGE_ACCEPT,
        "Sec-Fetch-Mode": "navigate",
        "Authorization": "Basic YTpi",
    },
}


@pytest.mark.parametrize("kind", API_CLIENTS)
def test_an_api_client_gets_401_json(client: FlaskClient, kind: str) -> None:
    response = client.get("/private", headers=API_CLIENTS[kind])
    assert response.status_code == 401
    assert response.json == {"error": "login_required", "error_description": "Sign-in required."}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers  # no pending sign-in was started


@pytest.mark.parametrize("kind", PAGE_LOADS)
def test_a_page_load_goes_to_sign_in(client: FlaskClient, kind: str) -> None:
    response = client.get("/private", headers=PAGE_LOADS[kind])
    assert response.status_code == 302
    assert response.headers["Location"] == "/oidc/login?next=/private"
