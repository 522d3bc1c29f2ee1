"""The signed-in user's record in the server-side session: claims, tokens and renewal deadline."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

LOGIN_KEY = "_oidc_login"


@dataclass(frozen=True)
class Login:
    """Who is signed in, with which tokens, and when they must be renewed."""

    claims: dict[str, Any]
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_at: float | None
    renew_at: float
    silent_attempt_for: float | None = None

    @classmethod
    def from_tokens(
        cls, token: Mapping[str, Any], claims: dict[str, Any], renew_after: int
    ) -> Login:
        """A record for a token response whose ID token gave ``claims``."""
        expires_in = token.get("expires_in")
        now = time.time()
        return cls(
            claims=claims,
            id_token=str(token["id_token"]),
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token"),
            expires_at=now + float(expires_in) if isinstance(expires_in, int | float) else None,
            renew_at=now + renew_after,
        )

    def replace(self, **changes: Any) -> Login:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def load_login(session: Mapping[str, Any]) -> Login | None:
    """The signed-in user's record, or None."""
    data = session.get(LOGIN_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return Login(**data)
    except TypeError:
        return None


def save_login(session: MutableMapping[str, Any], login: Login) -> None:
    """Store ``login`` as the session's signed-in user."""
    session[LOGIN_KEY] = asdict(login)


def clear_login(session: MutableMapping[str, Any]) -> None:
    """End the session's sign-in, keeping the rest of the session."""
    session.pop(LOGIN_KEY, None)
