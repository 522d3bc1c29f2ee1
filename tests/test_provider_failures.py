"""Bad days at the provider: unreachable, slow, broken answers, rotated keys; and its caches."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from apps import NAVIGATION, SCRIPT, provider_answers, sign_in
from conftest import Clock, MakeApp, free_port
from fake_provider import FakeProvider
from flask.testing import FlaskClient
from joserfc.jwk import RSAKey


def test_unreachable_provider_is_a_502_page_and_a_log_line(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
    response = app.test_client().get("/oidc/login", headers=NAVIGATION)
    assert response.status_code == 502
    assert response.mimetype == "text/html"
    assert "identity provider is unavailable" in response.text
    assert "identity provider unavailable" in caplog.text


def test_unreachable_provider_is_a_502_json_for_scripts(make_app: MakeApp) -> None:
    app, _ = make_app(OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
    response = app.test_client().get("/oidc/login", headers=SCRIPT)
    assert response.status_code == 502
    assert response.json is not None
    assert response.json["error"] == "provider_unavailable"


def test_slow_provider_times_out_with_a_502(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.2)
    fake_provider.delay = 1.0
    assert app.test_client().get("/oidc/login").status_code == 502


def test_slow_token_endpoint_times_out_and_keeps_the_session(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.5)
    client = app.test_client()
    sign_in(client, fake_provider)
    location = client.get("/oidc/login").headers["Location"]
    fake_provider.delay = 1.5
    response = provider_answers(client, fake_provider, location)
    assert response.status_code == 502
    fake_provider.delay = 0
    assert client.get("/private").text == "hello alice"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "<html>oops</html>"),
        (200, "not json"),
        (200, "[1, 2]"),
        (503, {"error": "temporarily_unavailable"}),
    ],
)
def test_broken_token_responses_are_a_502(
    client: FlaskClient, fake_provider: FakeProvider, status: int, body: Any
) -> None:
    fake_provider.token_status, fake_provider.token_body = status, body
    response = sign_in(client, fake_provider)
    assert response.status_code == 502
    assert client.get("/private", headers=SCRIPT).status_code == 401


def test_discovery_naming_another_issuer_is_refused_as_a_misconfiguration(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_ISSUER=fake_provider.issuer.replace("127.0.0.1", "localhost"))
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 500
    assert "misconfigured" in response.text


def test_discovery_and_keys_are_fetched_once_per_process(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app()
    for _ in range(3):
        assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.discovery_requests == 1
    assert fake_provider.jwks_requests == 1


def test_discovery_is_fetched_again_after_its_lifetime(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_DISCOVERY_CACHE_SECONDS=60)
    sign_in(app.test_client(), fake_provider)
    clock.advance(61)
    sign_in(app.test_client(), fake_provider)
    assert fake_provider.discovery_requests == 2


def test_rotated_provider_key_is_picked_up(make_app: MakeApp, fake_provider: FakeProvider) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=0)
    sign_in(app.test_client(), fake_provider)
    fake_provider.key = RSAKey.generate_key(
        2048, parameters={"kid": "key-2", "alg": "RS256", "use": "sig"}
    )
    fake_provider.header = {"kid": "key-2"}
    assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.jwks_requests == 2


def test_a_flood_of_unknown_keys_refetches_the_key_set_once_per_interval(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=300)
    sign_in(app.test_client(), fake_provider)
    fake_provider.header = {"kid": "nobody-knows"}
    for _ in range(3):
        assert sign_in(app.test_client(), fake_provider).status_code == 400
    assert fake_provider.jwks_requests == 2  # the first fetch, and one for the unknown kid


def test_a_key_rotated_right_after_the_key_set_was_fetched_is_accepted(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=300)
    sign_in(app.test_client(), fake_provider)
    fake_provider.key = RSAKey.generate_key(
        2048, parameters={"kid": "key-2", "alg": "RS256", "use": "sig"}
    )
    fake_provider.header = {"kid": "key-2"}
    assert sign_in(app.test_client(), fake_provider).status_code == 302


def test_explicit_endpoints_need_no_discovery(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    base = fake_provider.issuer
    app, _ = make_app(
        OIDC_AUTHORIZATION_ENDPOINT=f"{base}/authorize",
        OIDC_TOKEN_ENDPOINT=f"{base}/token",
        OIDC_JWKS_URI=f"{base}/jwks",
        OIDC_USERINFO_ENDPOINT=f"{base}/userinfo",
    )
    client = app.test_client()
    params = fake_provider.authorize(client.get("/oidc/login").headers["Location"])
    del params["iss"]  # not advertised: there is no discovery document
    assert client.get("/oidc/callback", query_string=params).status_code == 302
    assert client.get("/private").text == "hello alice"
    assert fake_provider.discovery_requests == 0


def test_a_failing_key_set_is_not_fetched_again_for_every_unknown_key(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_JWKS_REFETCH_INTERVAL_SECONDS=300)
    sign_in(app.test_client(), fake_provider)
    clock.advance(301)
    fake_provider.jwks_status = 503
    fake_provider.header = {"kid": "nobody-knows"}
    statuses = [sign_in(app.test_client(), fake_provider).status_code for _ in range(3)]
    assert statuses == [502, 400, 400]  # one failed attempt, then no more until the interval
    assert fake_provider.jwks_requests == 2


def test_hs256_id_tokens_are_accepted_only_when_configured(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    fake_provider.header = {"alg": "HS256"}
    app, _ = make_app()
    assert sign_in(app.test_client(), fake_provider).status_code == 400
    app, _ = make_app(OIDC_ID_TOKEN_ALGORITHMS=["HS256"])
    client = app.test_client()
    assert sign_in(client, fake_provider).status_code == 302  # signed with the client secret
    assert client.get("/private").text == "hello alice"


def test_concurrent_sign_ins_against_a_slow_discovery_share_one_fetch(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.5)
    fake_provider.delay = 1.0

    def start(_: int) -> int:
        return app.test_client().get("/oidc/login").status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(start, range(8)))
    assert statuses == [502] * 8
    assert fake_provider.discovery_requests == 1  # the others waited for it, not in a queue
    assert time.monotonic() - started < 2.5  # one timeout, not eight in a row


def test_a_failure_is_remembered_for_a_short_time(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app()
    fake_provider.jwks_status = 503
    client = app.test_client()
    for _ in range(20):
        token = fake_provider.make_logout_token()
        response = client.post("/oidc/backchannel-logout", data={"logout_token": token})
        assert response.status_code == 502
    assert fake_provider.jwks_requests == 1
    clock.advance(11)
    fake_provider.jwks_status = 200
    token = fake_provider.make_logout_token()
    assert client.post("/oidc/backchannel-logout", data={"logout_token": token}).status_code == 200
    assert fake_provider.jwks_requests == 2


def test_the_last_good_discovery_document_serves_while_a_refetch_fails(
    make_app: MakeApp, fake_provider: FakeProvider, clock: Clock
) -> None:
    app, _ = make_app(OIDC_DISCOVERY_CACHE_SECONDS=60)
    sign_in(app.test_client(), fake_provider)
    clock.advance(61)
    fake_provider.discovery_status = 503
    for _ in range(3):
        assert sign_in(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.discovery_requests == 2  # one failed refetch, remembered


def test_an_answer_that_trickles_in_is_cut_off_at_the_deadline(
    make_app: MakeApp, fake_provider: FakeProvider
) -> None:
    app, _ = make_app(OIDC_HTTP_TIMEOUT_SECONDS=0.5)
    fake_provider.trickle = 0.05  # each byte well within the timeout, the whole answer not
    started = time.monotonic()
    assert app.test_client().get("/oidc/login").status_code == 502
    assert time.monotonic() - started < 2


@pytest.fixture
def broken_server() -> Iterator[str]:
    """A server on a free loopback port that answers every request with a body cut short."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stopping = threading.Event()

    def answer() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"issuer"')

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stopping.set()
    listener.close()
    thread.join(timeout=5)


def test_an_answer_cut_short_is_a_502_not_a_500(make_app: MakeApp, broken_server: str) -> None:
    app, _ = make_app(OIDC_ISSUER=broken_server)
    response = app.test_client().get("/oidc/login")
    assert response.status_code == 502
