"""How the app reaches its provider: a User-Agent naming the extension, a private CA, TLS
verification off only when explicitly insecure, a proxy, or the app's own requests.Session."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import requests
from apps import SCRIPT, build_app, sign_in
from conftest import Serve
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask import Flask

from flask_oidc_refresh import ConfigError


def app_for(provider: FakeProvider, tmp_path: Path, **config: Any) -> Flask:
    settings = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        **config,
    }
    app, _ = build_app(tmp_path / "instance", settings)
    return app


def signs_in(app: Flask, provider: FakeProvider) -> bool:
    client = app.test_client()
    if client.get("/oidc/login").status_code != 302:
        return False
    sign_in(client, provider)
    return client.get("/api/data", headers=SCRIPT).status_code == 200


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key: (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test provider")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "provider.pem", tmp_path / "provider.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_provider(serve: Serve, certificate: tuple[str, str]) -> FakeProvider:
    """The adversarial provider over https, with a certificate no public CA signed."""
    provider = FakeProvider()
    provider.issuer = serve(provider.app, ssl_context=certificate)
    return provider


def test_every_call_names_the_extension(fake_provider: FakeProvider, tmp_path: Path) -> None:
    assert signs_in(app_for(fake_provider, tmp_path), fake_provider)
    agents = {headers["User-Agent"] for headers in fake_provider.headers}
    assert len(agents) == 1
    assert agents.pop().startswith("Flask-OIDC-Refresh/0.1.0 python-requests/")


def test_a_provider_with_a_private_ca_needs_its_bundle(
    tls_provider: FakeProvider, certificate: tuple[str, str], tmp_path: Path
) -> None:
    assert not signs_in(app_for(tls_provider, tmp_path / "a"), tls_provider)  # 503: unverified
    with_bundle = app_for(tls_provider, tmp_path / "b", OIDC_HTTP_CA_BUNDLE=certificate[0])
    assert signs_in(with_bundle, tls_provider)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_is_off_only_when_explicitly_insecure(
    tls_provider: FakeProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="OIDC_ALLOW_INSECURE_HTTP"):
        app_for(tls_provider, tmp_path / "a", OIDC_HTTP_VERIFY=False)
    insecure = app_for(
        tls_provider, tmp_path / "b", OIDC_HTTP_VERIFY=False, OIDC_ALLOW_INSECURE_HTTP=True
    )
    assert "TLS verification is off" in caplog.text
    assert signs_in(insecure, tls_provider)


def test_calls_go_through_the_proxy(
    serve: Serve, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    proxy = FakeProvider()  # answers as the provider: the proxy is the only way to it
    proxy.issuer = "http://provider.test"
    proxy_url = serve(proxy.app)
    app = app_for(
        proxy, tmp_path, OIDC_HTTP_PROXY=proxy_url, OIDC_ALLOW_INSECURE_HTTP=True
    )  # provider.test resolves nowhere: every call must go through the proxy
    assert signs_in(app, proxy)
    assert proxy.discovery_requests == 1 and len(proxy.token_requests) == 1


def test_the_apps_own_session_settings_are_used(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    own = requests.Session()
    own.headers["X-Tenant"] = "blue"
    app = app_for(fake_provider, tmp_path, OIDC_HTTP_SESSION=own)
    assert signs_in(app, fake_provider)
    assert {headers.get("X-Tenant") for headers in fake_provider.headers} == {"blue"}


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"OIDC_HTTP_CA_BUNDLE": "/nonexistent/ca.pem"}, "OIDC_HTTP_CA_BUNDLE"),
        ({"OIDC_HTTP_SESSION": "not a session"}, "OIDC_HTTP_SESSION"),
    ],
)
def test_http_settings_are_checked_at_init_app(
    fake_provider: FakeProvider, tmp_path: Path, config: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        app_for(fake_provider, tmp_path, **config)


def test_a_session_without_tls_verification_needs_the_insecure_setting(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    own = requests.Session()
    own.verify = False
    with pytest.raises(ConfigError, match="OIDC_ALLOW_INSECURE_HTTP"):
        app_for(fake_provider, tmp_path, OIDC_HTTP_SESSION=own)
