"""The per-request hook: is the session due for renewal, and how to renew it for this request.

With fresh tokens the hook costs one dictionary lookup and one comparison: no I/O, no JWT
parsing, no session write. Past the deadline it renews server-side with the refresh token when
there is one; otherwise (or when the provider refuses it) the browser makes a ``prompt=none``
round trip, or a script is told where to send the browser.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

from . import clock, flow, signals, signin
from .authorization import check_renewed
from .flow import PendingAuthorization
from .navigation import is_script_request, safe_next
from .records import Tokens
from .relying_party import RelyingParty, relying_party
from .signin import SignIn
from .token_refresh import Outcome, refresh
from .tokens import check_renewed_id_token

SAFE_METHODS = frozenset({"GET", "HEAD"})
log = logging.getLogger(__name__)


def renew_if_due() -> Response | None:
    """The ``before_request`` hook; None lets the request go on."""
    if not signin.is_due(session, clock.now()):
        return None
    party = relying_party()
    if request.endpoint is None or party.is_exempt(request):
        return None
    return renew(party)


def renew(party: RelyingParty) -> Response | None:
    """Renew the current session, which is due; None lets the request go on."""
    sign_in = signin.current(session)
    if sign_in is None:
        return None
    outcome = refresh(party, session, sign_in)
    if outcome in (Outcome.FRESH, Outcome.STALE_BUT_VALID):
        return None
    if outcome is Outcome.BROWSER and request.method not in SAFE_METHODS:
        grace_ends = sign_in.renew_at + party.settings.renewal_grace_seconds
        if clock.now() < grace_ends:
            return None  # a redirect would lose the body; the next page load renews
    return send_to_renewal(party)


def send_to_renewal(party: RelyingParty) -> Response:
    """Where a request goes that the server could not renew: a script gets ``403`` with the
    ``refresh_url``, a page load the silent round trip, a form post (whose body is never
    replayed) the round trip back to the page it came from."""
    if is_script_request(request):
        return refresh_required(page_of_request(party))
    if request.method in SAFE_METHODS:
        next_url = request.full_path.rstrip("?")
        return start_silent_renewal(party, safe_next(next_url, party.settings.login_redirect_url))
    return redirect(url_for("oidc.refresh", next=page_of_request(party)), 303)


def start_silent_renewal(party: RelyingParty, next_url: str, *, in_frame: bool = False) -> Response:
    """One silent (``prompt=none``) attempt per deadline; a second one is interactive. A
    session that is not signed in (any more) tries silently too, so that a live sign-in at the
    provider brings the user straight back.

    An attempt ``in_frame`` (the bundled script's hidden frame) does not count: a frame may not
    get the provider's cookies (third-party cookies blocked), and when it fails the page tries
    at the top level, where they are sent. A frame never shows an interactive sign-in."""
    sign_in = signin.current(session)
    if sign_in is None:
        return flow.start(party, next_url, silent=True, in_frame=in_frame)
    if sign_in.renew_at > clock.now():
        return redirect(next_url)  # renewed meanwhile, by another tab
    provider = sign_in.provider if party.provider_named(sign_in.provider) else ""
    tried = sign_in.silent_attempt_for == sign_in.renew_at
    if tried and in_frame:
        return redirect(url_for("oidc.refresh_failed"))
    if tried:
        return flow.start(party, next_url, silent=False, provider=provider)
    if not in_frame:
        signin.mark_silent_attempt(session, sign_in)
    hints = _hints(party, sign_in)
    return flow.start(
        party, next_url, silent=True, hints=hints, provider=provider, in_frame=in_frame
    )


def _hints(party: RelyingParty, sign_in: SignIn) -> dict[str, str]:
    """Who is being renewed, for a provider with several accounts signed in: the last ID token
    (``id_token_hint``) and the user's login name (``login_hint``) when the claims have one."""
    hints = {}
    tokens = signin.load_tokens(party.token_store, sign_in)
    if tokens is not None:
        hints["id_token_hint"] = tokens.id_token
    for claim in ("login_hint", "email", "preferred_username"):
        value = sign_in.claims.get(claim)
        if isinstance(value, str) and value:
            hints["login_hint"] = value
            break
    return hints


def complete_silent_renewal(
    party: RelyingParty,
    previous: SignIn,
    pending: PendingAuthorization,
    token: dict[str, Any],
    claims: dict[str, Any],
) -> Response:
    """The provider renewed the sign-in silently: keep the new tokens, go back to the page.

    A :class:`~flask_oidc_refresh.tokens.TokenError` means the new ID token is about another
    sign-in."""
    check_renewed_id_token(previous.claims, claims)
    store = party.token_store
    use_refresh_tokens = flow.provider_of(party, pending).settings.use_refresh_tokens
    tokens = Tokens.from_response(
        token,
        claims,
        party.settings.renew_id_token_expiry_seconds,
        use_refresh_tokens,
        provider=pending.provider,
    )
    with store.lock(previous.record):  # a logout meanwhile waits, or has already ended it
        if signin.load_tokens(store, previous) is None:
            reason = "the sign-in ended during the renewal"
            return renewal_failed(party, pending.next_url, reason, pending.provider)
        try:
            check_renewed(party, claims)
        except Exception:
            signin.end(session, store)
            flow.provider_of(party, pending).revoke_tokens(
                tokens.access_token, tokens.refresh_token
            )
            reason = "the app refused the renewed claims"
            signals.send(signals.session_renewal_failed, claims=claims, reason=reason, ended=True)
            raise
        signin.save_tokens(session, store, previous, tokens)
    started = pending.expires - party.settings.state_lifetime_seconds
    log.info("session renewed by a prompt=none round trip in %.1f s", clock.now() - started)
    signals.send(signals.session_renewed, claims=claims, method="prompt_none")
    return redirect(pending.next_url)


def renewal_failed(party: RelyingParty, next_url: str, reason: str, provider: str = "") -> Response:
    """A silent renewal failed: end the sign-in, then sign in interactively (or go to
    ``OIDC_LOGIN_REDIRECT_URL_FAILURE``)."""
    ended = signin.end(session, party.token_store)
    log.info("silent renewal failed, sign-in ended: %s", reason)
    if ended is not None:
        claims = ended.sign_in.claims
        signals.send(signals.session_renewal_failed, claims=claims, reason=reason, ended=True)
    failure_url = party.settings.login_redirect_url_failure
    if failure_url:
        return redirect(failure_url)
    return flow.start(party, next_url, silent=False, provider=provider)


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


def page_of_request(party: RelyingParty) -> str:
    """The page that made a script request or posted a form (not the URL it called), when it
    is ours."""
    default = party.settings.login_redirect_url
    for header in ("HX-Current-URL", "Referer"):
        page = request.headers.get(header)
        if page:
            try:
                parts = urlsplit(page)
            except ValueError:  # a malformed header is no page of ours
                continue
            if parts.netloc == request.host and parts.scheme == request.scheme:
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                return safe_next(path, default)
    return default
