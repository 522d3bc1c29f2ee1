"""A burst of requests at the renewal deadline, against the real development provider."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import requests
from conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    Served,
    free_port,
    launch_gunicorn,
    launch_provider,
    stop,
)
from provider_forms import sign_in
from redis_topologies import (
    SENTINEL_MASTER,
    RedisClusterDeployment,
    RedisSentinelDeployment,
    Servers,
)

from flask_oidc_refresh.testing import pass_renewal_deadline

FETCH = {"Accept": "*/*", "Sec-Fetch-Mode": "cors"}


def burst_at_deadline(
    store: dict[str, str],
    count: int,
    hosts: int = 1,
    before_burst: Callable[[], object] = lambda: None,
) -> int:
    """Sign in, pass the deadline, call ``before_burst``, send ``count`` concurrent requests
    over ``hosts`` gunicorn instances (2 workers each); returns how many refresh requests
    reached the provider."""
    with tempfile.TemporaryDirectory() as tmp:
        ports = [free_port() for _ in range(hosts)]
        provider = launch_provider(ports, Path(tmp), OP_ROTATE_REFRESH_TOKENS="1")
        env = {
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
        env.update(store)
        servers = [launch_gunicorn(port, env) for port in ports]
        try:
            with mock.patch.dict("os.environ", env):
                import example_app

                local = Served(example_app.create_app(), "", provider)
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            http = requests.Session()
            sign_in(http, f"{bases[0]}/profile")
            pass_renewal_deadline(local.client(http))
            before_burst()
            cookies = {"session": http.cookies["session"]}

            def call(n: int) -> int:
                url = f"{bases[n % hosts]}/api/me"
                return requests.get(url, cookies=cookies, headers=FETCH, timeout=60).status_code

            with ThreadPoolExecutor(count) as pool:
                statuses = list(pool.map(call, range(count)))
            assert statuses == [200] * count, statuses
            grants = provider.events("grant.success")
            return sum(event.get("grant_type") == "refresh_token" for event in grants)
        finally:
            for server in servers:
                stop(server)
            provider.stop()


def burst_on_cluster(work: Path) -> int:
    """:func:`burst_at_deadline` over two hosts on a 3-master Redis Cluster."""
    work.mkdir()
    servers = Servers(shutil.which("redis-server") or "redis-server", work)
    try:
        cluster = RedisClusterDeployment(servers, shutil.which("redis-cli") or "redis-cli")
        store = {"SESSION_TYPE": "redis", "REDIS_URL": cluster.url, "REDIS_CLUSTER": "1"}
        return burst_at_deadline(store, 50, hosts=2)
    finally:
        servers.stop()


def burst_in_failover(work: Path) -> int:
    """:func:`burst_at_deadline` over two hosts on a Sentinel-managed master, sent once the
    replica is promoted and before the old master has been told (its clients still write to
    it)."""
    work.mkdir()
    servers = Servers(shutil.which("redis-server") or "redis-server", work)
    try:
        sentinel = RedisSentinelDeployment(servers)
        store = {
            "SESSION_TYPE": "redis",
            "REDIS_URL": sentinel.url,
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
            "OIDC_REDIS_MIN_REPLICAS": "1",
        }

        def fail_over() -> None:
            sentinel.wait_for_promotion(sentinel.fail_over())

        return burst_at_deadline(store, 50, hosts=2, before_burst=fail_over)
    finally:
        servers.stop()
