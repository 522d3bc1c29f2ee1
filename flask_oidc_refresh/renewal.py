"""The per-request hook: is the session due for renewal, and how to renew it for this request.

With fresh tokens the hook costs one dictionary lookup and one comparison: no I/O, no JWT
parsing, no session write.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

from . import signals
from .flow import start_login
from .navigation import is_script_request, safe_next
from .state import OIDCState, get_state
from .store import LOGIN_KEY, clear_login, load_login, save_login

SAFE_METHODS = frozenset({"GET", "HEAD"})
log = logging.getLogger("flask_oidc_refresh")


def make_renewal_hook(is_exempt: Callable[[OIDCState], bool]) -> Callable[[], Response | None]:
    """The ``before_request`` function; ``is_exempt`` decides for the current request."""

    def renew_if_due() -> Response | None:
        login = session.get(LOGIN_KEY)
        if login is None or login["renew_at"] > time.time():
            return None
        state = get_state()
        if request.endpoint is None or is_exempt(state):
            return None
        if request.method not in SAFE_METHODS:
            return None
        if is_script_request(request):
            return refresh_required(script_next_url(state))
        return start_renewal(request.full_path.rstrip("?"))

    return renew_if_due


def start_renewal(next_url: str) -> Response:
    """One silent (``prompt=none``) attempt per deadline; a second one is interactive."""
    login = load_login(session)
    if login is None:
        return start_login(next_url, silent=False)
    if login.renew_at > time.time():
        return redirect(next_url)  # renewed meanwhile, by another tab
    if login.silent_attempt_for == login.renew_at:
        return start_login(next_url, silent=False)
    save_login(session, login.replace(silent_attempt_for=login.renew_at))
    return start_login(next_url, silent=True)


def renewal_failed(next_url: str, reason: str) -> Response:
    """A silent renewal failed: end the sign-in, then sign in interactively (or go to
    ``OIDC_LOGIN_REDIRECT_URL_FAILURE``)."""
    login = load_login(session)
    clear_login(session)
    log.info("session renewal failed, sign-in ended: %s", reason)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    signals.session_renewal_failed.send(app, claims=login.claims if login else None, reason=reason)
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
            parts = urlsplit(page)
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
