"""Per-app state, kept under ``app.extensions["oidc"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from .config import Settings
from .provider import Provider
from .store import TokenStore, token_store_for

LoginHandler = Callable[[dict[str, Any]], Any]


@dataclass
class OIDCState:
    """What one app's requests share: settings, the provider, and the app's hooks."""

    settings: Settings
    provider: Provider
    login_handlers: list[LoginHandler] = field(default_factory=list)
    exempt_endpoints: dict[str, bool] = field(default_factory=dict)
    exempt_version: int = 0
    _token_store: TokenStore | None = None

    @property
    def token_store(self) -> TokenStore:
        """The store of token records that fits the app's session backend (chosen on first use,
        so that an app may set up Flask-Session after ``init_app``)."""
        if self._token_store is None:
            self._token_store = token_store_for(current_app.session_interface)
        return self._token_store


def get_state(app: Flask | None = None) -> OIDCState:
    """The state of ``app`` (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        state: OIDCState = app.extensions["oidc"]
    except KeyError:
        raise RuntimeError(
            "The OIDC extension is not registered on this app; did you forget to call "
            "oidc.init_app(app)?"
        ) from None
    return state
