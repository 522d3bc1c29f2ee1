"""``OIDC_*`` configuration: defaults, and one frozen settings object read at ``init_app``."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict
from urllib.parse import urlsplit

import requests

#: Every key the extension reads, with its default. ``init_app`` applies these with
#: ``app.config.setdefault``; the docs' configuration page describes each one.
DEFAULTS: dict[str, Any] = {
    "OIDC_ISSUER": None,
    "OIDC_CLIENT_ID": None,
    "OIDC_CLIENT_SECRET": None,
    "OIDC_CLIENT_AUTH_METHOD": None,
    "OIDC_CLIENT_PRIVATE_KEY": None,
    "OIDC_CLIENT_PRIVATE_KEY_ID": None,
    "OIDC_SCOPES": None,
    "OIDC_AUTH_PARAMS": {},
    "OIDC_AUTH_PARAMS_FROM_REQUEST": ["login_hint", "ui_locales", "kc_idp_hint", "domain_hint"],
    "OIDC_URL_PREFIX": "/oidc",
    "OIDC_REDIRECT_URI": None,
    "OIDC_AUTHORIZATION_ENDPOINT": None,
    "OIDC_TOKEN_ENDPOINT": None,
    "OIDC_JWKS_URI": None,
    "OIDC_USERINFO_ENDPOINT": None,
    "OIDC_END_SESSION_ENDPOINT": None,
    "OIDC_REVOCATION_ENDPOINT": None,
    "OIDC_INTROSPECTION_ENDPOINT": None,
    "OIDC_ID_TOKEN_ALGORITHMS": None,
    "OIDC_FETCH_USERINFO": True,
    "OIDC_MAX_STATES": 5,
    "OIDC_STATE_LIFETIME_SECONDS": 600,
    "OIDC_HTTP_TIMEOUT_SECONDS": 10.0,
    "OIDC_HTTP_CA_BUNDLE": None,
    "OIDC_HTTP_VERIFY": True,
    "OIDC_HTTP_PROXY": None,
    "OIDC_HTTP_SESSION": None,
    "OIDC_DISCOVERY_CACHE_SECONDS": 3600,
    "OIDC_JWKS_REFETCH_INTERVAL_SECONDS": 60,
    "OIDC_CLOCK_SKEW_SECONDS": 60,
    "OIDC_ALLOW_INSECURE_HTTP": False,
    "OIDC_LOGIN_REDIRECT_URL": "/",
    "OIDC_LOGOUT_REDIRECT_URL": "/",
    "OIDC_LOGIN_REDIRECT_URL_FAILURE": None,
    "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS": 900,
    "OIDC_EXEMPT_URLS": [],
    "OIDC_USE_REFRESH_TOKENS": None,
    "OIDC_REFRESH_RETRY_SECONDS": 30,
    "OIDC_SESSION_TOUCH_FRACTION": 0.1,
    "OIDC_RENEWAL_GRACE_SECONDS": None,
    "OIDC_KEEP_SESSION_KEYS": [],
    "OIDC_STORE_MIN_FREE_MB": 100,
    "OIDC_PROVIDERS": {},
    "OIDC_REDIS_CLIENT_CACHE": True,
    "OIDC_REDIS_MIN_REPLICAS": 0,
    "OIDC_API_AUDIENCE": None,
    "OIDC_ACCESS_TOKEN_VALIDATION": "auto",
    "OIDC_ACCESS_TOKEN_TYPES": ["at+jwt"],
    "OIDC_INTROSPECTION_CACHE_SECONDS": 60,
    "OIDC_ALLOWED_GROUPS": [],
    "OIDC_GROUPS_CLAIM": "groups",
    "OIDC_CHECK_ON_STARTUP": False,
}

CLIENT_AUTH_METHODS = (
    "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none",
)  # fmt: skip
#: Asymmetric signature algorithms accepted when the provider advertises none we know.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
ENDPOINT_KEYS = {
    "authorization_endpoint": "OIDC_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_TOKEN_ENDPOINT",
    "jwks_uri": "OIDC_JWKS_URI",
    "userinfo_endpoint": "OIDC_USERINFO_ENDPOINT",
    "end_session_endpoint": "OIDC_END_SESSION_ENDPOINT",
    "revocation_endpoint": "OIDC_REVOCATION_ENDPOINT",
    "introspection_endpoint": "OIDC_INTROSPECTION_ENDPOINT",
}
#: How bearer tokens are checked: JWTs locally and other tokens by introspection, or one way.
ACCESS_TOKEN_VALIDATIONS = ("auto", "jwt", "introspection")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


#: Endpoints without which there is no sign-in; when all are set, discovery is skipped.
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a path on this site (``/reports?y=1``), which no browser would take
    to another host."""
    if not target.startswith("/") or target.startswith("//"):
        return False
    if any(ord(char) < 32 or char in "\\\x7f" for char in target):
        return False
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


class Options(TypedDict, total=False):
    """Keyword options of ``OIDC(...)``: ``OIDC_*`` settings without the prefix, in lower case
    (listed here alphabetically)."""

    access_token_types: Sequence[str]
    access_token_validation: str
    allow_insecure_http: bool
    allowed_groups: Sequence[str]
    api_audience: str
    check_on_startup: bool
    auth_params: Mapping[str, str]
    auth_params_from_request: Sequence[str]
    authorization_endpoint: str
    client_auth_method: str
    client_id: str
    client_private_key: str | Mapping[str, Any]
    client_private_key_id: str
    client_secret: str
    clock_skew_seconds: int
    discovery_cache_seconds: int
    end_session_endpoint: str
    exempt_urls: Sequence[str | re.Pattern[str]]
    fetch_userinfo: bool
    groups_claim: str
    http_ca_bundle: str
    http_proxy: str
    http_session: requests.Session
    http_timeout_seconds: float
    http_verify: bool
    id_token_algorithms: Sequence[str]
    introspection_cache_seconds: int
    introspection_endpoint: str
    issuer: str
    jwks_refetch_interval_seconds: int
    jwks_uri: str
    keep_session_keys: Sequence[str]
    login_redirect_url: str
    login_redirect_url_failure: str
    logout_redirect_url: str
    max_states: int
    redirect_uri: str
    refresh_retry_seconds: int
    renew_id_token_expiry_seconds: int
    renewal_grace_seconds: int
    revocation_endpoint: str
    scopes: Sequence[str]
    session_touch_fraction: float
    state_lifetime_seconds: int
    store_min_free_mb: int
    redis_client_cache: bool
    redis_min_replicas: int
    token_endpoint: str
    url_prefix: str
    use_refresh_tokens: bool
    userinfo_endpoint: str


def config_keys(options: Mapping[str, Any]) -> dict[str, Any]:
    """``OIDC(...)`` options as config keys; an unknown option is a :class:`TypeError`."""
    keys = {f"OIDC_{name.upper()}": value for name, value in options.items()}
    unknown = set(keys) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown OIDC options: {', '.join(sorted(unknown))}")
    return keys


#: The settings a further provider (``OIDC_PROVIDERS``) may have of its own.
PROVIDER_KEYS = frozenset({
    "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_CLIENT_AUTH_METHOD",
    "OIDC_CLIENT_PRIVATE_KEY", "OIDC_CLIENT_PRIVATE_KEY_ID", *ENDPOINT_KEYS.values(),
    "OIDC_ID_TOKEN_ALGORITHMS", "OIDC_SCOPES", "OIDC_AUTH_PARAMS",
    "OIDC_AUTH_PARAMS_FROM_REQUEST", "OIDC_FETCH_USERINFO", "OIDC_USE_REFRESH_TOKENS",
    "OIDC_HTTP_TIMEOUT_SECONDS", "OIDC_HTTP_CA_BUNDLE", "OIDC_HTTP_PROXY",
    "OIDC_DISCOVERY_CACHE_SECONDS", "OIDC_JWKS_REFETCH_INTERVAL_SECONDS",
    "OIDC_CLOCK_SKEW_SECONDS", "OIDC_ACCESS_TOKEN_TYPES",
})  # fmt: skip
#: Of those, what a further provider takes from the app's settings unless it sets its own.
SHARED_PROVIDER_KEYS = frozenset({
    "OIDC_HTTP_TIMEOUT_SECONDS", "OIDC_HTTP_CA_BUNDLE", "OIDC_HTTP_PROXY",
    "OIDC_DISCOVERY_CACHE_SECONDS", "OIDC_JWKS_REFETCH_INTERVAL_SECONDS",
    "OIDC_CLOCK_SKEW_SECONDS",
})  # fmt: skip
#: Settings of other OpenID Connect libraries (mozilla-django-oidc, flask-oidc), with ours.
FOREIGN_KEYS = {
    "OIDC_RP_CLIENT_ID": "OIDC_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET": "OIDC_CLIENT_SECRET",
    "OIDC_RP_SCOPES": "OIDC_SCOPES",
    "OIDC_RP_SIGN_ALGO": "OIDC_ID_TOKEN_ALGORITHMS",
    "OIDC_RP_IDP_SIGN_KEY": "OIDC_JWKS_URI",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "OIDC_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT": "OIDC_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT": "OIDC_USERINFO_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT": "OIDC_JWKS_URI",
    "OIDC_OP_LOGOUT_ENDPOINT": "OIDC_END_SESSION_ENDPOINT",
    "OIDC_OP_LOGOUT_URL_METHOD": "OIDC_END_SESSION_ENDPOINT",
    "OIDC_AUTHENTICATION_CALLBACK_URL": "OIDC_REDIRECT_URI",
    "OIDC_CALLBACK_ROUTE": "OIDC_URL_PREFIX",
    "OIDC_TIMEOUT": "OIDC_HTTP_TIMEOUT_SECONDS",
    "OIDC_USER_INFO_ENABLED": "OIDC_FETCH_USERINFO",
    "OIDC_TOKEN_USE_BASIC_AUTH": "OIDC_CLIENT_AUTH_METHOD",
    "OIDC_INTROSPECTION_AUTH_METHOD": "OIDC_CLIENT_AUTH_METHOD",
    "OIDC_OP_INTROSPECTION_ENDPOINT": "OIDC_INTROSPECTION_ENDPOINT",
    "OIDC_RESOURCE_SERVER_AUDIENCE": "OIDC_API_AUDIENCE",
    "OIDC_ISSUER_URL": "OIDC_ISSUER",
    "OIDC_SERVER_METADATA_URL": "OIDC_ISSUER",
}
#: Settings of other libraries that need nothing here, and why.
NEEDLESS_KEYS = {
    "OIDC_USE_NONCE": "a nonce is always sent and checked",
    "OIDC_USE_PKCE": "PKCE (S256) is always used",
    "OIDC_STORE_ACCESS_TOKEN": "tokens are always kept server-side (oidc.access_token)",
    "OIDC_STORE_ID_TOKEN": "tokens are always kept server-side",
    "OIDC_CLIENT_SECRETS": "set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET instead",
    "OIDC_CREATE_USER": "create users in an @oidc.on_login handler",
    "OIDC_RESOURCE_SERVER_ONLY": "an API-only app uses @oidc.accept_token views only",
    "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS_SKEW": "see OIDC_CLOCK_SKEW_SECONDS",
}


#: Authorization request parameters that the extension sets itself, for its security.
PROTECTED_PARAMS = frozenset({
    "response_type", "client_id", "redirect_uri", "state", "nonce", "code_challenge",
    "code_challenge_method", "code_verifier", "scope", "request", "request_uri", "response_mode",
})  # fmt: skip


def _mapping(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A mapping; from the environment as a JSON object."""
    value = config.get(key) or {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping (or a JSON object).")
    return value


def _auth_params(config: Mapping[str, Any]) -> Mapping[str, str]:
    params = _mapping(config, "OIDC_AUTH_PARAMS")
    protected = sorted(set(params) & PROTECTED_PARAMS)
    if protected:
        raise ConfigError(f"OIDC_AUTH_PARAMS cannot set {', '.join(protected)}.")
    return {str(key): str(value) for key, value in params.items()}


def _auth_params_from_request(config: Mapping[str, Any]) -> tuple[str, ...]:
    names = tuple(_list(config, "OIDC_AUTH_PARAMS_FROM_REQUEST"))
    protected = sorted(set(names) & PROTECTED_PARAMS)
    if protected:
        raise ConfigError(f"OIDC_AUTH_PARAMS_FROM_REQUEST cannot allow {', '.join(protected)}.")
    return names


def _providers(config: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    providers = _mapping(config, "OIDC_PROVIDERS")
    if not all(isinstance(own, Mapping) for own in providers.values()):
        raise ConfigError("OIDC_PROVIDERS must map provider names to their settings.")
    for name in providers:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
            raise ConfigError(f"OIDC_PROVIDERS: {name!r} is not a name (a-z, 0-9, _ and -).")
    return dict(providers)


def _choice(config: Mapping[str, Any], key: str, choices: Sequence[str]) -> str:
    value = config.get(key)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, not {value!r}.")
    return str(value)


def _access_token_types(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``typ`` headers a JWT access token may have, compared as RFC 7515 says: without
    case, and without an ``application/`` prefix."""
    types = tuple(_list(config, "OIDC_ACCESS_TOKEN_TYPES"))
    if not types:
        raise ConfigError("OIDC_ACCESS_TOKEN_TYPES must name at least one type (at+jwt).")
    return tuple(media_type(t) for t in types)


def media_type(value: str) -> str:
    """A ``typ`` header in its short form: ``application/at+jwt`` is ``at+jwt``."""
    value = value.lower()
    return value.removeprefix("application/")


def _http_verify(config: Mapping[str, Any], allow_insecure: bool) -> bool:
    verify = _bool(config, "OIDC_HTTP_VERIFY")
    if not verify and not allow_insecure:
        raise ConfigError(
            "OIDC_HTTP_VERIFY = False turns TLS verification off: set OIDC_ALLOW_INSECURE_HTTP "
            "too (never in production), or give OIDC_HTTP_CA_BUNDLE for a private CA."
        )
    return verify


def _http_session(config: Mapping[str, Any], allow_insecure: bool) -> requests.Session | None:
    session = config.get("OIDC_HTTP_SESSION")
    if session is not None and not isinstance(session, requests.Session):
        raise ConfigError("OIDC_HTTP_SESSION must be a requests.Session.")
    if session is not None and session.verify is False and not allow_insecure:
        raise ConfigError(
            "OIDC_HTTP_SESSION has TLS verification off: set OIDC_ALLOW_INSECURE_HTTP too "
            "(never in production), or give OIDC_HTTP_CA_BUNDLE for a private CA."
        )
    return session


def _ca_bundle(config: Mapping[str, Any]) -> str | None:
    path = _optional_str(config, "OIDC_HTTP_CA_BUNDLE") or None
    if path is not None and not os.path.exists(path):
        raise ConfigError(f"OIDC_HTTP_CA_BUNDLE: no file or folder at {path!r}.")
    return path


def unknown_key_messages(config: Mapping[str, Any]) -> list[str]:
    """What to say of each ``OIDC_*`` key in ``config`` that the extension does not read: the
    key it probably means, or why nothing is needed."""
    messages = []
    for key in sorted(k for k in config if k.startswith("OIDC_") and k not in DEFAULTS):
        if key in NEEDLESS_KEYS:
            messages.append(f"{key} is not a Flask-OIDC-Refresh setting: {NEEDLESS_KEYS[key]}.")
            continue
        ours = FOREIGN_KEYS.get(key) or next(
            iter(difflib.get_close_matches(key, DEFAULTS, n=1, cutoff=0.75)), None
        )
        hint = f"; did you mean {ours}?" if ours else " and is ignored."
        messages.append(f"{key} is not a Flask-OIDC-Refresh setting{hint}")
    return messages


class ConfigError(RuntimeError):
    """A missing or invalid ``OIDC_*`` setting; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """The ``OIDC_*`` settings of one app, checked and converted to their types.

    Each field is its config key without the prefix, in lower case.
    """

    issuer: str
    client_id: str
    client_secret: str | None
    client_auth_method: str | None
    client_private_key: str | Mapping[str, Any] | None
    client_private_key_id: str | None
    scopes: tuple[str, ...] | None
    auth_params: Mapping[str, str]
    auth_params_from_request: tuple[str, ...]
    url_prefix: str
    redirect_uri: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    jwks_uri: str | None
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    revocation_endpoint: str | None
    introspection_endpoint: str | None
    id_token_algorithms: tuple[str, ...] | None
    fetch_userinfo: bool
    max_states: int
    state_lifetime_seconds: int
    http_timeout_seconds: float
    http_ca_bundle: str | None
    http_verify: bool
    http_proxy: str | None
    http_session: requests.Session | None
    discovery_cache_seconds: int
    jwks_refetch_interval_seconds: int
    clock_skew_seconds: int
    allow_insecure_http: bool
    login_redirect_url: str
    logout_redirect_url: str
    login_redirect_url_failure: str | None
    renew_id_token_expiry_seconds: int
    exempt_urls: tuple[str | re.Pattern[str], ...]
    use_refresh_tokens: bool | None
    refresh_retry_seconds: int
    session_touch_fraction: float
    renewal_grace_seconds: int
    keep_session_keys: tuple[str, ...]
    store_min_free_mb: int
    redis_client_cache: bool
    redis_min_replicas: int
    providers: Mapping[str, Mapping[str, Any]]
    api_audience: str | None
    access_token_validation: str
    access_token_types: tuple[str, ...]
    introspection_cache_seconds: int
    allowed_groups: tuple[str, ...]
    groups_claim: str
    check_on_startup: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Read and check every ``OIDC_*`` key; strings (from the environment) are converted."""
        allow_http = _bool(config, "OIDC_ALLOW_INSECURE_HTTP")
        issuer = _optional_str(config, "OIDC_ISSUER")
        if issuer is not None:
            check_url(issuer, "OIDC_ISSUER", allow_http)
            if "{" in issuer:
                raise ConfigError(
                    "OIDC_ISSUER is a template: give the issuer itself (Entra ID: "
                    "https://login.microsoftonline.com/organizations/v2.0, or a tenant's)."
                )
        endpoints = {
            name: _endpoint(config, key, allow_http) for name, key in ENDPOINT_KEYS.items()
        }
        if issuer is None:
            raise ConfigError(
                "OIDC_ISSUER is not set: set it to the provider's issuer URL (its discovery "
                "document is read from there unless the endpoints are set explicitly)."
            )
        client_id = _optional_str(config, "OIDC_CLIENT_ID")
        if not client_id:
            raise ConfigError(
                "OIDC_CLIENT_ID is not set: the client id registered at the provider."
            )
        client_secret = _optional_str(config, "OIDC_CLIENT_SECRET") or None
        auth_method = _optional_str(config, "OIDC_CLIENT_AUTH_METHOD") or None
        if auth_method is not None and auth_method not in CLIENT_AUTH_METHODS:
            raise ConfigError(f"OIDC_CLIENT_AUTH_METHOD must be one of {CLIENT_AUTH_METHODS}.")
        private_key = config.get("OIDC_CLIENT_PRIVATE_KEY") or None
        if private_key is not None and not isinstance(private_key, (str, Mapping)):
            raise ConfigError("OIDC_CLIENT_PRIVATE_KEY must be PEM text, a JWK or a file path.")
        if auth_method == "private_key_jwt" and private_key is None:
            raise ConfigError(
                "OIDC_CLIENT_PRIVATE_KEY is not set: private_key_jwt signs with the app's key."
            )
        needs_secret = auth_method in (
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
        )
        if not client_secret and (needs_secret or (auth_method is None and private_key is None)):
            raise ConfigError(
                "OIDC_CLIENT_SECRET is not set: the client secret from the provider (or set "
                "OIDC_CLIENT_PRIVATE_KEY for private_key_jwt, or OIDC_CLIENT_AUTH_METHOD = "
                "'none' for a public client)."
            )
        scopes = None
        if config.get("OIDC_SCOPES") not in (None, ""):
            scopes = tuple(_list(config, "OIDC_SCOPES"))
            if "openid" not in scopes:
                raise ConfigError("OIDC_SCOPES must include 'openid'.")
        prefix = _str(config, "OIDC_URL_PREFIX")
        if not prefix.startswith("/"):
            raise ConfigError("OIDC_URL_PREFIX must start with '/'.")
        renew_after = _int(config, "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", minimum=1)
        algorithms = config.get("OIDC_ID_TOKEN_ALGORITHMS")
        if algorithms is not None:
            algorithms = _list(config, "OIDC_ID_TOKEN_ALGORITHMS")
            if not algorithms or "none" in algorithms:
                raise ConfigError(
                    "OIDC_ID_TOKEN_ALGORITHMS must list signing algorithms, not 'none'."
                )
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            client_auth_method=auth_method,
            client_private_key=private_key,
            client_private_key_id=_optional_str(config, "OIDC_CLIENT_PRIVATE_KEY_ID") or None,
            scopes=scopes,
            auth_params=_auth_params(config),
            auth_params_from_request=_auth_params_from_request(config),
            url_prefix=prefix,
            redirect_uri=_optional_str(config, "OIDC_REDIRECT_URI"),
            **endpoints,
            id_token_algorithms=None if algorithms is None else tuple(algorithms),
            fetch_userinfo=_bool(config, "OIDC_FETCH_USERINFO"),
            max_states=_int(config, "OIDC_MAX_STATES", minimum=1),
            state_lifetime_seconds=_int(config, "OIDC_STATE_LIFETIME_SECONDS", minimum=1),
            http_timeout_seconds=_float(config, "OIDC_HTTP_TIMEOUT_SECONDS"),
            http_ca_bundle=_ca_bundle(config),
            http_verify=_http_verify(config, allow_http),
            http_proxy=_optional_str(config, "OIDC_HTTP_PROXY") or None,
            http_session=_http_session(config, allow_http),
            discovery_cache_seconds=_int(config, "OIDC_DISCOVERY_CACHE_SECONDS", minimum=0),
            jwks_refetch_interval_seconds=_int(
                config, "OIDC_JWKS_REFETCH_INTERVAL_SECONDS", minimum=0
            ),
            clock_skew_seconds=_int(config, "OIDC_CLOCK_SKEW_SECONDS", minimum=0),
            allow_insecure_http=allow_http,
            login_redirect_url=_local_path(config, "OIDC_LOGIN_REDIRECT_URL"),
            logout_redirect_url=_local_path(config, "OIDC_LOGOUT_REDIRECT_URL"),
            login_redirect_url_failure=_optional_str(config, "OIDC_LOGIN_REDIRECT_URL_FAILURE"),
            renew_id_token_expiry_seconds=renew_after,
            exempt_urls=_exempt_urls(config),
            use_refresh_tokens=None
            if config.get("OIDC_USE_REFRESH_TOKENS") in (None, "")
            else _bool(config, "OIDC_USE_REFRESH_TOKENS"),
            refresh_retry_seconds=_int(config, "OIDC_REFRESH_RETRY_SECONDS", minimum=1),
            session_touch_fraction=_float(config, "OIDC_SESSION_TOUCH_FRACTION", allow_zero=True),
            renewal_grace_seconds=renew_after
            if config.get("OIDC_RENEWAL_GRACE_SECONDS") in (None, "")
            else _int(config, "OIDC_RENEWAL_GRACE_SECONDS", minimum=0),
            keep_session_keys=tuple(_list(config, "OIDC_KEEP_SESSION_KEYS")),
            store_min_free_mb=_int(config, "OIDC_STORE_MIN_FREE_MB", minimum=0),
            redis_client_cache=_bool(config, "OIDC_REDIS_CLIENT_CACHE"),
            redis_min_replicas=_int(config, "OIDC_REDIS_MIN_REPLICAS", minimum=0),
            providers=_providers(config),
            api_audience=_optional_str(config, "OIDC_API_AUDIENCE"),
            access_token_validation=_choice(
                config, "OIDC_ACCESS_TOKEN_VALIDATION", ACCESS_TOKEN_VALIDATIONS
            ),
            access_token_types=_access_token_types(config),
            introspection_cache_seconds=_int(config, "OIDC_INTROSPECTION_CACHE_SECONDS", minimum=0),
            allowed_groups=tuple(_list(config, "OIDC_ALLOWED_GROUPS")),
            groups_claim=_str(config, "OIDC_GROUPS_CLAIM"),
            check_on_startup=_bool(config, "OIDC_CHECK_ON_STARTUP"),
        )

    def for_provider(self, config: Mapping[str, Any], name: str) -> Settings:
        """The settings of the further provider ``name``: its own keys of
        :data:`PROVIDER_KEYS` (``ISSUER``, ``CLIENT_ID``, ... with or without ``OIDC_``); of
        the app's, only the HTTP client's and the clock skew (never a credential or an
        endpoint of the default provider)."""
        own = {}
        for key, value in self.providers[name].items():
            full = key.upper() if key.upper().startswith("OIDC_") else f"OIDC_{key.upper()}"
            if full not in PROVIDER_KEYS:
                raise ConfigError(f"OIDC_PROVIDERS[{name!r}]: {key} cannot be set per provider.")
            own[full] = value
        inherited = {k: DEFAULTS[k] for k in PROVIDER_KEYS if k not in SHARED_PROVIDER_KEYS}
        try:
            return Settings.from_config({**config, **inherited, **own, "OIDC_PROVIDERS": {}})
        except ConfigError as exc:
            raise ConfigError(f"OIDC_PROVIDERS[{name!r}]: {exc}") from None

    @property
    def renewal_lock_seconds(self) -> float:
        """How long one request may hold a token record's lock, and the others wait for it: up
        to three provider calls (token, discovery, keys), each within its deadline, and a
        margin."""
        return 3 * self.http_timeout_seconds + 5

    def as_config(self) -> dict[str, Any]:
        """The settings as ``OIDC_*`` keys, with the values in effect."""
        config = {}
        for field in fields(self):
            value = getattr(self, field.name)
            config[f"OIDC_{field.name.upper()}"] = (
                list(value) if isinstance(value, tuple) else value
            )
        return config

    @property
    def endpoints(self) -> dict[str, str]:
        """The endpoints set explicitly, by their discovery names."""
        configured = {name: getattr(self, name) for name in ENDPOINT_KEYS}
        return {name: url for name, url in configured.items() if url is not None}


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine."""
    return urlsplit(url).hostname in LOOPBACK_HOSTS


def check_url(url: str, key: str, allow_http: bool) -> None:
    """Refuse anything but ``https`` (``http`` only on loopback or when explicitly allowed)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and (allow_http or is_loopback(url)):
        return
    raise ConfigError(
        f"{key} must be an https:// URL (got {url!r}); plain http:// is accepted only for "
        "loopback hosts, or everywhere with OIDC_ALLOW_INSECURE_HTTP = True."
    )


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {type(value).__name__}.")
    return value


def _str(config: Mapping[str, Any], key: str) -> str:
    value = _optional_str(config, key)
    if value is None:
        raise ConfigError(f"{key} must not be empty.")
    return value


def _endpoint(config: Mapping[str, Any], key: str, allow_http: bool) -> str | None:
    url = _optional_str(config, key)
    if url is not None:
        check_url(url, key, allow_http)
    return url


def _local_path(config: Mapping[str, Any], key: str) -> str:
    value = _str(config, key)
    if not is_local_path(value):
        raise ConfigError(f"{key} must be a path on this site, such as '/', not {value!r}.")
    return value


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(f"{key} must be true or false, not {value!r}.")


def _int(config: Mapping[str, Any], key: str, minimum: int) -> int:
    value = config.get(key)
    try:
        number = (
            int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        )
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ConfigError(f"{key} must be a whole number of at least {minimum}, not {value!r}.")
    return number


def _float(config: Mapping[str, Any], key: str, *, allow_zero: bool = False) -> float:
    value = config.get(key)
    try:
        number = (
            float(value)
            if isinstance(value, int | float | str) and not isinstance(value, bool)
            else None
        )
    except ValueError:
        number = None
    if number is None or number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{key} must be a positive number, not {value!r}.")
    return number


def _list(config: Mapping[str, Any], key: str) -> list[str]:
    """A list of strings; from the environment as JSON or separated by commas or spaces."""
    value = config.get(key)
    if isinstance(value, str):
        value = (
            json.loads(value)
            if value.lstrip().startswith("[")
            else re.split(r"[\s,]+", value.strip())
        )
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key} must be a list of strings, not {value!r}.")
    return [item for item in value if item]


def _exempt_urls(config: Mapping[str, Any]) -> tuple[str | re.Pattern[str], ...]:
    value = config.get("OIDC_EXEMPT_URLS")
    if isinstance(value, str):
        return tuple(_list(config, "OIDC_EXEMPT_URLS"))
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str | re.Pattern) for v in value
    ):
        raise ConfigError(
            "OIDC_EXEMPT_URLS must be a list of paths, endpoint names or compiled regexes."
        )
    return tuple(value)
