"""The errors the extension answers with: a short page for a browser, JSON for a script.

Each is a Werkzeug ``HTTPException``, so an app can restyle it with ``app.errorhandler``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, json, request, url_for
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from .navigation import is_script_request

#: What a visitor reads when the app's sign-in settings do not fit its provider.
MISCONFIGURED = (
    "Sign-in is not available: this application's connection to its identity provider is "
    "misconfigured. Please tell its administrators."
)


def explained(message: str, reason: object) -> str:
    """``message`` for the page, with the ``reason`` behind it in debug mode only: a developer
    sees what to fix, a visitor of a production site a safe message."""
    return f"{message} Reason: {reason}." if current_app.debug else message


class OIDCError(HTTPException):
    """Base class: ``error`` is the machine-readable code sent to scripts."""

    code = 400
    error = "invalid_request"

    def __init__(self, description: str, *, error: str | None = None) -> None:
        super().__init__(description)
        if error is not None:
            self.error = error

    def answers_json(self) -> bool:
        """Whether the answer is a JSON object (to a script) rather than a page."""
        return is_script_request(request)

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        """A JSON object for script requests, the standard HTML error page otherwise."""
        if self.answers_json():
            return json.dumps({"error": self.error, "error_description": self.description})
        return super().get_body(environ, scope)

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """The body's content type, and no caching."""
        kind = "application/json" if self.answers_json() else "text/html; charset=utf-8"
        return [("Content-Type", kind), ("Cache-Control", "no-store")]


class LoginError(OIDCError):
    """A sign-in response that is missing, forged, replayed, or refused by the provider (400)."""


class LoginRequired(OIDCError):
    """A script asked for a protected resource without a signed-in user (401). The
    ``login_url`` header names the sign-in page, which the bundled script goes to."""

    code = 401
    error = "login_required"

    def __init__(
        self,
        description: str,
        *,
        error: str | None = None,
        login_url: str | None = None,
        bearer: bool = False,
    ) -> None:
        super().__init__(description, error=error)
        self.login_url = login_url
        self.bearer = bearer

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """The sign-in page beside the usual headers; for a view that also takes bearer
        tokens, the ``WWW-Authenticate: Bearer`` challenge too."""
        login_url = self.login_url or url_for("oidc.login")
        headers = [*super().get_headers(environ, scope), ("login_url", login_url)]
        return [*headers, ("WWW-Authenticate", "Bearer")] if self.bearer else headers


class CrossSiteRequest(OIDCError):
    """A state-changing request that came from another site (403)."""

    code = 403
    error = "cross_site_request"


class ConfigurationProblem(OIDCError):
    """The app's settings do not fit its provider: the provider refused the app's credentials,
    or its discovery document is not where ``OIDC_ISSUER`` says (500). Outside debug mode the
    page says only that sign-in is misconfigured; the log and the debug page name the setting."""

    code = 500
    error = "configuration_problem"


class ProviderUnavailable(OIDCError):
    """The provider could not be reached or answered nonsense (502)."""

    code = 502
    error = "provider_unavailable"


class RenewalUnavailable(OIDCError, ServiceUnavailable):
    """The session is due and could not be renewed now; nothing was lost, try again (503)."""

    code = 503
    error = "renewal_unavailable"


class SessionStoreUnavailable(OIDCError):
    """The session store (Redis) cannot be reached; nobody was signed out (503)."""

    code = 503
    error = "session_store_unavailable"


class SessionStoreFull(OIDCError):
    """The embedded store's disk is nearly full: a session without a sign-in was not saved
    (signed-in users are never refused) (503)."""

    code = 503
    error = "session_store_full"


class AccessDenied(OIDCError):
    """The signed-in user, or the token's subject, lacks what the view or the app requires: a
    claim (a group), or the app's sign-in gate (403)."""

    code = 403
    error = "access_denied"


class BearerError(OIDCError):
    """A bearer token that cannot be used (RFC 6750): always JSON, with the error in a
    ``WWW-Authenticate: Bearer`` header too; never a redirect, never a cookie."""

    code = 401
    error = "invalid_token"

    def __init__(self, description: str, *, error: str | None = None, scope: str = "") -> None:
        super().__init__(description, error=error)
        self.scope = scope

    def answers_json(self) -> bool:
        """Always: API clients are no browsers."""
        return True

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """JSON, no caching, and the challenge."""
        values = {"error": self.error, "error_description": self.description, "scope": self.scope}
        challenge = ", ".join(
            f'{name}="{_quotable(value)}"' for name, value in values.items() if value
        )
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", f"Bearer {challenge}")]


class InvalidToken(BearerError):
    """No bearer token, or one that is malformed, forged, expired or meant for another API
    (401 ``invalid_token``)."""


class InsufficientScope(BearerError):
    """A valid bearer token without a scope the view requires (403 ``insufficient_scope``)."""

    code = 403
    error = "insufficient_scope"


def _quotable(text: str) -> str:
    """``text`` with only the characters RFC 6750 allows in its quoted values (printable ASCII
    but ``"`` and ``\\``)."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in text)
