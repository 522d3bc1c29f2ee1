"""APIs against the real development provider: its JWT access tokens (a resource indicator),
its opaque tokens checked by introspection, the client-credentials grant of a service, and
the bad tokens made from real ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from apps import tokens_of
from authlib.integrations.requests_client import OAuth2Session
from conftest import Clock, DevProvider, Served
from joserfc import jwt
from joserfc.jwk import RSAKey
from provider_forms import sign_in

pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")

API = "urn:example:api"
OPAQUE_API = "urn:example:opaque-api"


def service_token(provider: DevProvider, scope: str = "api:read", resource: str = API) -> str:
    """What a service gets with the client-credentials grant (as the docs show it)."""
    client = OAuth2Session("example-service", "example-service-secret", scope=scope)
    token = client.fetch_token(
        f"{provider.issuer}/token", grant_type="client_credentials", resource=resource
    )
    return str(token["access_token"])


def call(served: Served, path: str, token: str) -> requests.Response:
    """An API client's call: curl's ``Accept``, the token, no cookies."""
    headers = {"Accept": "*/*", "Authorization": f"Bearer {token}"}
    return requests.get(f"{served.base}{path}", headers=headers, timeout=10)


def assert_invalid_token(response: requests.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer error=")
    assert "Set-Cookie" not in response.headers
    assert response.json()["error"] in ("invalid_token", "insufficient_scope")


def test_a_client_credentials_token_is_accepted_on_a_protected_api(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    response = call(served, "/api/reports", service_token(served.provider))
    assert response.status_code == 200
    assert response.json() == {"reports": [], "for": "example-service", "scope": "api:read"}
    assert "Set-Cookie" not in response.headers
    me = call(served, "/api/me", service_token(served.provider)).json()["token"]
    assert (me["sub"], me["aud"], me["iss"]) == ("example-service", API, served.provider.issuer)


def test_a_token_without_the_scope_gets_403_insufficient_scope(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    response = call(served, "/api/reports", service_token(served.provider, scope="api:write"))
    assert_invalid_token(response, 403)
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="api:read"' in response.headers["WWW-Authenticate"]


def test_an_opaque_token_is_checked_by_introspection_until_revoked(
    example_app: Callable[..., Served],
) -> None:
    served = example_app(OIDC_API_AUDIENCE=OPAQUE_API, OIDC_INTROSPECTION_CACHE_SECONDS="0")
    opaque = service_token(served.provider, resource=OPAQUE_API)
    assert opaque.count(".") == 0
    assert call(served, "/api/reports", opaque).status_code == 200
    jwt_for_the_other_api = service_token(served.provider)
    assert_invalid_token(call(served, "/api/reports", jwt_for_the_other_api))
    revocation = requests.post(
        f"{served.provider.issuer}/token/revocation",
        data={"token": opaque},
        auth=("example-service", "example-service-secret"),
        timeout=10,
    )
    assert revocation.status_code == 200
    assert_invalid_token(call(served, "/api/reports", opaque))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "==="))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = parts(token)[1] | {"scope": "api:read api:write admin"}
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def unsigned(token: str) -> str:
    header, claims = parts(token)
    return (
        f"{b64(json.dumps(header | {'alg': 'none'}).encode())}.{b64(json.dumps(claims).encode())}."
    )


def hs256_with_the_public_key(token: str, provider: DevProvider) -> str:
    jwks = requests.get(f"{provider.issuer}/jwks", timeout=10).json()
    public_pem = RSAKey.import_key(jwks["keys"][0]).as_pem(private=False)
    header, claims = parts(token)
    signing_input = f"{b64(json.dumps(header | {'alg': 'HS256'}).encode())}.{token.split('.')[1]}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unknown_kid(token: str) -> str:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "not-the-providers"})
    header, claims = parts(token)
    return jwt.encode(header | {"kid": "not-the-providers"}, claims, stranger)


FORGERIES: dict[str, Callable[[str, DevProvider], str]] = {
    "tampered": lambda token, _: tampered(token),
    "alg-none": lambda token, _: unsigned(token),
    "hs256-signed-with-the-public-key": hs256_with_the_public_key,
    "unknown-kid": lambda token, _: unknown_kid(token),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_tokens_are_refused(example_app: Callable[..., Served], forgery: str) -> None:
    served = example_app()
    real = service_token(served.provider)
    assert call(served, "/api/reports", real).status_code == 200
    assert_invalid_token(call(served, "/api/reports", FORGERIES[forgery](real, served.provider)))


def test_expired_and_not_yet_valid_tokens_are_refused(
    example_app: Callable[..., Served], clock: Clock
) -> None:
    served = example_app()
    token = service_token(served.provider)  # valid for 300 s, checked with 60 s of leeway
    clock.advance(-120)  # issued "in the future" as the app's clock sees it
    assert_invalid_token(call(served, "/api/reports", service_token(served.provider)))
    clock.advance(120 + 300 + 61)
    assert_invalid_token(call(served, "/api/reports", token))


def test_a_token_for_another_api_is_refused(example_app: Callable[..., Served]) -> None:
    served = example_app(OIDC_API_AUDIENCE="urn:example:another-api")
    assert_invalid_token(call(served, "/api/reports", service_token(served.provider)))


def test_a_token_of_another_issuer_is_refused(
    example_app: Callable[..., Served], start_provider: Callable[..., DevProvider]
) -> None:
    served = example_app()
    stranger = start_provider([1])
    assert_invalid_token(call(served, "/api/reports", service_token(stranger)))


def test_the_users_id_token_and_own_access_token_are_no_api_tokens(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    tokens = tokens_of(served.client(http))
    assert_invalid_token(call(served, "/api/me", tokens.id_token))
    assert_invalid_token(call(served, "/api/me", tokens.access_token))  # for userinfo only


def test_a_mixed_view_takes_the_browser_session_or_a_token(
    example_app: Callable[..., Served],
) -> None:
    served = example_app()
    http = requests.Session()
    sign_in(http, f"{served.base}/profile")
    fetch = {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}
    assert http.get(f"{served.base}/api/me", headers=fetch).json()["user"]["sub"] == "alice"
    token = call(served, "/api/me", service_token(served.provider)).json()["token"]
    assert token["client_id"] == "example-service"
    anonymous = requests.get(f"{served.base}/api/me", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "login_required"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
