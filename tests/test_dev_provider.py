"""Against the real development provider (Node oidc-provider): sign in, profile, sign out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    DevProvider,
    Served,
    free_port,
    stop,
    wait_for_line,
)
from provider_forms import FORM_ACTION, follow, sign_in

ROOT = Path(__file__).parent.parent


def test_sign_in_shows_the_users_claims(example_app: Callable[..., Served]) -> None:
    base = example_app().base
    http = requests.Session()
    page = sign_in(http, f"{base}/profile", user="alice")
    assert page.url == f"{base}/profile"
    assert '<strong id="sub">alice</strong>' in page.text
    assert "alice@example.test" in page.text
    assert (
        http.get(f"{base}/api/me", headers={"Accept": "application/json"}).json()["user"]["sub"]
        == "alice"
    )


def test_client_secret_post_works_too(example_app: Callable[..., Served]) -> None:
    base = example_app(
        OIDC_CLIENT_AUTH_METHOD="client_secret_post", OP_CLIENT_AUTH_METHOD="client_secret_post"
    ).base
    page = sign_in(requests.Session(), f"{base}/profile", user="bob")
    assert '<strong id="sub">bob</strong>' in page.text


def test_api_answers_401_json_before_sign_in(example_app: Callable[..., Served]) -> None:
    base = example_app().base
    response = requests.get(f"{base}/api/me", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert requests.get(f"{base}/api/health").json() == {"status": "ok"}


def test_sign_out_ends_both_sessions(example_app: Callable[..., Served]) -> None:
    base = example_app().base
    http = requests.Session()
    sign_in(http, f"{base}/profile")
    response = http.post(f"{base}/oidc/logout", headers={"Origin": base}, allow_redirects=False)
    confirm = follow(http, response.headers["Location"])
    action = FORM_ACTION.search(confirm.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', confirm.text)
    assert action and xsrf, confirm.text[:500]
    done = http.post(action.group(1), data={"xsrf": xsrf.group(1), "logout": "yes"})
    assert done.url == f"{base}/"
    assert http.get(f"{base}/api/me", headers={"Accept": "application/json"}).status_code == 401
    again = follow(http, f"{base}/profile")
    assert 'name="prompt" value="login"' in again.text  # the provider asks for a password again


@pytest.fixture
def flask_run(
    start_provider: Callable[..., DevProvider], tmp_path: Path
) -> Iterator[Callable[[], str]]:
    processes: list[subprocess.Popen[str]] = []

    def start() -> str:
        port = free_port()
        provider = start_provider([port])
        env = {
            **os.environ,
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS": "900",
            "SESSION_FILE_DIR": str(tmp_path / "sessions"),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "example_app", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        process.stdout = process.stderr  # flask prints its address on stderr
        wait_for_line(process, "Running on")
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        stop(process)


def test_example_app_under_flask_run_configured_by_environment(
    flask_run: Callable[[], str],
) -> None:
    base = flask_run()
    page = sign_in(requests.Session(), f"{base}/profile", user="erin")
    assert '<strong id="sub">erin</strong>' in page.text
    assert "erin@example.test" in page.text


def test_an_app_on_another_port_learns_where_the_allowed_urls_come_from(
    start_provider: Callable[..., DevProvider],
) -> None:
    provider = start_provider([5000])
    page = requests.get(
        f"{provider.issuer}/auth",
        params={
            "client_id": "example-app",
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": "http://127.0.0.1:8123/oidc/callback",
        },
        timeout=10,
    )
    assert page.status_code == 400
    assert "http://127.0.0.1:5000/oidc/callback" in page.text
    assert "OP_APP_PORT" in page.text
