"""Renewal on the server with the refresh token: one spend per deadline, whatever the number of
concurrent requests of the session (threads, worker processes, hosts)."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from enum import Enum
from typing import Any

from . import clock, signals, signin
from .authorization import check_renewed
from .errors import RenewalUnavailable
from .provider import CREDENTIALS_HINT, ProviderError, TokenEndpointError
from .records import Tokens
from .relying_party import RelyingParty
from .signin import SignIn
from .store import LockTimeout
from .tokens import TokenError, WrongIdentity, check_renewed_id_token

#: How long before its expiry an access token read through ``oidc.access_token`` is renewed.
ACCESS_TOKEN_MARGIN_SECONDS = 30
log = logging.getLogger(__name__)


class Outcome(Enum):
    """What a server-side renewal attempt came to."""

    FRESH = "fresh"  # renewed now or by another request: carry on
    STALE_BUT_VALID = "stale"  # could not renew, the access token still works: carry on
    BROWSER = "browser"  # no usable refresh token: the browser must renew
    ENDED = "ended"  # the provider refused it, or its tokens are gone: the session was cleared


def refresh(
    party: RelyingParty,
    session: MutableMapping[str, Any],
    sign_in: SignIn,
    *,
    need_access_token: bool = False,
) -> Outcome:
    """Renew the sign-in with its refresh token, once for all concurrent requests.

    The record is read first: another request (thread, process or host) may have renewed
    already. Otherwise the record's lock is taken and the record read again, so that exactly
    one request spends the refresh token; the others wait for it and use its result.
    ``need_access_token`` renews when the access token is about to expire, deadline or not.
    When the provider refuses the refresh token (``invalid_grant``) or renews into another
    identity, the sign-in ends here too, at once.
    """
    return _Attempt(party, session, sign_in, need_access_token).run()


class _Attempt:
    """One request's attempt to renew its session's sign-in."""

    def __init__(
        self,
        party: RelyingParty,
        session: MutableMapping[str, Any],
        sign_in: SignIn,
        need_access_token: bool,
    ) -> None:
        self.party = party
        self.store = party.token_store
        self.session = session
        self.sign_in = sign_in
        self.need_access_token = need_access_token

    def run(self) -> Outcome:
        tokens = signin.load_tokens(self.store, self.sign_in)
        if tokens is None:
            return self._gone()
        now = clock.now()
        if not self._due(tokens, now):
            signin.adopt(self.session, self.sign_in, tokens)
            return Outcome.FRESH
        if tokens.refresh_token is None:
            return Outcome.BROWSER
        if tokens.retry_at > now:
            return _stale(tokens, now)
        try:
            with self.store.lock(self.sign_in.record):
                tokens = signin.load_tokens(self.store, self.sign_in)
                if tokens is None:
                    return self._gone()
                if not self._due(tokens, clock.now()):
                    signin.adopt(self.session, self.sign_in, tokens)
                    return Outcome.FRESH
                return self._spend(tokens)
        except LockTimeout:
            log.warning("another request held the renewal lock too long")
            tokens = signin.load_tokens(self.store, self.sign_in)
            if tokens is None:
                return self._gone()
            return _stale(tokens, clock.now())

    def _due(self, tokens: Tokens, now: float) -> bool:
        if self.need_access_token:
            return not tokens.access_token_valid(now + ACCESS_TOKEN_MARGIN_SECONDS)
        return tokens.renew_at <= now

    def _spend(self, tokens: Tokens) -> Outcome:
        """Spend the refresh token; called under the record's lock."""
        provider = self.party.provider_named(tokens.provider)
        if provider is None:  # no longer configured: the sign-in cannot be renewed
            return self._gone()
        started = clock.monotonic()
        try:
            response = provider.token_request(
                grant_type="refresh_token", refresh_token=tokens.refresh_token
            )
        except TokenEndpointError as exc:
            if exc.refuses_credentials:
                log.error(
                    "the provider refused this app's credentials (%s): %s", exc, CREDENTIALS_HINT
                )
            # (with records inside each session, two processes may have spent the same token)
            if exc.error == "invalid_grant" and self.store.backend.shared:
                return self._end(tokens, str(exc))
            return self._fall_back_to_browser(tokens, str(exc))
        except ProviderError as exc:
            return self._postpone(tokens, exc)
        # The refresh token is spent now: a rotated one must be kept whatever happens next.
        rotated = response.get("refresh_token")
        if isinstance(rotated, str):
            tokens = tokens.replace(refresh_token=rotated)
        claims = {}
        try:
            if isinstance(response.get("id_token"), str):
                claims = provider.validate_id_token(
                    response["id_token"], nonce=None, access_token=response["access_token"]
                )
                check_renewed_id_token(tokens.claims, claims, refreshed=True)
        except WrongIdentity as exc:
            return self._end(tokens, str(exc))
        except TokenError as exc:
            return self._fall_back_to_browser(tokens, str(exc))
        except ProviderError as exc:
            return self._postpone(tokens, exc)
        expiry = self.party.settings.renew_id_token_expiry_seconds
        try:
            userinfo = provider.userinfo(response["access_token"], tokens.claims["sub"])
        except TokenError as exc:
            return self._end(tokens, str(exc))
        except ProviderError as exc:
            log.warning("userinfo not fetched again after a renewal, claims kept: %s", exc)
            userinfo = None
        renewed = tokens.renewed(response, claims, expiry, userinfo)
        try:
            check_renewed(self.party, renewed.claims)
        except Exception:
            self._end(tokens, "the app refused the renewed claims")
            provider.revoke_tokens(renewed.access_token, renewed.refresh_token)
            raise
        signin.save_tokens(self.session, self.store, self.sign_in, renewed)
        log.info(
            "session renewed with the refresh token in %.0f ms",
            (clock.monotonic() - started) * 1000,
        )
        signals.send(signals.session_renewed, claims=renewed.claims, method="refresh_token")
        return Outcome.FRESH

    def _gone(self) -> Outcome:
        """The record is gone (ended elsewhere, or expired): end the session's copy too."""
        log.info("the session's tokens are gone; signed out")
        signin.end(self.session, self.store)
        return Outcome.ENDED

    def _end(self, tokens: Tokens, reason: str) -> Outcome:
        """The provider has ended the sign-in: end it here, for every request."""
        log.warning("the provider ended the sign-in (%s); signed out", reason)
        signin.end(self.session, self.store)
        signals.send(
            signals.session_renewal_failed, claims=tokens.claims, reason=reason, ended=True
        )
        return Outcome.ENDED

    def _fall_back_to_browser(self, tokens: Tokens, reason: str) -> Outcome:
        """The refresh token was refused or gave a bad ID token: drop it, the browser renews."""
        log.warning("renewal with the refresh token refused (%s); the browser will renew", reason)
        self._failed(tokens, tokens.replace(refresh_token=None), reason)
        return Outcome.BROWSER

    def _postpone(self, tokens: Tokens, exc: ProviderError) -> Outcome:
        """The provider is unavailable: try again later, serve meanwhile while the token is
        valid."""
        log.warning("renewal postponed, the provider is unavailable: %s", exc)
        retry_at = clock.now() + self.party.settings.refresh_retry_seconds
        self._failed(tokens, tokens.replace(retry_at=retry_at), str(exc))
        return _stale(tokens, clock.now())

    def _failed(self, tokens: Tokens, kept: Tokens, reason: str) -> None:
        """Keep ``kept`` instead of ``tokens``; the sign-in goes on."""
        signin.save_tokens(self.session, self.store, self.sign_in, kept)
        signals.send(
            signals.session_renewal_failed, claims=tokens.claims, reason=reason, ended=False
        )


def _stale(tokens: Tokens, now: float) -> Outcome:
    if tokens.access_token_valid(now):
        return Outcome.STALE_BUT_VALID
    raise RenewalUnavailable("The session could not be renewed just now. Please try again.")
