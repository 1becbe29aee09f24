"""Live fixtures: the suite (scripts/suites/40-sdk-python.sh) starts Redis and
two approvald replicas on it and passes their addresses in the environment;
tests that kill a replica start their own extra one on the same Redis."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from approvald import ApprovalClient


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run scripts/suites/40-sdk-python.sh", returncode=2)
    return value


@pytest.fixture(scope="session")
def addr_a() -> str:
    return _env("APPROVALD_ADDR_A")


@pytest.fixture(scope="session")
def addr_b() -> str:
    return _env("APPROVALD_ADDR_B")


@pytest.fixture
def client(addr_a):
    with ApprovalClient(addr_a, agent_id="pytest-agent") as c:
        yield c


@pytest.fixture
def client_b(addr_b):
    with ApprovalClient(addr_b, agent_id="pytest-human") as c:
        yield c


@pytest.fixture
def kind() -> str:
    """An approval type no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(addr: str, within: float = 30.0) -> None:
    ends = time.monotonic() + within
    with grpc.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < ends:
            try:
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service="approval.v1.ApprovalService"), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"approvald at {addr} did not become SERVING within {within}s")


class Replica:
    """One more approvald process on the suite's Redis."""

    def __init__(self) -> None:
        self.addr = f"127.0.0.1:{_free_port()}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [
                _env("APPROVALD_BIN"),
                "--listen", self.addr,
                "--metrics-listen", f"127.0.0.1:{_free_port()}",
                "--redis-url", _env("APPROVALD_REDIS_URL"),
                "--redis-prefix", _env("APPROVALD_REDIS_PREFIX"),
                "--shutdown-grace", "2s",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_serving(self.addr)

    def shut_down(self) -> None:
        """SIGTERM, as Kubernetes does, and wait for the process to end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def extra_replica():
    replica = Replica()
    yield replica
    replica.shut_down()


def eventually(check, within: float = 20.0, every: float = 0.05):
    """check()'s first truthy result, polled for at most `within` seconds."""
    ends = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > ends:
            raise AssertionError(f"not true within {within}s: {check}")
        time.sleep(every)
