"""Sessions read from Redis are kept by each process while Redis says they have not changed:
a request that reads its session sends Redis nothing, and a change made anywhere (another
host's logout, a back-channel logout, Redis emptied) is seen by the very next request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from apps import SCRIPT, back_channel_logout, session_cookie, sign_in, sign_in_over_http
from conftest import MakeApp, RedisServer, Serve
from fake_provider import FakeProvider
from flask import Flask
from redis import Redis

from flask_oidc_refresh.store import tracking

Apps = Callable[..., Flask]


@pytest.fixture
def redis_apps(
    make_app: MakeApp, redis_server: RedisServer, fake_provider: FakeProvider
) -> Iterator[Apps]:
    """``redis_apps(**config)``: another app instance (another host) on the same Redis."""
    clients: list[Redis] = []

    def make(**config: object) -> Flask:
        client = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
        clients.append(client)
        app, _ = make_app(SESSION_TYPE="redis", SESSION_REDIS=client, **config)
        return app

    fake_provider.issue_refresh_tokens = True
    yield make
    for client in clients:
        client.close()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    """A client of our own: what the app does not see through its cache."""
    client = Redis.from_url(redis_server.url)
    yield client
    client.close()


def gets(redis: Redis) -> int:
    """How many GET commands Redis has served."""
    stats = redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def test_a_signed_in_request_sends_redis_nothing(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    before = gets(redis)
    for _ in range(20):
        assert client.get("/private").text == "hello alice"
    assert gets(redis) == before


def test_without_the_cache_every_request_reads_redis(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    app = redis_apps(OIDC_REDIS_CLIENT_CACHE=False)
    assert app.config["OIDC_REDIS_CLIENT_CACHE"] is False
    client = app.test_client()
    sign_in(client, fake_provider)
    before = gets(redis)
    for _ in range(5):
        assert client.get("/private").text == "hello alice"
    assert gets(redis) == before + 5


def test_a_session_deleted_by_another_host_is_gone_on_the_next_request(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"  # now in this process's copy
    redis.delete(f"session:{session_cookie(client)}")
    assert client.get("/api/data", headers=SCRIPT).status_code == 401


def test_a_session_changed_by_another_host_is_read_again(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    first, second = redis_apps(), redis_apps()
    client = first.test_client()
    sign_in(client, fake_provider)
    other = second.test_client()
    other.set_cookie("session", session_cookie(client), domain="localhost")
    assert other.get("/private").text == "hello alice"  # cached by the second host
    with client.session_transaction() as session:  # the first host writes the session
        session["visits"] = 1
    with other.session_transaction() as session:
        assert session["visits"] == 1


def test_a_back_channel_logout_on_one_host_ends_the_session_on_the_other_at_once(
    redis_apps: Apps, fake_provider: FakeProvider, serve: Serve
) -> None:
    first, second = redis_apps(), redis_apps()
    first_base, second_base = serve(first), serve(second)
    cookies, _ = sign_in_over_http(first, fake_provider, first_base)
    for _ in range(3):  # the second host now serves the session from its copy
        answer = requests.get(f"{second_base}/api/data", cookies=cookies, headers=SCRIPT)
        assert answer.json() == {"sub": "alice"}
    back_channel_logout(first_base, fake_provider)(cookies)
    answer = requests.get(f"{second_base}/api/data", cookies=cookies, headers=SCRIPT)
    assert answer.status_code == 401


def test_redis_emptied_empties_every_copy(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    redis.flushall()
    assert client.get("/api/data", headers=SCRIPT).status_code == 401


def test_a_lost_tracking_connection_empties_the_copy_and_reads_go_to_redis(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    tracking = [c for c in redis.client_list() if "t" in c["flags"]]
    assert len(tracking) == 1
    redis.client_kill_filter(_id=tracking[0]["id"])
    redis.delete(f"session:{session_cookie(client)}")  # its invalidation reaches nobody
    time.sleep(0.05)
    assert client.get("/api/data", headers=SCRIPT).status_code == 401
    assert "lost the session tracking connection" in caplog.text


def test_tracking_comes_back_after_redis_restarts(
    redis_apps: Apps, redis_server: RedisServer, fake_provider: FakeProvider
) -> None:
    app = redis_apps()
    client = app.test_client()
    redis_server.stop()
    assert client.get("/").status_code == 200  # anonymous: nothing to read
    redis_server.start()
    time.sleep(1.1)  # the next try at a tracking connection
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    redis = Redis.from_url(redis_server.url)
    before = gets(redis)
    assert client.get("/private").text == "hello alice"
    assert gets(redis) == before
    redis.close()


def test_a_silent_tracking_connection_is_not_trusted(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking, "STALE_SECONDS", 0.3)
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    before = gets(redis)
    assert client.get("/private").text == "hello alice"
    assert gets(redis) == before  # served from the copy
    monkeypatch.setattr(tracking.TrackedReads, "_ping", lambda self: None)  # no more answers
    time.sleep(0.5)
    assert client.get("/private").text == "hello alice"
    assert gets(redis) == before + 1  # not vouched for lately: read from Redis


def test_a_key_that_is_not_text_does_not_stop_invalidations(
    redis_apps: Apps, redis: Redis, fake_provider: FakeProvider
) -> None:
    client = redis_apps().test_client()
    sign_in(client, fake_provider)
    assert client.get("/private").text == "hello alice"
    with redis.pipeline(transaction=False) as pipe:  # one push names both keys
        pipe.set(b"session:\x00\xff", b"x")  # sorted first in the push
        pipe.delete(f"session:{session_cookie(client)}")
        pipe.execute()
    assert client.get("/api/data", headers=SCRIPT).status_code == 401
