"""Sessions and token records in Redis: what is stored and how, locks that replicas confirm,
and Redis going away. (The renewal, refresh, logout and ending tests run on Redis and a Redis
Cluster too: see ``ON_EVERY_STORE``.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import (
    NAVIGATION,
    SCRIPT,
    session_redis,
    sign_in,
    tokens_of,
)
from conftest import MakeApp, RedisServer, require_tool
from fake_provider import FakeProvider
from flask import Flask, Request
from flask.sessions import SessionMixin
from redis import Redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis_topologies import RedisClusterDeployment, Servers, free_cluster_port, wait_until

from flask_oidc_refresh import ConfigError
from flask_oidc_refresh.sessions import SessionGuard
from flask_oidc_refresh.store import LockTimeout
from flask_oidc_refresh.store import redis as redis_store
from flask_oidc_refresh.store.base import index_key
from flask_oidc_refresh.store.redis import NotReplicated, RedisBackend, ReplicatedLock, lock_key
from flask_oidc_refresh.testing import pass_renewal_deadline


@pytest.fixture
def redis_app(
    make_app: MakeApp, redis_server: RedisServer, fake_provider: FakeProvider
) -> Iterator[Flask]:
    fake_provider.issue_refresh_tokens = True
    client = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    app, _ = make_app(SESSION_TYPE="redis", SESSION_REDIS=client)
    yield app
    client.close()


def test_sessions_and_token_records_live_in_redis(
    redis_app: Flask, fake_provider: FakeProvider
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    redis = session_redis(redis_app)
    prefixes = []
    for key in redis.keys("*"):
        assert isinstance(key, bytes)  # the client does not decode answers
        prefixes.append(key.decode().split(":")[0])
    # the session, its tokens, and its listing for back-channel logout (by sub: no sid here)
    assert sorted(prefixes) == ["oidc-sub", "oidc-sub-without-sid", "oidc-tokens", "session"]
    [record] = redis.keys("oidc-tokens:*")
    assert redis.ttl(record) > 0  # expires with the session
    session_data = redis.get(next(iter(redis.keys("session:*"))))
    assert isinstance(session_data, bytes)
    assert tokens_of(client).access_token.encode() not in session_data


def test_redis_down_is_a_503_not_a_500_and_not_a_sign_out(
    redis_app: Flask,
    redis_server: RedisServer,
    fake_provider: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    redis_server.stop()
    page = client.get("/private", headers=NAVIGATION)
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    script = client.get("/api/data", headers=SCRIPT)
    assert script.status_code == 503
    assert script.json is not None
    assert script.json["error"] == "session_store_unavailable"
    assert "session store unavailable" in caplog.text
    assert client.get_cookie("session") is not None  # the cookie was not deleted


def test_redis_failing_during_a_renewal_is_a_503(
    redis_app: Flask, redis_server: RedisServer, fake_provider: FakeProvider
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    pass_renewal_deadline(client)
    interface = redis_app.session_interface
    assert isinstance(interface, SessionGuard)
    original = interface._inner.open_session

    def open_then_fail(app: Flask, request: Request) -> SessionMixin | None:
        session: SessionMixin | None = original(app, request)
        redis_server.stop()  # Redis goes away after the session was read
        return session

    interface._inner.open_session = open_then_fail
    response = client.get("/api/data", headers=SCRIPT)
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"] == "session_store_unavailable"


def test_the_back_channel_index_lives_as_long_as_the_session(
    redis_app: Flask, fake_provider: FakeProvider
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    redis = session_redis(redis_app)
    listing = index_key(fake_provider.issuer, "sub", "alice")
    redis.expire(listing, 5)
    pass_renewal_deadline(client)
    assert client.get("/private").text == "hello alice"  # renewed with the refresh token
    assert redis.ttl(listing) > 3600


def test_anonymous_sign_in_starts_write_nothing_to_redis(
    redis_app: Flask, fake_provider: FakeProvider
) -> None:
    redis = session_redis(redis_app)
    before = redis.dbsize()
    client = redis_app.test_client()
    for _ in range(100):
        client.get("/oidc/login", query_string={"next": "/" + "x" * 8000})
        client.delete_cookie("oidc_pending", path="/oidc")
    assert redis.dbsize() == before


def test_redis_holds_the_token_records_sealed(
    redis_app: Flask, fake_provider: FakeProvider
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    tokens = tokens_of(client)
    redis = session_redis(redis_app)
    [record] = redis.keys("oidc-tokens:*")
    stored = redis.get(record)
    assert isinstance(stored, bytes) and stored.startswith(b'"v1.')  # JSON text, not a pickle
    assert tokens.access_token.encode() not in stored
    assert tokens.refresh_token is not None and tokens.refresh_token.encode() not in stored


def test_a_pickle_planted_in_redis_is_never_loaded(redis_app: Flask) -> None:
    import pickle

    class Boom:
        def __reduce__(self) -> tuple[object, ...]:
            return (exec, ("raise SystemExit('unpickled')",))

    session_redis(redis_app).set("session:planted", pickle.dumps(Boom()))
    client = redis_app.test_client()
    client.set_cookie("session", "planted", domain="localhost")
    assert client.get("/").status_code == 200  # an empty session, and no code run


def test_a_record_and_its_lock_share_a_cluster_hash_slot(
    redis_app: Flask, fake_provider: FakeProvider
) -> None:
    client = redis_app.test_client()
    sign_in(client, fake_provider)
    [record] = session_redis(redis_app).keys("oidc-tokens:*")
    assert isinstance(record, bytes)
    assert key_slot(record) == key_slot(lock_key(record.decode()).encode())


def test_replicated_writes_need_one_master_not_a_cluster(
    make_app: MakeApp, redis_cluster: RedisClusterDeployment
) -> None:
    cluster = RedisCluster.from_url(redis_cluster.url)
    with pytest.raises(ConfigError, match="OIDC_REDIS_MIN_REPLICAS"):
        make_app(SESSION_TYPE="redis", SESSION_REDIS=cluster, OIDC_REDIS_MIN_REPLICAS=1)
    cluster.close()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Redis]:
    """A client of a Redis master that has one replica."""
    servers = Servers(require_tool("redis-server"), tmp_path)
    master_port, replica_port = free_cluster_port(), free_cluster_port()
    master = servers.start(master_port, "--repl-diskless-sync-delay", "0")
    replica = servers.start(replica_port, "--replicaof", "127.0.0.1", str(master_port))
    wait_until(lambda: replica.info("replication")["master_link_status"] == "up", "the replica")
    replica.close()
    wait_until(lambda: bool(master.set("ready", 1)) and master.wait(1, 100) == 1, "its acks")
    yield master
    master.close()
    servers.stop()


def test_a_lock_is_taken_once_its_replica_has_it(replicated: Redis) -> None:
    backend = RedisBackend(replicated, min_replicas=1)
    with backend.lock("oidc-tokens:one", 1):
        assert replicated.get(lock_key("oidc-tokens:one")) is not None
        with pytest.raises(LockTimeout):
            with backend.lock("oidc-tokens:one", 0.2):
                pass


def test_a_lock_whose_set_was_sent_twice_is_still_ours(replicated: Redis) -> None:
    lock = ReplicatedLock(replicated, "{oidc-tokens:two}:lock", min_replicas=1, timeout=5)
    replicated.set("{oidc-tokens:two}:lock", b"our-token")  # the first SET, whose answer was lost
    assert lock.do_acquire(b"our-token")  # type: ignore[arg-type]
    assert not lock.do_acquire(b"another-token")  # type: ignore[arg-type]


def test_writes_that_no_replica_confirms_are_refused(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "REPLICATED_WRITE_SECONDS", 0.3)
    client = Redis.from_url(redis_server.url)  # a master without replicas
    backend = RedisBackend(client, min_replicas=1)
    with pytest.raises(NotReplicated):
        backend.write("oidc-tokens:three", {"a": 1}, 60)
    with pytest.raises(LockTimeout):
        with backend.lock("oidc-tokens:three", 0.3):
            pass
    client.close()
