"""The extension's blueprint: login, callback, logout (local and back-channel), browser renewal,
and the static script."""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from flask import Blueprint, current_app, make_response, redirect, request, session, url_for
from werkzeug.wrappers import Response

from . import flow, signals
from .errors import CrossSiteRequest, LoginError
from .login import end_sessions, load_tokens, save_tokens, sign_in, sign_out
from .navigation import safe_next
from .provider import ProviderError, TokenEndpointError
from .renewal import renewal_failed, start_renewal
from .sessions import TOUCHED_KEY
from .state import get_state
from .store import Tokens, current_login
from .tokens import TokenError, check_renewed_id_token, validate_logout_token

log = logging.getLogger("flask_oidc_refresh")
LOGOUT_STATE_KEY = "_oidc_logout_state"


def make_blueprint(url_prefix: str) -> Blueprint:
    """The ``oidc`` blueprint, mounted at ``url_prefix``."""
    bp = Blueprint("oidc", __name__, url_prefix=url_prefix, static_folder="static")
    bp.add_url_rule("/login", view_func=login, methods=["GET"])
    bp.add_url_rule("/callback", view_func=callback, methods=["GET"])
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])
    bp.add_url_rule("/logout/callback", view_func=logout_callback, methods=["GET"])
    bp.add_url_rule("/refresh", view_func=refresh, methods=["GET"])
    bp.add_url_rule("/refresh/done", view_func=refresh_done, methods=["GET"])
    bp.add_url_rule("/backchannel-logout", view_func=backchannel_logout, methods=["POST"])
    return bp


def login() -> Response:
    """``GET /login?next=...``: start an interactive login that comes back to ``next``."""
    settings = get_state().settings
    return flow.start_login(
        safe_next(request.args.get("next"), settings.login_redirect_url), silent=False
    )


def callback() -> Response:
    """``GET /callback``: the provider's answer; check everything, then sign the user in."""
    state = get_state()
    provider = state.provider
    pending = flow.take(session, request.args.get("state", ""))
    if pending is None:
        log.warning("sign-in callback with an unknown, used or expired state")
        raise LoginError(
            "This sign-in response is unknown, was already used, or has expired. "
            "Please sign in again.",
            error="invalid_state",
        )
    issuer = request.args.get("iss")
    if (
        issuer is not None or provider.advertises_iss_parameter
    ) and issuer != provider.settings.issuer:
        log.warning("sign-in callback with iss %r, expected %r", issuer, provider.settings.issuer)
        raise LoginError("This sign-in response comes from another issuer.", error="invalid_issuer")
    error = request.args.get("error")
    if error:
        log.info("the provider answered the sign-in request with %s", error[:100])
        if pending.silent:
            return renewal_failed(pending.next_url, f"the provider answered {error[:100]}")
        raise LoginError(
            f"The identity provider did not sign you in ({error[:100]}).", error="access_denied"
        )
    code = request.args.get("code")
    if not code:
        log.warning("sign-in callback without a code")
        raise LoginError("This sign-in response has no authorization code.")
    previous = current_login(session) if pending.silent else None
    try:
        token, claims = flow.finish(provider, pending, code)
        if previous is not None:
            check_renewed_id_token(previous.claims, claims)
    except TokenEndpointError as exc:
        log.warning("the token endpoint refused the code: %s", exc)
        if pending.silent:
            return renewal_failed(pending.next_url, str(exc))
        raise LoginError(
            "The identity provider refused this sign-in response.", error=exc.error
        ) from exc
    except TokenError as exc:
        log.warning("sign-in rejected: %s", exc)
        if pending.silent:
            return renewal_failed(pending.next_url, str(exc))
        raise LoginError("The sign-in response failed validation.", error="invalid_token") from exc
    settings = state.settings
    tokens = Tokens.from_response(token, claims, settings.renew_after, settings.use_refresh_tokens)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if previous is not None:
        if load_tokens(previous) is None:
            return renewal_failed(pending.next_url, "the sign-in ended during the renewal")
        save_tokens(previous, tokens)
        signals.session_renewed.send(app, claims=claims, method="prompt_none")
        return redirect(pending.next_url)
    new_session_id()
    sign_in(tokens)
    try:
        for handler in state.login_handlers:
            handler(claims)
    except BaseException:
        sign_out()
        raise
    signals.user_logged_in.send(app, claims=claims)
    return redirect(pending.next_url)


def refresh() -> Response:
    """``GET /refresh?next=...``: renew the session in the browser, then go back to ``next``.

    This is the ``refresh_url`` given to scripts; the page navigates (or a hidden frame goes) here.
    """
    settings = get_state().settings
    return start_renewal(safe_next(request.args.get("next"), settings.login_redirect_url))


def refresh_done() -> Response:
    """``GET /refresh/done``: where a renewal in a hidden frame ends; the script looks for it."""
    response = make_response("<!doctype html><title>Session renewed</title>")
    response.headers["Cache-Control"] = "no-store"
    return response


def logout() -> Response:
    """``POST /logout``: end the local session, then the provider's when it offers that."""
    check_same_origin()
    settings = get_state().settings
    signed_in = current_login(session)
    tokens = load_tokens(signed_in) if signed_in else None
    sign_out()
    session.clear()
    if tokens is not None:
        provider = get_state().provider
        if tokens.refresh_token:
            provider.revoke(tokens.refresh_token, "refresh_token")
        provider.revoke(tokens.access_token, "access_token")
    local_url = settings.logout_redirect_url
    if signed_in is None:
        return redirect(local_url)
    signals.user_logged_out.send(current_app._get_current_object(), claims=signed_in.claims)  # type: ignore[attr-defined]
    if tokens is None:
        return redirect(local_url)
    try:
        end_session = get_state().provider.endpoint("end_session_endpoint")
    except ProviderError as exc:
        log.warning("signed out locally only, the provider is unavailable: %s", exc)
        end_session = None
    if end_session is None:
        return redirect(local_url)
    logout_state = generate_token(32)
    session[LOGOUT_STATE_KEY] = logout_state
    new_session_id()  # the provider's back-channel logout ends the old one
    url = add_params_to_uri(
        end_session,
        {
            "id_token_hint": tokens.id_token,
            "client_id": settings.client_id,
            "post_logout_redirect_uri": url_for("oidc.logout_callback", _external=True),
            "state": logout_state,
        },
    )
    return redirect(url)


def logout_callback() -> Response:
    """``GET /logout/callback``: back from the provider; check ``state``, go to the local page."""
    expected = session.pop(LOGOUT_STATE_KEY, None)
    given = request.args.get("state", "")
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("logout callback with an unknown state")
        raise LoginError(
            "This sign-out response is unknown or was already used.", error="invalid_state"
        )
    return redirect(get_state().settings.logout_redirect_url)


def backchannel_logout() -> Response:
    """``POST /backchannel-logout``: the provider signs a user out (Back-Channel Logout 1.0).

    The logout token is checked fully; then every session of its ``sid`` (or, without one, of its
    ``sub``) ends on every worker and host, tokens included. Called by the provider, not a
    browser: no same-origin check.
    """
    state = get_state()
    settings = state.settings
    store = state.token_store
    if not store.shared:
        log.error("back-channel logout needs the embedded session store or Redis")
        return _logout_answer(501, "unsupported_session_store")
    logout_token = request.form.get("logout_token")
    if not logout_token:
        log.warning("back-channel logout without a logout_token")
        return _logout_answer(400, "invalid_request", "logout_token is missing")
    try:
        claims = validate_logout_token(
            logout_token,
            key=state.provider.signing_key,
            algorithms=state.provider.id_token_algorithms,
            issuer=settings.issuer,
            client_id=settings.client_id,
            leeway=settings.clock_skew,
        )
    except TokenError as exc:
        log.warning("back-channel logout refused: %s", exc)
        return _logout_answer(400, "invalid_request", str(exc))
    ttl = max(int(claims["exp"] - time.time()) + settings.clock_skew, 60)
    if not store.add_once(f"oidc-jti:{claims['iss']}:{claims['jti']}", ttl):
        log.warning("back-channel logout refused: replayed jti")
        return _logout_answer(400, "invalid_request", "this logout token was already used")
    sid, sub = claims.get("sid"), claims.get("sub")
    if isinstance(sid, str) and sid:
        ended = end_sessions("sid", sid)
        if isinstance(sub, str) and sub:  # sessions whose ID token named no sid may be this one
            ended += end_sessions("sub-without-sid", sub)
    else:
        ended = end_sessions("sub", str(sub))
    log.info("back-channel logout ended %d session(s)", ended)
    signals.provider_logged_out.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        sub=sub,
        sid=sid,
        sessions=ended,
    )
    return _logout_answer(200)


def _logout_answer(
    status: int, error: str | None = None, description: str | None = None
) -> Response:
    body = {"error": error, "error_description": description} if error else {}
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def new_session_id() -> None:
    """Give the session a new id (Flask-Session's ``regenerate``), keeping its contents."""
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if regenerate is not None:
        session.setdefault(TOUCHED_KEY, time.time())  # regenerate() skips an empty session
        regenerate(session)


def check_same_origin() -> None:
    """Refuse a state-changing request sent by another site (a forged form or script)."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    same = site in (None, "same-origin", "none")
    if same and origin and origin != "null":
        try:
            parts = urlsplit(origin)
        except ValueError:  # malformed: not provably ours
            parts = urlsplit("")
        same = f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")
    if not same or origin == "null":
        log.warning("refused a cross-site %s %s", request.method, request.path)
        raise CrossSiteRequest("This request came from another site and was refused.")
