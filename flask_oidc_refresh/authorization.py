"""Who may use a view, and who may sign in: a signed-in user (with a step-up and claims), a
bearer token (with scopes and claims), and the app's sign-in gate, which renewed claims pass
again."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from . import bearer, clock, flow, signin
from .access_tokens import scopes_of
from .config import ConfigError
from .errors import AccessDenied, InsufficientScope, InvalidToken, LoginRequired
from .navigation import is_script_request
from .relying_party import RelyingParty, relying_party

#: What a view requires of the claims: ``{"groups": "admins"}`` (a value, or any of a list of
#: values, per claim), or a predicate on the claims.
ClaimsRequirement = Mapping[str, Any] | Callable[[dict[str, Any]], bool]
#: Where a checked bearer token's claims are kept for the request.
TOKEN_CLAIMS = "_oidc_token_claims"
log = logging.getLogger(__name__)


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``; when there is none of that name, a dotted path into nested claims
    (``realm_access.roles``, Keycloak's roles)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def satisfies(claims: dict[str, Any], requirement: ClaimsRequirement | None) -> bool:
    """Whether ``claims`` meet ``requirement``: the predicate says yes, or each named claim
    has (or, for a list claim, contains) the value, or one of the values, asked for."""
    if requirement is None:
        return True
    if callable(requirement):
        return bool(requirement(claims))
    for name, wanted in requirement.items():
        acceptable = (
            list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        )
        value = claim(claims, name)
        values = value if isinstance(value, list) else [value]
        if not any(v in acceptable for v in values if v is not None):
            return False
    return True


def may_sign_in(party: RelyingParty, claims: dict[str, Any]) -> bool:
    """The app's sign-in gate: a group of ``OIDC_ALLOWED_GROUPS`` (when set) in the claim
    ``OIDC_GROUPS_CLAIM``, and every ``@oidc.allow_sign_in`` check."""
    settings = party.settings
    if settings.allowed_groups and not satisfies(
        claims, {settings.groups_claim: settings.allowed_groups}
    ):
        log.warning("sign-in refused: the user is in none of OIDC_ALLOWED_GROUPS")
        return False
    if not all(check(claims) for check in party.sign_in_checks):
        log.warning("sign-in refused by the app's allow_sign_in check")
        return False
    return True


def refuse_sign_in() -> AccessDenied:
    """The answer to a user whom the sign-in gate keeps out."""
    return AccessDenied(
        "Your account is not allowed to use this application. Ask its administrators for access."
    )


def check_renewed(party: RelyingParty, claims: dict[str, Any]) -> None:
    """Renewed claims pass the sign-in gate again, then go to the ``@oidc.on_renew``
    handlers; a refusal raises :class:`AccessDenied`, a handler may raise anything. Either
    way the caller ends the sign-in."""
    if not may_sign_in(party, claims):
        raise refuse_sign_in()
    for handler in party.renew_handlers:
        handler(claims)


@dataclass(frozen=True)
class SignInRequirement:
    """What ``login_required`` asks of a session: a step-up (acceptable ``acr`` values, space
    separated; the longest time since the user authenticated, -1: any) and claims."""

    acr_values: str = ""
    max_age: int = -1
    claims: ClaimsRequirement | None = None

    @property
    def step_up(self) -> bool:
        return bool(self.acr_values) or self.max_age >= 0


def require_sign_in(requirement: SignInRequirement) -> Response | None:
    """None when the session's user meets ``requirement``; otherwise a page load goes to
    sign-in (a step-up signs in again), a script gets ``401``, and a user whose claims do not
    qualify gets ``403``. A signed-in user with no step-up asked costs a dictionary lookup."""
    claims = signin.claims(session)
    if claims is not None and (not requirement.step_up or _meets_step_up(claims, requirement)):
        if requirement.claims is not None and not satisfies(claims, requirement.claims):
            log.info("refused %s: the user's claims do not qualify", request.path)
            raise AccessDenied("Your account does not have access to this page.")
        return None
    party = relying_party()
    here = request.full_path.rstrip("?")
    if is_script_request(request):
        if claims is None:
            raise LoginRequired("Sign-in required.")
        step_up = flow.sign_step_up(requirement.acr_values, requirement.max_age)
        raise LoginRequired(
            "A stronger sign-in is required.",
            error="step_up_required",
            login_url=url_for("oidc.login", step_up=step_up),
        )
    if claims is None and not requirement.step_up:
        return redirect(url_for("oidc.login", next=here))
    return flow.start(
        party,
        here,
        silent=False,
        acr_values=requirement.acr_values,
        max_age=requirement.max_age,
    )


def _meets_step_up(claims: dict[str, Any], requirement: SignInRequirement) -> bool:
    leeway = relying_party().settings.clock_skew_seconds
    return flow.meets(claims, requirement.acr_values, requirement.max_age, clock.now(), leeway)


@dataclass(frozen=True)
class TokenRequirement:
    """What ``accept_token`` asks of a request: a bearer token for ``audience`` (default
    ``OIDC_API_AUDIENCE``) granting ``scopes``, whose claims meet ``claims``; or, with
    ``allow_session``, a signed-in user whose claims do."""

    scopes: frozenset[str] = frozenset()
    audience: str | None = None
    claims: ClaimsRequirement | None = None
    allow_session: bool = False


def require_token(party: RelyingParty, requirement: TokenRequirement) -> Response | None:
    """None when the request's bearer token meets ``requirement`` (its claims are then
    ``oidc.token_claims``), or, where allowed, its signed-in user does; otherwise the
    refusal (RFC 6750 for tokens)."""
    token = bearer.bearer_token(request)
    if token is None and requirement.allow_session:
        if signin.is_signed_in(session) or not is_script_request(request):
            return require_sign_in(SignInRequirement(claims=requirement.claims))
        raise LoginRequired("Sign-in or a bearer token is required.", bearer=True)
    if token is None:
        raise InvalidToken("A bearer token is required.")
    bearer.mark_bearer_request()
    audience = requirement.audience or party.settings.api_audience
    if not audience:
        raise ConfigError(
            "accept_token needs the audience its tokens must name: set OIDC_API_AUDIENCE, "
            "or pass audience=."
        )
    token_claims = bearer.check(party, token, audience)
    missing = requirement.scopes - scopes_of(token_claims)
    if missing:
        log.info("refused a bearer token without the scope %s", " ".join(sorted(missing)))
        raise InsufficientScope(
            "The access token lacks a required scope.",
            scope=" ".join(sorted(requirement.scopes)),
        )
    if not satisfies(token_claims, requirement.claims):
        log.info("refused a bearer token whose claims do not qualify for %s", request.path)
        raise AccessDenied("The access token's subject does not have access to this resource.")
    setattr(g, TOKEN_CLAIMS, copy.deepcopy(token_claims))  # the view's own, to change at will
    return None


def token_claims() -> dict[str, Any] | None:
    """The claims of the bearer token this request was let in with, or None."""
    claims: dict[str, Any] | None = g.get(TOKEN_CLAIMS)
    return claims
