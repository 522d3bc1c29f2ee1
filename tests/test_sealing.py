"""Token records sealed at rest: a copy of the store yields no usable token."""

from __future__ import annotations

from pathlib import Path

import pytest
from apps import SCRIPT, build_app, provider_answers, sign_in, tokens_of
from fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from flask import Flask

from flask_oidc_refresh.sealing import Sealer


def test_a_sealed_record_opens_only_for_its_own_record_key() -> None:
    sealer = Sealer(["secret"])
    sealed = sealer.seal({"access_token": "at-123"}, bound_to="oidc-tokens:a")
    assert "at-123" not in sealed
    assert sealer.open(sealed, bound_to="oidc-tokens:a") == {"access_token": "at-123"}
    assert sealer.open(sealed, bound_to="oidc-tokens:b") is None  # moved to another sign-in


def test_a_tampered_record_does_not_open(caplog: pytest.LogCaptureFixture) -> None:
    sealer = Sealer(["secret"])
    sealed = sealer.seal({"a": 1}, bound_to="r")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    assert sealer.open(tampered, bound_to="r") is None
    assert sealer.open("not sealed at all", bound_to="r") is None
    assert "could not be opened" in caplog.text


def test_records_sealed_with_a_fallback_key_still_open() -> None:
    old = Sealer(["old-secret"]).seal({"a": 1}, bound_to="r")
    rotated = Sealer(["new-secret", "old-secret"])
    assert rotated.open(old, bound_to="r") == {"a": 1}
    assert rotated.seal({"a": 1}, bound_to="r").split(".")[1] != old.split(".")[1]
    assert Sealer(["new-secret"]).open(old, bound_to="r") is None  # once the fallback is gone


def test_the_embedded_store_holds_no_token_in_clear(
    app: Flask, fake_provider: FakeProvider
) -> None:
    fake_provider.issue_refresh_tokens = True
    client = app.test_client()
    sign_in(client, fake_provider)
    tokens = tokens_of(client)
    stored = b"".join(
        path.read_bytes()
        for path in (Path(app.instance_path) / "oidc-sessions").rglob("*")
        if path.is_file()
    )
    assert tokens.access_token.encode() not in stored
    assert tokens.refresh_token is not None and tokens.refresh_token.encode() not in stored
    assert tokens.id_token.encode() not in stored


def make(tmp_path: Path, fake_provider: FakeProvider, **config: object) -> Flask:
    app, _ = build_app(
        tmp_path / "instance",
        {
            "OIDC_ISSUER": fake_provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            **config,
        },
    )
    return app


def test_a_new_secret_key_with_the_old_one_as_fallback_keeps_users_signed_in(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    before = make(tmp_path, fake_provider, SECRET_KEY="old-secret")
    client = before.test_client()
    sign_in(client, fake_provider)
    pending = client.get("/oidc/login?next=/later").headers["Location"]
    after = make(
        tmp_path, fake_provider, SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=["old-secret"]
    )
    rotated = after.test_client()
    for cookie in ("session", "oidc_pending"):
        value = client.get_cookie(cookie)
        assert value is not None
        rotated.set_cookie(cookie, value.value, domain="localhost")
    assert rotated.get("/api/data", headers=SCRIPT).json == {"sub": "alice"}
    back = provider_answers(rotated, fake_provider, pending)
    assert back.headers["Location"] == "/later"  # the pending cookie of the old key too
