"""One app as an OpenID Connect relying party: what its requests share, under
``app.extensions["oidc"]``. Each entry point (hook, view, property) fetches it once and passes
it down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request, current_app

from .bearer import CheckedTokens
from .config import Settings
from .exemptions import Exemptions
from .provider import Provider
from .sealing import Sealer
from .store import TokenStore, backend_for

LoginHandler = Callable[[dict[str, Any]], Any]
ClaimsCheck = Callable[[dict[str, Any]], bool]


@dataclass
class RelyingParty:
    """Settings, the providers, the token store, and the hooks and exemptions of one app."""

    settings: Settings
    #: The providers by name; ``""`` is the one of the top-level settings, the default.
    providers: dict[str, Provider]
    exemptions: Exemptions
    login_handlers: list[LoginHandler]
    renew_handlers: list[LoginHandler]
    sign_in_checks: list[ClaimsCheck]
    #: Bearer tokens checked already, with their claims.
    checked_tokens: CheckedTokens = field(default_factory=CheckedTokens, repr=False)
    _token_store: TokenStore | None = field(default=None, repr=False)

    @property
    def token_store(self) -> TokenStore:
        """The token store that fits the app's session backend (chosen on first use, so that an
        app may set up Flask-Session after ``init_app``)."""
        if self._token_store is None:
            self._token_store = TokenStore(
                backend_for(current_app.session_interface),
                Sealer(secret_keys()),
                record_lifetime=int(current_app.permanent_session_lifetime.total_seconds()),
                lock_seconds=self.settings.renewal_lock_seconds,
            )
        return self._token_store

    @property
    def provider(self) -> Provider:
        """The default provider (the top-level settings')."""
        return self.providers[""]

    def provider_named(self, name: str) -> Provider | None:
        """The provider ``name`` (``""``: the default one); None when the settings no longer
        have it."""
        return self.providers.get(name)

    def is_exempt(self, request: Request) -> bool:
        """Whether ``request`` skips session renewal."""
        view = current_app.view_functions.get(request.endpoint or "")
        return self.exemptions.cover(request, view, self.settings.exempt_urls)


def secret_keys() -> list[str | bytes]:
    """The current app's secret key, then its ``SECRET_KEY_FALLBACKS`` (newest first)."""
    fallbacks = current_app.config.get("SECRET_KEY_FALLBACKS") or []
    return [key for key in (current_app.secret_key, *fallbacks) if key]


def relying_party(app: Flask | None = None) -> RelyingParty:
    """The relying party of ``app`` (default: the current app)."""
    extensions = (app or current_app).extensions
    try:
        party: RelyingParty = extensions["oidc"]
    except KeyError:
        raise RuntimeError(
            "The OIDC extension is not registered on this app; did you forget to call "
            "oidc.init_app(app)?"
        ) from None
    return party
