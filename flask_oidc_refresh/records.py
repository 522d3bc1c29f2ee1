"""A sign-in's token record: what the server keeps of it, and when it must be renewed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from . import clock

T = TypeVar("T")


#: Claims about how the user authenticated: only ever taken from the ID token of a sign-in.
AUTHENTICATION_CLAIMS = frozenset({"acr", "amr", "auth_time"})
#: Claims only ID tokens make: who the user is, for whom, when, and of which provider session.
ID_TOKEN_CLAIMS = frozenset({
    "iss", "sub", "aud", "azp", "sid", "tid", "exp", "iat", "nbf", "jti", "nonce", "at_hash",
    "c_hash", "s_hash", *AUTHENTICATION_CLAIMS,
})  # fmt: skip


@dataclass(frozen=True)
class Tokens:
    """A signed-in user's tokens and claims, and when they must be renewed."""

    claims: dict[str, Any]
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_at: float | None
    renew_at: float
    retry_at: float = 0.0
    #: The provider that signed the user in, by name (``""``: the default one).
    provider: str = ""

    @classmethod
    def from_response(
        cls,
        token: Mapping[str, Any],
        claims: dict[str, Any],
        renew_id_token_expiry_seconds: int,
        use_refresh_tokens: bool | None,
        provider: str = "",
    ) -> Tokens:
        """A record for a token response of ``provider`` whose ID token gave ``claims``."""
        now = clock.now()
        expires_in = token.get("expires_in")
        expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else None
        refresh_token = token.get("refresh_token") if use_refresh_tokens is not False else None
        return cls(
            claims=claims,
            id_token=str(token["id_token"]),
            access_token=str(token["access_token"]),
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            expires_at=expires_at,
            renew_at=renewal_deadline(
                now, renew_id_token_expiry_seconds, expires_at, bool(refresh_token)
            ),
            provider=provider,
        )

    def as_dict(self) -> dict[str, Any]:
        """The record's stored form."""
        return dataclasses.asdict(self)

    def renewed(
        self,
        token: Mapping[str, Any],
        claims: dict[str, Any],
        renew_id_token_expiry_seconds: int,
        userinfo: dict[str, Any] | None = None,
    ) -> Tokens:
        """This record after a refresh that gave ``claims`` (those of a new ID token, or
        none) and ``userinfo`` (fetched again, or None): a rotated refresh token replaces the
        old one. Fresh userinfo decides every claim but those only ID tokens make (who, for
        whom, when), so that a claim the provider no longer asserts (a group) goes. How the
        user authenticated (``acr``, ``amr``, ``auth_time``) stays that of the sign-in: a
        refresh is no authentication."""
        kept = {k: v for k, v in self.claims.items() if k in AUTHENTICATION_CLAIMS}
        if userinfo is None:
            merged = {**self.claims, **claims, **kept}
        else:
            protocol = {k: v for k, v in self.claims.items() if k in ID_TOKEN_CLAIMS}
            merged = {**userinfo, **protocol, **claims, **kept}
        return Tokens.from_response(
            {"id_token": self.id_token, "refresh_token": self.refresh_token, **token},
            merged,
            renew_id_token_expiry_seconds,
            use_refresh_tokens=True,
            provider=self.provider,
        )

    def replace(self, **changes: Any) -> Tokens:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def access_token_valid(self, now: float) -> bool:
        """Whether the access token has not expired (unknown expiry counts as valid)."""
        return self.expires_at is None or self.expires_at > now


def from_stored(cls: type[T], data: Any) -> T | None:
    """A ``cls`` from its stored form (a dict); None when the data is not one (gone, or written
    by another version)."""
    if not isinstance(data, dict):
        return None
    try:
        return cls(**data)
    except TypeError:
        return None


def renewal_deadline(
    now: float, renew_id_token_expiry_seconds: int, expires_at: float | None, refreshable: bool
) -> float:
    """``OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS`` from now; with a refresh token, never later than
    the access token's expiry less a small margin (a quarter of its lifetime, at most 30 s)."""
    deadline = now + renew_id_token_expiry_seconds
    if refreshable and expires_at is not None:
        margin = min(30.0, max(expires_at - now, 0.0) / 4)
        deadline = min(deadline, expires_at - margin)
    return deadline
