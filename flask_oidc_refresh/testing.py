"""Sign a user in on Flask's test client, without a provider.

Use ``app.test_client_class = OIDCTestClient`` and ``app.test_client(user={"sub": "alice"})``,
or :func:`login_test_user` on any test client.
"""

from __future__ import annotations

import time
from typing import Any

from flask.testing import FlaskClient

from .sessions import TOUCHED_KEY
from .state import get_state
from .store import Tokens, new_record_key, remember_login


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
    app = client.application
    settings = get_state(app).settings
    now = time.time()
    tokens = Tokens(
        claims={"iss": settings.issuer, "aud": settings.client_id, **claims},
        id_token="test-id-token",
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=None,
        renew_at=now + settings.renew_after if renew_at is None else renew_at,
    )
    record = new_record_key()
    with app.app_context():
        ttl = int(app.permanent_session_lifetime.total_seconds())
        get_state(app).token_store.put(record, tokens, ttl)
    with client.session_transaction() as session:
        remember_login(session, record, tokens)
        session[TOUCHED_KEY] = now  # as a real sign-in leaves it


class OIDCTestClient(FlaskClient):
    """A test client that accepts ``user=claims`` to start signed in."""

    def __init__(self, *args: Any, user: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            login_test_user(self, user)
