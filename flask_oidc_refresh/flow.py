"""Authorization requests: state, nonce and PKCE, and the pending logins of every open tab."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from authlib.common.security import generate_token
from flask import redirect, session, url_for
from werkzeug.wrappers import Response

from .navigation import safe_next
from .provider import Provider
from .state import get_state
from .tokens import TokenError, validate_id_token

PENDING_KEY = "_oidc_pending"


@dataclass(frozen=True)
class PendingLogin:
    """One authorization request on its way: what its callback must match, and where to go next."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next_url: str
    silent: bool
    expires: float

    @classmethod
    def new(cls, redirect_uri: str, next_url: str, silent: bool, lifetime: int) -> PendingLogin:
        """A fresh pending login with random state, nonce and PKCE verifier."""
        return cls(
            state=generate_token(32),
            nonce=generate_token(32),
            code_verifier=generate_token(64),
            redirect_uri=redirect_uri,
            next_url=next_url,
            silent=silent,
            expires=time.time() + lifetime,
        )


def start_login(next_url: str, *, silent: bool) -> Response:
    """Redirect to the provider for a new login (``silent``: with ``prompt=none``)."""
    state = get_state()
    settings = state.settings
    pending = PendingLogin.new(
        redirect_uri=settings.redirect_uri or url_for("oidc.callback", _external=True),
        next_url=safe_next(next_url, settings.login_redirect_url),
        silent=silent,
        lifetime=settings.state_lifetime,
    )
    url = authorization_url(state.provider, pending)
    remember(session, pending, settings.max_states)
    return redirect(url)


def remember(data: MutableMapping[str, Any], pending: PendingLogin, max_states: int) -> None:
    """Keep ``pending`` in the session beside the others, dropping expired and the oldest ones."""
    now = time.time()
    logins = {
        state: fields
        for state, fields in data.get(PENDING_KEY, {}).items()
        if fields.get("expires", 0) > now
    }
    logins[pending.state] = {k: v for k, v in asdict(pending).items() if k != "state"}
    while len(logins) > max_states:
        del logins[next(iter(logins))]
    data[PENDING_KEY] = logins


def take(data: MutableMapping[str, Any], state: str) -> PendingLogin | None:
    """Remove and return the pending login of ``state``; None when unknown, used or expired."""
    logins = data.get(PENDING_KEY)
    if not state or not logins or state not in logins:
        return None
    logins = dict(logins)
    fields = logins.pop(state)
    if logins:
        data[PENDING_KEY] = logins
    else:
        del data[PENDING_KEY]
    try:
        pending = PendingLogin(state=state, **fields)
    except TypeError:
        return None
    return pending if pending.expires > time.time() else None


def authorization_url(provider: Provider, pending: PendingLogin) -> str:
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


def finish(
    provider: Provider, pending: PendingLogin, code: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exchange ``code`` for tokens and check them; returns the token response and the claims.

    The claims are the ID token's, completed by userinfo when configured; userinfo must be
    about the same ``sub``.
    """
    settings = provider.settings
    token = provider.token_request(
        grant_type="authorization_code",
        code=code,
        redirect_uri=pending.redirect_uri,
        code_verifier=pending.code_verifier,
    )
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenError("the token response has no ID token")
    claims = validate_id_token(
        id_token,
        key=provider.signing_key,
        algorithms=provider.id_token_algorithms,
        issuer=provider.settings.issuer,
        client_id=settings.client_id,
        nonce=pending.nonce,
        access_token=token["access_token"],
        leeway=settings.clock_skew,
    )
    userinfo_endpoint = provider.endpoint("userinfo_endpoint")
    if settings.fetch_userinfo and userinfo_endpoint:
        userinfo = provider.get_json(
            userinfo_endpoint, headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        if userinfo.get("sub") != claims["sub"]:
            raise TokenError("userinfo is about another user than the ID token")
        claims = {**userinfo, **claims}
    return token, claims
