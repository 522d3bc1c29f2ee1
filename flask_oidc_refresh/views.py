"""The extension's blueprint: login, callback, logout (local and back-channel), browser renewal,
and the static script. Each view fetches the relying party once and passes it down."""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from flask import Blueprint, make_response, redirect, request, session, url_for
from werkzeug.wrappers import Response

from . import clock, flow, signals, signin
from .authorization import may_sign_in, refuse_sign_in
from .errors import MISCONFIGURED, ConfigurationProblem, CrossSiteRequest, LoginError, explained
from .flow import PendingAuthorization
from .navigation import safe_next
from .provider import CREDENTIALS_HINT, Provider, ProviderError, TokenEndpointError
from .records import Tokens
from .relying_party import RelyingParty, relying_party
from .renewal import complete_silent_renewal, renewal_failed, start_silent_renewal
from .sessions import new_session_id
from .store import LockTimeout, SessionIndex
from .tokens import TokenError, unverified_claims

log = logging.getLogger(__name__)
LOGOUT_STATE_KEY = "_oidc_logout_state"

#: The longest value of an authorization parameter taken from the sign-in link.
MAX_PARAM_LENGTH = 256


def make_blueprint(url_prefix: str) -> Blueprint:
    """The ``oidc`` blueprint, mounted at ``url_prefix``."""
    bp = Blueprint("oidc", __name__, url_prefix=url_prefix, static_folder="static")
    bp.add_url_rule("/login", view_func=login, methods=["GET"])
    bp.add_url_rule("/callback", view_func=callback, methods=["GET"])
    bp.add_url_rule("/callback/<provider>", view_func=callback, methods=["GET"])
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])
    bp.add_url_rule("/logout/callback", view_func=logout_callback, methods=["GET"])
    bp.add_url_rule("/refresh", view_func=refresh, methods=["GET"])
    bp.add_url_rule("/refresh/done", view_func=refresh_done, methods=["GET"])
    bp.add_url_rule("/refresh/failed", view_func=refresh_failed, methods=["GET"])
    bp.add_url_rule("/backchannel-logout", view_func=backchannel_logout, methods=["POST"])
    bp.add_url_rule("/jwks", view_func=jwks, methods=["GET"])
    return bp


def jwks() -> Response:
    """``GET /jwks``: the public key the app signs its client assertions with
    (``private_key_jwt``), for providers that fetch it; 404 when it has none."""
    published: dict[str, Any] = {}
    for provider in relying_party().providers.values():
        for key in (provider.client_auth.public_jwks() or {"keys": []})["keys"]:
            published.setdefault(key["kid"], key)
    if not published:
        return _logout_answer(404, "not_found", "this app has no signing key")
    response = make_response({"keys": list(published.values())})
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def login() -> Response:
    """``GET /login?next=...``: start an interactive sign-in that comes back to ``next``, with
    the authorization parameters of the link that ``OIDC_AUTH_PARAMS_FROM_REQUEST`` allows."""
    party = relying_party()
    name = request.args.get("provider", "")
    if name not in party.providers:
        log.warning("sign-in with an unknown provider %r", name[:40])
        raise LoginError("There is no such identity provider.", error="unknown_provider")
    settings = party.providers[name].settings
    next_url = safe_next(request.args.get("next"), settings.login_redirect_url)
    params = {
        name: request.args[name][:MAX_PARAM_LENGTH]
        for name in settings.auth_params_from_request
        if request.args.get(name)
    }
    step_up = flow.read_step_up(request.args.get("step_up", ""), settings.state_lifetime_seconds)
    acr_values, max_age = step_up or ("", -1)
    return flow.start(
        party,
        next_url,
        silent=False,
        params=params,
        acr_values=acr_values,
        max_age=max_age,
        provider=name,
    )


def callback(provider: str = "") -> Response:
    """``GET /callback``: the provider's answer. Checked here, then it completes either an
    interactive sign-in or a silent renewal; both fail the same way."""
    party = relying_party()
    pending = flow.take(party, request.args.get("state", ""))
    if pending is None:
        log.warning("sign-in callback with an unknown, used or expired state")
        raise LoginError(
            "This sign-in response is unknown, was already used, or has expired. "
            "Please sign in again.",
            error="invalid_state",
        )
    if pending.provider != provider:  # one provider's answer brought to another's address
        log.warning(
            "a sign-in of provider %r came back to %r's callback", pending.provider, provider
        )
        raise LoginError("This sign-in response came back to the wrong address.")
    _check_issuer(flow.provider_of(party, pending))
    error = request.args.get("error")
    if error:
        log.info("the provider answered the sign-in request with %s", error[:100])
        return _failed(
            party,
            pending,
            f"the provider answered {error[:100]}",
            f"The identity provider did not sign you in ({error[:100]}).",
            "access_denied",
        )
    code = request.args.get("code")
    if not code:
        log.warning("sign-in callback without a code")
        raise LoginError("This sign-in response has no authorization code.")
    previous = signin.current(session) if pending.silent else None
    try:
        token, claims = flow.exchange(party, pending, code)
        if previous is not None:
            return complete_silent_renewal(party, previous, pending, token, claims)
    except TokenEndpointError as exc:
        if exc.refuses_credentials:
            reason = f"the token endpoint answered {exc}: {CREDENTIALS_HINT}"
            log.error("sign-in is misconfigured: %s", reason)
            raise ConfigurationProblem(explained(MISCONFIGURED, reason)) from None
        log.warning("the token endpoint refused the code: %s", exc)
        message = "The identity provider refused this sign-in response."
        return _failed(party, pending, str(exc), message, exc.error)
    except TokenError as exc:
        log.warning("sign-in rejected: %s", exc)
        message = "The sign-in response failed validation."
        return _failed(party, pending, str(exc), message, "invalid_token")
    return _complete_sign_in(party, pending, token, claims)


def _check_issuer(provider: Provider) -> None:
    """The response's ``iss`` (RFC 9207) must be the provider's issuer when given or
    advertised."""
    issuer = request.args.get("iss")
    if issuer is None and not provider.advertises_iss_parameter:
        return
    if issuer is None or not provider.issuer_matches(issuer):
        log.warning("sign-in callback with iss %r, expected %r", issuer, provider.issuer)
        raise LoginError("This sign-in response comes from another issuer.", error="invalid_issuer")


def _failed(
    party: RelyingParty, pending: PendingAuthorization, reason: str, message: str, error: str
) -> Response:
    """The provider did not complete ``pending``: a silent renewal ends the sign-in, an
    interactive sign-in is a :class:`LoginError` page."""
    if pending.silent and pending.in_frame:  # the page tries again at the top level
        log.info("a silent renewal in a frame failed: %s", reason)
        return redirect(url_for("oidc.refresh_failed"))
    if pending.silent:
        return renewal_failed(party, pending.next_url, reason, pending.provider)
    raise LoginError(explained(message, reason), error=error)


def _complete_sign_in(
    party: RelyingParty,
    pending: PendingAuthorization,
    token: dict[str, Any],
    claims: dict[str, Any],
) -> Response:
    """Sign the user in, in a fresh session with a new id; the app's sign-in gate and login
    handlers may refuse."""
    if not may_sign_in(party, claims):
        signin.end(session, party.token_store)  # nobody stays signed in here on a refusal
        provider = flow.provider_of(party, pending)
        provider.revoke_tokens(token["access_token"], token.get("refresh_token"))
        raise refuse_sign_in()
    settings = party.settings
    use_refresh_tokens = flow.provider_of(party, pending).settings.use_refresh_tokens
    tokens = Tokens.from_response(
        token,
        claims,
        settings.renew_id_token_expiry_seconds,
        use_refresh_tokens,
        provider=pending.provider,
    )
    signin.begin(session, party.token_store, tokens, keep=settings.keep_session_keys)
    try:
        for handler in party.login_handlers:
            handler(claims)
    except BaseException:
        signin.end(session, party.token_store)
        raise
    log.info("signed in (provider %r)", pending.provider or "default")
    signals.send(signals.user_logged_in, claims=claims)
    return redirect(pending.next_url)


def refresh() -> Response:
    """``GET /refresh?next=...``: renew the session in the browser, then go back to ``next``.

    This is the ``refresh_url`` given to scripts; the page navigates (or a hidden frame goes) here.
    """
    party = relying_party()
    next_url = safe_next(request.args.get("next"), party.settings.login_redirect_url)
    in_frame = next_url == url_for("oidc.refresh_done")  # where the script's frame ends
    return start_silent_renewal(party, next_url, in_frame=in_frame)


def refresh_failed() -> Response:
    """``GET /refresh/failed``: where a renewal in a hidden frame ends that could not renew
    silently; the script then renews at the top level."""
    response = make_response("<!doctype html><title>Session not renewed</title>")
    response.headers["Cache-Control"] = "no-store"
    return response


def refresh_done() -> Response:
    """``GET /refresh/done``: where a renewal in a hidden frame ends; the script looks for it."""
    response = make_response("<!doctype html><title>Session renewed</title>")
    response.headers["Cache-Control"] = "no-store"
    return response


def logout() -> Response:
    """``POST /logout``: end the local session, then the provider's when it offers that."""
    check_same_origin()
    party = relying_party()
    settings = party.settings
    ended = signin.end(session, party.token_store)
    flow.forget_all(party)  # a renewal under way must not sign the user back in
    local_url = settings.logout_redirect_url
    if ended is None:
        return redirect(local_url)
    tokens = ended.tokens
    provider = party.provider_named(ended.sign_in.provider)
    if provider is None:  # no longer configured: signed out here only
        return redirect(local_url)
    if tokens is not None:
        provider.revoke_tokens(tokens.access_token, tokens.refresh_token)
    log.info("signed out (provider %r)", ended.sign_in.provider or "default")
    signals.send(signals.user_logged_out, claims=ended.sign_in.claims)
    if tokens is None:
        return redirect(local_url)
    try:
        end_session = provider.endpoint("end_session_endpoint")
    except ProviderError as exc:
        log.warning("signed out locally only, the provider is unavailable: %s", exc)
        end_session = None
    if end_session is None:
        return redirect(local_url)
    logout_state = generate_token(32)
    session[LOGOUT_STATE_KEY] = logout_state
    new_session_id(session)  # the provider's back-channel logout ends the old one
    url = add_params_to_uri(
        end_session,
        {
            "id_token_hint": tokens.id_token,
            "client_id": provider.settings.client_id,
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
    return redirect(relying_party().settings.logout_redirect_url)


def backchannel_logout() -> Response:
    """``POST /backchannel-logout``: the provider signs a user out (Back-Channel Logout 1.0).

    The logout token is checked fully; then every session of its ``sid`` (or, without one, of its
    ``sub``) ends on every worker and host, tokens included. Called by the provider, not a
    browser: no same-origin check.
    """
    party = relying_party()
    index = party.token_store.index
    if index is None:
        log.error("back-channel logout needs the embedded session store or Redis")
        return _logout_answer(501, "unsupported_session_store")
    logout_token = request.form.get("logout_token")
    if not logout_token:
        log.warning("back-channel logout without a logout_token")
        return _logout_answer(400, "invalid_request", "logout_token is missing")
    try:
        claims = _validate_logout_token(party, logout_token)
    except TokenError as exc:
        log.warning("back-channel logout refused: %s", exc)
        return _logout_answer(400, "invalid_request", str(exc))
    ttl = max(int(claims["exp"] - clock.now()) + party.settings.clock_skew_seconds, 60)
    try:
        if not index.first_use(claims["iss"], claims["jti"], ttl):
            log.warning("back-channel logout refused: replayed jti")
            return _logout_answer(400, "invalid_request", "this logout token was already used")
        try:
            ended = _end_sessions(index, claims)
        except LockTimeout:
            index.forget_use(claims["iss"], claims["jti"])  # so that the provider may retry
            raise
    except LockTimeout as exc:
        log.warning("back-channel logout postponed: a lock was held too long (%s)", exc.key)
        return _logout_answer(503, "session_store_unavailable", exc.description)
    log.info("back-channel logout ended %d session(s)", ended)
    signals.send(
        signals.provider_logged_out, sub=claims.get("sub"), sid=claims.get("sid"), sessions=ended
    )
    return _logout_answer(200)


def _validate_logout_token(party: RelyingParty, logout_token: str) -> dict[str, Any]:
    """A logout token of one of the app's providers, checked; its claims. The provider whose
    issuer the token names is tried first, and a provider that cannot be reached does not stop
    the others; when none takes the token, an unreachable one makes it a ``502`` (the provider
    tries again later), else the first refusal is the answer."""
    named = (unverified_claims(logout_token) or {}).get("iss")
    providers = sorted(party.providers.values(), key=lambda p: p.settings.issuer != named)
    refusal: TokenError | None = None
    unavailable: ProviderError | None = None
    for provider in providers:
        try:
            return provider.validate_logout_token(logout_token)
        except TokenError as exc:
            refusal = refusal or exc
        except ProviderError as exc:
            unavailable = unavailable or exc
    if unavailable is not None:
        raise unavailable
    raise refusal or TokenError("no provider could check this logout token")


def _end_sessions(index: SessionIndex, claims: dict[str, Any]) -> int:
    """End the sessions a logout token names: those of its ``sid``, or all of its ``sub``'s,
    that its issuer signed in."""
    issuer, sid, sub = claims["iss"], claims.get("sid"), claims.get("sub")
    if isinstance(sid, str) and sid:
        ended = index.end(issuer, "sid", sid)
        if isinstance(sub, str) and sub:  # sessions whose ID token named no sid may be this one
            ended += index.end(issuer, "sub-without-sid", sub)
        return ended
    return index.end(issuer, "sub", str(sub))


def _logout_answer(
    status: int, error: str | None = None, description: str | None = None
) -> Response:
    body = {"error": error, "error_description": description} if error else {}
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


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
