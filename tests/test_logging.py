"""Logs: every line with its level and the ``flask_oidc_refresh`` logger name, renewals at INFO
with their method and duration, refusals at WARNING, and never a token."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
from apps import SCRIPT, change_tokens, provider_answers, sign_in, tokens_of
from fake_provider import FakeProvider
from flask import Flask

from flask_oidc_refresh.testing import pass_renewal_deadline


def test_renewals_are_logged_at_info_with_method_and_duration(
    app: Flask, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_oidc_refresh")
    fake_provider.issue_refresh_tokens = True
    client = app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    client.get("/private")
    change_tokens(client, refresh_token=None)  # the next renewal is the browser's
    pass_renewal_deadline(client)
    round_trip = client.get("/private")
    provider_answers(client, fake_provider, round_trip.headers["Location"])
    renewals = [r for r in caplog.records if "renewed" in r.getMessage()]
    assert [r.levelname for r in renewals] == ["INFO", "INFO"]
    assert "with the refresh token in" in renewals[0].getMessage()
    assert renewals[0].getMessage().endswith(" ms")
    assert "by a prompt=none round trip in" in renewals[1].getMessage()
    assert all(r.name.startswith("flask_oidc_refresh.") for r in renewals)


def test_no_token_ever_appears_in_the_logs(
    app: Flask, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_provider.issue_refresh_tokens = True
    client = app.test_client()
    sign_in(client, fake_provider)
    seen = [tokens_of(client)]
    pass_renewal_deadline(client)
    client.get("/private")
    seen.append(tokens_of(client))
    fake_provider.refresh_tokens.clear()  # refused: logged at WARNING
    pass_renewal_deadline(client)
    client.get("/private", headers=SCRIPT)
    client.post("/oidc/logout", headers={"Origin": "http://localhost"})
    secrets = {
        value
        for tokens in seen
        for value in (tokens.id_token, tokens.access_token, tokens.refresh_token)
        if value
    }
    assert len(secrets) >= 5
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    for secret in secrets:
        assert secret not in caplog.text
        assert secret[:16] not in caplog.text


def test_without_logging_configured_each_line_has_its_level_and_logger_name() -> None:
    script = textwrap.dedent(
        """
        from flask import Flask
        from flask_oidc_refresh import OIDC

        app = Flask("app")
        app.config.update(
            SECRET_KEY="s", OIDC_ISSUER="https://login.example.com", OIDC_CLIENT_ID="c",
            OIDC_CLIENT_SECRET="x", OIDC_CLIENT_SCRET="typo",
        )
        OIDC(app)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    [line] = [line for line in run.stderr.splitlines() if "OIDC_CLIENT_SCRET" in line]
    assert "] WARNING flask_oidc_refresh.extension: OIDC_CLIENT_SCRET is not a" in line
    assert line.startswith("[")


def test_logging_configured_after_init_app_writes_each_line_once() -> None:
    script = textwrap.dedent(
        """
        import logging
        from flask import Flask
        from flask_oidc_refresh import OIDC

        app = Flask("app")
        app.config.update(
            SECRET_KEY="s", OIDC_ISSUER="https://login.example.com", OIDC_CLIENT_ID="c",
            OIDC_CLIENT_SECRET="x",
        )
        OIDC(app)
        logging.basicConfig(format="app's own: %(name)s %(message)s")
        logging.getLogger("flask_oidc_refresh.views").warning("one line")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stderr.splitlines() == ["app's own: flask_oidc_refresh.views one line"]
