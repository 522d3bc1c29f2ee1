"""The ``OIDC`` extension object: registration, the signed-in user, and the view decorators."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack, overload

from flask import Blueprint, Flask, Response, current_app, session, url_for
from flask.logging import wsgi_errors_stream
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from . import authorization, clock, signin
from .authorization import ClaimsRequirement, SignInRequirement, TokenRequirement
from .bearer import is_bearer_request
from .checks import check_on_startup
from .cli import oidc_commands
from .config import DEFAULTS, ConfigError, Options, Settings, config_keys, unknown_key_messages
from .errors import (
    MISCONFIGURED,
    ConfigurationProblem,
    OIDCError,
    ProviderUnavailable,
    explained,
)
from .exemptions import Exemptions
from .provider import Provider, ProviderError, ProviderMisconfigured
from .relying_party import ClaimsCheck, LoginHandler, RelyingParty, relying_party
from .renewal import renew_if_due
from .sessions import ensure_server_side_sessions, guard_sessions
from .store import LockTimeout
from .token_refresh import Outcome, refresh
from .views import make_blueprint

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


class OIDC:
    """OpenID Connect sign-in and session renewal for Flask apps.

    ``OIDC(app)`` or ``oidc = OIDC()`` then ``oidc.init_app(app)`` in an app factory. Keyword
    options are ``OIDC_*`` settings without the prefix, in lower case (``client_id="..."``); they
    take precedence over ``app.config``.
    """

    def __init__(self, app: Flask | None = None, **options: Unpack[Options]) -> None:
        self._options = config_keys(options)
        self._login_handlers: list[LoginHandler] = []
        self._renew_handlers: list[LoginHandler] = []
        self._sign_in_checks: list[ClaimsCheck] = []
        self._takes_tokens = False  # whether any view takes bearer tokens (accept_token)
        self._exemptions = Exemptions()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: settings, sessions, blueprint, hooks and template helpers.

        After it, ``app.config`` shows every ``OIDC_*`` setting as it is in effect.
        """
        if "oidc" in app.extensions:
            raise RuntimeError("The OIDC extension is already registered on this app.")
        log_by_default()
        for key, default in DEFAULTS.items():
            app.config.setdefault(key, default)
        app.config.update(self._options)
        for message in unknown_key_messages(app.config):
            log.warning(message)
        settings = Settings.from_config(app.config)
        app.config.update(settings.as_config())
        if not app.secret_key:
            raise ConfigError(
                "SECRET_KEY is not set: sign-in signs its pending-login cookie with it."
            )
        ensure_server_side_sessions(app, settings, signin.is_signed_in)
        guard_sessions(
            app,
            lambda session: signin.has_ended(session, relying_party().token_store),
            settings.session_touch_fraction,
        )
        providers = {"": Provider(settings)}
        for name in settings.providers:
            providers[name] = Provider(settings.for_provider(app.config, name), name)
        app.extensions["oidc"] = RelyingParty(
            settings=settings,
            providers=providers,
            exemptions=self._exemptions,
            login_handlers=self._login_handlers,
            renew_handlers=self._renew_handlers,
            sign_in_checks=self._sign_in_checks,
        )
        blueprint = make_blueprint(settings.url_prefix)
        app.register_blueprint(blueprint)
        csrf = app.extensions.get("csrf")  # Flask-WTF's CSRFProtect, when set up before us
        if csrf is not None and hasattr(csrf, "exempt"):
            csrf.exempt(blueprint)  # logout checks the origin itself; the provider posts logouts
        app.register_error_handler(ProviderError, _provider_failed)
        app.register_error_handler(LockTimeout, _busy)
        app.before_request(renew_if_due)
        app.cli.add_command(oidc_commands)
        if settings.check_on_startup:
            check_on_startup(app)
        app.add_template_global(oidc_refresh_script)
        app.add_template_global(oidc_logout_form)

    @property
    def user(self) -> dict[str, Any] | None:
        """The signed-in user's claims, or None (also in a request let in by its bearer token:
        see :attr:`token_claims`)."""
        claims = signin.claims(session)
        if claims is None:
            relying_party()  # a clear error when init_app was forgotten
        return None if self._takes_tokens and is_bearer_request() else claims

    @property
    def access_token(self) -> str | None:
        """A valid access token of the signed-in user, for calling APIs on their behalf.

        Renewed with the refresh token first when it is about to expire; None when there is no
        signed-in user or the token has expired and cannot be renewed here.
        """
        party = relying_party()
        sign_in = signin.current(session)
        if sign_in is None or is_bearer_request():
            return None
        if refresh(party, session, sign_in, need_access_token=True) is Outcome.ENDED:
            return None
        tokens = signin.load_tokens(party.token_store, sign_in)
        if tokens is None or not tokens.access_token_valid(clock.now()):
            return None
        return tokens.access_token

    @property
    def renewal_deadline(self) -> float | None:
        """When the signed-in user's session is next renewed (a Unix time), or None."""
        relying_party()
        sign_in = signin.current(session)
        return sign_in.renew_at if sign_in else None

    @property
    def token_claims(self) -> dict[str, Any] | None:
        """The claims of the bearer token the current request was let in with (by
        :meth:`accept_token`), or None."""
        return authorization.token_claims()

    @overload
    def login_required(self, view: F) -> F: ...
    @overload
    def login_required(
        self,
        *,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
        claims: ClaimsRequirement | None = None,
    ) -> Callable[[F], F]: ...
    def login_required(
        self,
        view: F | None = None,
        *,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
        claims: ClaimsRequirement | None = None,
    ) -> F | Callable[[F], F]:
        """Let only signed-in users in: a page load goes to sign-in and comes back, any other
        request (a script, an API client) gets ``401`` with JSON.

        ``claims`` lets in only users whose claims qualify (``{"groups": "admins"}``, or a
        predicate on the claims); others get ``403``. With ``acr_values`` (one or several
        acceptable ``acr``) or ``max_age`` (seconds since the user authenticated), a step-up: a
        session whose sign-in does not meet them signs in again with those parameters, and
        the new ID token must meet them.
        """
        requirement = SignInRequirement(
            acr_values=" ".join([acr_values] if isinstance(acr_values, str) else acr_values),
            max_age=-1 if max_age is None else max_age,
            claims=claims,
        )

        def decorate(view: F) -> F:
            return _guarded(view, functools.partial(authorization.require_sign_in, requirement))

        return decorate if view is None else decorate(view)

    @overload
    def accept_token(self, view: F) -> F: ...
    @overload
    def accept_token(
        self,
        *,
        scopes: str | Sequence[str] = (),
        audience: str | None = None,
        claims: ClaimsRequirement | None = None,
        allow_session: bool = False,
    ) -> Callable[[F], F]: ...
    def accept_token(
        self,
        view: F | None = None,
        *,
        scopes: str | Sequence[str] = (),
        audience: str | None = None,
        claims: ClaimsRequirement | None = None,
        allow_session: bool = False,
    ) -> F | Callable[[F], F]:
        """Let in requests with a valid ``Authorization: Bearer`` access token for this API
        (``audience``, default ``OIDC_API_AUDIENCE``) that grants every one of ``scopes`` and
        whose claims meet ``claims``; :attr:`token_claims` are then its claims.

        A missing or bad token gets ``401`` ``invalid_token``, a missing scope ``403``
        ``insufficient_scope`` (RFC 6750): JSON with a ``WWW-Authenticate`` header, never a
        redirect or a cookie. With ``allow_session``, a request without a token may instead
        come from a signed-in user, as :meth:`login_required` lets in.
        """
        requirement = TokenRequirement(
            scopes=frozenset(scopes.split() if isinstance(scopes, str) else scopes),
            audience=audience,
            claims=claims,
            allow_session=allow_session,
        )

        self._takes_tokens = True

        def decorate(view: F) -> F:
            wrapper = _guarded(
                view, lambda: authorization.require_token(relying_party(), requirement)
            )
            if allow_session:  # its token requests are judged by the token alone
                self._exemptions.add_token_view(wrapper)
            else:  # it takes no session, so it has none to renew
                self._exemptions.add(wrapper)
            return wrapper

        return decorate if view is None else decorate(view)

    def login_url(self, next: str | None = None, **params: str) -> str:
        """The URL of the sign-in view, coming back to ``next``, with authorization parameters
        (``login_hint``, ``ui_locales``, ...: those that :data:`OIDC_AUTH_PARAMS_FROM_REQUEST`
        allows are sent, others are dropped)."""
        values: dict[str, Any] = {"next": next, **params}
        return url_for("oidc.login", **values)

    def on_login(self, handler: LoginHandler) -> LoginHandler:
        """Decorator: call ``handler(claims)`` after each sign-in, e.g. to load the app's own
        user and call Flask-Login's ``login_user``. An exception (such as ``abort(403)``) undoes
        the sign-in."""
        self._login_handlers.append(handler)
        return handler

    def on_renew(self, handler: LoginHandler) -> LoginHandler:
        """Decorator: call ``handler(claims)`` with the claims of each renewal (refresh token
        or ``prompt=none``; userinfo fetched again when ``OIDC_FETCH_USERINFO`` is on), e.g. to
        update the app's own user. An exception (such as ``abort(403)``) ends the sign-in."""
        self._renew_handlers.append(handler)
        return handler

    def allow_sign_in(self, check: ClaimsCheck) -> ClaimsCheck:
        """Decorator: a gate on the claims, ``check(claims) -> bool``, beside
        ``OIDC_ALLOWED_GROUPS``. A user it refuses gets a ``403`` page instead of a sign-in,
        and a signed-in user it refuses at a renewal is signed out."""
        self._sign_in_checks.append(check)
        return check

    @overload
    def exempt(self, view: Blueprint) -> Blueprint: ...
    @overload
    def exempt(self, view: str) -> str: ...
    @overload
    def exempt(self, view: F) -> F: ...
    def exempt(self, view: F | Blueprint | str) -> F | Blueprint | str:
        """Exempt from session renewal: a view function (as a decorator, in any order with the
        route and ``login_required``), an endpoint name, or a blueprint with its children."""
        self._exemptions.add(view)
        return view


def oidc_refresh_script(
    nonce: str | None = None, *, mode: str = "silent", install: bool = False
) -> Markup:
    """The ``<script>`` tag of the bundled fetch wrapper, for templates.

    ``nonce`` is the page's CSP nonce; ``mode`` is ``"silent"`` (renew in a hidden frame and
    keep the page, falling back to navigating) or ``"navigate"`` (go to the provider and come
    back); ``install`` replaces ``window.fetch`` with the wrapper.
    """
    if mode not in ("navigate", "silent"):
        raise ValueError("mode must be 'navigate' or 'silent'")
    attributes = {
        "src": url_for("oidc.static", filename="oidc-refresh.js"),
        "data-mode": mode,
        "data-install": "fetch" if install else None,
        "nonce": nonce,
    }
    return Markup("<script{}></script>").format(
        Markup("").join(
            Markup(' {}="{}"').format(name, value) for name, value in attributes.items() if value
        )
    )


def oidc_logout_form(label: str = "Sign out", *, css_class: str | None = None) -> Markup:
    """A form with one button that signs the user out (``POST`` to the logout view)."""
    attributes = Markup(' class="{}"').format(css_class) if css_class else Markup("")
    return Markup(
        '<form method="post" action="{}"{}><button type="submit">{}</button></form>'
    ).format(url_for("oidc.logout"), attributes, label)


#: The format of the lines the extension logs when the app configures no logging.
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def log_by_default() -> None:
    """When logging is not configured (no handler on the way to the root), give the
    ``flask_oidc_refresh`` logger a handler of its own, as Flask gives ``app.logger``: every line
    with its level and logger name, from INFO up (renewals are logged at INFO)."""
    logger = logging.getLogger("flask_oidc_refresh")
    if logger.hasHandlers():
        return
    handler = _UntilConfigured(wsgi_errors_stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class _UntilConfigured(logging.StreamHandler):  # type: ignore[type-arg]
    """The default handler, which stands down once the app configures logging (a handler on
    the root logger), so that no line is written twice."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def _guarded(view: F, check: Callable[[], WerkzeugResponse | None]) -> F:
    """``view`` behind ``check``, which returns None to let the request in, or the answer
    instead of the view's; an ``async`` view runs through Flask's ``ensure_sync``."""
    is_async = inspect.iscoroutinefunction(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refusal = check()
        if refusal is not None:
            return refusal
        return current_app.ensure_sync(view)(*args, **kwargs) if is_async else view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _busy(exc: LockTimeout) -> Response:
    log.warning("a lock of the session store was held too long: %s", exc.key)
    return exc.get_response()  # type: ignore[return-value]


def _provider_failed(exc: ProviderError) -> Response:
    """A provider that answers against the settings is the app's misconfiguration (500); one
    that cannot answer now is unavailable (502). The log, and the page in debug mode, say why."""
    error: OIDCError
    if isinstance(exc, ProviderMisconfigured):
        log.error("sign-in is misconfigured: %s", exc)
        error = ConfigurationProblem(explained(MISCONFIGURED, exc))
    else:
        log.error("identity provider unavailable: %s", exc)
        error = ProviderUnavailable(
            explained("The identity provider is unavailable. Please try again later.", exc)
        )
    return error.get_response()  # type: ignore[return-value]
