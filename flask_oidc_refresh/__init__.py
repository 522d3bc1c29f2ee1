"""OpenID Connect sign-in for Flask that keeps sessions fresh."""

from __future__ import annotations

from .config import ConfigError
from .errors import (
    AccessDenied,
    ConfigurationProblem,
    CrossSiteRequest,
    InsufficientScope,
    InvalidToken,
    LoginError,
    LoginRequired,
    OIDCError,
    ProviderUnavailable,
    RenewalUnavailable,
    SessionStoreFull,
    SessionStoreUnavailable,
)
from .extension import OIDC
from .signals import (
    provider_logged_out,
    session_renewal_failed,
    session_renewed,
    user_logged_in,
    user_logged_out,
)

__all__ = [
    "OIDC",
    "AccessDenied",
    "ConfigError",
    "ConfigurationProblem",
    "CrossSiteRequest",
    "InsufficientScope",
    "InvalidToken",
    "LoginError",
    "LoginRequired",
    "OIDCError",
    "ProviderUnavailable",
    "RenewalUnavailable",
    "SessionStoreFull",
    "SessionStoreUnavailable",
    "provider_logged_out",
    "session_renewal_failed",
    "session_renewed",
    "user_logged_in",
    "user_logged_out",
]
