"""Access tokens presented to the app's APIs: JWT access tokens checked locally (RFC 9068), the
answers of token introspection (RFC 7662), and the scopes a token grants. Pure protocol, no
Flask globals."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeyFlexible
from joserfc.jwt import JWTClaimsRegistry

from .config import media_type
from .tokens import TokenError, issuer_for, verify_signature

#: ``token_type`` values of an introspection answer that name an access token.
ACCESS_TOKEN_TYPE_NAMES = frozenset({"bearer", "access_token", "dpop", "n_a"})


def validate_jwt_access_token(
    token: str,
    *,
    key: KeyFlexible,
    algorithms: Collection[str],
    issuer: str,
    audience: str,
    types: Collection[str],
    leeway: int = 60,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a JWT access token and return its claims.

    Checks the signature with ``key`` and only ``algorithms`` (asymmetric ones: never ``none``,
    never a MAC), the ``typ`` header (``at+jwt``, or one of ``types``), ``iss``, that ``aud``
    contains ``audience``, ``exp`` (required), ``nbf`` and ``iat`` with ``leeway``, and that it
    is no ID token (an ID token carries a ``nonce``; its ``typ`` is not ``at+jwt``).
    """
    verified = verify_signature(token, key, algorithms, "access token")
    kind = verified.header.get("typ")
    if not isinstance(kind, str) or media_type(kind) not in types:
        raise TokenError(f"the token's typ is {kind!r}, not an access token's")
    claims = verified.claims
    if "nonce" in claims:
        raise TokenError("an ID token is no access token")
    registry = JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=leeway,
        iss={"essential": True, "value": issuer_for(issuer, claims)},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError) as exc:
        raise TokenError(f"access token claim rejected: {exc}") from exc
    return dict(claims)


def check_introspection(
    answer: Mapping[str, Any], *, issuer: str, audience: str, leeway: int, now: float
) -> dict[str, Any]:
    """The claims of an introspection answer about an active access token for ``audience``.

    The provider vouches for the token; its answer must still say ``active``, name this API in
    ``aud``, name the provider in ``iss`` (when it names one), not be about a refresh token,
    and not be past ``exp`` or before ``nbf``.
    """
    if answer.get("active") is not True:
        raise TokenError("the provider says the token is not active")
    kind = answer.get("token_type")
    if kind is not None and str(kind).lower() not in ACCESS_TOKEN_TYPE_NAMES:
        raise TokenError(f"the token is a {kind}, not an access token")
    if "iss" in answer and answer["iss"] != issuer_for(issuer, answer):
        raise TokenError("the token was issued by another issuer")
    aud = answer.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise TokenError("the token is meant for another audience")
    exp, nbf = answer.get("exp"), answer.get("nbf")
    if isinstance(exp, int | float) and exp < now - leeway:
        raise TokenError("the token has expired")
    if isinstance(nbf, int | float) and nbf > now + leeway:
        raise TokenError("the token is not valid yet")
    return dict(answer)


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants: ``scope`` (a space-separated string, RFC 9068 and 7662), or
    ``scp`` (a string or a list: Entra ID, Okta)."""
    granted = claims.get("scope", claims.get("scp"))
    if isinstance(granted, str):
        return frozenset(granted.split())
    if isinstance(granted, list):
        return frozenset(scope for scope in granted if isinstance(scope, str))
    return frozenset()
