"""Real Redis deployments started by the tests: a three-master Redis Cluster, and a master with
a replica watched by Redis Sentinel. Every server listens on 127.0.0.1 and logs to a file."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from redis import Redis

SENTINEL_MASTER = "sessions"


def free_cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Servers:
    """redis-server processes of one deployment, each with a log file in ``directory``."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, port: int, *options: str) -> Redis:
        log = open(self.directory / f"redis-{port}.log", "wb")  # noqa: SIM115 (the process owns it)
        process = subprocess.Popen(
            [self.executable, *options, "--port", str(port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        client = Redis(port=port, socket_timeout=2)
        wait_until(lambda: bool(client.ping()), f"redis-server on port {port}")
        return client

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


class RedisClusterDeployment:
    """Three masters with ``--cluster-enabled``, joined with ``redis-cli --cluster create``."""

    def __init__(self, servers: Servers, cli: str) -> None:
        self.servers = servers
        self.ports = [free_cluster_port() for _ in range(3)]
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"
        nodes = []
        for port in self.ports:
            config = str(servers.directory / f"nodes-{port}.conf")
            nodes.append(
                servers.start(port, "--cluster-enabled", "yes", "--cluster-config-file", config)
            )
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        for node in nodes:
            wait_until(partial(cluster_ok, node), "the cluster")
            node.close()


def cluster_ok(node: Redis) -> bool:
    return bool(node.cluster("info")["cluster_state"] == "ok")


class RedisSentinelDeployment:
    """A master, its replica, and one Sentinel (quorum 1) watching them as ``sessions``."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        master_port, replica_port, self.port = (free_cluster_port() for _ in range(3))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        servers.start(master_port, "--repl-diskless-sync-delay", "0").close()
        replica = servers.start(replica_port, "--replicaof", "127.0.0.1", str(master_port))
        wait_until(lambda: replica.info("replication")["master_link_status"] == "up", "the replica")
        replica.close()
        config = servers.directory / "sentinel.conf"
        config.write_text(
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
        )
        self.sentinel = servers.start(self.port, str(config), "--sentinel")
        wait_until(lambda: len(self.sentinel.sentinel_slaves(SENTINEL_MASTER)) == 1, "Sentinel")

    def master_port(self) -> int:
        address: Any = self.sentinel.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        return int(address[1])

    def fail_over(self) -> int:
        """Make Sentinel promote the replica; returns the port of the master before."""
        before = self.master_port()
        wait_until(  # refused (NOGOODSLAVE) until Sentinel has fresh news of the replica
            lambda: bool(self.sentinel.sentinel_failover(SENTINEL_MASTER)), "a failover to start"
        )
        return before

    def wait_for_promotion(self, before: int) -> None:
        """Wait until Sentinel names the new master."""
        wait_until(lambda: self.master_port() != before, "the failover")

    def wait_for_old_master(self, before: int) -> None:
        """Wait until the old master replicates the new one (the failover is complete)."""
        old = Redis(port=before, socket_timeout=2)
        wait_until(lambda: old.info("replication")["master_link_status"] == "up", "the old master")
        old.close()
