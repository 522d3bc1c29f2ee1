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

from .config import ASYMMETRIC_ALGORITHMS, media_type
from .tokens import TokenError, issuer_for, verify_signature

#: ``token_type`` values of an introspection answer that name a bearer access token.
ACCESS_TOKEN_TYPE_NAMES = frozenset({"bearer", "access_token", "n_a"})
#: Claims only other kinds of token carry: ID tokens (``nonce`` and the hashes), logout tokens
#: (``events``).
OTHER_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash", "events"})
#: Claims of what an access token grants; a token not typed ``at+jwt`` must carry one of them.
GRANTING_CLAIMS = frozenset({"scope", "scp", "roles"})
#: The ``typ`` claim Keycloak gives its other tokens.
OTHER_TOKEN_TYPES = frozenset({"id", "refresh", "offline", "logout"})


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

    Checks the signature with ``key`` and only the asymmetric ones of ``algorithms`` (never
    ``none``, never a MAC: an access token is never checked with the client secret), the
    ``typ`` header (``at+jwt``, or one of ``types``), ``iss``, that ``aud`` contains
    ``audience``, ``exp`` (required), ``nbf`` and ``iat`` with ``leeway``, and that it
    is no other kind of token (an ID token's ``nonce`` and hashes, a logout token's ``events``,
    Keycloak's ``typ`` claim; a token of a relaxed type must grant a scope or a role) nor one
    bound to a key (``cnf``).
    """
    asymmetric = [alg for alg in algorithms if alg in ASYMMETRIC_ALGORITHMS] or ["RS256"]
    verified = verify_signature(token, key, asymmetric, "access token")
    kind = verified.header.get("typ")
    if not isinstance(kind, str) or media_type(kind) not in types:
        raise TokenError(f"the token's typ is {kind!r}, not an access token's")
    claims = verified.claims
    _check_kind(claims)
    if media_type(kind) != "at+jwt" and not GRANTING_CLAIMS & set(claims):
        raise TokenError(f"a {kind} token that grants no scope or role may be an ID token")
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
        raise TokenError(f"the token is a {kind}, not a bearer access token")
    _check_kind(answer)
    if "iss" in answer and answer["iss"] != issuer_for(issuer, answer):
        raise TokenError("the token was issued by another issuer")
    aud = answer.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise TokenError("the token is meant for another audience")
    exp, nbf = answer.get("exp"), answer.get("nbf")
    for name, value in (("exp", exp), ("nbf", nbf)):
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise TokenError(f"the answer's {name} is not a time")
    if exp is not None and exp < now - leeway:
        raise TokenError("the token has expired")
    if nbf is not None and nbf > now + leeway:
        raise TokenError("the token is not valid yet")
    return dict(answer)


def _check_kind(claims: Mapping[str, Any]) -> None:
    """Refuse the claims of another kind of token (an ID, refresh or logout token), and of a
    sender-constrained token (DPoP, mTLS: ``cnf``), whose proof of possession is not checked
    here: such a token, stolen, must not work as a bearer token."""
    other = sorted(OTHER_TOKEN_CLAIMS & set(claims))
    if other:
        raise TokenError(f"it carries {', '.join(other)}: it is no access token")
    kind = claims.get("typ")
    if isinstance(kind, str) and kind.lower() in OTHER_TOKEN_TYPES:
        raise TokenError(f"it is a token of type {kind}, no access token")
    if "cnf" in claims:
        raise TokenError("it is bound to a key (cnf), and proof of possession is not checked")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants: ``scope`` (a space-separated string, RFC 9068 and 7662), or
    ``scp`` (a string or a list: Entra ID, Okta)."""
    granted = claims.get("scope", claims.get("scp"))
    if isinstance(granted, str):
        return frozenset(granted.split())
    if isinstance(granted, list):
        return frozenset(scope for scope in granted if isinstance(scope, str))
    return frozenset()
