"""An in-process OpenID Provider that can be told to misbehave.

The real development provider is always correct; this one produces the failures a real
provider cannot be made to: forged, expired or misaddressed ID tokens, broken answers, delays.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-that-is-long-enough-for-hs256"
#: The API whose access tokens the fake provider makes.
API_AUDIENCE = "https://api.example.test"


SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1", "alg": "RS256", "use": "sig"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeProvider:
    """Discovery, JWKS, token and userinfo endpoints, with knobs for every kind of bad answer."""

    def __init__(self) -> None:
        self.key = SIGNING_KEY
        self.issuer = ""  # set once served
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, Any]] = []
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.claims: dict[
            str, Any
        ] = {}  # merged into (or, with None values, removed from) ID tokens
        self.header: dict[str, Any] = {}
        self.id_token: str | None = None  # a raw ID token to answer with instead
        self.token_status = 200
        self.token_body: Any = None  # a raw token response body instead
        self.userinfo: dict[str, Any] | None = None
        self.iss_parameter_supported = True
        self.delay = 0.0
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> sub
        self.used_refresh_tokens: set[str] = set()
        self.issue_refresh_tokens = False
        self.refresh_id_token = True  # an ID token in refresh responses
        self.expires_in = 3600
        self.revocations: list[dict[str, Any]] = []
        self.revocation_status = 200
        self.jwks_status = 200
        self.discovery_status = 200
        self.trickle = 0.0  # seconds between the bytes of the discovery document
        self.headers: list[dict[str, str]] = []  # of every request
        self.metadata: dict[str, Any] = {}  # merged into (None: removed from) the document
        self.oauth_metadata: dict[str, Any] | None = None  # the RFC 8414 document, if any
        self.introspection: dict[str, dict[str, Any]] = {}  # token -> introspection answer
        self.introspection_requests: list[dict[str, Any]] = []
        self.introspection_status = 200
        self.userinfo_requests: list[str] = []  # the Authorization header of each
        self.app = self._make_app()

    def _make_app(self) -> Flask:
        app = Flask("fake-provider")
        app.before_request(lambda: self.headers.append(dict(request.headers)))

        @app.get("/.well-known/openid-configuration")
        @app.get("/<path:tenant>/.well-known/openid-configuration")  # an issuer with a path
        def discovery(tenant: str = "") -> Response:
            self.discovery_requests += 1
            time.sleep(self.delay)
            if self.discovery_status != 200:
                return Response("down", status=self.discovery_status)
            document = self._document(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
                userinfo_endpoint=f"{self.issuer}/userinfo",
                end_session_endpoint=f"{self.issuer}/logout",
                revocation_endpoint=f"{self.issuer}/revoke",
                introspection_endpoint=f"{self.issuer}/introspect",
                id_token_signing_alg_values_supported=["RS256", "HS256", "none"],
                authorization_response_iss_parameter_supported=self.iss_parameter_supported,
                backchannel_logout_supported=True,
                scopes_supported=["openid", "email", "profile", "offline_access"],
            )
            if not self.trickle:
                return document
            body = document.get_data()

            def trickled() -> Iterator[bytes]:
                for byte in body:
                    time.sleep(self.trickle)
                    yield bytes([byte])

            return Response(trickled(), mimetype="application/json")

        @app.get("/.well-known/oauth-authorization-server")
        def oauth_discovery() -> ResponseReturnValue:
            if self.oauth_metadata is None:
                return "not found", 404
            return jsonify({"issuer": self.issuer, **self.oauth_metadata})

        @app.get("/jwks")
        def jwks() -> ResponseReturnValue:
            self.jwks_requests += 1
            if self.jwks_status != 200:
                return "down", self.jwks_status
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.post("/token")
        def token() -> ResponseReturnValue:
            time.sleep(self.delay)
            self.token_requests.append(
                {"form": request.form.to_dict(), "auth": request.authorization}
            )
            if self.token_body is not None:
                return self.token_body, self.token_status
            if request.form.get("grant_type") == "refresh_token":
                return self._refresh(request.form.get("refresh_token", ""))
            code = self.codes.pop(request.form.get("code", ""), None)
            if code is None:
                return {"error": "invalid_grant", "error_description": "unknown code"}, 400
            verifier = request.form.get("code_verifier", "")
            if b64(hashlib.sha256(verifier.encode()).digest()) != code["code_challenge"]:
                return {"error": "invalid_grant", "error_description": "PKCE mismatch"}, 400
            response = {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "id_token": self.id_token or self.make_id_token(code["nonce"]),
            }
            if self.issue_refresh_tokens:
                response["refresh_token"] = self._new_refresh_token("alice")
            return response, self.token_status

        @app.post("/revoke")
        def revoke() -> ResponseReturnValue:
            self.revocations.append({"form": request.form.to_dict(), "auth": request.authorization})
            return "", self.revocation_status

        @app.post("/introspect")
        def introspect() -> ResponseReturnValue:
            self.introspection_requests.append(
                {"form": request.form.to_dict(), "auth": request.authorization}
            )
            if self.introspection_status != 200:
                return "down", self.introspection_status
            return self.introspection.get(request.form.get("token", ""), {"active": False})

        @app.get("/userinfo")
        def userinfo() -> ResponseReturnValue:
            self.userinfo_requests.append(request.headers.get("Authorization", ""))
            return self.userinfo or {"sub": "alice", "email": "alice@example.test"}

        return app

    def _new_refresh_token(self, sub: str) -> str:
        token = secrets.token_urlsafe(16)
        self.refresh_tokens[token] = sub
        return token

    def _refresh(self, refresh_token: str) -> tuple[dict[str, Any], int]:
        """Rotating refresh tokens with reuse detection: a reused one revokes them all."""
        if refresh_token in self.used_refresh_tokens:
            self.refresh_tokens.clear()
            return {"error": "invalid_grant", "error_description": "refresh token reused"}, 400
        sub = self.refresh_tokens.pop(refresh_token, None)
        if sub is None:
            return {"error": "invalid_grant", "error_description": "unknown refresh token"}, 400
        self.used_refresh_tokens.add(refresh_token)
        response = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self._new_refresh_token(sub),
        }
        if self.refresh_id_token:
            response["id_token"] = self.make_id_token(None, sub=sub)
        return response, self.token_status

    def _document(self, **metadata: Any) -> Response:
        merged = {**metadata, **self.metadata}
        return jsonify({key: value for key, value in merged.items() if value is not None})

    def refresh_requests(self) -> int:
        return sum(r["form"].get("grant_type") == "refresh_token" for r in self.token_requests)

    def make_id_token(self, nonce: str | None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update({**claims, **self.claims})
        payload = {k: v for k, v in payload.items() if v is not None}
        return self.sign({"alg": "RS256", "kid": "key-1", **self.header}, payload)

    def make_access_token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A JWT access token (RFC 9068) for the API ``API_AUDIENCE``; ``claims`` set to None
        are left out."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": API_AUDIENCE,
            "client_id": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(8),
            "scope": "orders:read",
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return self.sign(
            {"alg": "RS256", "kid": "key-1", "typ": "at+jwt", **(header or {})}, payload
        )

    def make_logout_token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A back-channel logout token; ``claims`` set to None are left out."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(8),
            "sub": "alice",
            "sid": "sid-1",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"alg": "RS256", "kid": "key-1", "typ": "logout+jwt", **(header or {})}
        return self.sign(header, payload)

    def sign(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        """A JWT signed as ``header`` says: with the provider key, the client secret (HS*), or
        not at all (``none``); header members set to None are left out."""
        header = {k: v for k, v in header.items() if v is not None}
        if header["alg"] == "none":
            return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."
        if header["alg"].startswith("HS"):
            return jwt.encode(
                header, payload, OctKey.import_key(CLIENT_SECRET), algorithms=[header["alg"]]
            )
        return jwt.encode(header, payload, self.key, algorithms=[header["alg"]])

    def authorize(self, authorization_url: str) -> dict[str, str]:
        """Act as the user agreeing at the provider: returns the callback's query parameters."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": query["nonce"], "code_challenge": query["code_challenge"]}
        return {"code": code, "state": query["state"], "iss": self.issuer}
