"""Authorization requests: ``state``, ``nonce`` and PKCE, the pending authorizations of every
open tab, and the code exchange that completes one.

Pending authorizations live in a short-lived signed cookie of their own, never in the
server-side session, so that anonymous traffic writes nothing on the server. The cookie holds
each one's ``state``, ``next``, expiry and the id of the secret key its ``nonce`` and PKCE
verifier are derived with (from the ``state``), so the verifier is never readable by the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import Any

from authlib.common.security import generate_token
from flask import after_this_request, current_app, g, redirect, request, url_for
from flask.sessions import SessionInterface
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from . import clock
from .config import is_loopback
from .errors import MISCONFIGURED, ConfigurationProblem, LoginError, explained
from .navigation import safe_next
from .provider import Provider
from .relying_party import RelyingParty, secret_keys
from .tokens import TokenError

#: The cookie of the pending authorizations; it exists only while a sign-in is on its way.
PENDING_COOKIE = "oidc_pending"
STEP_UP_SALT = "flask-oidc-refresh.step-up"
#: The longest ``next`` kept; a longer one is replaced by ``OIDC_LOGIN_REDIRECT_URL``.
MAX_NEXT_LENGTH = 400
#: The largest pending cookie written: the oldest authorizations go first to stay below it.
MAX_COOKIE_BYTES = 3800
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingAuthorization:
    """One authorization request on its way: what its callback must match, where to go next."""

    state: str
    next_url: str
    silent: bool
    expires: float
    #: Which secret key the nonce and verifier are derived with (it may rotate meanwhile).
    key_id: str
    #: A step-up's demands, which the ID token must meet: acceptable ``acr`` values (space
    #: separated; empty: any) and the longest time since the user authenticated (-1: any).
    acr_values: str = ""
    max_age: int = -1
    #: The provider it goes to, by name (``""``: the default one).
    provider: str = ""
    #: A silent renewal in the bundled script's hidden frame: a failure leaves the sign-in be.
    in_frame: bool = False

    @property
    def nonce(self) -> str:
        """The ``nonce`` sent with this authorization."""
        return self._derive("nonce")

    @property
    def code_verifier(self) -> str:
        """The PKCE verifier of this authorization; only its S256 challenge leaves the server."""
        return self._derive("code-verifier")

    def _derive(self, purpose: str) -> str:
        secret = next((k for k in secret_keys() if _key_id(k) == self.key_id), None)
        if secret is None:
            raise TokenError("this sign-in was started with a secret key no longer in use")
        key = secret.encode() if isinstance(secret, str) else secret
        message = f"flask-oidc-refresh {purpose} {self.state}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _key_id(secret: str | bytes) -> str:
    material = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(b"flask-oidc-refresh key id " + material).hexdigest()[:8]


def start(
    party: RelyingParty,
    next_url: str,
    *,
    silent: bool,
    hints: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    acr_values: str = "",
    max_age: int = -1,
    provider: str = "",
    in_frame: bool = False,
) -> Response:
    """Redirect to the provider for a new authorization (``silent``: with ``prompt=none``;
    ``hints``: ``id_token_hint`` and ``login_hint`` of the sign-in being renewed; ``params``:
    further parameters, after ``OIDC_AUTH_PARAMS``; ``acr_values`` and ``max_age``: a
    step-up, which the callback checks the ID token against; ``provider``: which one, by
    name; ``in_frame``: a silent renewal in the bundled script's hidden frame)."""
    settings = party.settings
    next_url = safe_next(next_url, settings.login_redirect_url)
    if len(next_url) > MAX_NEXT_LENGTH:
        log.info("a next of %d characters was replaced by the default", len(next_url))
        next_url = settings.login_redirect_url
    pending = PendingAuthorization(
        state=generate_token(32),
        next_url=next_url,
        silent=silent,
        expires=clock.now() + settings.state_lifetime_seconds,
        key_id=_key_id(secret_keys()[0]),  # init_app made sure there is one
        acr_values=acr_values,
        max_age=max_age,
        provider=provider,
        in_frame=in_frame,
    )
    _check_redirect_uri(party, redirect_uri(party, provider))
    url = authorization_url(party, pending, {**(params or {}), **(hints or {})})
    waiting = _waiting(party)
    waiting.append(pending)
    del waiting[: -settings.max_states]
    return redirect(url)


def take(party: RelyingParty, state: str) -> PendingAuthorization | None:
    """Remove and return the pending authorization of ``state``; None when unknown, used or
    expired."""
    waiting = _waiting(party)
    found = next((p for p in waiting if p.state == state), None) if state else None
    if found is not None:
        waiting.remove(found)
    return found


def forget_all(party: RelyingParty) -> None:
    """Drop every pending authorization of this browser (the cookie goes with the response)."""
    _waiting(party).clear()


def redirect_uri(party: RelyingParty, provider: str = "") -> str:
    """Where ``provider`` sends the browser back: ``OIDC_REDIRECT_URI`` or the callback URL, with
    the provider's name after it for a further provider (so that no provider's answer can be
    taken for another's: the mix-up attack)."""
    base = party.settings.redirect_uri or url_for("oidc.callback", _external=True)
    return f"{base.rstrip('/')}/{provider}" if provider else base


def insecure_redirect_uri(uri: str) -> str | None:
    """Why the redirect URI ``uri`` is unsafe outside debug mode (plain http to another host
    than this machine: the code would cross the network in the clear), or None."""
    if not uri.lower().startswith("http://") or is_loopback(uri):
        return None
    return (
        f"the redirect URI is {uri}: serve the app over https (behind a proxy, use werkzeug's "
        "ProxyFix so that Flask sees https), or set OIDC_REDIRECT_URI (OIDC_ALLOW_INSECURE_HTTP "
        "allows http, for closed test networks only)"
    )


def _check_redirect_uri(party: RelyingParty, uri: str) -> None:
    """Refuse an unsafe redirect URI (see :func:`insecure_redirect_uri`), unless in debug mode
    or ``OIDC_ALLOW_INSECURE_HTTP`` allows it."""
    reason = insecure_redirect_uri(uri)
    if reason is None or current_app.debug or party.settings.allow_insecure_http:
        return
    log.error("sign-in is misconfigured: %s", reason)
    raise ConfigurationProblem(explained(MISCONFIGURED, reason))


def authorization_url(
    party: RelyingParty, pending: PendingAuthorization, params: Mapping[str, str]
) -> str:
    """The provider URL that starts ``pending``: code flow, PKCE S256, state and nonce, with
    ``OIDC_AUTH_PARAMS``, then ``params``, then the step-up's and ``prompt=none``."""
    provider = provider_of(party, pending)
    extra = {**provider.settings.auth_params, **params}
    if pending.acr_values:
        extra["acr_values"] = pending.acr_values
    if pending.max_age >= 0:
        extra["max_age"] = str(pending.max_age)
    if pending.silent:
        extra["prompt"] = "none"
    with provider.client() as client:
        url, _ = client.create_authorization_url(
            provider.metadata["authorization_endpoint"],
            state=pending.state,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            redirect_uri=redirect_uri(party, pending.provider),
            **extra,
        )
    return str(url)


def exchange(
    party: RelyingParty, pending: PendingAuthorization, code: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exchange ``code`` for tokens and check them; returns the token response and the claims.

    The claims are the ID token's, completed by userinfo when configured; userinfo must be
    about the same ``sub``.
    """
    provider = provider_of(party, pending)
    token = provider.token_request(
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri(party, pending.provider),
        code_verifier=pending.code_verifier,
    )
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenError("the token response has no ID token")
    claims = provider.validate_id_token(
        id_token, nonce=pending.nonce, access_token=token["access_token"]
    )
    leeway = provider.settings.clock_skew_seconds
    if not meets(claims, pending.acr_values, pending.max_age, clock.now(), leeway):
        raise TokenError("the ID token does not meet the step-up asked for (acr, auth_time)")
    userinfo = provider.userinfo(token["access_token"], claims["sub"])
    return token, {**(userinfo or {}), **claims}


def _serializer(salt: str = "flask-oidc-refresh.pending") -> URLSafeTimedSerializer:
    """Signs with the current secret key, and accepts its fallbacks (oldest first, newest
    last, as itsdangerous wants them)."""
    keys = [k.decode() if isinstance(k, bytes) else k for k in secret_keys()]
    return URLSafeTimedSerializer(keys[::-1], salt=salt)


def provider_of(party: RelyingParty, pending: PendingAuthorization) -> Provider:
    """The provider ``pending`` went to; :class:`LoginError` when the settings no longer have
    it."""
    provider = party.provider_named(pending.provider)
    if provider is None:
        log.warning(
            "a sign-in came back from provider %r, which is not configured", pending.provider
        )
        raise LoginError("This sign-in went to an identity provider that is no longer offered.")
    return provider


def sign_step_up(acr_values: str, max_age: int) -> str:
    """A step-up, signed, for a sign-in link (``/login?step_up=...``)."""
    return _serializer(STEP_UP_SALT).dumps([acr_values, max_age])


def read_step_up(value: str, lifetime: int) -> tuple[str, int] | None:
    """The step-up of a sign-in link; None when it is not ours or too old."""
    try:
        acr_values, max_age = _serializer(STEP_UP_SALT).loads(value, max_age=lifetime)
    except (BadData, TypeError, ValueError):
        return None
    if not isinstance(acr_values, str) or not isinstance(max_age, int):
        return None
    return acr_values, max_age


def meets(
    claims: Mapping[str, Any], acr_values: str, max_age: int, now: float, leeway: int
) -> bool:
    """Whether a sign-in's claims meet a step-up: an ``acr`` among ``acr_values`` (when any),
    and an ``auth_time`` within ``max_age`` seconds (when not -1)."""
    if acr_values and claims.get("acr") not in acr_values.split():
        return False
    if max_age >= 0:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or now - auth_time > max_age + leeway:
            return False
    return True


def _waiting(party: RelyingParty) -> list[PendingAuthorization]:
    """This request's list of pending authorizations, read from the cookie once; the cookie is
    written back from it when the response goes out."""
    if "_oidc_pending" not in g:
        g._oidc_pending = _read_cookie(party)
        before = list(g._oidc_pending)

        @after_this_request
        def write_back(response: Response) -> Response:
            if g._oidc_pending != before:
                _write_cookie(party, response, g._oidc_pending)
            return response

    waiting: list[PendingAuthorization] = g._oidc_pending
    return waiting


def _read_cookie(party: RelyingParty) -> list[PendingAuthorization]:
    """The pending authorizations of this browser that have not expired."""
    value = request.cookies.get(PENDING_COOKIE)
    if not value:
        return []
    try:
        rows = _serializer().loads(value, max_age=party.settings.state_lifetime_seconds)
        waiting = [PendingAuthorization(*row) for row in rows]
    except (BadData, TypeError, ValueError):
        log.warning("ignored a pending sign-in cookie that is not ours or too old")
        return []
    now = clock.now()
    return [p for p in waiting if isinstance(p.state, str) and p.expires > now]


def _write_cookie(
    party: RelyingParty, response: Response, waiting: list[PendingAuthorization]
) -> None:
    """Write ``waiting`` (deleting the cookie when empty), oldest dropped to fit a cookie."""
    interface: SessionInterface = current_app.session_interface
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    path = interface.get_cookie_path(app)
    domain = interface.get_cookie_domain(app)
    value = ""
    while waiting:
        value = _serializer().dumps([astuple(p) for p in waiting])
        if len(value) <= MAX_COOKIE_BYTES:
            break
        waiting = waiting[1:]
    if not waiting:
        response.delete_cookie(PENDING_COOKIE, path=path, domain=domain)
        return
    response.set_cookie(
        PENDING_COOKIE,
        value,
        max_age=party.settings.state_lifetime_seconds,
        path=path,
        domain=domain,
        secure=interface.get_cookie_secure(app),
        httponly=True,
        samesite="Lax",  # the provider sends the browser back with a cross-site GET
    )
