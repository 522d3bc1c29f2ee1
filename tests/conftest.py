"""Shared fixtures: free ports, the real development provider, apps served over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apps import CookieHolder, build_app, sharing_cookie
from fake_provider import CLIENT_ID as FAKE_CLIENT_ID
from fake_provider import CLIENT_SECRET as FAKE_CLIENT_SECRET
from fake_provider import FakeProvider
from flask import Flask
from flask.testing import FlaskClient
from provider_forms import PAGE_ACCEPT
from redis_topologies import RedisClusterDeployment, RedisSentinelDeployment, Servers
from werkzeug.serving import make_server

from flask_oidc_refresh import OIDC
from flask_oidc_refresh import clock as package_clock

#: ``make_app(**config) -> (app, oidc)``: a test app against the fake provider.
MakeApp = Callable[..., tuple[Flask, OIDC]]
#: ``serve(app, port=None, ssl_context=None) -> base URL``: an app served in a thread.
Serve = Callable[..., str]
PROVIDER_DIR = Path(__file__).parent / "provider"
CLIENT_ID = "example-app"
CLIENT_SECRET = "example-secret"


def require_tool(name: str) -> str:
    """The path of a tool the test needs; in CI a missing tool fails the test, never skips it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float = 20) -> None:
    """Read the process's stdout until ``marker`` appears."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if marker in line:
            return
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"process did not print {marker!r} (exit code {process.poll()})")


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


class DevProvider:
    """A running development provider, with its event log."""

    def __init__(self, port: int, event_log: Path) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.event_log = event_log
        self.process: subprocess.Popen[str] | None = None

    def stop(self) -> None:
        """Take the provider down (the fixture would stop it at the end of the test anyway)."""
        if self.process is not None:
            stop(self.process)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        import json

        if not self.event_log.exists():
            return []
        events = [json.loads(line) for line in self.event_log.read_text().splitlines() if line]
        return [e for e in events if name is None or e["event"] == name]


def provider_node() -> str:
    """The Node.js the provider runs on: the LTS its package.json pins (npm installs it on Linux
    x64 and arm64), else the machine's own."""
    pinned = sorted(PROVIDER_DIR.glob("node_modules/node-linux-*/bin/node"))
    return str(pinned[0]) if pinned else require_tool("node")


def launch_provider(app_ports: list[int], event_log_dir: Path, **env: str) -> DevProvider:
    """Start the development provider for apps on ``app_ports``; ``OP_*`` keywords configure it."""
    node = provider_node()
    if not (PROVIDER_DIR / "node_modules").is_dir():
        pytest.fail("tests/provider/node_modules is missing: run `make test` (it runs npm ci)")
    port = free_port()
    provider = DevProvider(port, event_log_dir / f"op-events-{port}.jsonl")
    bases = [f"http://{host}:{p}" for p in app_ports for host in ("127.0.0.1", "localhost")]
    environment = {
        **os.environ,
        "OP_PORT": str(port),
        "OP_REDIRECT_URIS": ",".join(f"{b}/oidc/callback" for b in bases),
        "OP_POST_LOGOUT_REDIRECT_URIS": ",".join(f"{b}/oidc/logout/callback" for b in bases),
        "OP_BACKCHANNEL_LOGOUT_URI": f"{bases[0]}/oidc/backchannel-logout",
        "OP_EVENT_LOG": str(provider.event_log),
        **env,
    }
    provider.process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=PROVIDER_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    wait_for_line(provider.process, "oidc-provider listening")
    return provider


@pytest.fixture
def start_provider(tmp_path: Path) -> Iterator[Callable[..., DevProvider]]:
    """Start the real development provider for given app ports; stopped after the test."""
    providers: list[DevProvider] = []

    def start(app_ports: list[int], **env: str) -> DevProvider:
        providers.append(launch_provider(app_ports, tmp_path, **env))
        return providers[-1]

    yield start
    for provider in providers:
        provider.stop()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Serve a Flask app over HTTP on 127.0.0.1 in a thread; returns its base URL."""
    servers = []

    def run(app: Flask, port: int | None = None, ssl_context: Any = None) -> str:
        server = make_server("127.0.0.1", port or 0, app, threaded=True, ssl_context=ssl_context)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        servers.append((server, thread))
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://127.0.0.1:{server.server_port}"

    yield run
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)


class Served:
    """An app served over HTTP, with its provider."""

    def __init__(self, app: Flask, base: str, provider: DevProvider) -> None:
        self.app = app
        self.base = base
        self.provider = provider

    def client(self, http: CookieHolder) -> FlaskClient:
        """A test client of the app in the session of the ``requests`` session ``http``."""
        return sharing_cookie(self.app, http)


@pytest.fixture
def example_app(
    start_provider: Callable[..., DevProvider],
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[..., Served]:
    """Start the real provider and example_app.py (in a thread) wired to it.

    ``OP_*`` keywords configure the provider, ``OIDC_*`` ones the app; the provider knows the
    app's ``/oidc/jwks`` as the client's key set.
    """

    def start(**env: str) -> Served:
        port = free_port()
        provider_env = {k: v for k, v in env.items() if k.startswith("OP_")}
        provider_env.setdefault("OP_CLIENT_JWKS_URI", f"http://127.0.0.1:{port}/oidc/jwks")
        provider = start_provider([port], **provider_env)
        monkeypatch.setenv("OIDC_ISSUER", provider.issuer)
        monkeypatch.setenv("OIDC_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("OIDC_CLIENT_SECRET", env.get("OP_CLIENT_SECRET", CLIENT_SECRET))
        monkeypatch.setenv("SESSION_FILE_DIR", str(tmp_path / f"sessions-{port}"))
        monkeypatch.setenv("OIDC_API_AUDIENCE", "urn:example:api")  # as make run has it
        for key, value in env.items():
            if key.startswith("OIDC_"):
                monkeypatch.setenv(key, value)
        import example_app

        app = example_app.create_app()
        return Served(app, serve(app, port), provider)

    return start


class BrowserClient(FlaskClient):
    """Flask's test client, sending what a browser's page load accepts: the tests' requests
    are page loads unless they say otherwise (``SCRIPT``, or an ``Accept`` of their own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ACCEPT"] = PAGE_ACCEPT


@pytest.fixture(autouse=True)
def browser_test_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app's test client is a :class:`BrowserClient`."""
    monkeypatch.setattr(Flask, "test_client_class", BrowserClient)


class Clock:
    """The package's clock, moved forward by ``advance`` for the rest of the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        monkeypatch.setattr(package_clock, "now", lambda: time.time() + self.offset)
        monkeypatch.setattr(package_clock, "monotonic", lambda: time.monotonic() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Move time for the whole package (deadlines, state lifetimes, caches), not the provider."""
    return Clock(monkeypatch)


@pytest.fixture
def fake_provider(serve: Serve) -> FakeProvider:
    """The adversarial in-process provider, served on a free loopback port."""
    provider = FakeProvider()
    provider.issuer = serve(provider.app)
    return provider


#: Run each test of a module that builds apps on every session store:
#: ``pytestmark = ON_EVERY_STORE``.
ON_EVERY_STORE = pytest.mark.on_every_store
STORES = ["embedded", "redis", "redis-cluster"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("on_every_store") is None:
        return
    if "session_store" in metafunc.fixturenames:
        metafunc.parametrize("session_store", STORES, indirect=True)


@pytest.fixture
def session_store(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The session store of the apps ``make_app`` builds (see :data:`ON_EVERY_STORE`): the
    embedded default, or an emptied Redis or Redis Cluster shared by the whole run."""
    kind = getattr(request, "param", "embedded")
    if kind == "embedded":
        yield {}
        return
    from redis import Redis
    from redis.cluster import RedisCluster

    if kind == "redis":
        server: RedisServer = request.getfixturevalue("shared_redis")
        client: Any = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    else:
        cluster: RedisClusterDeployment = request.getfixturevalue("shared_redis_cluster")
        client = RedisCluster.from_url(cluster.url, socket_timeout=2, socket_connect_timeout=2)
    client.flushall()
    yield {"SESSION_TYPE": "redis", "SESSION_REDIS": client}
    client.close()


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """A Redis server for the tests that run on every store."""
    server = RedisServer(require_tool("redis-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterDeployment]:
    """A Redis Cluster for the tests that run on every store."""
    servers = Servers(require_tool("redis-server"), tmp_path_factory.mktemp("cluster"))
    try:
        yield RedisClusterDeployment(servers, require_tool("redis-cli"))
    finally:
        servers.stop()


@pytest.fixture
def make_app(tmp_path: Path, fake_provider: FakeProvider, session_store: dict[str, Any]) -> MakeApp:
    """Build a test app against the fake provider: ``make_app(**config) -> (app, oidc)``."""

    def make(**config: Any) -> tuple[Flask, OIDC]:
        settings = {
            "OIDC_ISSUER": fake_provider.issuer,
            "OIDC_CLIENT_ID": FAKE_CLIENT_ID,
            "OIDC_CLIENT_SECRET": FAKE_CLIENT_SECRET,
            **session_store,
            **config,
        }
        return build_app(tmp_path / "instance", settings)

    return make


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    app, _ = make_app()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class RedisServer:
    """A redis-server on a free loopback port, with no persistence."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for_line(self.process, "Ready to accept connections")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis server for the test (Debian's redis-server)."""
    server = RedisServer(require_tool("redis-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterDeployment]:
    """A Redis Cluster of three masters on loopback ports (Debian's redis-server)."""
    servers = Servers(require_tool("redis-server"), tmp_path)
    try:
        yield RedisClusterDeployment(servers, require_tool("redis-cli"))
    finally:
        servers.stop()


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinelDeployment]:
    """A Redis master, its replica and a Sentinel watching them (Debian's redis-server)."""
    servers = Servers(require_tool("redis-server"), tmp_path)
    try:
        yield RedisSentinelDeployment(servers)
    finally:
        servers.stop()


def launch_gunicorn(
    port: int,
    env: dict[str, str],
    app: str = "example_app:create_app()",
    workers: int = 2,
    threads: int = 8,
) -> subprocess.Popen[str]:
    """Run ``app`` under gunicorn on 127.0.0.1:``port``; returns once it answers."""
    import requests

    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [
            str(gunicorn),
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            app,
        ],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
            return process
        except requests.RequestException:  # not listening yet, or a worker still starting
            time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"gunicorn did not start (exit code {process.poll()})")


@pytest.fixture
def start_gunicorn() -> Iterator[Callable[..., str]]:
    """Run example_app.py under gunicorn (workers x threads) with the given environment."""
    processes: list[subprocess.Popen[str]] = []

    def start(port: int, env: dict[str, str], workers: int = 2, threads: int = 8) -> str:
        processes.append(launch_gunicorn(port, env, workers=workers, threads=threads))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        stop(process)
