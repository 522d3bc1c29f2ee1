"""Bearer tokens of API clients (RFC 6750): read from the ``Authorization`` header, checked
locally when they are JWTs and by introspection otherwise, and remembered once checked, so that
a client calling again costs a dictionary lookup."""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any

from flask import Request, g

from . import clock
from .access_tokens import check_introspection
from .errors import InvalidToken
from .provider import Provider, ProviderError
from .tokens import TokenError, unverified_claims

if TYPE_CHECKING:
    from .relying_party import RelyingParty

#: How many checked tokens a process remembers (the oldest are forgotten first).
CACHE_SIZE = 4096
#: The longest a checked token is remembered, whatever its ``exp``.
MAX_REMEMBERED_SECONDS = 86400
#: A bearer token as RFC 6750 spells it (``b64token``), of a sensible length.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9\-._~+/]{1,4096}=*")
log = logging.getLogger(__name__)


def bearer_token(request: Request) -> str | None:
    """The request's bearer token (``Authorization: Bearer ...``), or None. Only the header: a
    token in the URL ends up in logs and browser history."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def mark_bearer_request() -> None:
    """Note that this request is judged by its bearer token: its session, if the browser sent
    one too, is neither used nor saved (see :func:`is_bearer_request`)."""
    g._oidc_bearer_request = True


def is_bearer_request() -> bool:
    """Whether this request came with a bearer token to a view that takes one."""
    return bool(g.get("_oidc_bearer_request"))


class CheckedTokens:
    """Tokens already checked, with their claims, until they expire (thread-safe, bounded)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()

    def get(self, audience: str, token: str, now: float) -> dict[str, Any] | None:
        """The claims of ``token`` for ``audience`` when it was checked and is still valid."""
        entry = self._entries.get((audience, token))
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def put(self, audience: str, token: str, claims: dict[str, Any], until: float) -> None:
        """Remember ``claims`` of ``token`` for ``audience`` until ``until``."""
        with self._lock:
            self._entries.pop((audience, token), None)
            while len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            self._entries[(audience, token)] = (claims, until)


def check(party: RelyingParty, token: str, audience: str) -> dict[str, Any]:
    """The claims of a valid access token for the API ``audience``; :class:`InvalidToken`
    otherwise.

    ``OIDC_ACCESS_TOKEN_VALIDATION`` says how: ``auto`` checks a JWT locally (its ``iss``
    chooses among the app's providers) and introspects anything else at the default provider.
    """
    now = clock.now()
    claims = party.checked_tokens.get(audience, token, now)
    if claims is not None:
        return claims
    mode = party.settings.access_token_validation
    named = unverified_claims(token) if mode != "introspection" else None
    try:
        if mode == "jwt" or named is not None:
            provider = _issuer_of(party, named or {})
            claims = provider.validate_access_token(token, audience)
            until = min(claims["exp"], now + MAX_REMEMBERED_SECONDS)
        else:
            if not TOKEN_SHAPE.fullmatch(token):  # worth no call to the provider
                raise TokenError("it is not shaped as a token (RFC 6750 b64token)")
            provider = party.provider
            answer = provider.introspect(token)
            claims = check_introspection(
                answer,
                issuer=provider.issuer,
                audience=audience,
                leeway=provider.settings.clock_skew_seconds,
                now=now,
            )
            exp = claims.get("exp")
            until = now + party.settings.introspection_cache_seconds
            if isinstance(exp, int | float):
                until = min(until, float(exp))
    except TokenError as exc:
        log.warning("refused a bearer token: %s", exc)
        raise InvalidToken(f"The access token is not valid: {exc}.") from None
    party.checked_tokens.put(audience, token, claims, until)
    return claims


def _issuer_of(party: RelyingParty, claims: dict[str, Any]) -> Provider:
    """The app's provider that a JWT names as its issuer."""
    if not claims:
        raise TokenError("it is no JWT")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise TokenError("it names no issuer")
    for provider in party.providers.values():  # first without a call: the configured issuers
        if provider.settings.issuer == issuer:
            return provider
    unavailable: ProviderError | None = None
    for provider in party.providers.values():  # then the multi-tenant templates
        try:
            if provider.issuer_matches(issuer):
                return provider
        except ProviderError as exc:  # one provider down does not stop another's tokens
            unavailable = unavailable or exc
    if unavailable is not None:
        raise unavailable
    raise TokenError("the token's issuer is none of the app's providers")
