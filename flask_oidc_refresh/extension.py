"""The ``OIDC`` extension object: registration, the signed-in user, and the view decorators."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack, overload

from flask import Blueprint, Flask, Response, current_app, redirect, request, session, url_for
from markupsafe import Markup

from . import clock, flow, signin
from .config import DEFAULTS, ConfigError, Options, Settings, config_keys, unknown_key_messages
from .errors import LoginRequired, ProviderUnavailable
from .exemptions import Exemptions
from .navigation import is_script_request
from .provider import Provider, ProviderError
from .relying_party import LoginHandler, RelyingParty, relying_party
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
        self._exemptions = Exemptions()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: settings, sessions, blueprint, hooks and template helpers.

        After it, ``app.config`` shows every ``OIDC_*`` setting as it is in effect.
        """
        if "oidc" in app.extensions:
            raise RuntimeError("The OIDC extension is already registered on this app.")
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
        )
        blueprint = make_blueprint(settings.url_prefix)
        app.register_blueprint(blueprint)
        csrf = app.extensions.get("csrf")  # Flask-WTF's CSRFProtect, when set up before us
        if csrf is not None and hasattr(csrf, "exempt"):
            csrf.exempt(blueprint)  # logout checks the origin itself; the provider posts logouts
        app.register_error_handler(ProviderError, _provider_unavailable)
        app.register_error_handler(LockTimeout, _busy)
        app.before_request(renew_if_due)
        app.add_template_global(oidc_refresh_script)
        app.add_template_global(oidc_logout_form)

    @property
    def user(self) -> dict[str, Any] | None:
        """The signed-in user's claims, or None."""
        claims = signin.claims(session)
        if claims is None:
            relying_party()  # a clear error when init_app was forgotten
        return claims

    @property
    def access_token(self) -> str | None:
        """A valid access token of the signed-in user, for calling APIs on their behalf.

        Renewed with the refresh token first when it is about to expire; None when there is no
        signed-in user or the token has expired and cannot be renewed here.
        """
        party = relying_party()
        sign_in = signin.current(session)
        if sign_in is None:
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

    @overload
    def login_required(self, view: F) -> F: ...
    @overload
    def login_required(
        self, *, acr_values: str | Sequence[str] = (), max_age: int | None = None
    ) -> Callable[[F], F]: ...
    def login_required(
        self,
        view: F | None = None,
        *,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
    ) -> F | Callable[[F], F]:
        """Let only signed-in users in: a page load goes to sign-in and comes back, a script
        request gets ``401`` with JSON.

        With ``acr_values`` (one or several acceptable ``acr``) or ``max_age`` (seconds since
        the user authenticated), a step-up: a session whose sign-in does not meet them signs in
        again with those parameters, and the new ID token must meet them.
        """
        wanted = " ".join([acr_values] if isinstance(acr_values, str) else acr_values)
        age = -1 if max_age is None else max_age
        step_up = bool(wanted) or age >= 0

        def decorate(view: F) -> F:
            is_async = inspect.iscoroutinefunction(view)

            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                claims = signin.claims(session)
                if claims is not None and (not step_up or _meets_step_up(claims, wanted, age)):
                    return (
                        current_app.ensure_sync(view)(*args, **kwargs)
                        if is_async
                        else view(*args, **kwargs)
                    )
                party = relying_party()
                here = request.full_path.rstrip("?")
                if is_script_request(request):
                    if claims is None:
                        raise LoginRequired("Sign-in required.")
                    raise LoginRequired(
                        "A stronger sign-in is required.",
                        error="step_up_required",
                        login_url=url_for("oidc.login", step_up=flow.sign_step_up(wanted, age)),
                    )
                if claims is None and not step_up:
                    return redirect(url_for("oidc.login", next=here))
                return flow.start(party, here, silent=False, acr_values=wanted, max_age=age)

            return wrapper  # type: ignore[return-value]

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
    nonce: str | None = None, *, mode: str = "navigate", install: bool = False
) -> Markup:
    """The ``<script>`` tag of the bundled fetch wrapper, for templates.

    ``nonce`` is the page's CSP nonce; ``mode`` is ``"navigate"`` or ``"silent"``; ``install``
    replaces ``window.fetch`` with the wrapper.
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


def _meets_step_up(claims: dict[str, Any], acr_values: str, max_age: int) -> bool:
    leeway = relying_party().settings.clock_skew_seconds
    return flow.meets(claims, acr_values, max_age, clock.now(), leeway)


def _busy(exc: LockTimeout) -> Response:
    log.warning("a lock of the session store was held too long: %s", exc.key)
    return exc.get_response()  # type: ignore[return-value]


def _provider_unavailable(exc: ProviderError) -> Response:
    log.error("identity provider unavailable: %s", exc)
    return ProviderUnavailable(
        "The identity provider is unavailable. Please try again later."
    ).get_response()  # type: ignore[return-value]
