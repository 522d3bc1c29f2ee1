"""``make bench``: what Flask-OIDC-Refresh costs per request, as ratios against a bare Flask app
measured in the same run, and how many token requests a burst at the renewal deadline makes.

1. In process (WSGI calls, no network): a signed-in GET of a trivial JSON route with fresh tokens,
   against a bare Flask route sent the same Cookie header, and a read-only Flask-Session session
   (on a cachelib file cache beside our embedded file store, or on the same Redis); and a GET
   with an RS256 JWT access token (``accept_token``), remembered and checked afresh.
2. Over HTTP under gunicorn (2 workers): throughput against bare Flask; and on a 3-master Redis
   Cluster, two instances with 1, 2 and 4 workers each.
3. The embedded store: bytes per signed-in user, peak RSS after 10,000 sign-ins, write latency
   at 1,000 and 1,000,000 sessions, and the alternative designs (SQLite, LMDB) measured alike.
4. 50 concurrent requests of one session at its deadline across 2 worker processes (embedded
   store; Redis, a Redis Cluster and a Sentinel failover with 2 hosts), against the development
   provider rotating refresh tokens: token requests that reached the provider.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import apps_for_bench as bench_apps  # noqa: E402
import store_designs  # noqa: E402
from flask import Flask  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

ROUNDS = 15
CALLS = 1000


def wsgi_call(
    app: Flask, cookie: str | None, *, unchanged: bool = False, token: str | None = None
) -> Callable[[], None]:
    """One GET of ``/json``, made straight through WSGI, with ``cookie`` or a bearer ``token``;
    ``unchanged``: fail on ``Set-Cookie``."""
    headers = [("Cookie", f"session={cookie}")] if cookie else []
    headers += [("Authorization", f"Bearer {token}")] if token else []
    environ = EnvironBuilder(path="/json", headers=headers).get_environ()

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        assert status.startswith("200"), status
        if unchanged and any(name == "Set-Cookie" for name, _ in response_headers):
            raise AssertionError("a request that changed nothing sent Set-Cookie")
        return lambda data: None  # WSGI's write(), which Flask never calls

    def one() -> None:
        body = app(dict(environ), start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    return one


def median_costs(calls: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Median microseconds per request of each call, rounds interleaved so drift hits all alike."""
    samples: dict[str, list[float]] = {label: [] for label in calls}
    for one in calls.values():
        for _ in range(300):
            one()
    for _ in range(ROUNDS):
        for label, one in calls.items():
            start = time.perf_counter()
            for _ in range(CALLS):
                one()
            samples[label].append((time.perf_counter() - start) / CALLS * 1e6)
    return {label: statistics.median(values) for label, values in samples.items()}


def in_process(work: Path, redis_url: str | None) -> tuple[dict[str, float], dict[str, float]]:
    """Per-request cost of each app; bare Flask is sent the same Cookie header as ours (parsing
    a cookie costs some 27 µs in the test client: compare like with like). Also the Redis
    commands per request of each of our rows (the path must make no provider call, decode no
    JWT and write nothing)."""
    _, same_cookie = bench_apps.signed_in({"SESSION_FILE_DIR": str(work / "cookie")}, work / "c")
    calls = {"bare Flask": wsgi_call(bench_apps.bare(), same_cookie)}
    stores = [("file store", {"SESSION_FILE_DIR": str(work / "fs")})]
    if redis_url:
        stores.append(("Redis", {"REDIS_URL": redis_url}))
    ours: dict[str, dict[str, str]] = {}
    for label, store in stores:
        app, cookie = bench_apps.flask_session(store, refresh_each_request=False)
        calls[f"Flask-Session read-only, {label}"] = wsgi_call(app, cookie)
        app, cookie = bench_apps.flask_session(store, refresh_each_request=True)
        calls[f"Flask-Session defaults, {label}"] = wsgi_call(app, cookie)
        ours[f"Flask-OIDC-Refresh signed in, {label}"] = store
        if label == "Redis":
            ours["Flask-OIDC-Refresh signed in, Redis, no client cache"] = {
                **store,
                "OIDC_REDIS_CLIENT_CACHE": "false",
            }
    commands = {}
    for label, store in ours.items():
        app, cookie = bench_apps.signed_in(store, work / f"ours-{len(calls)}")
        calls[label] = wsgi_call(app, cookie, unchanged=True)
        calls[label]()  # the first read fills the client cache
        with bench_apps.counting() as counts:
            for _ in range(100):
                calls[label]()
        sent = counts.pop("Redis commands")
        assert counts == {"provider calls": 0, "JWT decodes": 0, "store writes": 0}, counts
        commands[label] = sent / 100
    return median_costs(calls), commands


def bearer_costs(work: Path) -> dict[str, float]:
    """Per-request cost of ``accept_token`` with an RS256 JWT access token: remembered once
    checked (every call after a token's first), and checked afresh; bare Flask is sent the same
    ``Authorization`` header. The remembered path makes no provider call and decodes no JWT."""
    with bench_apps.token_provider() as (issuer, token):
        remembered = bench_apps.token_api(issuer, work / "api-remembered")
        calls = {
            "bare Flask": wsgi_call(bench_apps.bare(), None, token=token),
            "accept_token, RS256 JWT, remembered": wsgi_call(remembered, None, token=token),
            "accept_token, RS256 JWT, checked afresh": wsgi_call(
                bench_apps.token_api(issuer, work / "api-afresh", remember=False), None, token=token
            ),
        }
        for one in calls.values():
            one()  # fetches the provider's keys once
        with bench_apps.counting() as counts:
            for _ in range(100):
                calls["accept_token, RS256 JWT, remembered"]()
        assert counts["provider calls"] == counts["JWT decodes"] == 0, counts
        return median_costs(calls)


def load(url: str, cookie: str | None, seconds: int = 5) -> float:
    """Requests per second at ``url`` (wrk when installed, else a small Python client)."""
    header = ["-H", f"Cookie: session={cookie}"] if cookie else []
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t2", "-c16", f"-d{seconds}s", *header, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(
            next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
        )
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None, url

    def worker(_: int) -> int:
        connection = http.client.HTTPConnection(host, parts.port)
        done, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            connection.request(
                "GET", parts.path, headers={"Cookie": f"session={cookie}"} if cookie else {}
            )
            connection.getresponse().read()
            done += 1
        return done

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(worker, range(8))) / seconds


def over_http(work: Path, redis_url: str | None) -> dict[str, float]:
    """Requests per second under gunicorn; runs interleaved, median of three each."""
    store = str(work / "http-fs")
    _, ours_cookie = bench_apps.signed_in({"SESSION_FILE_DIR": store}, work / "http")
    _, peer_cookie = bench_apps.flask_session(
        {"SESSION_FILE_DIR": store}, refresh_each_request=False
    )
    files = {"SESSION_FILE_DIR": store}
    ours, peer = "apps_for_bench:signed_in_app()", "apps_for_bench:flask_session_app()"
    apps: list[tuple[str, str, str | None, dict[str, str]]] = [
        ("bare Flask", "apps_for_bench:bare()", ours_cookie, files),  # the same Cookie header
        ("Flask-Session read-only, file store", peer, peer_cookie, files),
        ("Flask-OIDC-Refresh signed in, file store", ours, ours_cookie, files),
    ]
    if redis_url:
        redis = {"REDIS_URL": redis_url}
        _, redis_cookie = bench_apps.signed_in(redis, work / "http-redis")
        apps.append(("Flask-OIDC-Refresh signed in, Redis", ours, redis_cookie, redis))
    return throughput(apps)


def throughput(
    apps: list[tuple[str, str, str | None, dict[str, str]]], workers: int = 2
) -> dict[str, float]:
    """Requests per second of each (label, factory, cookie, environment) under gunicorn
    (``workers`` workers, 4 threads each); interleaved runs, median of three each."""
    from conftest import free_port, launch_gunicorn, stop

    servers: list[subprocess.Popen[str]] = []
    targets: dict[str, tuple[str, str | None]] = {}
    try:
        for label, factory, cookie, env in apps:
            port = free_port()
            env = {"PYTHONPATH": str(ROOT / "bench"), **env}
            servers.append(launch_gunicorn(port, env, app=factory, workers=workers, threads=4))
            url = f"http://127.0.0.1:{port}/json"
            _wait_for(url, cookie)
            load(url, cookie, seconds=1)
            targets[label] = (url, cookie)
        samples: dict[str, list[float]] = {label: [] for label in targets}
        for _ in range(3):
            for label, (url, cookie) in targets.items():
                samples[label].append(load(url, cookie, seconds=3))
    finally:
        for server in servers:
            stop(server)
    return {label: statistics.median(values) for label, values in samples.items()}


def cluster_throughput(work: Path) -> dict[int, float]:
    """Requests per second of our signed-in route on a 3-master Redis Cluster, two gunicorn
    instances loaded together, for 1, 2 and 4 workers per instance."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import free_port, launch_gunicorn, stop
    from redis_topologies import RedisClusterDeployment, Servers

    servers = Servers(shutil.which("redis-server") or "redis-server", work)
    rates = {}
    try:
        cluster = RedisClusterDeployment(servers, shutil.which("redis-cli") or "redis-cli")
        store = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "1"}
        _, cookie = bench_apps.signed_in(store, work / "cluster")
        env = {"PYTHONPATH": str(ROOT / "bench"), **store}
        for workers in (1, 2, 4):
            ports = [free_port(), free_port()]
            instances = [
                launch_gunicorn(port, env, app="apps_for_bench:signed_in_app()", workers=workers)
                for port in ports
            ]
            try:
                urls = [f"http://127.0.0.1:{port}/json" for port in ports]
                for url in urls:
                    _wait_for(url, cookie)
                with ThreadPoolExecutor(2) as pool:
                    rates[workers] = sum(pool.map(lambda url: load(url, cookie, 3), urls))
            finally:
                for instance in instances:
                    stop(instance)
    finally:
        servers.stop()
    return rates


def _wait_for(url: str, cookie: str | None) -> None:
    import requests

    for _ in range(100):
        try:
            if requests.get(url, cookies={"session": cookie} if cookie else {}, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def footprint(work: Path, users: int = 10_000) -> dict[str, float]:
    """Storage per signed-in user and peak RSS after ``users`` sign-ins, in a process of its
    own (so that nothing else of the bench counts)."""
    code = (
        "import json, sys; from pathlib import Path; import apps_for_bench as a; "
        f"print(json.dumps(a.footprint(Path(sys.argv[1]), {users})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(work / "footprint")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def write_latency(work: Path, sizes: tuple[int, ...] = (1_000, 1_000_000)) -> dict[int, float]:
    """Median µs of a session write into the embedded store when it holds each of ``sizes``
    entries (the store is filled with plain files first, which is quicker than writing them one
    by one through it)."""
    from flask_oidc_refresh.store.files import FileStore

    store = FileStore(str(work / "growth"))
    data = os.urandom(300)
    expires = time.time() + 3600
    filled = 0
    latencies: dict[int, float] = {}
    for size in sizes:
        for n in range(filled, size):
            path = store.path(f"session:filler-{n}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as file:
                file.write(data)
            os.utime(path, (expires, expires))
        filled = size
        os.sync()  # a store at rest: the filler's writes are not still being flushed
        for n in range(500):  # warm up: folders, caches
            store.write(f"session:warm-{size}-{n}", data, 3600)
        samples = []
        for n in range(2_000):
            start = time.perf_counter()
            store.write(f"session:measured-{size}-{n}", data, 3600)
            samples.append((time.perf_counter() - start) * 1e6)
        latencies[size] = statistics.median(samples)
    shutil.rmtree(work / "growth")
    return latencies


def concurrent_refresh(work: Path, redis_url: str | None) -> dict[str, int]:
    """Token requests made by 50 concurrent requests at the deadline, per store."""
    import scenario

    results = {
        "embedded store": scenario.burst_at_deadline({"SESSION_FILE_DIR": str(work / "burst")}, 50)
    }
    if redis_url:
        results["Redis, 2 hosts"] = scenario.burst_at_deadline(
            {"SESSION_TYPE": "redis", "REDIS_URL": redis_url}, 50, hosts=2
        )
        results["Redis Cluster, 2 hosts"] = scenario.burst_on_cluster(work / "cluster-burst")
        results["Redis Sentinel, during a failover, 2 hosts"] = scenario.burst_in_failover(
            work / "failover-burst"
        )
    return results


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, bench_apps.redis() as redis_url:
        work = Path(tmp)
        report: dict[str, Any] = {"machine": machine()}
        print(f"Machine: {report['machine']}")
        costs, commands = in_process(work, redis_url)
        bare = costs["bare Flask"]
        print("In process, signed-in GET of a JSON route (median of rounds, µs per request):")
        for label, cost in costs.items():
            print(f"  {label:<52} {cost:8.1f} µs   +{cost - bare:7.1f} µs   x{cost / bare:5.2f}")
        embedded = costs["Flask-OIDC-Refresh signed in, file store"] - bare
        print(f"  ours over bare Flask, embedded store: +{embedded:.1f} µs (target: at most +30)")
        redis = costs.get("Flask-OIDC-Refresh signed in, Redis")
        if redis:
            ratio = (redis - bare) / embedded
            print(
                f"  ours on Redis over bare Flask: x{ratio:.2f} the embedded store's (target: x1.5)"
            )
        for label, sent in commands.items():
            print(f"  {label}: {sent:g} Redis command(s) per request")
        print("  on that path: 0 provider calls, 0 JWT decodes, 0 store writes, no Set-Cookie")
        report["in_process_us"] = costs
        report["redis_commands_per_request"] = commands
        tokens = bearer_costs(work)
        print("In process, GET of a JSON route with a bearer token (median, µs per request):")
        for label, cost in tokens.items():
            extra = cost - tokens["bare Flask"]
            print(f"  {label:<52} {cost:8.1f} µs   +{extra:7.1f} µs")
        remembered = tokens["accept_token, RS256 JWT, remembered"] - tokens["bare Flask"]
        print(f"  local JWT validation over bare Flask: +{remembered:.1f} µs (target: under 60)")
        report["bearer_in_process_us"] = tokens
        rates = over_http(work, redis_url)
        print("Over HTTP, gunicorn -w 2 --threads 4 (requests per second):")
        for label, rate in rates.items():
            print(f"  {label:<52} {rate:8.0f}/s   x{rate / rates['bare Flask']:.2f} of bare Flask")
        print("  (target: ours on the embedded store at least x0.90 of bare Flask)")
        report["http_rps"] = rates
        if redis_url:
            scaled = cluster_throughput(work)
            print("Over HTTP on a 3-master Redis Cluster, two instances loaded together:")
            for workers, rate in scaled.items():
                print(f"  {workers} worker(s) per instance: {rate:8.0f}/s")
            report["cluster_rps_by_workers"] = scaled
        sizes = footprint(work)
        print("After 10,000 sign-ins on the embedded store:")
        print(
            f"  stored per signed-in user (session and sealed token record): "
            f"{sizes['bytes per signed-in user']:.0f} bytes"
        )
        print(f"  peak RSS of that process: {sizes['peak RSS, MB']:.0f} MB")
        report["footprint"] = sizes
        latencies = write_latency(work)
        print("A session write into the embedded store (median):")
        for size, micros in latencies.items():
            print(f"  holding {size:>9,} entries: {micros:7.1f} µs")
        first, last = latencies[min(latencies)], latencies[max(latencies)]
        print(f"  ratio at the largest to the smallest: x{last / first:.2f} (target: within x2)")
        report["write_us"] = latencies
        designs = store_designs.compare(work / "designs")
        print("Embedded store designs, 10,000 sessions, one process (median µs):")
        for label, figures in designs.items():
            read, write, rewrite = figures["read"], figures["write"], figures["rewrite"]
            print(f"  {label:<34} read {read:5.1f}   write {write:6.1f}   rewrite {rewrite:6.1f}")
        report["store_designs_us"] = designs
        spends = concurrent_refresh(work, redis_url)
        print("50 concurrent requests of one session at its deadline, 2 worker processes each:")
        for label, count in spends.items():
            print(f"  {label:<52} {count} token request(s) at the provider")
        report["token_requests"] = spends
        (ROOT / "bench" / "last-run.json").write_text(json.dumps(report, indent=2) + "\n")


def machine() -> str:
    """The CPU, its cores and the Python version: what the figures were measured on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    main()
