"""A real 3-master Redis Cluster on loopback ports, started once for the session.

Built from `redis-server` and `redis-cli --cluster create`, like a small production cluster
without replicas; every node is killed when the session ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_settings
from tests.conftest import IN_CI, free_port

NODES = 3


@dataclass(frozen=True)
class RedisCluster:
    """The started cluster: its node ports and the URL the runtime connects with."""

    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536 and port not in taken and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_node(port: int, directory: Path) -> subprocess.Popen[bytes]:
    directory.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    command += ["--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(directory)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def _cluster_state(port: int) -> str:
    """The node's `cluster_state` (`ok` once every slot is served), or why it is unknown."""
    try:
        with redis.Redis(port=port, socket_timeout=1) as node:
            info = node.execute_command("CLUSTER", "INFO").decode()
    except redis.RedisError as error:
        return str(error)
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return fields.get("cluster_state", "unknown")


def _wait_for(state: str, ports: list[int], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while any(_cluster_state(port) != state for port in ports):
        if time.monotonic() > deadline:
            states = {port: _cluster_state(port) for port in ports}
            raise RuntimeError(f"Redis Cluster: nodes not {state} after {seconds} s: {states}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster of the session's own, every slot covered."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        reason = "redis-server and redis-cli are needed to start a Redis Cluster"
        if IN_CI:
            pytest.fail(f"{reason}; CI never skips integration tests", pytrace=False)
        pytest.skip(f"{reason} (outside CI integration tests are skipped; CI fails instead)")
    root = tmp_path_factory.mktemp("redis-cluster")
    ports: list[int] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(NODES):
            ports.append(_cluster_port(set(ports)))
            processes.append(_start_node(ports[-1], root / f"node-{index}"))
        # A started node that is not in a cluster yet answers cluster_state:fail.
        _wait_for("fail", ports)
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        _wait_for("ok", ports)
        yield RedisCluster(tuple(ports))
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


@pytest.fixture(autouse=True)
async def on_cluster(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """The `ratelimit` Redis dependency on the cluster, under a prefix of this test's own."""
    monkeypatch.setenv("APPKIT_REDIS_URL_RATELIMIT", redis_cluster.url)
    monkeypatch.setenv("APPKIT_REDIS_PREFIX", f"test-rlc-{uuid.uuid4().hex[:12]}")
    get_settings.cache_clear()
    yield
    await close_redis_connections()
    # The runtime's pytest plugin cleans its prefix on each configured Redis after this
    # fixture: keep it off the cluster (its sync cluster client leaves a socket open).
    monkeypatch.delenv("APPKIT_REDIS_URL_RATELIMIT")
    get_settings.cache_clear()
