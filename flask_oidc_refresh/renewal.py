"""The per-request hook: is the session due for renewal, and how to renew it for this request.

With fresh tokens the hook costs one dictionary lookup and one comparison: no I/O, no JWT
parsing, no session write. Past the deadline it renews server-side with the refresh token when
there is one; otherwise (or when the provider refuses it) the browser makes a ``prompt=none``
round trip, or a script is told where to send the browser.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from enum import Enum
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request, session, url_for
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.wrappers import Response

from . import signals
from .errors import OIDCError
from .flow import start_login
from .login import load_tokens, save_tokens, sign_out
from .navigation import is_script_request, safe_next
from .provider import ProviderError, TokenEndpointError
from .state import OIDCState, get_state
from .store import LOGIN_KEY, LockTimeout, SessionLogin, Tokens, current_login, remember_login
from .tokens import TokenError, check_renewed_id_token, validate_id_token

SAFE_METHODS = frozenset({"GET", "HEAD"})
log = logging.getLogger("flask_oidc_refresh")


class RenewalUnavailable(OIDCError, ServiceUnavailable):
    """The session is due and could not be renewed now; nothing was lost, try again (503)."""

    code = 503
    error = "renewal_unavailable"


class Outcome(Enum):
    """What a server-side renewal attempt came to."""

    FRESH = "fresh"  # renewed now or by another request: carry on
    STALE_BUT_VALID = "stale"  # could not renew, the access token still works: carry on
    BROWSER = "browser"  # no usable refresh token: the browser must renew
    GONE = "gone"  # the record is gone: the sign-in has ended


def make_renewal_hook(is_exempt: Callable[[OIDCState], bool]) -> Callable[[], Response | None]:
    """The ``before_request`` function; ``is_exempt`` decides for the current request."""

    def renew_if_due() -> Response | None:
        login = session.get(LOGIN_KEY)
        if login is None or login["renew_at"] > time.time():
            return None
        state = get_state()
        if request.endpoint is None or is_exempt(state):
            return None
        return renew(state)

    return renew_if_due


def renew(state: OIDCState) -> Response | None:
    """Renew the current session, which is due; None lets the request go on."""
    login = current_login(session)
    if login is None:
        return None
    outcome = renew_server_side(state, login)
    if outcome in (Outcome.FRESH, Outcome.STALE_BUT_VALID):
        return None
    if outcome is Outcome.GONE:
        log.info("the session's tokens are gone; signed out")
        sign_out()
    if request.method not in SAFE_METHODS:
        return None  # a redirect would lose the request body; the next page load renews
    if is_script_request(request):
        return refresh_required(script_next_url(state))
    return start_renewal(
        safe_next(request.full_path.rstrip("?"), state.settings.login_redirect_url)
    )


def renew_server_side(
    state: OIDCState, login: SessionLogin, *, need_access_token: bool = False
) -> Outcome:
    """Renew with the refresh token, once for all concurrent requests of the session.

    The record is read first: another request (thread, process or host) may have renewed
    already. Otherwise the record's lock is taken and the record read again, so that exactly
    one request spends the refresh token; the others wait for it and use its result.
    """
    tokens = load_tokens(login)
    if tokens is None:
        return Outcome.GONE
    now = time.time()
    if not _due(tokens, now, need_access_token):
        return _adopt(login, tokens)
    if tokens.refresh_token is None:
        return Outcome.BROWSER
    if tokens.retry_at > now:
        return _stale(tokens, now)
    settings = state.settings
    try:
        # held across up to three provider calls (token, discovery, keys), each with a timeout
        hold = 3 * settings.http_timeout + 5
        with state.token_store.lock(login.record, wait=hold, hold=hold):
            tokens = load_tokens(login)
            if tokens is None:
                return Outcome.GONE
            if not _due(tokens, time.time(), need_access_token):
                return _adopt(login, tokens)
            return _refresh(state, login, tokens)
    except LockTimeout:
        log.warning("another request held the renewal lock too long")
        tokens = load_tokens(login)
        if tokens is None:
            return Outcome.GONE
        return _stale(tokens, time.time())


def _adopt(login: SessionLogin, tokens: Tokens) -> Outcome:
    """Another request renewed: copy its result into this session (only if it differs, so that
    reading a fresh token writes nothing)."""
    if login.renew_at != tokens.renew_at or login.claims != tokens.claims:
        remember_login(session, login.record, tokens)
    return Outcome.FRESH


def _due(tokens: Tokens, now: float, need_access_token: bool) -> bool:
    if need_access_token:
        return not tokens.access_token_valid(now + 30)
    return tokens.renew_at <= now


def _stale(tokens: Tokens, now: float) -> Outcome:
    if tokens.access_token_valid(now):
        return Outcome.STALE_BUT_VALID
    raise RenewalUnavailable("The session could not be renewed just now. Please try again.")


def _refresh(state: OIDCState, login: SessionLogin, tokens: Tokens) -> Outcome:
    """Spend the refresh token; called under the record's lock."""
    settings = state.settings
    provider = state.provider
    try:
        response = provider.token_request(
            grant_type="refresh_token", refresh_token=tokens.refresh_token
        )
    except TokenEndpointError as exc:
        return _fall_back_to_browser(login, tokens, str(exc))
    except ProviderError as exc:
        return _postpone(state, login, tokens, exc)
    # The refresh token is spent now: a rotated one must be kept whatever happens next.
    rotated = response.get("refresh_token")
    if isinstance(rotated, str):
        tokens = tokens.replace(refresh_token=rotated)
    claims = {}
    try:
        if isinstance(response.get("id_token"), str):
            claims = validate_id_token(
                response["id_token"],
                key=provider.signing_key,
                algorithms=provider.id_token_algorithms,
                issuer=settings.issuer,
                client_id=settings.client_id,
                nonce=None,
                access_token=response["access_token"],
                leeway=settings.clock_skew,
            )
            check_renewed_id_token(tokens.claims, claims, refreshed=True)
    except TokenError as exc:
        return _fall_back_to_browser(login, tokens, str(exc))
    except ProviderError as exc:
        return _postpone(state, login, tokens, exc)
    renewed = tokens.renewed(response, claims, settings.renew_after)
    save_tokens(login, renewed)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    signals.session_renewed.send(app, claims=renewed.claims, method="refresh_token")
    return Outcome.FRESH


def _fall_back_to_browser(login: SessionLogin, tokens: Tokens, reason: str) -> Outcome:
    """The refresh token was refused or gave a bad ID token: drop it, the browser renews."""
    log.info("renewal with the refresh token refused (%s); the browser will renew", reason)
    save_tokens(login, tokens.replace(refresh_token=None))
    _failed(tokens, reason, ended=False)
    return Outcome.BROWSER


def _postpone(state: OIDCState, login: SessionLogin, tokens: Tokens, exc: ProviderError) -> Outcome:
    """The provider is unavailable: try again later, serve meanwhile while the token is valid."""
    log.warning("renewal postponed, the provider is unavailable: %s", exc)
    retry_at = time.time() + state.settings.refresh_retry_seconds
    save_tokens(login, tokens.replace(retry_at=retry_at))
    _failed(tokens, str(exc), ended=False)
    return _stale(tokens, time.time())


def _failed(tokens: Tokens, reason: str, *, ended: bool) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    signals.session_renewal_failed.send(app, claims=tokens.claims, reason=reason, ended=ended)


def start_renewal(next_url: str) -> Response:
    """One silent (``prompt=none``) attempt per deadline; a second one is interactive."""
    login = current_login(session)
    if login is None:
        return start_login(next_url, silent=False)
    if login.renew_at > time.time():
        return redirect(next_url)  # renewed meanwhile, by another tab
    if login.silent_attempt_for == login.renew_at:
        return start_login(next_url, silent=False)
    session[LOGIN_KEY] = {**session[LOGIN_KEY], "silent_attempt_for": login.renew_at}
    return start_login(next_url, silent=True)


def renewal_failed(next_url: str, reason: str) -> Response:
    """A silent renewal failed: end the sign-in, then sign in interactively (or go to
    ``OIDC_LOGIN_REDIRECT_URL_FAILURE``)."""
    login = sign_out()
    log.info("session renewal failed, sign-in ended: %s", reason)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    claims = login.claims if login else None
    signals.session_renewal_failed.send(app, claims=claims, reason=reason, ended=True)
    failure_url = get_state().settings.login_failure_url
    if failure_url:
        return redirect(failure_url)
    return start_login(next_url, silent=False)


def refresh_required(next_url: str) -> Response:
    """``403`` for a script: where the browser can renew the session. Stores nothing."""
    refresh_url = url_for("oidc.refresh", next=next_url)
    response = jsonify(error="refresh_required", refresh_url=refresh_url)
    response.status_code = 403
    response.headers["Cache-Control"] = "no-store"
    response.headers["refresh_url"] = refresh_url
    if request.headers.get("HX-Request") == "true":
        response.headers["HX-Redirect"] = refresh_url
    return response


def script_next_url(state: OIDCState) -> str:
    """The page that made a script request (not the endpoint it called), when it is ours."""
    for header in ("HX-Current-URL", "Referer"):
        page = request.headers.get(header)
        if page:
            try:
                parts = urlsplit(page)
            except ValueError:  # a malformed header is no page of ours
                continue
            if parts.netloc == request.host and parts.scheme == request.scheme:
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                return safe_next(path, state.settings.login_redirect_url)
    return state.settings.login_redirect_url


def exempt_by_config(state: OIDCState) -> bool:
    """Whether ``OIDC_EXEMPT_URLS`` names the current request's path or endpoint."""
    for rule in state.settings.exempt_urls:
        if isinstance(rule, re.Pattern):
            if rule.match(request.path):
                return True
        elif rule in (request.path, request.endpoint):
            return True
    return False
