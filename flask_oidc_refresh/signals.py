"""Blinker signals, sent with the app as sender."""

from __future__ import annotations

from typing import Any

from blinker import Namespace, Signal
from flask import current_app

_signals = Namespace()

#: A user signed in; ``claims`` is the user's claims.
user_logged_in = _signals.signal("oidc-user-logged-in")
#: A user signed out here; ``claims`` is who they were.
user_logged_out = _signals.signal("oidc-user-logged-out")
#: The provider signed a user out (back-channel logout); ``sub``, ``sid`` (either may be None)
#: and ``sessions``, how many sessions were ended.
provider_logged_out = _signals.signal("oidc-provider-logged-out")
#: A session's tokens were renewed; ``claims`` and ``method`` (``"refresh_token"`` or
#: ``"prompt_none"``).
session_renewed = _signals.signal("oidc-session-renewed")
#: A renewal attempt failed; ``claims``, ``reason`` and ``ended``: True when the sign-in was
#: ended, False when it goes on (the browser renews instead, or the provider is retried later).
session_renewal_failed = _signals.signal("oidc-session-renewal-failed")


def send(signal: Signal, **data: Any) -> None:
    """Send ``signal`` with the current app as sender."""
    signal.send(current_app._get_current_object(), **data)  # type: ignore[attr-defined]
