"""The example app deployed as PRODUCT.md describes: gunicorn workers, several hosts sharing
Redis, the real development provider rotating refresh tokens and revoking them on reuse."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from apps import tokens_of
from conftest import CLIENT_ID, CLIENT_SECRET, DevProvider, RedisServer, Served, free_port
from provider_forms import follow, sign_in, sign_out_at_provider
from redis import Redis
from redis_topologies import SENTINEL_MASTER, RedisClusterDeployment, RedisSentinelDeployment

from flask_oidc_refresh.testing import pass_renewal_deadline

FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}


class Deployment:
    """Instances of example_app under gunicorn, and a local app object on the same store."""

    def __init__(self, bases: list[str], local: Served) -> None:
        self.bases = bases
        self.local = local

    def browser(self) -> requests.Session:
        """A browser signed in on the first host."""
        http = requests.Session()
        page = sign_in(http, f"{self.bases[0]}/profile")
        assert '<strong id="sub">alice</strong>' in page.text
        return http

    def refreshes(self) -> int:
        events = self.local.provider.events("grant.success")
        return sum(e.get("grant_type") == "refresh_token" for e in events)

    def burst(self, http: requests.Session, count: int, timeout: float = 30) -> list[int]:
        cookies = {"session": http.cookies["session"]}

        def call(n: int) -> int:
            base = self.bases[n % len(self.bases)]
            return requests.get(
                f"{base}/api/me", cookies=cookies, headers=FETCH, timeout=timeout
            ).status_code

        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(call, range(count)))


@pytest.fixture
def deploy(
    start_provider: Callable[..., DevProvider],
    start_gunicorn: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[..., Deployment]:
    def start(instances: int, store: dict[str, str], workers: int = 2) -> Deployment:
        ports = [free_port() for _ in range(instances)]
        provider = start_provider(ports, OP_ROTATE_REFRESH_TOKENS="1")
        env = {
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            **store,
        }
        bases = [start_gunicorn(port, env, workers=workers) for port in ports]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        import example_app

        return Deployment(bases, Served(example_app.create_app(), bases[0], provider))

    return start


def check_one_spend(deployment: Deployment) -> None:
    http = deployment.browser()
    pass_renewal_deadline(deployment.local.client(http))
    assert deployment.burst(http, 50) == [200] * 50
    assert deployment.refreshes() == 1  # exactly one token request reached the provider
    pass_renewal_deadline(
        deployment.local.client(http)
    )  # the next deadline: the rotated token must work
    assert deployment.burst(http, 10) == [200] * 10
    assert deployment.refreshes() == 2
    provider = deployment.local.provider
    assert provider.events("grant.error") == [] and provider.events("grant.revoked") == []


def test_one_spend_across_two_hosts_sharing_redis(
    deploy: Callable[..., Deployment], redis_server: RedisServer
) -> None:
    deployment = deploy(2, {"SESSION_TYPE": "redis", "REDIS_URL": redis_server.url})
    check_one_spend(deployment)


def test_one_spend_across_worker_processes_with_the_embedded_store(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    deployment = deploy(1, {"SESSION_FILE_DIR": str(tmp_path / "sessions")})
    check_one_spend(deployment)


def test_a_session_signed_in_on_one_host_is_known_on_the_other(
    deploy: Callable[..., Deployment], redis_server: RedisServer
) -> None:
    deployment = deploy(2, {"SESSION_TYPE": "redis", "REDIS_URL": redis_server.url})
    http = deployment.browser()
    other = http.get(f"{deployment.bases[1]}/api/me", headers=FETCH)
    assert other.json()["user"]["sub"] == "alice"


def test_a_refresh_token_revoked_at_the_provider_ends_the_sign_in(
    deploy: Callable[..., Deployment], redis_server: RedisServer
) -> None:
    deployment = deploy(1, {"SESSION_TYPE": "redis", "REDIS_URL": redis_server.url})
    base = deployment.bases[0]
    http = deployment.browser()
    refresh_token = tokens_of(deployment.local.client(http)).refresh_token
    provider = deployment.local.provider
    revoked = requests.post(
        f"{provider.issuer}/token/revocation",
        data={"token": refresh_token, "token_type_hint": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    pass_renewal_deadline(deployment.local.client(http))
    script = http.get(f"{base}/api/me", headers={**FETCH, "Referer": f"{base}/profile"})
    assert script.status_code == 403  # invalid_grant: the sign-in has ended
    assert script.headers["refresh_url"] == "/oidc/refresh?next=/profile"
    assert http.get(f"{base}/api/me", headers=FETCH).status_code == 401  # signed out here
    page = follow(http, f"{base}{script.headers['refresh_url']}")
    assert 'name="prompt"' in page.text  # the grant is gone: the provider asks again


def test_provider_down_keeps_users_signed_in(
    deploy: Callable[..., Deployment], redis_server: RedisServer
) -> None:
    deployment = deploy(1, {"SESSION_TYPE": "redis", "REDIS_URL": redis_server.url})
    base = deployment.bases[0]
    http = deployment.browser()
    pass_renewal_deadline(deployment.local.client(http))
    deployment.local.provider.stop()
    for _ in range(3):
        response = http.get(f"{base}/api/me", headers=FETCH)
        assert response.status_code == 200
        assert response.json()["user"]["sub"] == "alice"
    assert (
        tokens_of(deployment.local.client(http)).retry_at > 0
    )  # retried later, not on every request


def test_redis_stopped_mid_run_is_a_503(
    deploy: Callable[..., Deployment], redis_server: RedisServer
) -> None:
    deployment = deploy(1, {"SESSION_TYPE": "redis", "REDIS_URL": redis_server.url})
    base = deployment.bases[0]
    http = deployment.browser()
    redis_server.stop()
    response = http.get(f"{base}/api/me", headers=FETCH)
    assert response.status_code == 503
    assert response.json()["error"] == "session_store_unavailable"
    assert http.get(f"{base}/profile").status_code == 503


def cluster_store(cluster: RedisClusterDeployment) -> dict[str, str]:
    return {"SESSION_TYPE": "redis", "REDIS_URL": cluster.url, "REDIS_CLUSTER": "1"}


def test_one_spend_across_two_hosts_on_a_redis_cluster(
    deploy: Callable[..., Deployment], redis_cluster: RedisClusterDeployment
) -> None:
    deployment = deploy(2, cluster_store(redis_cluster), workers=3)
    check_one_spend(deployment)


def test_a_back_channel_logout_on_a_redis_cluster_ends_the_session_on_every_host(
    deploy: Callable[..., Deployment], redis_cluster: RedisClusterDeployment
) -> None:
    deployment = deploy(2, cluster_store(redis_cluster), workers=3)
    http = deployment.browser()
    for base in deployment.bases:
        assert http.get(f"{base}/api/me", headers=FETCH).status_code == 200
    provider = deployment.local.provider
    sign_out_at_provider(http, provider.issuer)
    assert len(provider.events("backchannel.success")) == 1  # one call, to the first host
    for base in deployment.bases:
        assert http.get(f"{base}/api/me", headers=FETCH).status_code == 401


def test_a_sentinel_failover_loses_no_sign_in_and_spends_once(
    deploy: Callable[..., Deployment], redis_sentinel: RedisSentinelDeployment
) -> None:
    store = {
        "SESSION_TYPE": "redis",
        "REDIS_URL": redis_sentinel.url,
        "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
        "OIDC_REDIS_MIN_REPLICAS": "1",
    }
    deployment = deploy(2, store)
    http = deployment.browser()
    pass_renewal_deadline(deployment.local.client(http))
    old_master = redis_sentinel.fail_over()
    redis_sentinel.wait_for_promotion(old_master)
    old = Redis(port=old_master)
    assert old.info("replication")["role"] == "master"  # not yet told: it still takes writes
    old.close()
    assert deployment.burst(http, 50, timeout=60) == [200] * 50  # at the deadline, mid-failover
    assert deployment.refreshes() == 1
    redis_sentinel.wait_for_old_master(old_master)
    # the renewed tokens survived the failover: the next deadline spends the rotated token
    pass_renewal_deadline(deployment.local.client(http))
    assert deployment.burst(http, 10) == [200] * 10
    assert deployment.refreshes() == 2
    provider = deployment.local.provider
    assert provider.events("grant.error") == [] and provider.events("grant.revoked") == []
