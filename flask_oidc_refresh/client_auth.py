"""How the app proves who it is at the provider's token and revocation endpoints: its client
secret (HTTP Basic, in the form, or a JWT signed with it), a JWT signed with its private key, or
nothing at all (a public client, which PKCE protects).

The JWT methods are Authlib's (RFC 7523); the private key's public half is published at
``GET /oidc/jwks`` for providers that fetch it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from .config import ConfigError, Settings

#: The methods the provider may offer, in the order this app picks them when it has both a
#: secret and a key (the key first: nothing secret goes over the wire).
PREFERENCE = ("private_key_jwt", "client_secret_basic", "client_secret_post", "client_secret_jwt")
PrivateKey = RSAKey | ECKey | OKPKey
#: The signing algorithm of each kind of key (RSA: RS256), by key type or curve.
_ALGORITHMS = {
    "RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "P-521": "ES512",
    "secp256k1": "ES256K", "Ed25519": "EdDSA", "Ed448": "EdDSA",
}  # fmt: skip
#: What a published public key holds, by key type (nothing else of the JWK is published).
_PUBLIC_MEMBERS = {
    "RSA": ("kty", "n", "e"),
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
}


class ClientAuth:
    """The app's client authentication: its method, and its key when it has one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key: PrivateKey | None = None
        if settings.client_private_key is not None:
            self.key = load_private_key(settings.client_private_key, settings.client_private_key_id)

    def method(self, offered: Sequence[str] | None) -> str:
        """The method to use: the configured one, else the best that the provider offers
        (``token_endpoint_auth_methods_supported``; ``client_secret_basic`` when it lists
        none) among those this app has credentials for."""
        if self.settings.client_auth_method is not None:
            return self.settings.client_auth_method
        offered = list(offered or ["client_secret_basic"])
        usable = [m for m in PREFERENCE if m in offered and self._can(m)]
        if usable:
            return usable[0]
        return "private_key_jwt" if self.key is not None else "client_secret_basic"

    def session(self, method: str, token_endpoint: str, **options: Any) -> OAuth2Session:
        """An Authlib client that authenticates with ``method``."""
        settings = self.settings
        credential: Any = settings.client_secret
        if method == "private_key_jwt":
            credential = self.key
        elif method == "none":
            credential = None
        client = OAuth2Session(
            settings.client_id,
            credential,
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            **options,
        )
        if method == "client_secret_jwt":
            client.register_client_auth_method(ClientSecretJWT(token_endpoint))
        elif method == "private_key_jwt" and self.key is not None:
            header = {"kid": self.key.kid}
            algorithm = _algorithm(self.key)
            client.register_client_auth_method(
                PrivateKeyJWT(token_endpoint, headers=header, alg=algorithm)
            )
        return client

    def public_jwks(self) -> dict[str, Any] | None:
        """The public half of the app's key as a JWK set, or None without a key."""
        if self.key is None:
            return None
        members = self.key.as_dict(private=False)
        public = {name: members[name] for name in _PUBLIC_MEMBERS[self.key.key_type]}
        public.update(kid=str(self.key.kid), use="sig", alg=_algorithm(self.key))
        return {"keys": [public]}

    def _can(self, method: str) -> bool:
        if method == "private_key_jwt":
            return self.key is not None
        return bool(self.settings.client_secret)


def load_private_key(value: str | Mapping[str, Any], kid: str | None) -> PrivateKey:
    """The private key in ``value``: a JWK (a mapping or JSON text), PEM text, or the path of a
    file holding either. Its ``kid`` is ``kid``, else the JWK's own, else its thumbprint."""
    data: Any = value
    if isinstance(value, str) and not value.lstrip().startswith(("{", "-----BEGIN")):
        try:
            with open(os.path.expanduser(value), encoding="utf-8") as file:
                data = file.read()
        except OSError as exc:
            raise ConfigError(f"OIDC_CLIENT_PRIVATE_KEY: cannot read {value!r} ({exc})") from exc
    if isinstance(data, str) and data.lstrip().startswith("{"):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ConfigError("OIDC_CLIENT_PRIVATE_KEY is not valid JSON (a JWK)") from exc
    for key_type in (RSAKey, ECKey, OKPKey):
        try:
            key = key_type.import_key(data)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if not key.is_private:
            raise ConfigError("OIDC_CLIENT_PRIVATE_KEY holds a public key, not a private one")
        if kid is not None:
            key = key_type.import_key(data, {"kid": kid})
        key.ensure_kid()
        try:  # a trial signature: a key that cannot sign is refused now, not at sign-in
            jws.serialize_compact({"alg": _algorithm(key)}, b"trial", key, [_algorithm(key)])
        except (JoseError, KeyError, ValueError) as exc:
            message = f"OIDC_CLIENT_PRIVATE_KEY cannot sign client assertions: {exc}"
            raise ConfigError(message) from exc
        return key
    raise ConfigError("OIDC_CLIENT_PRIVATE_KEY is neither a PEM private key nor a JWK")


def _algorithm(key: PrivateKey) -> str:
    """The key's own ``alg``, else the one that fits its type or curve."""
    alg = key.get("alg")
    if isinstance(alg, str):
        return alg
    curve = key.get("crv")
    return _ALGORITHMS[curve if isinstance(curve, str) else key.key_type]
