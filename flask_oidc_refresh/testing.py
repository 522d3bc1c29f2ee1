"""Test helpers: sign a user in on Flask's test client without a provider, and move a signed-in
session past its renewal deadline.

Use ``app.test_client_class = OIDCTestClient`` and ``app.test_client(user={"sub": "alice"})``,
or :func:`login_test_user` on any test client; then :func:`pass_renewal_deadline` to see what
the app does when the session is due for renewal.
"""

from __future__ import annotations

from typing import Any

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


class OIDCTestClient(FlaskClient):
    """A test client that accepts ``user=claims`` to start signed in."""

    def __init__(self, *args: Any, user: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            login_test_user(self, user)
