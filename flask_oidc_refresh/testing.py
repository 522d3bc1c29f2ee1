"""Test helpers: sign a user in on Flask's test client without a provider, move a signed-in
session past its renewal deadline, and make bearer tokens that ``accept_token`` views take.

Use ``app.test_client_class = OIDCTestClient`` and ``app.test_client(user={"sub": "alice"})``,
or :func:`login_test_user` on any test client; then :func:`pass_renewal_deadline` to see what
the app does when the session is due for renewal.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from . import clock, signin
from .records import Tokens
from .relying_party import relying_party
from .sessions import TOUCHED_KEY


def login_test_user(
    client: FlaskClient,
    claims: dict[str, Any],
    *,
    access_token: str = "test-access-token",
    refresh_token: str | None = None,
    renew_at: float | None = None,
) -> None:
    """Make ``client``'s session signed in as the user with ``claims`` (``sub`` is required)."""
    if "sub" not in claims:
        raise ValueError("claims need a 'sub'")
    party = relying_party(client.application)
    settings = party.settings
    now = clock.now()
    tokens = Tokens(
        claims={"iss": settings.issuer, "aud": settings.client_id, **claims},
        id_token="test-id-token",
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=None,
        renew_at=now + settings.renew_id_token_expiry_seconds if renew_at is None else renew_at,
    )
    with client.application.app_context(), client.session_transaction() as session:
        signin.begin(session, relying_party().token_store, tokens)
        session[TOUCHED_KEY] = now  # as a real sign-in leaves it


def pass_renewal_deadline(client: FlaskClient) -> None:
    """Move the renewal deadline of ``client``'s signed-in session into the past, so that its
    next request renews (``oidc.renewal_deadline`` then reads a time gone by)."""
    with client.application.app_context(), client.session_transaction() as session:
        store = relying_party().token_store
        sign_in = signin.current(session)
        tokens = signin.load_tokens(store, sign_in) if sign_in else None
        if sign_in is None or tokens is None:
            raise ValueError("the client's session is not signed in")
        signin.save_tokens(session, store, sign_in, tokens.replace(renew_at=clock.now() - 1))


def issue_test_token(
    app: Flask, claims: dict[str, Any], *, audience: str | None = None, expires_in: int = 3600
) -> str:
    """A bearer token that ``app``'s ``accept_token`` views take, without a provider, as a
    valid token for ``audience`` (default ``OIDC_API_AUDIENCE``) with ``claims`` (``scope``
    grants scopes), for ``expires_in`` seconds. Only this process knows it."""
    party = relying_party(app)
    audience = audience or party.settings.api_audience
    if not audience:
        raise ValueError("give the audience, or set OIDC_API_AUDIENCE")
    expires_at = clock.now() + expires_in
    token = secrets.token_urlsafe(32)
    token_claims = {"iss": party.settings.issuer, "aud": audience, "exp": int(expires_at), **claims}
    party.checked_tokens.put(audience, token, token_claims, expires_at)
    return token


class OIDCTestClient(FlaskClient):
    """A test client that accepts ``user=claims`` to start signed in."""

    def __init__(self, *args: Any, user: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            login_test_user(self, user)
