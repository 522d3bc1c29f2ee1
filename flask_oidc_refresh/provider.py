"""The OpenID Provider as seen from here: discovery and keys, cached; timeouts on every call."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, Key, KeyParameters, KeySet, OctKey

from . import clock
from .access_tokens import validate_jwt_access_token
from .client_auth import ClientAuth
from .config import ASYMMETRIC_ALGORITHMS, ENDPOINT_KEYS, REQUIRED_ENDPOINTS, Settings, check_url
from .outbound import CachedFetch, provider_session
from .records import AUTHENTICATION_CLAIMS
from .tokens import TENANT, TokenError, validate_id_token, validate_logout_token

#: Endpoints that some providers publish only in their RFC 8414 OAuth metadata.
OAUTH_ONLY_ENDPOINTS = ("revocation_endpoint", "introspection_endpoint")
log = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable."""


class ProviderMisconfigured(ProviderError):
    """The provider answered, but not as the settings expect: a setting is wrong (the message
    names it), which trying again will not fix."""


class _Refused(ProviderError):
    """A call the provider answered with a 4xx, or with something that is no JSON object."""


#: What to check when the provider refuses the app's credentials.
CREDENTIALS_HINT = (
    "check OIDC_CLIENT_ID, OIDC_CLIENT_SECRET (or OIDC_CLIENT_PRIVATE_KEY) and "
    "OIDC_CLIENT_AUTH_METHOD"
)


class TokenEndpointError(Exception):
    """The token endpoint refused a grant (``invalid_grant`` and friends)."""

    def __init__(self, error: str, description: str | None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error

    @property
    def refuses_credentials(self) -> bool:
        """Whether the provider refused the app itself (its client id or secret), not a grant."""
        return self.error in ("invalid_client", "unauthorized_client")


class Provider:
    """Discovery document and signing keys of one provider, shared by all requests of a process.

    Both are fetched on first use, not at start-up, so an app starts while its provider is down,
    one fetch at a time, keeping the last good answer while a new fetch fails (see
    :class:`CachedFetch`). The discovery document is kept for ``OIDC_DISCOVERY_CACHE_SECONDS``;
    the key set is fetched again at once when a token names an unknown ``kid``, unless that
    happened within ``OIDC_JWKS_REFETCH_INTERVAL_SECONDS``. Every call has a total deadline of
    ``OIDC_HTTP_TIMEOUT_SECONDS``.
    """

    def __init__(self, settings: Settings, name: str = "") -> None:
        self.settings = settings
        self.name = name
        self.client_auth = ClientAuth(settings)
        self.http = provider_session(requests.Session(), settings)
        own = settings.http_session
        if not settings.http_verify or (own is not None and own.verify is False):
            log.warning("TLS verification is off for calls to the provider")
        self._metadata = CachedFetch(self._load_metadata, settings.discovery_cache_seconds)
        self._keys = CachedFetch(self._load_keys, max_age=None)
        self._unknown_kid_refetched = float("-inf")
        self._reported: set[str] = set()

    def client(self) -> OAuth2Session:
        """An Authlib OAuth 2 client for this app: client authentication, PKCE S256, timeouts."""
        settings = self.settings
        metadata = self.metadata
        method = self.client_auth.method(metadata.get("token_endpoint_auth_methods_supported"))
        client = self.client_auth.session(
            method,
            metadata["token_endpoint"],
            scope=" ".join(self.scopes),
            code_challenge_method="S256",
            default_timeout=settings.http_timeout_seconds,
        )
        return provider_session(client, settings)

    def token_request(self, **params: Any) -> dict[str, Any]:
        """Send a grant to the token endpoint and return the token response."""
        url = self.metadata["token_endpoint"]
        with self.client() as client:
            try:
                token = client.fetch_token(url, **params)
            except OAuthError as exc:
                raise TokenEndpointError(exc.error or "error", exc.description) from exc
            except (requests.RequestException, OSError, ValueError, JoseError) as exc:
                raise ProviderError(f"token request failed: {exc.__class__.__name__}") from exc
        if not isinstance(token.get("access_token"), str):
            raise ProviderError("the token response has no access_token")
        return dict(token)

    def revoke(self, token: str, token_type_hint: str) -> None:
        """Revoke ``token`` at the revocation endpoint (RFC 7009), when there is one; a failure
        is logged, never raised: signing out must not depend on the provider."""
        try:
            url = self.endpoint("revocation_endpoint")
        except ProviderError as exc:
            log.warning("could not revoke the %s: %s", token_type_hint, exc)
            return
        if url is None:
            return
        with self.client() as client:
            try:
                response = client.revoke_token(  # type: ignore[no-untyped-call]
                    url, token=token, token_type_hint=token_type_hint
                )
            except (OAuthError, requests.RequestException, OSError, JoseError) as exc:
                log.warning("could not revoke the %s: %s", token_type_hint, exc.__class__.__name__)
                return
        if response.status_code != 200:
            log.warning(
                "the provider refused to revoke the %s (%s)", token_type_hint, response.status_code
            )

    def revoke_tokens(self, access_token: str, refresh_token: str | None) -> None:
        """Revoke a sign-in's tokens, the refresh token first (see :meth:`revoke`)."""
        if refresh_token:
            self.revoke(refresh_token, "refresh_token")
        self.revoke(access_token, "access_token")

    def get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        """GET a JSON object; anything else (a network failure included) is a
        :class:`ProviderError`."""
        try:
            response = self.http.get(url, **kwargs)
        except (requests.RequestException, OSError) as exc:
            if "NameResolutionError" in repr(exc):
                raise ProviderError(f"the host of {url} does not resolve (a typo?)") from exc
            raise ProviderError(f"GET {url} failed: {exc.__class__.__name__}") from exc
        return _json_object(response, f"GET {url}")

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The discovery document, with explicitly configured endpoints taking precedence."""
        return self._metadata.get()

    def _load_metadata(self) -> dict[str, Any]:
        settings = self.settings
        metadata: dict[str, Any] = {"issuer": settings.issuer}
        if not set(REQUIRED_ENDPOINTS) <= set(settings.endpoints):
            url = f"{settings.issuer.rstrip('/')}/.well-known/openid-configuration"
            try:
                metadata = self.get_json(url)
            except _Refused as exc:
                raise ProviderMisconfigured(
                    f"{exc}: is OIDC_ISSUER ({settings.issuer}) the provider's issuer? Its "
                    "discovery document is read from there"
                ) from exc
            if not _names_issuer(metadata.get("issuer"), settings.issuer):
                raise ProviderMisconfigured(
                    f"discovery names issuer {metadata.get('issuer')!r}, not OIDC_ISSUER "
                    f"{settings.issuer!r}: set OIDC_ISSUER to exactly what the provider names"
                )
            for name in ENDPOINT_KEYS:
                if isinstance(metadata.get(name), str):
                    try:
                        check_url(metadata[name], name, settings.allow_insecure_http)
                    except RuntimeError as exc:
                        raise ProviderMisconfigured(str(exc)) from exc
            for name, url in self._oauth_endpoints(metadata).items():
                metadata.setdefault(name, url)
        metadata.update(settings.endpoints)
        for name in REQUIRED_ENDPOINTS:
            if not isinstance(metadata.get(name), str):
                raise ProviderMisconfigured(
                    f"the provider has no {name}; set {ENDPOINT_KEYS[name]}"
                )
        self._report_missing_features(metadata)
        return metadata

    def _oauth_endpoints(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        """Endpoints that the OpenID document lacks, from the provider's RFC 8414 document
        (django-oauth-toolkit publishes its revocation endpoint only there); none when it has
        no such document, or one of another issuer."""
        missing = [name for name in OAUTH_ONLY_ENDPOINTS if not isinstance(metadata.get(name), str)]
        if not missing:
            return {}
        issuer = urlsplit(self.settings.issuer)
        path = issuer.path.rstrip("/")
        url = f"{issuer.scheme}://{issuer.netloc}/.well-known/oauth-authorization-server{path}"
        try:
            document = self.get_json(url)
        except ProviderError as exc:
            log.debug("no RFC 8414 metadata: %s", exc)
            return {}
        if document.get("issuer") != self.settings.issuer:
            return {}
        found = {}
        for name in missing:
            value = document.get(name)
            if isinstance(value, str):
                try:
                    check_url(value, name, self.settings.allow_insecure_http)
                except RuntimeError:
                    continue
                found[name] = value
        return found

    def _report_missing_features(self, metadata: Mapping[str, Any]) -> None:
        """Say once, at WARNING, what the provider does not offer, and what to set if it does."""
        for feature, missing, message in (
            (
                "revocation",
                not isinstance(metadata.get("revocation_endpoint"), str),
                "the provider has no revocation endpoint: tokens are not revoked at logout (set "
                "OIDC_REVOCATION_ENDPOINT if it has one)",
            ),
            (
                "end_session",
                not isinstance(metadata.get("end_session_endpoint"), str),
                "the provider has no end_session_endpoint: logout ends the session here only "
                "(set OIDC_END_SESSION_ENDPOINT if it has one)",
            ),
            (
                "backchannel_logout",
                metadata.get("backchannel_logout_supported") is not True,
                "the provider does not advertise back-channel logout: a sign-out there ends "
                "sessions here only at their next renewal",
            ),
        ):
            if missing and feature not in self._reported:
                self._reported.add(feature)
                log.warning(message)

    @property
    def scopes(self) -> tuple[str, ...]:
        """``OIDC_SCOPES``, or ``openid`` with those of ``email`` and ``profile`` that the provider
        lists (all when it lists none). ``offline_access`` is never added unasked: with some
        providers (Keycloak) it makes tokens that outlive the user's session there."""
        if self.settings.scopes is not None:
            return self.settings.scopes
        listed = self.metadata.get("scopes_supported")
        if not isinstance(listed, list) or not listed:
            return ("openid", "email", "profile")
        return ("openid", *(scope for scope in ("email", "profile") if scope in listed))

    def endpoint(self, name: str) -> str | None:
        """An endpoint URL from the metadata, or None when the provider has none."""
        value = self.metadata.get(name)
        return value if isinstance(value, str) else None

    @property
    def id_token_algorithms(self) -> tuple[str, ...]:
        """Allowed ID token algorithms: configured, or the asymmetric ones the provider offers."""
        if self.settings.id_token_algorithms is not None:
            return self.settings.id_token_algorithms
        offered = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = tuple(alg for alg in offered if alg in ASYMMETRIC_ALGORITHMS)
        return allowed or ("RS256",)

    @property
    def advertises_iss_parameter(self) -> bool:
        """Whether authorization responses must carry ``iss`` (RFC 9207)."""
        return self.metadata.get("authorization_response_iss_parameter_supported") is True

    def signing_key(self, token: GuestProtocol) -> Key:
        """The provider key named by a token's ``kid``; an unknown one refetches the key set.

        An HMAC algorithm (only ever allowed when listed in ``OIDC_ID_TOKEN_ALGORITHMS``) is
        verified with the client secret, as OpenID Connect Core 10.1 says.
        """
        kid = token.headers().get("kid")
        alg = token.headers().get("alg")
        if isinstance(alg, str) and alg.startswith("HS") and self.settings.client_secret:
            return OctKey.import_key(self.settings.client_secret)
        wanted: KeyParameters | None = {"alg": alg} if alg else None
        try:
            return self._keys.get().get_by_kid(kid, wanted)
        except (JoseError, ValueError):
            now = clock.monotonic()
            if now - self._unknown_kid_refetched < self.settings.jwks_refetch_interval_seconds:
                raise  # a flood of unknown kids makes one fetch per interval
            self._unknown_kid_refetched = now
            return self._keys.get(refresh=True).get_by_kid(kid, wanted)

    def validate_id_token(
        self, id_token: str, *, nonce: str | None, access_token: str | None
    ) -> dict[str, Any]:
        """An ID token of this provider for this client, checked; its claims."""
        return validate_id_token(
            id_token, nonce=nonce, access_token=access_token, **self._expectations()
        )

    def validate_access_token(self, token: str, audience: str) -> dict[str, Any]:
        """A JWT access token of this provider for the API ``audience``, checked locally (RFC
        9068) with the asymmetric ones of the ID token algorithms; its claims."""
        return validate_jwt_access_token(
            token,
            key=self.signing_key,
            algorithms=self.id_token_algorithms,
            issuer=self.issuer,
            audience=audience,
            types=self.settings.access_token_types,
            leeway=self.settings.clock_skew_seconds,
            now=clock.now(),
        )

    def introspect(self, token: str) -> dict[str, Any]:
        """The provider's answer about ``token`` (RFC 7662), with the app's client
        authentication; :class:`TokenError` when it has no introspection endpoint,
        :class:`ProviderError` when it cannot answer."""
        url = self.endpoint("introspection_endpoint")
        if url is None:
            log.warning(
                "an opaque access token cannot be checked: the provider has no introspection "
                "endpoint (set OIDC_INTROSPECTION_ENDPOINT if it has one)"
            )
            raise TokenError("it is no JWT, and the provider has no introspection endpoint")
        with self.client() as client:
            try:
                response = client.introspect_token(url, token=token, token_type_hint="access_token")
            except (OAuthError, requests.RequestException, OSError, JoseError) as exc:
                raise ProviderError(f"introspection failed: {exc.__class__.__name__}") from exc
        return _json_object(response, "introspection")

    def userinfo(self, access_token: str, sub: str) -> dict[str, Any] | None:
        """The userinfo claims of the user ``sub``, without those about how they authenticated
        (only the ID token says that); None when ``OIDC_FETCH_USERINFO`` is off or the provider
        has no userinfo endpoint. Userinfo about another user is a :class:`TokenError`."""
        url = self.endpoint("userinfo_endpoint")
        if not self.settings.fetch_userinfo or url is None:
            return None
        userinfo = self.get_json(url, headers={"Authorization": f"Bearer {access_token}"})
        if userinfo.get("sub") != sub:
            raise TokenError("userinfo is about another user than the ID token")
        return {k: v for k, v in userinfo.items() if k not in AUTHENTICATION_CLAIMS}

    def validate_logout_token(self, logout_token: str) -> dict[str, Any]:
        """A back-channel logout token of this provider for this client, checked; its claims."""
        return validate_logout_token(logout_token, **self._expectations())

    @property
    def issuer(self) -> str:
        """The issuer its tokens name: ``OIDC_ISSUER``, or the provider's multi-tenant template
        (``https://login.microsoftonline.com/{tenantid}/v2.0`` for ``.../common/v2.0``)."""
        named = self.metadata.get("issuer")
        if isinstance(named, str) and TENANT in named and _is_tenant_alias(named, self.settings):
            return named
        return self.settings.issuer

    def issuer_matches(self, value: str) -> bool:
        """Whether ``value`` (an ``iss`` response parameter) is this provider's issuer."""
        return _names_issuer(self.issuer, value) if TENANT in self.issuer else value == self.issuer

    def _expectations(self) -> dict[str, Any]:
        """What every token of this provider for this client is checked against."""
        return {
            "key": self.signing_key,
            "algorithms": self.id_token_algorithms,
            "issuer": self.issuer,
            "client_id": self.settings.client_id,
            "leeway": self.settings.clock_skew_seconds,
            "now": clock.now(),
        }

    def key_set(self) -> KeySet:
        """The provider's signing keys (fetched once, then kept)."""
        return self._keys.get()

    def _load_keys(self) -> KeySet:
        jwks_uri = self.metadata["jwks_uri"]
        try:
            return KeySet.import_key_set(self.get_json(jwks_uri))  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError) as exc:
            raise ProviderError(f"the key set at {jwks_uri} is not valid") from exc


def _json_object(response: requests.Response, call: str) -> dict[str, Any]:
    """The JSON object of a ``200`` answer to ``call``; anything else is a
    :class:`ProviderError`."""
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise _Refused(f"{call} answered {response.status_code}")  # not "try later": refused
    if response.status_code != 200:
        raise ProviderError(f"{call} answered {response.status_code}")
    try:
        data = response.json()
    except ValueError as exc:
        raise _Refused(f"{call} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise _Refused(f"{call} did not answer a JSON object")
    return data


def _names_issuer(named: Any, issuer: str) -> bool:
    """Whether a discovery document's ``issuer`` is ``issuer``, or a multi-tenant template of
    which ``issuer`` is one instance (its ``{tenantid}`` one path segment)."""
    if not isinstance(named, str):
        return False
    if TENANT not in named:
        return named == issuer
    pattern = re.escape(named).replace(re.escape(TENANT), "[^/]+")
    return re.fullmatch(pattern, issuer) is not None


#: What a multi-tenant issuer's ``{tenantid}`` may be in ``OIDC_ISSUER`` for any tenant to
#: sign in (Entra ID); a tenant's own id there admits that tenant only.
TENANT_ALIASES = ("common", "organizations", "consumers")


def _is_tenant_alias(template: str, settings: Settings) -> bool:
    """Whether ``OIDC_ISSUER`` names the template's tenant-independent form."""
    return any(settings.issuer == template.replace(TENANT, alias) for alias in TENANT_ALIASES)
