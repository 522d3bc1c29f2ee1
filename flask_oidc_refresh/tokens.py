"""ID token and logout token validation (OpenID Connect Core 3.1.3.7 and 12.2, Back-Channel
Logout 1.0): pure protocol, no Flask globals."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection, Mapping
from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeyFlexible
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


#: The placeholder of a multi-tenant issuer template.
TENANT = "{tenantid}"
log = logging.getLogger(__name__)


class TokenError(Exception):
    """A token failed a check; the message says which, without the token itself."""


class WrongIdentity(TokenError):
    """An ID token names another issuer than ours, or a renewed one another subject: it is not
    this sign-in's."""


def validate_id_token(
    id_token: str,
    *,
    key: KeyFlexible,
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    nonce: str | None,
    access_token: str | None = None,
    leeway: int = 60,
    now: float | None = None,
) -> dict[str, Any]:
    """Check an ID token's signature and claims and return its claims.

    Checks the signature with ``key`` and only ``algorithms`` (never ``none``), ``iss``,
    that ``aud`` contains ``client_id``, ``azp`` when present or needed, ``exp`` and ``iat``
    with ``leeway``, ``nonce`` when one was sent, and ``at_hash`` when present.
    """
    token = verify_signature(id_token, key, algorithms, "ID token")
    issuer = issuer_for(issuer, token.claims)
    if token.claims.get("iss") != issuer:
        raise WrongIdentity("ID token names another issuer")
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
        },
        params={"client_id": client_id, "nonce": nonce, "access_token": access_token},
    )
    try:
        claims.validate(now=int(now if now is not None else time.time()), leeway=leeway)
    except (JoseError, ValueError) as exc:
        raise TokenError(f"ID token claim rejected: {exc}{_clock_hint(exc)}") from exc
    _check_audience(claims, client_id)
    return dict(claims)


def _clock_hint(exc: Exception) -> str:
    """What to check when a token's times are refused: most often a server clock that is off."""
    text = str(exc).lower()
    if any(word in text for word in ("expired", "future", "not yet valid", "iat", "nbf")):
        return (
            "; is this server's clock right? Compare it with the provider's (the allowed "
            "difference is OIDC_CLOCK_SKEW_SECONDS)"
        )
    return ""


def issuer_for(issuer: str, claims: Mapping[str, Any]) -> str:
    """The issuer a token must name: ``issuer``, or, for a multi-tenant issuer template (Entra
    ID's ``https://login.microsoftonline.com/{tenantid}/v2.0``), the template with the token's
    own ``tid`` claim, so that a token names the tenant it says it is from."""
    if TENANT not in issuer:
        return issuer
    tenant = claims.get("tid")
    if not isinstance(tenant, str) or not re.fullmatch(r"[A-Za-z0-9-]+", tenant):
        return issuer  # no tenant to fill in: no token names this issuer
    return issuer.replace(TENANT, tenant)


def validate_logout_token(
    logout_token: str,
    *,
    key: KeyFlexible,
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    leeway: int = 60,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a back-channel logout token (Back-Channel Logout 1.0, 2.6) and return its claims.

    Checks the signature as for ID tokens, ``iss``, ``aud``, ``iat``, ``exp`` and ``jti``, the
    ``events`` member naming a back-channel logout, ``sub`` or ``sid``, and that there is no
    ``nonce`` (so that an ID token cannot pass as a logout token). Other claims are ignored.
    """
    token = verify_signature(logout_token, key, algorithms, "logout token")
    claims = token.claims
    issuer = issuer_for(issuer, claims)
    registry = JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError) as exc:
        raise TokenError(f"logout token claim rejected: {exc}") from exc
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise TokenError("logout token has no back-channel logout event")
    if "nonce" in claims:
        raise TokenError("logout token carries a nonce")
    if not any(isinstance(claims.get(claim), str) and claims[claim] for claim in ("sub", "sid")):
        raise TokenError("logout token names neither sub nor sid")
    return dict(claims)


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims a JWT carries, unverified: only to choose which provider checks it, or to
    read a token that was checked when it came."""
    try:
        claims = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def verify_signature(value: str, key: KeyFlexible, algorithms: Collection[str], kind: str) -> Any:
    """The JWT ``value`` decoded, its signature checked with ``key`` and ``algorithms`` only."""
    if "none" in algorithms:
        raise TokenError("the 'none' algorithm is never accepted")
    try:
        return jwt.decode(
            value,
            key,
            algorithms=list(algorithms),
            registry=JWSRegistry(algorithms=list(algorithms), strict_check_header=False),
        )
    except (JoseError, ValueError, TypeError, KeyError) as exc:  # malformed headers raise those
        raise TokenError(f"{kind} rejected: {exc.__class__.__name__}") from exc


def _check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    """``aud`` must contain the client id whatever ``azp`` says (Authlib lets ``azp`` decide)."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise TokenError("ID token is meant for another audience")
    if not isinstance(claims.get("iat"), int | float):
        raise TokenError("ID token has no valid iat")


def check_renewed_id_token(
    previous: Mapping[str, Any], renewed: Mapping[str, Any], *, refreshed: bool = False
) -> None:
    """A renewed ID token must be about the same user, from the same issuer, for the same client
    (Core 12.2): a change of ``iss``, ``sub`` or ``aud`` is :class:`WrongIdentity`, of ``azp`` a
    :class:`TokenError`. One from a refresh should keep the time of the original authentication,
    but providers that put the user's latest sign-in there (django-oauth-toolkit) are common: a
    changed ``auth_time`` is logged, not refused."""
    for claim in ("iss", "sub"):
        if previous.get(claim) != renewed.get(claim):
            raise WrongIdentity(f"renewed ID token changed {claim}")
    if _audiences(previous) != _audiences(renewed):
        raise WrongIdentity("renewed ID token changed aud")
    if "azp" in renewed and previous.get("azp") != renewed.get("azp"):
        raise TokenError("renewed ID token changed azp")
    if refreshed and "auth_time" in renewed and previous.get("auth_time") != renewed["auth_time"]:
        log.warning(
            "a refreshed ID token changed auth_time (%s to %s): accepted, the user signed in "
            "again at the provider",
            previous.get("auth_time"),
            renewed["auth_time"],
        )


def _audiences(claims: Mapping[str, Any]) -> set[str]:
    audience = claims.get("aud")
    return set(audience) if isinstance(audience, list) else {str(audience)}
