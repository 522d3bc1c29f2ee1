"""Configuration: defaults, conversion of environment strings, and early, named errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_oidc_refresh import OIDC, ConfigError
from flask_oidc_refresh.config import DEFAULTS, Settings

BASE = {
    "SECRET_KEY": "test-secret",
    "OIDC_ISSUER": "https://login.example.com",
    "OIDC_CLIENT_ID": "app",
    "OIDC_CLIENT_SECRET": "secret",
}


def settings(**config: Any) -> Settings:
    return Settings.from_config({**DEFAULTS, **BASE, **config})


def test_settings_left_unset_take_their_defaults() -> None:
    s = settings()
    assert s.client_auth_method is None  # chosen from what the provider offers
    assert s.scopes is None  # openid, and email and profile where the provider offers them
    assert s.url_prefix == "/oidc"
    assert s.max_states == 5
    assert s.renewal_grace_seconds == s.renew_id_token_expiry_seconds
    assert s.keep_session_keys == ()
    assert s.renew_id_token_expiry_seconds == 900
    assert s.fetch_userinfo is True
    assert s.allow_insecure_http is False


def test_init_app_sets_every_default_in_app_config(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(BASE)
    OIDC(app)
    in_effect = {"OIDC_RENEWAL_GRACE_SECONDS": 900}  # default None: one renewal interval
    for key, default in DEFAULTS.items():
        if key not in BASE:
            assert app.config[key] == in_effect.get(key, default)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("OIDC_ISSUER", None),
        ("OIDC_CLIENT_ID", ""),
        ("OIDC_CLIENT_SECRET", None),
        ("OIDC_CLIENT_AUTH_METHOD", "tls_client_auth"),
        ("OIDC_SCOPES", ["email"]),
        ("OIDC_URL_PREFIX", "oidc"),
        ("OIDC_MAX_STATES", 0),
        ("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", 0),
        ("OIDC_MAX_STATES", "many"),
        ("OIDC_HTTP_TIMEOUT_SECONDS", -1),
        ("OIDC_FETCH_USERINFO", "maybe"),
        ("OIDC_ID_TOKEN_ALGORITHMS", ["none"]),
        ("OIDC_EXEMPT_URLS", [1]),
        ("OIDC_TOKEN_ENDPOINT", "ftp://login.example.com/token"),
        ("OIDC_LOGOUT_REDIRECT_URL", "https://elsewhere.example/"),
        ("OIDC_LOGIN_REDIRECT_URL", "//elsewhere.example"),
    ],
)
def test_a_config_mistake_is_an_error_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        settings(**{key: value})


@pytest.mark.parametrize("issuer", ["http://login.example.com", "login.example.com", "https://"])
def test_plain_http_is_refused_except_on_loopback(issuer: str) -> None:
    with pytest.raises(ConfigError, match="OIDC_ISSUER"):
        settings(OIDC_ISSUER=issuer)


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:9400", "http://localhost:8080/realms/x", "http://[::1]:1"]
)
def test_plain_http_is_accepted_on_loopback(issuer: str) -> None:
    assert settings(OIDC_ISSUER=issuer).issuer == issuer


def test_plain_http_elsewhere_needs_an_explicit_setting() -> None:
    s = settings(OIDC_ISSUER="http://login.internal", OIDC_ALLOW_INSECURE_HTTP=True)
    assert s.issuer == "http://login.internal"


def test_environment_strings_are_converted() -> None:
    s = settings(
        OIDC_MAX_STATES="7",
        OIDC_FETCH_USERINFO="false",
        OIDC_HTTP_TIMEOUT_SECONDS="2.5",
        OIDC_SCOPES="openid email",
        OIDC_EXEMPT_URLS='["/health", "api.ping"]',
        OIDC_ID_TOKEN_ALGORITHMS="ES256,RS256",
    )
    assert s.max_states == 7
    assert s.fetch_userinfo is False
    assert s.http_timeout_seconds == 2.5
    assert s.scopes == ("openid", "email")
    assert s.exempt_urls == ("/health", "api.ping")
    assert s.id_token_algorithms == ("ES256", "RS256")


def test_exempt_urls_accept_compiled_regexes() -> None:
    pattern = re.compile(r"/public/")
    assert settings(OIDC_EXEMPT_URLS=["/health", pattern]).exempt_urls == ("/health", pattern)


def test_options_take_precedence_over_app_config_and_show_there(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(BASE, OIDC_URL_PREFIX="/auth")
    OIDC(app, url_prefix="/sso")
    assert app.url_map.bind("localhost").match("/sso/login")[0] == "oidc.login"
    assert app.config["OIDC_URL_PREFIX"] == "/sso"


def test_app_config_shows_the_values_in_effect(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(BASE, OIDC_FETCH_USERINFO="false", OIDC_SCOPES="openid email")
    OIDC(app, http_timeout_seconds=3)
    assert app.config["OIDC_FETCH_USERINFO"] is False
    assert app.config["OIDC_SCOPES"] == ["openid", "email"]
    assert app.config["OIDC_HTTP_TIMEOUT_SECONDS"] == 3.0


def test_each_setting_is_named_like_its_key() -> None:
    assert set(settings().as_config()) == set(DEFAULTS)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="OIDC_CLIENTID"):
        OIDC(clientid="x")  # type: ignore[call-arg]  # the mistake under test


def test_config_mistake_fails_at_init_app(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    with pytest.raises(ConfigError, match="OIDC_ISSUER"):
        OIDC(app)


def test_a_second_init_app_is_an_error(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(BASE)
    oidc = OIDC(app)
    with pytest.raises(RuntimeError, match="already registered"):
        oidc.init_app(app)


def test_one_extension_serves_several_apps(tmp_path: Path) -> None:
    oidc = OIDC()
    first, second = (Flask(__name__, instance_path=str(tmp_path / n)) for n in "ab")
    first.config.update(BASE, OIDC_CLIENT_ID="first")
    second.config.update(BASE, OIDC_CLIENT_ID="second")
    oidc.init_app(first)
    oidc.init_app(second)
    assert first.extensions["oidc"].settings.client_id == "first"
    assert second.extensions["oidc"].settings.client_id == "second"


def test_use_without_init_app_says_so(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    with (
        app.test_request_context(),
        pytest.raises(RuntimeError, match="forget to call oidc.init_app"),
    ):
        _ = OIDC().user


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("OIDC_RP_CLIENT_ID", "did you mean OIDC_CLIENT_ID?"),  # mozilla-django-oidc's name
        ("OIDC_OP_USER_ENDPOINT", "did you mean OIDC_USERINFO_ENDPOINT?"),
        ("OIDC_CLIENT_SCRET", "did you mean OIDC_CLIENT_SECRET?"),  # a typo
        ("OIDC_USE_NONCE", "a nonce is always sent and checked"),
        ("OIDC_SOMETHING_ELSE", "is ignored"),
    ],
)
def test_an_unknown_setting_is_a_warning_naming_the_likely_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str, said: str
) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update({**BASE, key: "x"})
    OIDC(app)
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage().startswith(f"{key} is not a Flask-OIDC-Refresh setting")
    assert said in warning.getMessage()


def test_known_settings_raise_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update({**BASE, **DEFAULTS, **{k: v for k, v in BASE.items()}})
    OIDC(app)
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
