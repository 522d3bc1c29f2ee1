"""Run by ``make dist`` in a clean virtual environment holding only the built wheel and its
runtime dependencies: the package imports, ships its script, and signs users in without the
optional ones (redis-py)."""

from __future__ import annotations

import importlib.resources
import sys
import tempfile

from flask import Flask

import flask_oidc_refresh
from flask_oidc_refresh import OIDC

assert "site-packages" in (flask_oidc_refresh.__file__ or ""), flask_oidc_refresh.__file__
static = importlib.resources.files(flask_oidc_refresh) / "static"
assert (static / "oidc-refresh.js").is_file() and (static / "oidc-refresh.mjs").is_file()
assert (importlib.resources.files(flask_oidc_refresh) / "py.typed").is_file()
with tempfile.TemporaryDirectory() as instance:
    app = Flask("smoke", instance_path=instance)
    app.config.update(
        SECRET_KEY="a long random value for the smoke test",
        OIDC_ISSUER="https://login.example.com",
        OIDC_CLIENT_ID="smoke",
        OIDC_CLIENT_SECRET="smoke-secret",
        OIDC_AUTHORIZATION_ENDPOINT="https://login.example.com/authorize",
        OIDC_TOKEN_ENDPOINT="https://login.example.com/token",
        OIDC_JWKS_URI="https://login.example.com/jwks",
    )
    OIDC(app)
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith("https://login.example.com/authorize?")
assert "redis" not in sys.modules, "the default store needs no redis-py"
print("Flask-OIDC-Refresh, installed alone, imports, ships its script and starts a sign-in.")
