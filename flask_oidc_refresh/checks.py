"""``flask oidc check``: the app's settings against its provider, each finding with what to fix.

The provider is asked only what any client may ask: its discovery document and keys, a token
request with a made-up code (which tells refused credentials from a refused code, without a
user), and the first step of a sign-in and of a logout (whether it takes this app's URIs, and
refuses others).
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from flask import Flask, url_for

from . import clock, flow
from .provider import CREDENTIALS_HINT, Provider, ProviderError, TokenEndpointError
from .relying_party import RelyingParty, relying_party
from .sessions import store_label

OK, WARNING, PROBLEM = "ok", "warning", "problem"
#: A redirect URI no provider should take: to see whether the provider checks them at all.
UNREGISTERED_URI = "https://unregistered.invalid/oidc/callback"
#: Key types that can verify each family of signature algorithms.
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """One result: ``level`` is ``ok``, ``warning`` or ``problem`` (sign-in fails)."""

    level: str
    topic: str
    message: str


def configured_base_url(app: Flask) -> str | None:
    """Where the app is served, when its settings say (``SERVER_NAME``, or the host of
    ``OIDC_REDIRECT_URI``); None when only a request could tell."""
    redirect_uri = relying_party(app).settings.redirect_uri
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        return f"{parts.scheme}://{parts.netloc}"
    server_name = app.config.get("SERVER_NAME")
    if server_name:
        return f"{app.config.get('PREFERRED_URL_SCHEME', 'http')}://{server_name}"
    return None


def default_base_url(app: Flask) -> str:
    """Where the app is served: as its settings say, or what ``flask run`` serves
    (``FLASK_RUN_HOST`` and ``FLASK_RUN_PORT``, by default http://127.0.0.1:5000)."""
    host = os.environ.get("FLASK_RUN_HOST", "127.0.0.1")
    port = os.environ.get("FLASK_RUN_PORT", "5000")
    return configured_base_url(app) or f"http://{host}:{port}"


def check_app(
    app: Flask, base_url: str | None, providers: Mapping[str, Provider] | None = None
) -> list[Finding]:
    """Every check of ``app`` served at ``base_url``: its own settings, then each provider
    (those of ``providers`` instead of the app's own, when given). Without a ``base_url``, the
    checks of the app's URLs (https, redirect and post-logout URIs) are left out."""
    party = relying_party(app)
    with app.test_request_context(base_url=base_url or "http://localhost"):
        findings = list(_app_checks(app, party, with_urls=base_url is not None))
        for name, provider in (providers or party.providers).items():
            findings += _provider_checks(party, provider, name, with_urls=base_url is not None)
    return findings


def check_on_startup(app: Flask) -> None:
    """Run the checks in the background (a slow provider does not hold up start-up); each
    warning and problem becomes a log line. They use providers of their own, so that a server
    forking meanwhile (gunicorn ``--preload``) never inherits a provider lock held by this
    thread."""
    party = relying_party(app)
    providers = {name: Provider(p.settings, name) for name, p in party.providers.items()}
    base_url = configured_base_url(app)

    def run() -> None:
        with app.app_context():
            for finding in check_app(app, base_url, providers):
                if finding.level != OK:
                    log.warning("oidc check: %s: %s", finding.topic, finding.message)

    threading.Thread(target=run, name="oidc-check", daemon=True).start()


def _app_checks(app: Flask, party: RelyingParty, *, with_urls: bool) -> Iterator[Finding]:
    secret = app.secret_key or ""
    if len(secret) < 24:
        yield Finding(
            WARNING,
            "SECRET_KEY",
            f"it is {len(secret)} characters long: give a long random value "
            "(python -c 'import secrets; print(secrets.token_hex(32))')",
        )
    else:
        yield Finding(OK, "SECRET_KEY", "set, and long enough")
    kind = store_label(app)
    if party.token_store.index is None:
        yield Finding(
            WARNING,
            "sessions",
            f"{kind} is not shared by every process: back-channel logout and "
            "`flask oidc logout` need the embedded store or Redis",
        )
    else:
        yield Finding(OK, "sessions", f"kept server-side in {kind}, shared by every worker")
    if not with_urls:
        return
    uri = flow.redirect_uri(party)
    reason = flow.insecure_redirect_uri(uri)
    if reason is not None:
        yield Finding(WARNING if party.settings.allow_insecure_http else PROBLEM, "https", reason)
    else:
        yield Finding(OK, "https", f"the redirect URI is {uri}")


def _provider_checks(
    party: RelyingParty, provider: Provider, name: str, *, with_urls: bool
) -> Iterator[Finding]:
    label = f"provider {name!r}: " if name else ""
    try:
        metadata = provider.metadata
    except ProviderError as exc:
        yield Finding(PROBLEM, f"{label}discovery", f"{exc} (the other checks need it)")
        return
    yield Finding(OK, f"{label}discovery", f"{provider.issuer} answers as OIDC_ISSUER names it")
    yield from _keys(provider, label)
    yield from _clock(provider, label)
    redirect_uri = flow.redirect_uri(party, name)
    yield from _credentials(provider, label, redirect_uri)
    if with_urls:
        yield from _redirect_uris(provider, label, redirect_uri)
        yield from _logout_uri(provider, label)
    yield from _features(metadata, label)


def _keys(provider: Provider, label: str) -> Iterator[Finding]:
    try:
        keys = provider.key_set().keys
    except ProviderError as exc:
        yield Finding(PROBLEM, f"{label}keys", str(exc))
        return
    algorithms = provider.id_token_algorithms
    usable = [
        alg
        for alg in algorithms
        if any(key.key_type == KEY_TYPES.get(alg[:2]) for key in keys) or alg.startswith("HS")
    ]
    if not usable:
        types = sorted({key.key_type for key in keys})
        yield Finding(
            PROBLEM,
            f"{label}keys",
            f"no key ({', '.join(types) or 'none'}) fits the ID token algorithms "
            f"{', '.join(algorithms)}: set OIDC_ID_TOKEN_ALGORITHMS to what the provider signs "
            "with",
        )
        return
    yield Finding(
        OK, f"{label}keys", f"{len(keys)} key(s); ID tokens checked with {', '.join(usable)}"
    )


def _clock(provider: Provider, label: str) -> Iterator[Finding]:
    try:
        answer = provider.http.get(provider.metadata["jwks_uri"])
    except (requests.RequestException, OSError):
        return  # the keys check has said it
    try:
        sent = email.utils.parsedate_to_datetime(answer.headers.get("Date", ""))
        age = float(answer.headers.get("Age", 0))  # a cached answer is that much older
    except (TypeError, ValueError):
        yield Finding(WARNING, f"{label}clock", "no readable Date from the provider: not compared")
        return
    if sent.tzinfo is None:  # "-0000": UTC, of unknown local zone
        sent = sent.replace(tzinfo=datetime.UTC)
    skew = clock.now() - sent.timestamp() - age
    allowed = provider.settings.clock_skew_seconds
    if abs(skew) > allowed:
        yield Finding(
            PROBLEM,
            f"{label}clock",
            f"this server's clock is {skew:+.0f} s off the provider's, more than "
            f"OIDC_CLOCK_SKEW_SECONDS ({allowed}): set the clock right (NTP)",
        )
    else:
        yield Finding(OK, f"{label}clock", f"within {abs(skew):.0f} s of the provider's")


def _credentials(provider: Provider, label: str, redirect_uri: str) -> Iterator[Finding]:
    """A token request with a made-up code: refused for the code means the client
    authentication passed."""
    try:
        provider.token_request(
            grant_type="authorization_code",
            code=f"flask-oidc-check-{generate_token(8)}",
            redirect_uri=redirect_uri,
            code_verifier=generate_token(48),
        )
    except TokenEndpointError as exc:
        if exc.refuses_credentials:
            yield Finding(
                PROBLEM, f"{label}credentials", f"the provider answered {exc}: {CREDENTIALS_HINT}"
            )
        elif exc.error == "invalid_grant":
            yield Finding(
                OK,
                f"{label}credentials",
                "the client authentication was accepted (the made-up code was refused)",
            )
        else:
            yield Finding(
                WARNING, f"{label}credentials", f"could not tell: the provider answered {exc}"
            )
        return
    except ProviderError as exc:
        yield Finding(WARNING, f"{label}credentials", f"could not be checked: {exc}")
        return
    yield Finding(PROBLEM, f"{label}credentials", "the provider took a made-up code")


def _authorization_probe(provider: Provider, redirect_uri: str) -> requests.Response:
    """The first step of a sign-in with ``redirect_uri``, as the app would send it."""
    with provider.client() as client:
        url, _ = client.create_authorization_url(
            provider.metadata["authorization_endpoint"],
            state=generate_token(16),
            nonce=generate_token(16),
            code_verifier=generate_token(48),
            redirect_uri=redirect_uri,
        )
    return provider.http.get(url, allow_redirects=False)


def _sends_to(response: requests.Response, uri: str) -> bool:
    return response.is_redirect and response.headers.get("Location", "").startswith(uri)


def _redirect_uris(provider: Provider, label: str, redirect_uri: str) -> Iterator[Finding]:
    topic = f"{label}redirect URI"
    try:
        ours = _authorization_probe(provider, redirect_uri)
        other = _authorization_probe(provider, UNREGISTERED_URI)
    except (requests.RequestException, OSError) as exc:
        yield Finding(WARNING, topic, f"could not be checked: {exc.__class__.__name__}")
        return
    if 400 <= ours.status_code < 500:
        yield Finding(
            PROBLEM,
            topic,
            f"the provider refuses {redirect_uri} ({ours.status_code}): register it with the "
            "client at the provider, or set OIDC_REDIRECT_URI to one that is (check the "
            "app's URL with --url)",
        )
    elif _sends_to(ours, redirect_uri) and "error=" in ours.headers.get("Location", ""):
        answer = ours.headers["Location"].partition("?")[2]
        yield Finding(WARNING, topic, f"the provider takes it, but answers a sign-in: {answer}")
    else:
        yield Finding(OK, topic, f"the provider takes {redirect_uri}")
    if _sends_to(other, UNREGISTERED_URI):
        yield Finding(
            PROBLEM,
            topic,
            "the provider sends sign-ins to a redirect URI nobody registered: restrict the "
            "client's redirect URIs at the provider",
        )
    else:
        yield Finding(OK, topic, "the provider refuses redirect URIs not registered")


def _logout_uri(provider: Provider, label: str) -> Iterator[Finding]:
    endpoint = provider.endpoint("end_session_endpoint")
    if endpoint is None:
        return  # reported with the features
    uri = url_for("oidc.logout_callback", _external=True)
    topic = f"{label}post-logout URI"
    params = {"client_id": provider.settings.client_id, "post_logout_redirect_uri": uri}
    try:
        answer = provider.http.get(endpoint, params=params, allow_redirects=False)
    except (requests.RequestException, OSError) as exc:
        yield Finding(WARNING, topic, f"could not be checked: {exc.__class__.__name__}")
        return
    if 400 <= answer.status_code < 500:
        yield Finding(
            WARNING,
            topic,
            f"the provider refuses {uri} ({answer.status_code}): register it as a post-logout "
            "redirect URI, or users stay on the provider's page after signing out",
        )
    else:
        yield Finding(OK, topic, f"the provider takes {uri}")


def _features(metadata: Any, label: str) -> Iterator[Finding]:
    methods = metadata.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        yield Finding(PROBLEM, f"{label}PKCE", "the provider does not offer S256, which is used")
    elif methods is None:
        yield Finding(WARNING, f"{label}PKCE", "S256 is not advertised (most providers take it)")
    else:
        yield Finding(OK, f"{label}PKCE", "S256")
    grants = metadata.get("grant_types_supported")
    if not isinstance(grants, list):
        yield Finding(
            OK, f"{label}refresh tokens", "not advertised: used when the provider gives one"
        )
    elif "refresh_token" not in grants:
        yield Finding(
            WARNING, f"{label}refresh tokens", "not offered: every renewal is a browser round trip"
        )
    else:
        yield Finding(OK, f"{label}refresh tokens", "offered: renewal on the server")
    for endpoint, feature, missing in (
        ("revocation_endpoint", "revocation", "tokens are not revoked at logout"),
        ("end_session_endpoint", "logout", "logout ends the session here only"),
    ):
        if isinstance(metadata.get(endpoint), str):
            yield Finding(OK, f"{label}{feature}", metadata[endpoint])
        else:
            yield Finding(WARNING, f"{label}{feature}", f"no {endpoint}: {missing}")
    if metadata.get("backchannel_logout_supported") is not True:
        yield Finding(
            WARNING,
            f"{label}back-channel logout",
            "not advertised: a sign-out at the provider ends sessions here at their next renewal",
        )
    else:
        uri = url_for("oidc.backchannel_logout", _external=True)
        yield Finding(OK, f"{label}back-channel logout", f"register {uri} at the provider")
