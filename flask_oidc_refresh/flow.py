"""Authorization requests: ``state``, ``nonce`` and PKCE, the pending authorizations of every
open tab, and the code exchange that completes one."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from authlib.common.security import generate_token
from flask import redirect, session, url_for
from werkzeug.wrappers import Response

from . import clock
from .navigation import safe_next
from .provider import Provider
from .relying_party import RelyingParty
from .tokens import TokenError

PENDING_KEY = "_oidc_pending"


@dataclass(frozen=True)
class PendingAuthorization:
    """One authorization request on its way: what its callback must match, where to go next."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next_url: str
    silent: bool
    expires: float

    @classmethod
    def new(
        cls, redirect_uri: str, next_url: str, silent: bool, lifetime: int
    ) -> PendingAuthorization:
        """A fresh one with random ``state``, ``nonce`` and PKCE verifier."""
        return cls(
            state=generate_token(32),
            nonce=generate_token(32),
            code_verifier=generate_token(64),
            redirect_uri=redirect_uri,
            next_url=next_url,
            silent=silent,
            expires=clock.now() + lifetime,
        )


def start(party: RelyingParty, next_url: str, *, silent: bool) -> Response:
    """Redirect to the provider for a new authorization (``silent``: with ``prompt=none``)."""
    settings = party.settings
    pending = PendingAuthorization.new(
        redirect_uri=settings.redirect_uri or url_for("oidc.callback", _external=True),
        next_url=safe_next(next_url, settings.login_redirect_url),
        silent=silent,
        lifetime=settings.state_lifetime_seconds,
    )
    url = authorization_url(party.provider, pending)
    _keep(session, pending, settings.max_states)
    return redirect(url)


def _keep(data: MutableMapping[str, Any], pending: PendingAuthorization, max_states: int) -> None:
    """Keep ``pending`` in the session beside the others, dropping expired and the oldest ones."""
    now = clock.now()
    waiting = {
        state: fields
        for state, fields in data.get(PENDING_KEY, {}).items()
        if fields.get("expires", 0) > now
    }
    waiting[pending.state] = {k: v for k, v in asdict(pending).items() if k != "state"}
    while len(waiting) > max_states:
        del waiting[next(iter(waiting))]
    data[PENDING_KEY] = waiting


def take(data: MutableMapping[str, Any], state: str) -> PendingAuthorization | None:
    """Remove and return the pending authorization of ``state``; None when unknown, used or
    expired."""
    waiting = data.get(PENDING_KEY)
    if not state or not waiting or state not in waiting:
        return None
    waiting = dict(waiting)
    fields = waiting.pop(state)
    if waiting:
        data[PENDING_KEY] = waiting
    else:
        del data[PENDING_KEY]
    try:
        pending = PendingAuthorization(state=state, **fields)
    except TypeError:
        return None
    return pending if pending.expires > clock.now() else None


def authorization_url(provider: Provider, pending: PendingAuthorization) -> str:
    """The provider URL that starts ``pending``: code flow, PKCE S256, state and nonce."""
    extra = {"prompt": "none"} if pending.silent else {}
    with provider.client() as client:
        url, _ = client.create_authorization_url(
            provider.metadata["authorization_endpoint"],
            state=pending.state,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            redirect_uri=pending.redirect_uri,
            **extra,
        )
    return str(url)


def exchange(
    provider: Provider, pending: PendingAuthorization, code: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exchange ``code`` for tokens and check them; returns the token response and the claims.

    The claims are the ID token's, completed by userinfo when configured; userinfo must be
    about the same ``sub``.
    """
    token = provider.token_request(
        grant_type="authorization_code",
        code=code,
        redirect_uri=pending.redirect_uri,
        code_verifier=pending.code_verifier,
    )
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenError("the token response has no ID token")
    claims = provider.validate_id_token(
        id_token, nonce=pending.nonce, access_token=token["access_token"]
    )
    userinfo_endpoint = provider.endpoint("userinfo_endpoint")
    if provider.settings.fetch_userinfo and userinfo_endpoint:
        userinfo = provider.get_json(
            userinfo_endpoint, headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        if userinfo.get("sub") != claims["sub"]:
            raise TokenError("userinfo is about another user than the ID token")
        claims = {**userinfo, **claims}
    return token, claims
