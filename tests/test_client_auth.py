"""Client authentication at the token and revocation endpoints, against the development provider
configured for each method: a secret (Basic, form, JWT), the app's private key (JWT, its public
half fetched by the provider from ``/oidc/jwks``), or none (a public client with PKCE)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from conftest import Served
from joserfc import jws
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from provider_forms import sign_in

from flask_oidc_refresh import ConfigError
from flask_oidc_refresh.testing import pass_renewal_deadline

FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
#: client_secret_jwt signs with HS256, whose key the provider wants at least 32 bytes long
LONG_SECRET = "a-client-secret-that-is-long-enough-for-hs256"
StartApp = Callable[..., Served]


@pytest.fixture
def start_app(example_app: Callable[..., Served]) -> StartApp:
    """The example app and the development provider (rotating refresh tokens), both set up
    for one client authentication method."""
    return functools.partial(example_app, OP_ROTATE_REFRESH_TOKENS="1")


def private_key_file(tmp_path: Path, key: RSAKey | ECKey) -> str:
    path = tmp_path / "client-key.pem"
    path.write_bytes(key.as_pem(private=True))
    return str(path)


def check_sign_in_refresh_and_logout(served: Served) -> None:
    """Sign in (a code exchange), renew with the refresh token, sign out (revocation): every
    call to the provider authenticates, none is refused."""
    http = requests.Session()
    page = sign_in(http, f"{served.base}/profile")
    assert '<strong id="sub">alice</strong>' in page.text
    pass_renewal_deadline(served.client(http))
    assert http.get(f"{served.base}/api/me", headers=FETCH).status_code == 200
    provider = served.provider
    grants = [e.get("grant_type") for e in provider.events("grant.success")]
    assert grants == ["authorization_code", "refresh_token"]
    logout = http.post(
        f"{served.base}/oidc/logout", headers={"Origin": served.base}, allow_redirects=False
    )
    assert logout.status_code == 302
    assert provider.events("grant.error") == []
    assert provider.events("revocation.error") == []


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_client_secret_in_basic_auth_or_the_form(start_app: StartApp, method: str) -> None:
    served = start_app(OP_CLIENT_AUTH_METHOD=method, OIDC_CLIENT_AUTH_METHOD=method)
    check_sign_in_refresh_and_logout(served)


def test_a_jwt_signed_with_the_client_secret(start_app: StartApp) -> None:
    served = start_app(
        OP_CLIENT_AUTH_METHOD="client_secret_jwt",
        OP_CLIENT_SECRET=LONG_SECRET,
        OIDC_CLIENT_AUTH_METHOD="client_secret_jwt",
    )
    check_sign_in_refresh_and_logout(served)


@pytest.mark.parametrize("key", [RSAKey.generate_key(2048), ECKey.generate_key("P-256")])
def test_a_jwt_signed_with_the_apps_private_key(
    start_app: StartApp, tmp_path: Path, key: RSAKey | ECKey
) -> None:
    served = start_app(
        OP_CLIENT_AUTH_METHOD="private_key_jwt",
        OIDC_CLIENT_SECRET="",
        OIDC_CLIENT_PRIVATE_KEY=private_key_file(tmp_path, key),
    )  # no OIDC_CLIENT_AUTH_METHOD: a key and no secret make it private_key_jwt
    check_sign_in_refresh_and_logout(served)


def test_a_public_client_has_no_secret_and_relies_on_pkce(start_app: StartApp) -> None:
    served = start_app(
        OP_CLIENT_AUTH_METHOD="none", OIDC_CLIENT_SECRET="", OIDC_CLIENT_AUTH_METHOD="none"
    )
    check_sign_in_refresh_and_logout(served)


def test_without_a_method_set_the_best_one_the_provider_offers_is_used(
    start_app: StartApp, tmp_path: Path
) -> None:
    # the app has a secret and a key: the provider offers both, the key is preferred
    served = start_app(
        OP_CLIENT_AUTH_METHOD="private_key_jwt",
        OIDC_CLIENT_PRIVATE_KEY=private_key_file(tmp_path, RSAKey.generate_key(2048)),
    )
    check_sign_in_refresh_and_logout(served)


def test_the_jwks_route_publishes_the_public_key_only(start_app: StartApp, tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048)
    served = start_app(
        OIDC_CLIENT_PRIVATE_KEY=json.dumps(key.as_dict(private=True)),
        OIDC_CLIENT_PRIVATE_KEY_ID="app-key-1",
    )
    answer = requests.get(f"{served.base}/oidc/jwks")
    assert answer.status_code == 200
    [published] = answer.json()["keys"]
    assert published["kid"] == "app-key-1" and published["alg"] == "RS256"
    assert published["use"] == "sig"
    assert "d" not in published and "p" not in published  # nothing private
    signed = jws.serialize_compact({"alg": "RS256", "kid": "app-key-1"}, b"hello", key)
    keys = KeySet.import_key_set(answer.json())
    assert jws.deserialize_compact(signed, keys).payload == b"hello"


def test_the_jwks_route_names_the_algorithm_of_the_curve_and_nothing_else(
    start_app: StartApp,
) -> None:
    key = ECKey.generate_key("P-384").as_dict(private=True)
    served = start_app(OIDC_CLIENT_PRIVATE_KEY=json.dumps({**key, "x-passphrase": "secret"}))
    [published] = requests.get(f"{served.base}/oidc/jwks").json()["keys"]
    assert published["alg"] == "ES384"
    assert set(published) == {"kty", "crv", "x", "y", "kid", "use", "alg"}


def test_without_a_key_the_jwks_route_is_a_404(start_app: StartApp) -> None:
    served = start_app()
    assert requests.get(f"{served.base}/oidc/jwks").status_code == 404


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"OIDC_CLIENT_AUTH_METHOD": "private_key_jwt"}, "OIDC_CLIENT_PRIVATE_KEY"),
        ({"OIDC_CLIENT_AUTH_METHOD": "client_secret_jwt", "OIDC_CLIENT_SECRET": ""}, "SECRET"),
        ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_AUTH_METHOD = 'none'"),
        ({"OIDC_CLIENT_PRIVATE_KEY": RSAKey.generate_key(2048).as_dict(private=False)}, "public"),
        ({"OIDC_CLIENT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nnot a key"}, "neither"),
        ({"OIDC_CLIENT_PRIVATE_KEY": "/nonexistent/key.pem"}, "cannot read"),
        ({"OIDC_CLIENT_PRIVATE_KEY": "{not json"}, "not valid JSON"),
        (
            {"OIDC_CLIENT_PRIVATE_KEY": OKPKey.generate_key("X25519").as_dict(private=True)},
            "cannot sign",
        ),
        (
            {
                "OIDC_CLIENT_PRIVATE_KEY": {
                    **RSAKey.generate_key(2048).as_dict(private=True),
                    "alg": "HS256",
                }
            },
            "cannot sign",
        ),
    ],
)
def test_missing_credentials_are_a_config_error(settings: dict[str, object], named: str) -> None:
    from flask import Flask

    from flask_oidc_refresh import OIDC

    app = Flask(__name__)
    app.config.update(
        {
            "SECRET_KEY": "test",
            "OIDC_ISSUER": "https://login.example.com",
            "OIDC_CLIENT_ID": "app",
            "OIDC_CLIENT_SECRET": "secret",
            **settings,
        }
    )
    with pytest.raises(ConfigError, match=named):
        OIDC(app)
